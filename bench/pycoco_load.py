#!/usr/bin/env python3
"""Load COCO annotation files with pycocotools in this process (what LLaVA-style
pipelines do first): `python3 bench/pycoco_load.py FILE [FILE ...]`.

Each file goes through pycocotools.coco.COCO(path): json.load plus createIndex.
All loaded objects stay alive until the end, so peak RSS covers all of them.
"""
import sys
import time

from pycocotools.coco import COCO


def main(paths):
    kept = []
    for path in paths:
        t0 = time.perf_counter()
        coco = COCO(path)
        kept.append(coco)
        print(f"pycoco_load: {path}: {len(coco.imgs)} images, {len(coco.anns)} annotations, "
              f"{len(coco.cats)} categories in {time.perf_counter() - t0:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
