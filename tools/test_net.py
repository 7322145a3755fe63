#!/usr/bin/env python3
"""Test a trained Faster R-CNN network on a dataset and print its mAP (tf-faster-rcnn's test_net.py)."""
from __future__ import annotations

import argparse
import os.path as osp
import sys

import torch

from faster_rcnn.config import get_output_dir
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.tester import load_detector, test_net
from faster_rcnn.utils.cli import add_config_args, apply_config, resolve_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a Faster R-CNN network')
    parser.add_argument('--model', required=True, help='snapshot to test (<prefix>_iter_<N>.pth)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test', help='dataset to test')
    parser.add_argument('--comp', dest='comp_mode', action='store_true', help='competition mode (VOC: the '
                        'comp4_det_* result files are kept after evaluation)')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=100,
                        help='maximum detections per image over all classes (0: no limit)')
    parser.add_argument('--tag', default='', help='tag of the model (output sub-folder)')
    parser.add_argument('--net', default='res50', help='vgg16, res50, res101, res152, mobile or tiny')
    add_config_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    apply_config(args)
    device = torch.device(resolve_device(args.device))

    filename = osp.splitext(osp.basename(args.model))[0]
    tag = args.tag if args.tag else 'default'
    imdb = get_imdb(args.imdb_name)
    imdb.competition_mode(args.comp_mode)
    model, classes = load_detector(args.model, args.net, device, num_classes=imdb.num_classes)
    if classes is not None and tuple(classes) != tuple(imdb.classes):
        print(f'WARNING: {args.model} was trained on classes {classes}; {imdb.name} has {list(imdb.classes)}')
    print(f'Loaded network {args.model}')
    output_dir = get_output_dir(imdb.name, tag=tag, weights_filename=filename)
    test_net(model, imdb, output_dir, device, max_per_image=args.max_per_image)
    return 0


if __name__ == '__main__':
    sys.exit(main())
