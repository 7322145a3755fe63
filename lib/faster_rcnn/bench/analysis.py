"""``python tools/benchmark.py analysis``: the time of ``tools/analyze_results.py``'s analysis (TIDE, the
confusion matrix and AP by object size; no gallery, no files) on generated results, so that no dataset is needed.

Each generated image is 640 x 480 with 1..8 gt boxes of 10..300 px (5% of them ignore boxes) and ``--dets``
detections: jittered copies of its gt boxes, a fifth of them with a wrong class, and 30% boxes anywhere, with
random float32 scores (as ``detections.pkl`` holds them). The conversion from detections.pkl's layout
(``all_boxes[cls][image]``) is timed too. Reported: the median of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from ..analysis.results import analyze, detections_per_image
from ..analysis.tide import ImageDetections, ImageGroundTruth
from ..cli import ToolParser


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py analysis', description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=5000)
    p.add_argument('--dets', type=int, default=100, help='detections per image')
    p.add_argument('--classes', type=int, default=21, help='classes with the background (default 21, as VOC)')
    p.add_argument('--metric', default='voc07', choices=('voc07', 'voc', 'coco'), help='AP of the size table')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--json', default=None, help='write the results to this file')
    return p.parse_args(argv)


def synthetic_results(num_images: int, dets_per_image: int, num_classes: int, seed: int = 0
                      ) -> tuple[list[ImageGroundTruth], list[ImageDetections]]:
    """Ground truth and detections of ``num_images`` images (module docstring); labels in 1..num_classes-1."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(num_images):
        g = int(rng.integers(1, 9))
        xy = rng.uniform(0, 400, (g, 2))
        wh = rng.uniform(10, 300, (g, 2))
        boxes = np.concatenate([xy, xy + wh - 1], axis=1)
        labels = rng.integers(1, num_classes, g)
        gts.append(ImageGroundTruth(boxes=boxes, labels=labels, ignore=rng.random(g) < 0.05))
        near = rng.integers(0, g, dets_per_image)
        d = boxes[near] + rng.normal(0, 0.15, (dets_per_image, 4)) * np.tile(wh[near], 2)
        far = rng.random(dets_per_image) < 0.3
        d[far, :2] = rng.uniform(0, 600, (int(far.sum()), 2))
        d[far, 2:] = d[far, :2] + rng.uniform(5, 200, (int(far.sum()), 2))
        d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
        wrong = rng.random(dets_per_image) < 0.2
        d_labels = np.where(wrong, rng.integers(1, num_classes, dets_per_image), labels[near])
        dets.append(ImageDetections(boxes=d.astype(np.float32), scores=rng.random(dets_per_image).astype(np.float32),
                                    labels=d_labels))
    return gts, dets


def as_all_boxes(dets: list[ImageDetections], num_classes: int) -> list[list[np.ndarray]]:
    """detections.pkl's layout: ``all_boxes[cls][image]`` (n, 5) float32, class 0 empty."""
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in dets] for _ in range(num_classes)]
    for i, d in enumerate(dets):
        for c in np.unique(d.labels):
            keep = d.labels == c
            all_boxes[c][i] = np.concatenate([d.boxes[keep], d.scores[keep, None]], axis=1)
    return all_boxes


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    gts, dets = synthetic_results(args.images, args.dets, args.classes)
    classes = ('__background__',) + tuple(f'c{k}' for k in range(1, args.classes))
    all_boxes = as_all_boxes(dets, args.classes)
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        a = analyze(gts, detections_per_image(all_boxes, len(dets)), classes, args.metric)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    print(f'{args.images} images x {args.dets} detections, {args.classes - 1} classes ({args.metric}): '
          f'{median:.2f} s median of {args.repeats} (runs {", ".join(f"{r:.2f}" for r in runs)}) for TIDE + '
          f'confusion + size APs; TIDE AP50 {a.tide.ap50:.2f}, size mAP (all) {a.sizes.range("all").mean_ap:.4f}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'images': args.images, 'dets_per_image': args.dets, 'classes': args.classes - 1,
                       'metric': args.metric, 'seconds': {'median': median, 'runs': runs}}, f, indent=2)
        print(f'Wrote {args.json}')
    return 0
