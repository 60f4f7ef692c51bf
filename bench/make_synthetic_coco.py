#!/usr/bin/env python3
"""Write synthetic COCO train2017-sized captions/instances JSON for the ingest benchmark.

    python3 bench/make_synthetic_coco.py                # full size, ~560 MB, about a minute
    python3 bench/make_synthetic_coco.py --scale 0.1    # quick 10% version

Writes <out-dir>/captions_train2017.json and <out-dir>/instances_train2017.json
(default out-dir: bench/out next to this script).

Shape of the real files (COCO 2017 train annotations) that this reproduces:
  * 118,287 images, 591,753 caption annotations (5 per image, a few with 6-7),
    860,001 instance annotations on 117,266 images (1,021 images have none),
    80 categories with the official ids/names/supercategories, 8 licenses;
  * instances_train2017.json is 469,785,474 bytes (448 MiB) and
    captions_train2017.json 91,865,115 bytes (87.6 MiB): the defaults land
    within about 1% of both;
  * layout and key order of the real files, written compactly the same way
    (no space after ",", one space after ":", one line), polygon and bbox
    values as floats with at most 2 decimals, "area" as a full float repr,
    file names like "000000391895.jpg", coco_url/flickr_url strings, capture
    dates, image ids drawn from 1..581929;
  * crowd annotations (iscrowd=1) carry uncompressed RLE
    {"counts": [...], "size": [h, w]} whose counts sum to h*w, bbox/area
    consistent with the mask, ids like 900100581929. Real train2017 has
    10,052 crowd annotations (1.17%); --crowd-fraction changes that;
  * annotations are shuffled in the file (not grouped by image).

Deterministic for a given --seed, scale and numpy version (numpy Generator, PCG64).
Needs numpy (a pycocotools dependency).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

REAL = dict(images=118_287, captions=591_753, instances=860_001, images_with_instances=117_266,
            crowd=10_052, max_image_id=581_929, max_caption_id=829_999, max_instance_id=2_232_119,
            instances_bytes=469_785_474, captions_bytes=91_865_115)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
from coco_tables import CATEGORIES, LICENSES  # noqa: E402

INFO = {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0",
        "year": 2017, "contributor": "COCO Consortium", "date_created": "2017/09/01"}

# Caption vocabulary (synthetic English with a realistic length distribution).
DETS = ["A", "a", "The", "Two", "the", "An", "Three", "Some", "Several", "A group of", "A couple of"]
ADJS = ["", "", "", "small", "large", "white", "black", "red", "young", "old", "little", "big",
        "blue", "green", "brown", "wooden", "yellow", "tall", "empty", "busy", "cute", "clean"]
NOUNS = ["man", "woman", "person", "dog", "cat", "bus", "train", "plate", "table", "giraffe",
         "pizza", "kitchen", "street", "boy", "girl", "elephant", "horse", "bathroom", "toilet",
         "skateboard", "surfboard", "clock", "sign", "bed", "room", "car", "truck", "bird",
         "people", "kite", "tennis player", "baseball player", "zebra", "sandwich", "laptop",
         "motorcycle", "bench", "umbrella", "building", "field", "beach", "water", "cake"]
VERBS = ["sitting on", "standing next to", "riding", "holding", "walking down", "laying on",
         "parked in front of", "flying over", "eating", "looking at", "playing with",
         "standing in", "is sitting in", "are standing on", "filled with", "covered in",
         "topped with", "hanging from", "driving down", "waiting at"]
PREPS = ["", "", "", "in a field", "on a table", "near the water", "at the park", "in the snow",
         "on a sunny day", "in front of a building", "next to each other", "on the side of the road",
         "in a kitchen", "under a tree", "at night", "with a smile"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out-dir", default=os.path.join(here, "out"))
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the real counts (default 1.0)")
    p.add_argument("--seed", type=int, default=2017)
    p.add_argument("--crowd-fraction", type=float, default=REAL["crowd"] / REAL["instances"],
                   help="share of instance annotations with iscrowd=1 (real train2017: 0.01169)")
    p.add_argument("--poly-points", type=float, default=26.35,
                   help="mean extra polygon points per annotation (tunes instances file size)")
    p.add_argument("--caption-tail", type=float, default=0.434,
                   help="share of captions ending with a place phrase (tunes captions file size)")
    p.add_argument("--chunk", type=int, default=20_000)
    return p.parse_args(argv)


def dumps(obj):
    return json.dumps(obj, separators=(",", ": "))


def make_images(rng, n):
    # image ids: distinct, from 1..581929, the maximum always present (as in train2017)
    ids = rng.choice(np.arange(1, REAL["max_image_id"]), size=n - 1, replace=False) if n > 1 else np.array([], int)
    ids = np.concatenate([ids, [REAL["max_image_id"]]]).astype(np.int64)
    rng.shuffle(ids)
    kind = rng.choice(4, size=n, p=[0.77, 0.19, 0.015, 0.025])
    short = rng.choice([480, 427, 426, 428, 425, 424, 429, 360, 512, 383, 478, 400, 423, 431, 457, 500],
                       size=n, p=[.40, .14, .08, .07, .05, .04, .03, .03, .03, .02, .02, .02, .02, .02, .02, .01])
    small = rng.choice([(500, 375), (375, 500), (612, 612), (500, 333), (333, 500), (480, 640)], size=n)
    widths = np.where(kind == 0, 640, np.where(kind == 1, short, np.where(kind == 2, 640, small[:, 0])))
    heights = np.where(kind == 0, short, np.where(kind == 1, 640, np.where(kind == 2, 640, small[:, 1])))
    return ids, widths.astype(np.int64), heights.astype(np.int64)


def image_records(rng, ids, widths, heights):
    n = len(ids)
    lic = rng.integers(1, 9, n)
    secs = rng.integers(0, 61 * 86400, n)  # 2013-11-01 .. 2013-12-31
    farm = rng.integers(1, 10, n)
    server = rng.integers(1000, 9000, n)
    photo = rng.integers(1_000_000_000, 9_999_999_999, n)
    secret = rng.integers(0, 1 << 40, n)
    out = []
    for i in range(n):
        s = int(secs[i])
        day, s = divmod(s, 86400)
        month, dom = (11, day + 1) if day < 30 else (12, day - 29)
        iid = int(ids[i])
        out.append(
            '{"license": %d,"file_name": "%012d.jpg","coco_url": "http://images.cocodataset.org/train2017/%012d.jpg",'
            '"height": %d,"width": %d,"date_captured": "2013-%02d-%02d %02d:%02d:%02d",'
            '"flickr_url": "http://farm%d.staticflickr.com/%d/%d_%010x_z.jpg","id": %d}'
            % (lic[i], iid, iid, heights[i], widths[i], month, dom, s // 3600, s // 60 % 60, s % 60,
               farm[i], server[i], photo[i], secret[i], iid))
    return out


def write_header(f, images_json):
    f.write('{"info": ' + dumps(INFO) + ',"licenses": ')
    f.write(dumps([{"url": u, "id": i, "name": n} for u, i, n in LICENSES]))
    f.write(',"images": [')
    for k in range(0, len(images_json), 10_000):
        if k:
            f.write(",")
        f.write(",".join(images_json[k:k + 10_000]))
    f.write('],"annotations": [')


def write_captions(path, args, rng, ids, images_json):
    n_img = len(ids)
    n_cap = max(n_img, round(REAL["captions"] * args.scale))
    per = np.full(n_img, 5 if n_cap >= 5 * n_img else 1, dtype=np.int64)
    extra = n_cap - per.sum()
    if extra > 0:  # the few images with a 6th or 7th caption
        extra_imgs = rng.choice(n_img, size=extra, replace=True)
        np.add.at(per, extra_imgs, 1)
    image_of = np.repeat(ids, per)
    rng.shuffle(image_of)
    cap_ids = rng.choice(np.arange(1, REAL["max_caption_id"] + 1), size=n_cap, replace=False)

    # caption text: template slots; lengths like real captions (mean ~52 chars)
    nd, na, nn, nv, npp = len(DETS), len(ADJS), len(NOUNS), len(VERBS), len(PREPS)
    d1, a1, n1 = rng.integers(0, nd, n_cap), rng.integers(0, na, n_cap), rng.integers(0, nn, n_cap)
    v1 = rng.integers(0, nv, n_cap)
    d2, a2, n2 = rng.integers(0, nd, n_cap), rng.integers(0, na, n_cap), rng.integers(0, nn, n_cap)
    pp = rng.integers(0, npp, n_cap)
    longer = rng.random(n_cap) < 0.05  # a second clause on some captions
    pp = np.where(rng.random(n_cap) < args.caption_tail, pp, 0)
    extra_adj = rng.integers(0, na, n_cap)
    ending = rng.choice(5, size=n_cap, p=[0.80, 0.12, 0.05, 0.025, 0.005])  # ".", "", " ", ". ", "\n"
    accent = rng.random(n_cap) < 0.0005
    endings = [".", "", " ", ". ", "\n"]

    with open(path, "w", encoding="ascii") as f:
        write_header(f, images_json)
        for start in range(0, n_cap, args.chunk):
            parts = []
            for i in range(start, min(n_cap, start + args.chunk)):
                words = [DETS[d1[i]], ADJS[a1[i]], NOUNS[n1[i]], VERBS[v1[i]],
                         DETS[d2[i]].lower(), ADJS[a2[i]], NOUNS[n2[i]], PREPS[pp[i]]]
                if longer[i]:
                    words += ["and", ADJS[extra_adj[i]], NOUNS[n1[i] - 1]]
                text = " ".join(w for w in words if w)
                if accent[i]:
                    text = text.replace("a ", "\u00e0 ", 1) + " caf\u00e9"
                text += endings[ending[i]]
                parts.append('{"image_id": %d,"id": %d,"caption": %s}' % (image_of[i], cap_ids[i], json.dumps(text)))
            if start:
                f.write(",")
            f.write(",".join(parts))
        f.write("]}")
    return n_cap


def crowd_rle(rng, w_img, h_img):
    """A blob-shaped crowd mask (column-major RLE) and its bbox/area."""
    bw = int(rng.integers(max(2, w_img // 8), w_img + 1))
    bh = int(rng.integers(max(2, h_img // 8), h_img + 1))
    c0 = int(rng.integers(0, w_img - bw + 1))
    r0 = int(rng.integers(0, h_img - bh + 1))
    top = np.clip(r0 + np.abs(np.cumsum(rng.integers(-4, 5, bw))), r0, r0 + bh - 1)
    bot = np.clip(r0 + bh - np.abs(np.cumsum(rng.integers(-4, 5, bw))), top + 1, r0 + bh)
    rows = np.arange(h_img)[:, None]
    mask = (rows >= top[None, :]) & (rows < bot[None, :])
    # holes: gaps between people
    holes = rng.random(bw) < 0.5
    hs = rng.integers(0, h_img, bw)
    he = hs + rng.integers(1, 30, bw)
    mask &= ~(holes[None, :] & (rows >= hs[None, :]) & (rows < he[None, :]))
    flat = mask.T.reshape(-1).astype(np.int8)  # column-major, only the box's columns
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds)
    if flat[0] == 1:
        runs = np.concatenate([[0], runs])
    runs[0] += c0 * h_img
    if flat[-1] == 1:
        runs = np.concatenate([runs, [(w_img - c0 - bw) * h_img]])
    else:
        runs[-1] += (w_img - c0 - bw) * h_img
    assert runs.sum() == w_img * h_img
    cols = np.flatnonzero(mask.any(axis=0))
    rws = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        bbox = [float(c0), float(r0), 0.0, 0.0]
    else:
        bbox = [float(c0 + cols[0]), float(rws[0]), float(cols[-1] - cols[0] + 1), float(rws[-1] - rws[0] + 1)]
    return runs.tolist(), bbox, int(mask.sum())


def write_instances(path, args, rng, ids, widths, heights, images_json):
    n_img = len(ids)
    n_ann = max(1, round(REAL["instances"] * args.scale))
    n_with = min(n_img, max(1, round(n_img * REAL["images_with_instances"] / REAL["images"])))
    with_idx = rng.choice(n_img, size=n_with, replace=False)
    weights = rng.gamma(0.9, 1.0, n_with)
    per = rng.multinomial(n_ann - n_with, weights / weights.sum()) + 1
    img_of = np.repeat(with_idx, per)
    rng.shuffle(img_of)  # file order: not grouped by image

    cat_ids = np.array([c[0] for c in CATEGORIES])
    cw = 1.0 / np.arange(1, 80) ** 0.9
    cw = np.concatenate([[0.305], 0.695 * cw / cw.sum()])  # person ~30.5%, the rest Zipf-like
    cat_perm = np.concatenate([[0], 1 + rng.permutation(79)])
    cat_of = cat_ids[cat_perm[rng.choice(80, size=n_ann, p=cw)]]
    crowd = rng.random(n_ann) < args.crowd_fraction
    crowd_cats = np.array([1, 1, 1, 1, 1, 1, 84, 3, 20, 16, 52, 62])
    cat_of[crowd] = rng.choice(crowd_cats, size=int(crowd.sum()))
    ann_ids = rng.choice(np.arange(1, REAL["max_instance_id"] + 1), size=n_ann, replace=False)
    crowd_seen = {}

    with open(path, "w", encoding="ascii") as f:
        write_header(f, images_json)
        first = True
        for start in range(0, n_ann, args.chunk):
            stop = min(n_ann, start + args.chunk)
            m = stop - start
            W = widths[img_of[start:stop]].astype(np.float64)
            H = heights[img_of[start:stop]].astype(np.float64)
            # object boxes: log-uniform sizes (many small objects, like COCO)
            sw = np.exp(rng.uniform(np.log(7.0), np.log(W * 0.98)))
            sh = np.clip(sw * np.exp(rng.normal(0.0, 0.5, m)), 2.0, H * 0.98)
            x0 = rng.uniform(0, 1, m) * (W - sw)
            y0 = rng.uniform(0, 1, m) * (H - sh)
            # polygons: 1 (88%) to 4 per annotation, points long-tailed, larger objects get more
            npoly = np.where(rng.random(m) < 0.88, 1, rng.integers(2, 5, m))
            size_boost = np.log2(1 + sw * sh / 1024.0)
            npts_ann = 3 * npoly + np.round(rng.gamma(1.6, args.poly_points / 1.6 / 2.2, m) * (0.4 + 0.45 * size_boost)).astype(np.int64)
            # split annotation points over its polygons
            poly_ann = np.repeat(np.arange(m), npoly)
            poly_k = np.arange(poly_ann.size) - np.repeat(np.cumsum(npoly) - npoly, npoly)
            poly_n = np.maximum(3, npts_ann[poly_ann] // npoly[poly_ann])
            pk = npoly[poly_ann]
            pcx = x0[poly_ann] + sw[poly_ann] * (poly_k + 0.5) / pk
            pcy = y0[poly_ann] + sh[poly_ann] / 2
            prx = sw[poly_ann] / (2 * pk)
            pry = sh[poly_ann] / 2
            pt_poly = np.repeat(np.arange(poly_ann.size), poly_n)
            poly_start = np.cumsum(poly_n) - poly_n
            pt_i = np.arange(pt_poly.size) - poly_start[pt_poly]
            ang = 2 * np.pi * (pt_i + rng.uniform(0, 0.6, pt_poly.size)) / poly_n[pt_poly]
            rad = rng.uniform(0.7, 1.0, pt_poly.size)
            Wp, Hp = W[poly_ann][pt_poly], H[poly_ann][pt_poly]
            px = np.clip(np.rint((pcx[pt_poly] + rad * prx[pt_poly] * np.cos(ang)) * 100), 0, Wp * 100) / 100
            py = np.clip(np.rint((pcy[pt_poly] + rad * pry[pt_poly] * np.sin(ang)) * 100), 0, Hp * 100) / 100
            # shoelace area per polygon, summed per annotation
            nxt = np.arange(pt_poly.size) + 1
            last = poly_start + poly_n - 1
            nxt[last] = poly_start
            cross = px * py[nxt] - px[nxt] * py
            parea = np.abs(np.add.reduceat(cross, poly_start)) / 2
            ann_poly_start = np.cumsum(npoly) - npoly
            area = np.add.reduceat(parea, ann_poly_start)
            # tight bbox of the polygon points, 2 decimals
            ann_pt_start = poly_start[ann_poly_start]
            bx0 = np.minimum.reduceat(px, ann_pt_start)
            by0 = np.minimum.reduceat(py, ann_pt_start)
            bw = np.rint((np.maximum.reduceat(px, ann_pt_start) - bx0) * 100) / 100
            bh = np.rint((np.maximum.reduceat(py, ann_pt_start) - by0) * 100) / 100

            # interleave x and y per point, then stringify once
            xy = np.empty(2 * px.size)
            xy[0::2], xy[1::2] = px, py
            coord = list(map(repr, xy.tolist()))
            poly_end2 = 2 * (poly_start + poly_n)
            poly_start2 = 2 * poly_start
            area_l, bx0_l, by0_l, bw_l, bh_l = (a.tolist() for a in (area, bx0, by0, bw, bh))
            parts = []
            for j in range(m):
                i = start + j
                iidx = img_of[i]
                iid = int(ids[iidx])
                if crowd[i]:
                    counts, bbox, carea = crowd_rle(rng, int(widths[iidx]), int(heights[iidx]))
                    k = crowd_seen.get(iid, 0)
                    crowd_seen[iid] = k + 1
                    parts.append('{"segmentation": {"counts": [%s],"size": [%d,%d]},"area": %d,"iscrowd": 1,'
                                 '"image_id": %d,"bbox": [%r,%r,%r,%r],"category_id": %d,"id": %d}'
                                 % (",".join(map(str, counts)), heights[iidx], widths[iidx], carea, iid,
                                    bbox[0], bbox[1], bbox[2], bbox[3], cat_of[i], 900100000000 + k * 100000000000 + iid))
                    continue
                p0 = ann_poly_start[j]
                polys = ",".join("[" + ",".join(coord[poly_start2[q]:poly_end2[q]]) + "]"
                                 for q in range(p0, p0 + npoly[j]))
                parts.append('{"segmentation": [%s],"area": %r,"iscrowd": 0,"image_id": %d,'
                             '"bbox": [%r,%r,%r,%r],"category_id": %d,"id": %d}'
                             % (polys, area_l[j], iid, bx0_l[j], by0_l[j], bw_l[j], bh_l[j], cat_of[i], ann_ids[i]))
            if not first:
                f.write(",")
            first = False
            f.write(",".join(parts))
        f.write('],"categories": ')
        f.write(dumps([{"supercategory": s, "id": i, "name": n} for i, n, s in CATEGORIES]))
        f.write("}")
    return n_ann, int(crowd.sum()), n_with


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    n_img = max(1, round(REAL["images"] * args.scale))
    ids, widths, heights = make_images(rng, n_img)
    images_json = image_records(rng, ids, widths, heights)

    cap_path = os.path.join(args.out_dir, "captions_train2017.json")
    inst_path = os.path.join(args.out_dir, "instances_train2017.json")
    n_cap = write_captions(cap_path + ".tmp", args, np.random.default_rng([args.seed, 1]), ids, images_json)
    os.replace(cap_path + ".tmp", cap_path)
    n_ann, n_crowd, n_with = write_instances(inst_path + ".tmp", args, np.random.default_rng([args.seed, 2]),
                                             ids, widths, heights, images_json)
    os.replace(inst_path + ".tmp", inst_path)

    cs, is_ = os.path.getsize(cap_path), os.path.getsize(inst_path)
    print(f"images {n_img}; captions {n_cap}; instances {n_ann} ({n_crowd} iscrowd) on {n_with} images")
    print(f"{cap_path}: {cs:,} bytes ({cs / 2**20:.1f} MiB; real x scale: {REAL['captions_bytes'] * args.scale / 2**20:.1f} MiB)")
    print(f"{inst_path}: {is_:,} bytes ({is_ / 2**20:.1f} MiB; real x scale: {REAL['instances_bytes'] * args.scale / 2**20:.1f} MiB)")
    print(f"generated in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
