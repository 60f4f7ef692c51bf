#!/usr/bin/env python3
"""Build the small COCO-2017-shaped fixtures used by the context golden tests.

    python3 tools/reference/make_context_fixtures.py --out-dir Tests/ContextTests/Fixtures

writes captions_small.json and instances_small.json (official COCO 2017 layout
and key order, compact separators like the real files). The content is
synthetic; the edge cases are planted on purpose and listed in
Tests/ContextTests/Fixtures/README.md. Deterministic: same output every run.

With --report it also prints, for every kept box coordinate, which plausible
but wrong implementations would print something else than Python's
round(v, 3) (used to document the fixtures' discriminating power).
"""

import argparse
import json
import math
import os
import random

from coco_tables import CATEGORIES, LICENSES

CAT_ID = {name: cid for cid, name, _ in CATEGORIES}

INFO = {
    "description": "COCO 2017 Dataset",
    "url": "http://cocodataset.org",
    "version": "1.0",
    "year": 2017,
    "contributor": "COCO Consortium",
    "date_created": "2017/09/01",
}

# ---------------------------------------------------------------------------
# The images. Each: id, width, height, captions (raw, as written in the file),
# boxes as (category name, [x, y, w, h]) or (category name, [x, y, w, h], "crowd").
# ---------------------------------------------------------------------------
IMAGES = [
    # 1. ordinary image, real-looking 2-decimal floats
    dict(id=391895, width=640, height=360, captions=[
        "A man with a red helmet on a small moped on a dirt road. ",
        "Man riding a motor bike on a dirt road on the countryside.",
        "A man riding on the back of a motorcycle.",
        "A dirt path with a young person on a motor bike rests to the foreground of a verdant area with a bridge and a background of cloud-wreathed mountains. ",
        "A man in a red shirt and a red hat is on a motorcycle on a hill side.",
    ], boxes=[
        ("person", [359.17, 146.17, 112.45, 213.57]),
        ("motorcycle", [339.88, 22.16, 153.88, 300.73]),
        ("person", [471.64, 172.82, 35.92, 48.1]),
        ("bicycle", [486.01, 183.31, 30.63, 34.98]),
    ]),
    # 2. 'dining table', 'cell phone' and many-decimal values like real COCO
    dict(id=522418, width=640, height=480, captions=[
        "A woman wearing a net on her head cutting a cake. ",
        "A woman cutting a large white sheet cake.",
        "A woman wearing a hair net cutting a large sheet cake.",
        "there is a woman that is cutting a white cake",
        "A woman marking a cake with the back of a chef's knife. ",
    ], boxes=[
        ("dining table", [0.0, 229.27, 640.0, 250.73]),
        ("person", [382.48, 0.0, 256.8, 474.31]),
        ("knife", [234.22, 316.08, 149.39, 38.55]),
        ("cake", [119.09, 212.79, 397.7, 185.27]),
        ("cell phone", [473.07, 395.93, 38.65, 28.67]),
        ("dining table", [1.0799999999999983, 187.69, 611.59, 285.84]),
    ]),
    # 3. x/W exactly the decimal ties 0.0005, 0.0015, 0.0025, 0.1235 (W = 500)
    dict(id=184613, width=500, height=336, captions=[
        "A child holding a flowered umbrella and petting a yak.",
        "A young man holding an umbrella next to a herd of cattle.",
        "a young boy barefoot holding an umbrella touching the horn of a cow",
        "A young boy with an umbrella who is touching the horn of a cow.",
        "A boy holding an umbrella while standing next to livestock.",
    ], boxes=[
        ("umbrella", [0.25, 0.5, 95.75, 83.5]),
        ("cow", [0.75, 154.5, 164.25, 180.75]),
        ("person", [1.25, 0.84, 61.75, 191.91]),
        ("cow", [61.75, 41.5, 249.75, 294.5]),
    ]),
    # 4. exact binary ties odd/16: 40/640 = 0.0625 etc. (ties-to-even gives 0.062)
    dict(id=318219, width=640, height=480, captions=[
        "A young man holding a remote control while standing in front of a TV.",
        "A man is playing a video game at home.",
        "a man in a grey shirt is playing the wii",
        "A man standing in a living room holding a game controller.",
        "A guy is standing in the living room playing a video game.",
    ], boxes=[
        ("person", [40.0, 30.0, 160.0, 330.0]),      # 0.0625, 0.0625, 0.3125, 0.75
        ("remote", [360.0, 90.0, 160.0, 120.0]),     # 0.5625, 0.1875, 0.8125, 0.4375
        ("tv", [200.0, 150.0, 400.0, 60.0]),         # 0.3125, 0.3125, 0.9375, 0.4375
        ("couch", [120.0, 270.0, 160.0, 180.0]),     # 0.1875, 0.5625, 0.4375, 0.9375
    ]),
    # 5. thirds: 1/3 and 2/3, portrait image
    dict(id=554625, width=480, height=640, captions=[
        "A little girl holding a kite on a sandy beach.",
        "A girl flying a kite at the beach.",
        "Girl standing on the beach holding onto her kite.",
        "A young girl stands on a beach, holding a colorful kite.",
        "a young child flying a kite on a beach 🪁 ",  # raw 4-byte UTF-8
    ], boxes=[
        ("person", [160.0, 213.33, 160.0, 213.34]),
        ("kite", [142.33, 0.0, 142.34, 106.67]),
        ("person", [320.0, 426.67, 159.99, 213.33]),
    ]),
    # 6. near-ties from 2-decimal coordinates on a 640 x 480 image:
    #    220.48/640 = 0.3445 (binary below), 79.04/640 = 0.1235 (binary above),
    #    0.32/640 = 0.0005, 0.96/640 = 0.0015, 1.6/640 = 0.0025, 639.68/640 = 0.9995
    dict(id=574769, width=640, height=480, captions=[
        "A man and a woman standing in a kitchen.",
        "Two people standing in a kitchen looking at a laptop.",
        "A couple standing in a kitchen next to a refrigerator.",
        "two people in a kitchen with a laptop on the counter",
        "A man and woman in a kitchen, one using a laptop.",
    ], boxes=[
        ("person", [220.48, 79.04, 100.0, 165.36]),
        ("laptop", [0.32, 0.24, 0.64, 0.48]),
        ("refrigerator", [0.96, 0.72, 638.72, 478.8]),
        ("person", [1.6, 1.2, 78.08, 165.36]),
        ("oven", [79.04, 59.28, 560.64, 420.72]),
    ]),
    # 7. sums: (x+w)/W in double differs from x/W + w/W after rounding; 107/400 = 0.2675
    dict(id=60623, width=400, height=300, captions=[
        "A woman sitting on a bench next to a dog.",
        "A woman sits on a park bench with her dog.",
        "A lady sitting on a bench with a dog on a leash.",
        "A person and a dog on a bench in a park.",
        "Woman and her dog resting on a wooden bench.",
    ], boxes=[
        ("bench", [107.0, 80.25, 185.9, 130.05]),
        ("dog", [1.07, 2.675, 105.93, 77.575]),
    ]),
    # 8. boxes partly/fully outside the image, negative coordinates, -0.0
    dict(id=309022, width=640, height=480, captions=[
        "A bus driving down a city street next to tall buildings.",
        "A red double decker bus on a street.",
        "A city bus is driving down the street.",
        "A double decker bus is parked on the side of a road.",
        "a big red bus that is driving on a road",
    ], boxes=[
        ("bus", [-3.5, 57.21, 412.33, 380.12]),
        ("car", [600.0, 300.5, 80.25, 40.0]),
        ("person", [512.3, -12.06, 40.5, 500.0]),
        ("traffic light", [650.0, 10.0, 12.0, 30.0]),
        ("truck", [-0.0, -0.0, 120.37, 96.83]),
        ("car", [-50.0, -40.0, 20.0, 30.0]),
    ]),
    # 9. zero / negative width or height boxes mixed with valid ones
    dict(id=5802, width=640, height=480, captions=[
        "Two men wearing aprons working in a commercial-style kitchen.",
        "Chefs preparing food in a professional metallic style kitchen.",
        "Two people standing around in a large kitchen.",
        "A commercial kitchen with two men working to prepare several plates.",
        "two men in white shirts in a large steel kitchen",
    ], boxes=[
        ("person", [80.37, 60.08, 118.89, 373.09]),
        ("bowl", [231.17, 263.1, 0.0, 22.79]),
        ("sink", [400.0, 300.0, 45.0, 0.0]),
        ("person", [422.45, 42.85, 138.98, 437.15]),
        ("oven", [12.0, 240.0, -4.2, 38.0]),
        ("spoon", [301.11, 252.37, 9.8, -1.0]),
        ("bowl", [255.01, 260.54, 0.01, 0.01]),
    ]),
    # 10. every box degenerate: detail = captions only, dropped_boxes = 2
    dict(id=222564, width=640, height=480, captions=[
        "Two chefs in a restaurant kitchen preparing food. ",
        "Two cooks are cooking the food someone ordered at this restaurant",
        "The chef is cooking with pans on the stove next to an oven. ",
        "Two men that are standing in a kitchen.",
        "Two cooks are near the stove in a stainless steel kitchen.",
    ], boxes=[
        ("oven", [0.0, 0.0, 0.0, 0.0]),
        ("person", [10.5, 20.25, -1.0, -1.0]),
    ]),
    # 11. iscrowd=1 (RLE segmentation) among regular boxes
    dict(id=118113, width=640, height=425, captions=[
        "A crowd of people standing next to a road.",
        "Many people are waiting at a busy intersection.",
        "A group of people waiting to cross the street.",
        "People gathering on a sidewalk near a traffic light.",
        "A large group of pedestrians on a city corner.",
    ], boxes=[
        ("person", [2.0, 171.0, 311.0, 184.0], "crowd"),
        ("traffic light", [407.45, 27.63, 25.59, 60.93]),
        ("person", [322.93, 165.75, 51.39, 178.61]),
        ("handbag", [340.7, 254.9, 21.36, 33.39]),
    ]),
    # 12. captions with leading/trailing spaces, tabs, trailing "\n" and "\r\n"
    dict(id=193271, width=640, height=480, captions=[
        "   A plate of food with broccoli and rice.",
        "\tA white plate topped with meat, rice and broccoli.\t",
        "A meal of chicken, broccoli and rice on a plate.\n",
        " \t A close up of a plate of food on a table \r\n",
        "Rice  and broccoli\tare on the plate.",
    ], boxes=[
        ("broccoli", [336.95, 193.66, 113.44, 96.09]),
        ("dining table", [0.0, 6.29, 640.0, 473.71]),
        ("fork", [5.39, 105.18, 178.24, 83.88]),
    ]),
    # 13. "\n" inside a caption, non-ASCII (é, 中文, emoji), quotes, backslash, "\/"
    dict(id=224736, width=640, height=427, captions=[
        "A café table with two cups of coffee.",
        "Two cups of coffee\non a small table.",
        "桌子上有两杯咖啡。",
        "Coffee time ☕️ with friends 😀",
        "A sign reading \"Caf\u00e9 & Cr\u00eape\" \\ 1/2 price",
        "Two mugs on a table \n",
    ], boxes=[
        ("cup", [214.22, 180.1, 92.17, 101.59]),
        ("cup", [339.08, 178.55, 88.6, 104.88]),
        ("dining table", [0.0, 213.69, 640.0, 213.31]),
    ], escaped_captions={3: True, 4: True}),   # written with \uXXXX escapes (surrogate pairs)
    # 14. Unicode whitespace: NBSP and U+3000 are stripped by str.strip(), U+200B is not;
    #     a whitespace-only caption becomes an empty line
    dict(id=483108, width=640, height=480, captions=[
        "\u00a0A boat docked at a pier on a lake.\u00a0",
        "\u3000湖の桟橋に停泊しているボート。\u3000",
        "A small boat tied to a dock.\u200b",
        "   \t ",
        "A boat in the water next to a wooden dock.",
    ], boxes=[
        ("boat", [153.21, 208.5, 301.86, 120.6]),
    ], escaped_captions={0: True}),
    # 15. no captions at all: detail = box lines only, conversation = ""
    dict(id=403013, width=640, height=480, captions=[], boxes=[
        ("oven", [0.0, 240.83, 177.87, 239.17]),
        ("microwave", [396.11, 94.34, 106.7, 62.96]),
        ("sink", [487.18, 273.08, 110.77, 41.58]),
    ]),
    # 16. no boxes: detail = reasoning = conversation
    dict(id=374628, width=500, height=375, captions=[
        "A sky filled with clouds over a grassy field.",
        "An empty field under a cloudy sky.",
        "Clouds gather over a green meadow.",
        "A wide open field on an overcast day.",
        "Green grass and gray clouds.",
    ], boxes=[]),
    # 17. no captions and no boxes: everything is the empty string
    dict(id=328757, width=640, height=480, captions=[], boxes=[]),
    # 18. the largest train2017 image id; crowd annotation with a > 2^32 id
    dict(id=581929, width=640, height=478, captions=[
        "A white horse standing in a grassy field.",
        "A horse grazing in a field with trees behind it.",
        "A horse is standing in a pasture.",
        "A white horse in a green field near some trees.",
        "The horse is eating grass in the field.",
    ], boxes=[
        ("horse", [227.39, 112.48, 289.6, 270.61]),
        ("sheep", [0.0, 300.0, 120.0, 60.0], "crowd"),
    ]),
    # 19. small id (sorts after "581929" as a string); six captions; many boxes
    dict(id=9, width=640, height=480, captions=[
        "Closeup of bins of food that include broccoli and bread.",
        "A meal is presented in brightly colored plastic trays.",
        "there are containers filled with different kinds of foods",
        "Colorful dishes holding meat, vegetables, fruit, and bread.",
        "A bunch of trays that have different food.",
        "Four plastic lunch boxes filled with food.",
    ], boxes=[
        ("bowl", [1.08, 187.69, 611.59, 285.84]),
        ("bowl", [311.73, 4.31, 319.28, 228.68]),
        ("broccoli", [249.6, 229.27, 316.24, 245.08]),
        ("bowl", [0.0, 13.51, 434.48, 375.12]),
        ("orange", [376.2, 40.36, 75.55, 46.53]),
        ("orange", [465.78, 38.97, 58.07, 46.67]),
        ("orange", [385.7, 73.66, 84.02, 70.51]),
        ("orange", [364.05, 2.49, 94.76, 71.07]),
    ]),
    # 20. giraffe / potted plant
    dict(id=25, width=640, height=426, captions=[
        "A giraffe eating food from the top of the tree.",
        "A giraffe standing up nearby a tree ",
        "A giraffe mother with its baby in the forest.",
        "Two giraffes standing in a tree filled area.",
        "A giraffe standing next to a forest filled with trees.",
    ], boxes=[
        ("giraffe", [385.53, 60.03, 214.97, 297.16]),
        ("giraffe", [53.01, 356.49, 132.03, 55.19]),
        ("potted plant", [13.88, 316.39, 46.69, 91.07]),
    ]),
    # 21. potted plant / vase, height 428
    dict(id=30, width=640, height=428, captions=[
        "A flower vase is sitting on a porch stand.",
        "White vase with different colored flowers sitting inside of it. ",
        "a white vase with many flowers on a stage",
        "A white vase filled with different colored flowers.",
        "A vase with red and white flowers outside on a sunny day.",
    ], boxes=[
        ("potted plant", [204.86, 31.02, 254.88, 324.12]),
        ("vase", [237.56, 155.81, 166.4, 195.25]),
    ]),
    # 22. multi-word category names
    dict(id=86408, width=640, height=427, captions=[
        "A street corner with a fire hydrant, a stop sign and a parking meter.",
        "A teddy bear sits next to a hair drier on a shelf.",
        "A traffic light above a street with parked cars.",
        "Sports equipment: a baseball glove, a tennis racket and a sports ball.",
        "A hot dog and a wine glass on a picnic table.",
    ], boxes=[
        ("fire hydrant", [96.42, 241.35, 51.7, 112.63]),
        ("stop sign", [10.17, 60.49, 89.3, 93.19]),
        ("parking meter", [555.93, 180.86, 41.2, 170.06]),
        ("teddy bear", [300.55, 90.49, 77.94, 109.1]),
        ("hair drier", [393.32, 118.92, 33.04, 63.9]),
        ("traffic light", [231.07, 0.0, 19.89, 47.77]),
        ("baseball glove", [168.91, 331.2, 41.3, 36.02]),
        ("tennis racket", [440.06, 300.42, 96.81, 55.44]),
        ("sports ball", [259.43, 353.12, 12.21, 12.5]),
        ("hot dog", [62.67, 373.62, 90.54, 33.0]),
        ("wine glass", [612.25, 331.19, 27.75, 95.81]),
    ]),
    # 23. portrait image; crowd of books (integers in the crowd bbox, like real crowd boxes)
    dict(id=269105, width=427, height=640, captions=[
        "A person holding a cell phone next to a couch.",
        "Someone is texting on a cell phone in a living room.",
        "A hand holding a phone above a table with books.",
        "A cell phone being held over a dining table.",
        "A person looks at a phone near a bookcase.",
    ], boxes=[
        ("cell phone", [140.27, 201.11, 86.47, 158.82]),
        ("book", [0, 12, 96, 210], "crowd"),
        ("couch", [0.0, 390.65, 427.0, 249.35]),
        ("dining table", [33.53, 455.48, 393.47, 184.52]),
    ]),
    # 24. more sum cases: (x+w)/W vs x/W + w/W disagree after rounding
    dict(id=113588, width=640, height=480, captions=[
        "A cat laying on top of a laptop computer.",
        "A cat is sleeping on a keyboard.",
        "A gray cat resting on an open laptop.",
        "A cat sitting on a desk next to a mouse.",
        "A cat lounging on a computer keyboard.",
    ], boxes=[
        ("cat", [18.47, 24.49, 150.17, 50.71]),
        ("laptop", [28.97, 31.35, 50.71, 43.21]),
        ("mouse", [39.82, 100.0, 12.34, 20.0]),
    ]),
    # 25. seven captions, a 17-significant-digit coordinate, box touching W exactly
    dict(id=540186, width=640, height=480, captions=[
        "A skateboarder doing a trick on a ramp.",
        "A man riding a skateboard down the side of a ramp.",
        "A skateboarder in mid air at a skate park.",
        "A person on a skateboard jumping in the air.",
        "A young man performing a skateboard trick.",
        "A skater catching air above a concrete bowl.",
        "A kid skateboarding at the park on a sunny day.",
    ], boxes=[
        ("person", [255.91, 53.37, 140.56, 244.21]),
        ("skateboard", [0.30000000000000004, 280.13, 639.7, 0.03]),
        ("skateboard", [300.12, 290.46, 339.88, 189.54]),
    ]),
]


