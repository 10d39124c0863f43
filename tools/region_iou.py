#!/usr/bin/python3
"""tools/region_iou.py — how human-drawn face boxes overlap faceq's, for the
IoU from which enroll --from-xmp matches a region to a detected face
(docs/xmp.md). Reads WIDER's boxes (../shared/data/wider-dev/boxes.csv, the
unflagged faces) and `faceq analyze` records of the same photos:

    faceq analyze --jobs 2 ../shared/data/wider-dev/images > wider.jsonl
    tools/region_iou.py wider.jsonl

and prints, for the faces faceq found: the IoU of the human box with faceq's
(same face), with the next detection (another face), and with the human box
grown 1.3x and 1.5x (a looser region, as people draw them in photo managers).
"""
import csv
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "wider-dev")


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    i = (x1 - x0) * (y1 - y0)
    return i / (a[2] * a[3] + b[2] * b[3] - i)


def grow(b, f):
    cx, cy, w, h = b[0] + b[2] / 2, b[1] + b[3] / 2, b[2] * f, b[3] * f
    return (cx - w / 2, cy - h / 2, w, h)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


def main(records):
    truth = {}
    with open(os.path.join(ROOT, "boxes.csv")) as f:
        for r in csv.DictReader(f):
            if not r["flag"]:
                truth.setdefault(r["file"], []).append(tuple(int(r[k]) for k in "xywh"))
    missed, best, neighbour, grown = [], [], [], {1.3: [], 1.5: []}
    with open(records) as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") != "analysis":
                continue
            dets = [(d["bbox"]["x"], d["bbox"]["y"], d["bbox"]["width"], d["bbox"]["height"]) for d in r["faces"]]
            for g in truth.get(os.path.basename(r["file"]), []):
                ious = sorted((iou(g, d) for d in dets), reverse=True)
                if not ious or ious[0] < 0.3:
                    missed.append(ious[0] if ious else 0.0)
                    continue
                best.append(ious[0])
                neighbour.append(ious[1] if len(ious) > 1 else 0.0)
                for k in grown:
                    grown[k].append(max(iou(grow(g, k), d) for d in dets))
    print("faces found (IoU >= 0.3): %d; not found: %d (IoU 0.1-0.3: %d)"
          % (len(best), len(missed), sum(0.1 <= x < 0.3 for x in missed)))
    print("same face: p5 %.2f, p10 %.2f, median %.2f; under 0.5: %d"
          % (pct(best, .05), pct(best, .10), pct(best, .5), sum(b < 0.5 for b in best)))
    print("next detection (another face): max %.2f, p99 %.2f; >= 0.3: %d"
          % (max(neighbour), pct(neighbour, .99), sum(n >= 0.3 for n in neighbour)))
    for k, v in grown.items():
        print("human box grown %.1fx: p5 %.2f, median %.2f; under 0.3: %d, under 0.5: %d"
              % (k, pct(v, .05), pct(v, .5), sum(x < 0.3 for x in v), sum(x < 0.5 for x in v)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tools/region_iou.py ANALYZE_RECORDS.jsonl")
    main(sys.argv[1])
