#!/usr/bin/env python3
"""Look at a training set the way the RPN sees it: box statistics and anchor coverage at the training scales.

    python tools/analyze_dataset.py --imdb voc_2007_trainval
    python tools/analyze_dataset.py --imdb shapes_trainval --cfg experiments/cfgs/shapes.yml --show 8
    python tools/analyze_dataset.py --imdb voc_dir:data/mine:train --set ANCHOR_SCALES "[2, 4, 8, 16]"

The boxes are those the training loader delivers (TRAIN.SCALES / MAX_SIZE resize, flipped copies when
TRAIN.USE_FLIPPED, difficult boxes left out unless TRAIN.USE_ALL_GT). It prints and writes to --out
(default output/dataset_analysis/<imdb>):
  report.txt          images, boxes per class, box sizes sqrt(w*h) and aspect ratios h/w per scale, and the
                      share of boxes whose best anchor IoU is >= TRAIN.RPN_POSITIVE_OVERLAP, >= 0.5, < 0.3
                      overall, per class and per COCO size group; anchors that would cover the boxes when more
                      than 5% have no anchor at >= 0.5
  box_sizes.png, aspect_ratios.png, best_iou.png   the histograms
  show/               with --show N: N training images as the loader delivers them, gt boxes labelled with
                      class and best anchor IoU

Anchors: ANCHOR_SCALES x ANCHOR_RATIOS on the image's stride-16 feature map, only those fully inside the
scaled image (the anchor-target layer's rule); see faster_rcnn/analysis/anchor_coverage.py.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time

import numpy as np

from faster_rcnn.analysis.anchor_coverage import (best_anchor_iou, coverage_rows, current_candidate,
                                                  format_coverage, format_suggestions, needs_suggestion,
                                                  plot_best_iou, recommend, suggest_anchors)
from faster_rcnn.analysis.dataset_stats import (box_statistics, format_statistics, plot_box_histograms,
                                                training_boxes)
from faster_rcnn.cli import ToolParser, add_config_args, apply_config, roidb_settings, run_tool, train_settings
from faster_rcnn.config import cfg, path_safe
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.errors import DataError, DiskError, UsageError
from faster_rcnn.nets.registry import NETWORKS
from faster_rcnn.settings import NetworkSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Box statistics and anchor coverage of a training set')
    parser.add_argument('--imdb', dest='imdb_name', required=True, help="dataset(s) to analyse, '+' joins several")
    parser.add_argument('--out', default=None,
                        help='folder for report.txt, the histograms and --show images (default: '
                             'ROOT_DIR/output/dataset_analysis/<imdb>)')
    parser.add_argument('--show', type=int, default=0, metavar='N',
                        help='draw the first N training images of the training stream, as the loader delivers them')
    parser.add_argument('--net', default=None, choices=NETWORKS,
                        help='only decides the feature-map size: every head gives ceil(H/16) x ceil(W/16) except '
                             'vgg16 with VGG16.CEIL_MODE False (floor)')
    add_config_args(parser)
    return parser.parse_args(argv)


def show_training_images(roidb: list[dict], boxes_of, inputs, seed: int, ims_per_batch: int, aspect_grouping: bool,
                         use_all_gt: bool, class_names, count: int, out_dir: str) -> list[str]:
    """Draw the first ``count`` images of the training stream (the sampler's order and scales) with their gt
    boxes captioned '<class> <best anchor IoU>'; ``boxes_of(gt (G, 5), (H, W))`` gives the IoUs."""
    import cv2
    from faster_rcnn.data.dataset import RoidbDataset
    from faster_rcnn.data.sampler import InfiniteBatchSampler
    from faster_rcnn.utils.visualization import draw_boxes, unnormalize_blob
    dataset = RoidbDataset(roidb, seed, inputs, use_all_gt)
    sampler = InfiniteBatchSampler(dataset.aspect_ratios(), min(ims_per_batch, len(dataset)), seed,
                                   aspect_grouping=aspect_grouping)
    os.makedirs(out_dir, exist_ok=True)
    paths: list[str] = []
    for batch in sampler:
        for item_key in batch:
            if len(paths) >= count:
                return paths
            item = dataset[item_key]
            im = unnormalize_blob(item['image'].transpose(2, 0, 1), np.array(inputs.pixel_means),
                                  np.array(inputs.pixel_stds), inputs.channel_order)
            gt = item['gt_boxes']
            h, w = int(item['im_info'][0]), int(item['im_info'][1])
            ious = boxes_of(gt, (h, w))
            classes = [int(c) for c in gt[:, 4]]
            labels = [class_names[c] if c < len(class_names) else str(c) for c in classes]
            drawn = draw_boxes(im, gt[:, :4], labels, classes, scores=ious)
            entry = roidb[item['index']]
            stem = osp.splitext(osp.basename(entry['image']))[0]
            path = osp.join(out_dir, f'{len(paths):03d}_{stem}{"_flipped" if entry["flipped"] else ""}.png')
            if not cv2.imwrite(path, drawn):
                raise DiskError(f'{path}: OpenCV could not write the image; free some space or choose a writable '
                                '--out folder')
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.show < 0:
        raise UsageError(f'--show {args.show}: expected a number of images >= 0')
    apply_config(args, verbose=False)
    train = train_settings(num_workers=0)
    network = NetworkSettings.from_config(cfg)
    positive = float(network.anchor_target_kwargs['rpn_positive_overlap'])
    ceil = not (args.net == 'vgg16' and not bool(cfg.VGG16.CEIL_MODE))
    out_dir = args.out or osp.join(cfg.ROOT_DIR, 'output', 'dataset_analysis', path_safe(args.imdb_name))
    os.makedirs(out_dir, exist_ok=True)

    imdb, roidb = combined_roidb(args.imdb_name, roidb_settings(), data_dir=cfg.DATA_DIR)
    start = time.perf_counter()
    tb = training_boxes(roidb, train.input, train.use_all_gt, imdb.classes)
    if len(tb) == 0:
        raise DataError(f'--imdb {args.imdb_name}: the training roidb delivers no gt box (background-only '
                         'images, TRAIN.KEEP_BACKGROUND_IMAGES): there is nothing to analyse')
    report = [format_statistics(box_statistics(tb), imdb.name, tb.targets, tb.max_size)]
    coverage = best_anchor_iou(tb.boxes, tb.image_size, network.anchor_scales, network.anchor_ratios, ceil=ceil)
    report.append(format_coverage(coverage_rows(tb, coverage, positive), positive, network.anchor_scales,
                                  network.anchor_ratios))
    suggest, uncovered = needs_suggestion(coverage)
    if suggest:
        candidates = suggest_anchors(tb.boxes, tb.image_size, positive,
                                     current=(network.anchor_scales, network.anchor_ratios), ceil=ceil)
        current = current_candidate(candidates, network.anchor_scales, network.anchor_ratios)
        report.append(format_suggestions(candidates, recommend(candidates), uncovered, positive, current))
    else:
        report.append(f'{100 * (1 - uncovered):.1f}% of the boxes have an anchor at IoU >= 0.5: no other anchors '
                      'suggested')
    report.append(f'({len(tb)} boxes at {len(tb.targets)} scale(s) analysed in {time.perf_counter() - start:.2f} s; '
                  f'feature map {"ceil" if ceil else "floor"}(side / 16))')
    text = '\n\n'.join(report)
    print(text)
    with open(osp.join(out_dir, 'report.txt'), 'w', encoding='utf-8') as f:
        f.write(text + '\n')
    written = plot_box_histograms(tb, out_dir) + [plot_best_iou(coverage, tb, osp.join(out_dir, 'best_iou.png'),
                                                                positive)]
    if args.show:
        def boxes_of(gt: np.ndarray, size: tuple[int, int]) -> np.ndarray:
            sizes = np.tile(np.array(size, np.int64), (gt.shape[0], 1))
            return best_anchor_iou(gt[:, :4], sizes, network.anchor_scales, network.anchor_ratios,
                                   ceil=ceil).best_iou
        written += show_training_images(roidb, boxes_of, train.input, train.seed, train.ims_per_batch,
                                        train.aspect_grouping, train.use_all_gt, imdb.classes, args.show,
                                        osp.join(out_dir, 'show'))
    print(f'\nwritten to {out_dir}: report.txt, ' + ', '.join(osp.relpath(p, out_dir) for p in written))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