def r2(v):
    return round(v, 2)


def polygon_for(box, width, height, rng, n_points):
    """A jagged ellipse inside the (clipped) box, coordinates with 2 decimals."""
    x, y, w, h = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    if x1 <= x0 or y1 <= y0 or w <= 0 or h <= 0:
        # degenerate: a flat polygon (real COCO has a few of these)
        px, py = min(max(x, 0.0), width), min(max(y, 0.0), height)
        return [[r2(px), r2(py), r2(px), r2(py), r2(px), r2(py)]]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    pts = []
    for i in range(n_points):
        a = 2 * math.pi * i / n_points
        k = 0.75 + 0.25 * rng.random()
        pts += [r2(cx + k * rx * math.cos(a)), r2(cy + k * ry * math.sin(a))]
    return [pts]


def shoelace(poly):
    pts = list(zip(poly[0::2], poly[1::2]))
    s = 0.0
    for (xa, ya), (xb, yb) in zip(pts, pts[1:] + pts[:1]):
        s += xa * yb - xb * ya
    return abs(s) / 2


def rectangle_rle(box, width, height):
    """Uncompressed COCO RLE (column-major runs, zeros first) of the box rectangle,
    clipped to the image; returns (segmentation, pixel area)."""
    x, y, w, h = box
    c0, c1 = max(0, int(x)), min(width, int(math.ceil(x + w)))
    r0, r1 = max(0, int(y)), min(height, int(math.ceil(y + h)))
    counts, run = [], 0
    for c in range(width):
        if c0 <= c < c1 and r1 > r0:
            run += r0
            if run == 0 and counts:
                counts[-1] += r1 - r0  # a full-height column continues the run of ones
            else:
                counts += [run, r1 - r0]
            run = height - r1
        else:
            run += height
    counts.append(run)
    assert sum(counts) == width * height
    return {"counts": counts, "size": [height, width]}, max(0, c1 - c0) * max(0, r1 - r0)


