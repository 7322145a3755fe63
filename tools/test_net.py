#!/usr/bin/env python3
"""Test a trained Faster R-CNN network on a dataset and print its mAP (tf-faster-rcnn's test_net.py).

A model file of this project (a snapshot or a converted model) records its normalisation, anchors, layout
and test settings, so ``--cfg`` and ``--net`` are only needed for older snapshots and bare state_dicts.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

import torch

from faster_rcnn.config import get_output_dir
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.detector_file import open_detector
from faster_rcnn.engine.tester import test_net
from faster_rcnn.utils.cli import add_config_args, apply_detector_config, resolve_device
from faster_rcnn.utils.errors import run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a Faster R-CNN network')
    parser.add_argument('--model', required=True, help='model file to test (<prefix>_iter_<N>.pth)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test', help='dataset to test')
    parser.add_argument('--comp', dest='comp_mode', action='store_true', help='competition mode (VOC: the '
                        'comp4_det_* result files are kept after evaluation)')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=100,
                        help='maximum detections per image over all classes (0: no limit)')
    parser.add_argument('--tag', default='', help='tag of the model (output sub-folder)')
    parser.add_argument('--net', default=None,
                        help="vgg16, res50, res101, res152, mobile or tiny (default: the model file's)")
    add_config_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    detector = open_detector(args.model, args.net)
    apply_detector_config(args, detector)
    device = torch.device(resolve_device(args.device))

    filename = osp.splitext(osp.basename(args.model))[0]
    tag = args.tag if args.tag else 'default'
    imdb = get_imdb(args.imdb_name)
    imdb.competition_mode(args.comp_mode)
    model = detector.build(device, num_classes=imdb.num_classes)
    if detector.classes is not None and tuple(detector.classes) != tuple(imdb.classes):
        print(f'WARNING: {args.model} was trained on classes {detector.classes}; {imdb.name} has '
              f'{list(imdb.classes)}')
    print(f'Loaded network {args.model} ({detector.net})')
    output_dir = get_output_dir(imdb.name, tag=tag, weights_filename=filename)
    test_net(model, imdb, output_dir, device, max_per_image=args.max_per_image)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
