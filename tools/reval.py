#!/usr/bin/env python3
"""Re-evaluate saved detections (tf-faster-rcnn's reval.py).

    python tools/reval.py output/<exp>/<imdb>/<tag>/<weights> --imdb voc_2007_test [--nms] [--comp]

``output_dir`` is the folder holding ``detections.pkl`` written by tools/test_net.py; the evaluation
(VOC per-class APs and Mean AP, or COCO's summary) is printed and its files are written there.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

import numpy as np
import torch

from faster_rcnn.cli import ToolParser, apply_config, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import DataError, UsageError
from faster_rcnn.utils.detections_file import read_detections


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Re-evaluate results saved by test_net.py')
    parser.add_argument('output_dir', help='folder holding detections.pkl')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test', help='dataset to re-evaluate')
    parser.add_argument('--matlab', dest='matlab_eval', action='store_true',
                        help='ignored: the MATLAB devkit evaluation is not supported, the Python one runs')
    parser.add_argument('--comp', dest='comp_mode', action='store_true', help='competition mode (keep the '
                        'result files)')
    parser.add_argument('--nms', dest='apply_nms', action='store_true', help='apply per-class NMS '
                        '(TEST.NMS) to the saved detections first')
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='experiment config file (YAML)')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='config overrides as KEY VALUE pairs (must come last)')
    return parser.parse_args(argv)


def apply_nms(all_boxes: list[list[np.ndarray]], thresh: float) -> list[list[np.ndarray]]:
    """Per-class, per-image NMS (the GPU kernel's rule) over all_boxes[cls][img] (n, 5)."""
    from faster_rcnn.ops import nms
    out = [[np.zeros((0, 5), np.float32) for _ in per_image] for per_image in all_boxes]
    for c, per_image in enumerate(all_boxes):
        for i, dets in enumerate(per_image):
            if dets is None or len(dets) == 0:
                continue
            t = torch.as_tensor(np.asarray(dets, dtype=np.float32))
            keep = nms(t[:, :4], t[:, 4], thresh)
            out[c][i] = np.asarray(dets)[keep.numpy()].copy()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_config(args, verbose=False)
    if args.matlab_eval:
        print('--matlab: the MATLAB evaluation is not supported; using the Python VOC evaluation, which '
              'implements the same rules')
    det_file = osp.join(args.output_dir, 'detections.pkl')
    if not osp.exists(det_file):
        raise UsageError(f'{det_file} does not exist; run tools/test_net.py first (it writes detections.pkl in its '
                         'output folder)')
    # Read without running code: only arrays in lists are accepted (old tf-faster-rcnn files included).
    all_boxes = read_detections(det_file)
    imdb = get_imdb(args.imdb_name, cfg.DATA_DIR)
    imdb.competition_mode(args.comp_mode)
    if len(all_boxes) != imdb.num_classes or any(len(a) != imdb.num_images for a in all_boxes):
        raise DataError(f'{det_file} holds {len(all_boxes)} classes x {len(all_boxes[0]) if all_boxes else 0} '
                        f'images, but {imdb.name} has {imdb.num_classes} x {imdb.num_images}: pass the --imdb it '
                        'was tested on')
    if args.apply_nms:
        print(f'Applying NMS ({cfg.TEST.NMS}) to all detections')
        all_boxes = apply_nms(all_boxes, cfg.TEST.NMS)
    print('Evaluating detections')
    imdb.evaluate_detections(all_boxes, args.output_dir)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