def dumps(obj, escape=False):
    # the real COCO files: no space after ",", one space after ":"
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=escape)


def image_record(img, rng):
    iid = img["id"]
    farm, server = rng.randint(1, 9), rng.randint(1000, 9000)
    photo, secret = rng.randint(1000000000, 9999999999), "%010x" % rng.getrandbits(40)
    return {
        "license": rng.randint(1, 8),
        "file_name": "%012d.jpg" % iid,
        "coco_url": "http://images.cocodataset.org/train2017/%012d.jpg" % iid,
        "height": img["height"],
        "width": img["width"],
        "date_captured": "2013-%02d-%02d %02d:%02d:%02d" % (
            rng.randint(11, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
        "flickr_url": "http://farm%d.staticflickr.com/%d/%d_%s_z.jpg" % (farm, server, photo, secret[:10]),
        "id": iid,
    }


def write_doc(path, licenses, images, annotations, categories=None):
    """Write like the real files: compact, one document on one line."""
    parts = ['"info": ' + dumps(INFO), '"licenses": ' + dumps(licenses),
             '"images": [' + ",".join(dumps(i) for i in images) + "]",
             '"annotations": [' + ",".join(annotations) + "]"]
    if categories is not None:
        parts.append('"categories": ' + dumps(categories))
    text = "{" + ",".join(parts) + "}"
    json.loads(text)  # must stay valid JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return len(text.encode("utf-8"))


def build(out_dir):
    rng = random.Random(20170901)
    images = [image_record(img, rng) for img in IMAGES]
    licenses = [{"url": u, "id": i, "name": n} for u, i, n in LICENSES]

    # caption annotations: collect per image, then interleave across images
    cap_items = []
    for img in IMAGES:
        escaped = img.get("escaped_captions", {})
        for k, text in enumerate(img["captions"]):
            cap_items.append((img["id"], k, text, escaped.get(k, False)))
    # Interleave across images; each image's captions keep their listed order.
    order = interleave(cap_items, key=lambda t: t[0], rng=rng)
    cap_ids = rng.sample(range(1, 830000), len(order))
    caption_anns = []
    for (iid, k, text, escape), aid in zip(order, cap_ids):
        s = dumps({"image_id": iid, "id": aid, "caption": text}, escape=escape)
        if iid == 224736 and k == 4:
            s = s.replace("1/2", "1\\/2")  # JSON allows an escaped solidus
        caption_anns.append(s)

    box_items = []
    for img in IMAGES:
        for k, b in enumerate(img["boxes"]):
            box_items.append((img["id"], k, b))
    order = interleave(box_items, key=lambda t: t[0], rng=rng)
    inst_ids = iter(rng.sample(range(100, 2232000), len(order)))
    dims = {img["id"]: (img["width"], img["height"]) for img in IMAGES}
    instance_anns = []
    for iid, k, b in order:
        name, bbox = b[0], b[1]
        crowd = len(b) > 2 and b[2] == "crowd"
        width, height = dims[iid]
        if crowd:
            seg, area = rectangle_rle(bbox, width, height)
            ann_id = 900100000000 + iid
        else:
            seg = polygon_for(bbox, width, height, rng, rng.randint(6, 14))
            area = sum(shoelace(p) for p in seg)
            if bbox[2] <= 0 or bbox[3] <= 0:
                area = 0.0
            elif bbox[2] * bbox[3] < 0.001:
                area = 5e-05  # json writes this as 5e-05: an exponent in the file
            ann_id = next(inst_ids)
        ann = {"segmentation": seg, "area": area, "iscrowd": 1 if crowd else 0, "image_id": iid,
               "bbox": bbox, "category_id": CAT_ID[name], "id": ann_id}
        instance_anns.append(dumps(ann))

    categories = [{"supercategory": s, "id": i, "name": n} for i, n, s in CATEGORIES]
    os.makedirs(out_dir, exist_ok=True)
    n1 = write_doc(os.path.join(out_dir, "captions_small.json"), licenses, images, caption_anns)
    n2 = write_doc(os.path.join(out_dir, "instances_small.json"), licenses, images, instance_anns, categories)
    print(f"captions_small.json: {n1} bytes, {len(caption_anns)} annotations")
    print(f"instances_small.json: {n2} bytes, {len(instance_anns)} annotations")
    assert n1 < 60_000 and n2 < 60_000


def interleave(items, key, rng):
    """Deterministic interleaving: items of different images alternate in a shuffled
    round-robin; items of the same image keep their relative order."""
    groups = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    queues = list(groups.values())
    rng.shuffle(queues)
    out = []
    while queues:
        # take from a random non-empty queue, biased so runs of one image stay short
        i = rng.randrange(len(queues))
        out.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return out


# --- discriminating power --------------------------------------------------

def report():
    from decimal import Decimal, ROUND_HALF_EVEN
    import struct

    def py(v):
        return round(max(0.0, min(v, 1.0)), 3)

    def away(v):  # Swift: (v * 1000).rounded() / 1000
        v = max(0.0, min(v, 1.0))
        return math.floor(v * 1000 + 0.5) / 1000

    def even_mul(v):  # (v * 1000).rounded(.toNearestOrEven) / 1000
        v = max(0.0, min(v, 1.0))
        return round(v * 1000) / 1000

    def dec(v_exact):  # exact decimal arithmetic on the JSON text, half-even
        v_exact = max(Decimal(0), min(v_exact, Decimal(1)))
        return float(v_exact.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN))

    def f32(v):
        return struct.unpack("f", struct.pack("f", v))[0]

    counts = {"half-away (v*1000).rounded()": 0, "half-even on v*1000": 0,
              "x2 as x/W + w/W": 0, "exact decimal math": 0, "Float32 math": 0}
    total = 0
    details = []
    for img in IMAGES:
        W, H = img["width"], img["height"]
        for b in img["boxes"]:
            x, y, w, h = b[1]
            if w <= 0 or h <= 0:
                continue
            vals = [(x, 0, W), (y, 0, H), (x, w, W), (y, h, H)]
            for a, d, D in vals:
                total += 1
                want = py((a + d) / D)
                wrong = []
                if away((a + d) / D) != want:
                    counts["half-away (v*1000).rounded()"] += 1
                    wrong.append("half-away (v*1000).rounded()")
                if even_mul((a + d) / D) != want:
                    counts["half-even on v*1000"] += 1
                    wrong.append("half-even on v*1000")
                if d and py(a / D + d / D) != want:
                    counts["x2 as x/W + w/W"] += 1
                    wrong.append("x2 as x/W + w/W")
                if dec((Decimal(repr(a)) + Decimal(repr(d))) / Decimal(D)) != want:
                    counts["exact decimal math"] += 1
                    wrong.append("exact decimal math")
                if py(f32((f32(a) + f32(d)) / f32(D))) != want:
                    counts["Float32 math"] += 1
                    wrong.append("Float32 math")
                if wrong:
                    expr = f"({a!r}+{d!r})/{D}" if d else f"{a!r}/{D}"
                    details.append(f"  image {img['id']} {b[0]}: {expr} = {(a + d) / D!r} -> {want}; "
                                   f"differs with: {', '.join(wrong)}")
    print(f"{total} printed coordinates; coordinates where each wrong implementation differs:")
    for k, v in counts.items():
        print(f"  {k}: {v}")
    print("details:")
    print("\n".join(details))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default="Tests/ContextTests/Fixtures")
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    build(a.out_dir)
    if a.report:
        report()


if __name__ == "__main__":
    main()
