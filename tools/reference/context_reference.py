#!/usr/bin/env python3
"""Reference implementation of LLaVA's "symbolic context" text for COCO images.

This is the executable specification the Swift `Contexts` module is tested
against (see Tests/ContextTests/Fixtures/). Pure standard library: json + Python
floats, no pycocotools.

Usage:
    python3 context_reference.py --captions F --instances F --out expected_contexts.json

Rules (one context per image and per type):

* Captions: the image's caption annotations in file order, one per line, each
  passed through Python ``str.strip()`` (Unicode whitespace as Python defines it:
  NBSP and U+3000 are stripped, U+200B is not). A caption that is only
  whitespace becomes an empty line. Characters inside a caption (including
  "\\n") are kept as they are.
* ``conversation``: the caption lines only.
* ``detail`` and ``reasoning`` (identical text): the caption lines, then one
  blank line, then one line per box: the image's instance annotations in file
  order (iscrowd 0 or 1 alike), formatted ``category_name: [x1, y1, x2, y2]``
  with x1 = x/W, y1 = y/H, x2 = (x+w)/W, y2 = (y+h)/H computed exactly in this
  order in IEEE double (the sum x+w first, then the division), from the COCO
  bbox [x, y, w, h] and the image's width W and height H.
  Each value is clamped to [0, 1] as ``max(0.0, min(v, 1.0))`` (so -0.0 comes
  out as 0.0) and then rounded with Python ``round(v, 3)`` (correctly rounded
  from the exact binary value, ties to even), and the list is printed as Python
  prints a list of floats: ``[0.0, 0.34, 1.0, 0.574]``.
* Boxes with w <= 0 or h <= 0 are dropped and counted in ``dropped_boxes``.
* No boxes left: detail/reasoning are the captions alone (no blank line).
  No captions: detail/reasoning are the box lines alone (no leading blank
  line). Neither: the empty string.
* No trailing newline anywhere.

Images: every image listed in either file's "images" array (width/height taken
from the instances file when the image is in both). An annotation whose
image_id is in neither images list is an error (exit status 1).

Output: {"<image_id>": {"conversation": str, "detail": str,
"reasoning": str, "dropped_boxes": int}, ...} with json.dump(sort_keys=True),
i.e. keys in lexicographic string order ("100" sorts before "25"), UTF-8,
indent 2, ensure_ascii=False, one trailing newline after the JSON document.
"""

import argparse
import json
import sys


def clamp01(v):
    # max(0.0, ...) with 0.0 first returns 0.0 for -0.0 (equal values keep the
    # first argument), so a negative zero never reaches the output.
    return max(0.0, min(v, 1.0))


def format_box(bbox, width, height):
    x, y, w, h = bbox
    coords = [x / width, y / height, (x + w) / width, (y + h) / height]
    return [round(clamp01(v), 3) for v in coords]


def build_contexts(captions_doc, instances_doc):
    images = {}
    for doc in (captions_doc, instances_doc):  # instances last: its W/H win
        for img in doc.get("images", []):
            images[img["id"]] = (img["width"], img["height"])

    categories = {c["id"]: c["name"] for c in instances_doc.get("categories", [])}

    captions = {image_id: [] for image_id in images}
    for ann in captions_doc.get("annotations", []):
        image_id = ann["image_id"]
        if image_id not in captions:
            raise ValueError(f"caption annotation {ann.get('id')} refers to unknown image {image_id}")
        captions[image_id].append(ann["caption"].strip())

    boxes = {image_id: [] for image_id in images}
    dropped = {image_id: 0 for image_id in images}
    for ann in instances_doc.get("annotations", []):
        image_id = ann["image_id"]
        if image_id not in boxes:
            raise ValueError(f"instance annotation {ann.get('id')} refers to unknown image {image_id}")
        x, y, w, h = ann["bbox"]
        if w <= 0 or h <= 0:
            dropped[image_id] += 1
            continue
        width, height = images[image_id]
        name = categories[ann["category_id"]]
        boxes[image_id].append(f"{name}: {format_box(ann['bbox'], width, height)}")

    out = {}
    for image_id in images:
        caption_text = "\n".join(captions[image_id])
        box_text = "\n".join(boxes[image_id])
        if captions[image_id] and boxes[image_id]:
            detail = caption_text + "\n\n" + box_text
        elif boxes[image_id]:
            detail = box_text
        else:
            detail = caption_text
        out[str(image_id)] = {
            "conversation": caption_text,
            "detail": detail,
            "reasoning": detail,
            "dropped_boxes": dropped[image_id],
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", required=True, help="COCO captions JSON")
    parser.add_argument("--instances", required=True, help="COCO instances JSON")
    parser.add_argument("--out", required=True, help="where to write expected_contexts.json")
    args = parser.parse_args(argv)

    with open(args.captions, encoding="utf-8") as f:
        captions_doc = json.load(f)
    with open(args.instances, encoding="utf-8") as f:
        instances_doc = json.load(f)
    try:
        out = build_contexts(captions_doc, instances_doc)
    except (ValueError, KeyError) as e:
        print(f"context_reference: {e}", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, sort_keys=True, indent=2, ensure_ascii=False)
        f.write("\n")
    n_dropped = sum(v["dropped_boxes"] for v in out.values())
    print(f"context_reference: {len(out)} images, {n_dropped} dropped boxes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
