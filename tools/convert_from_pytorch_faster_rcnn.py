#!/usr/bin/env python3
"""Convert a ruotianluo/pytorch-faster-rcnn model (.pth) into a detector file of this project.

    python tools/convert_from_pytorch_faster_rcnn.py --net res101 --pth res101_faster_rcnn_iter_110000.pth \
        --imdb voc_2007_test --out output/res101/voc_2007_trainval+voc_2012_trainval/default/res101_faster_rcnn_iter_110000.pth

The file written records rtl's layout (BGR Caffe-mean input, its "caffe" ResNet strides, floor-mode VGG16
pools, MobileNetV1) and the pooling mode, so test_net.py and demo.py run it with no --cfg. --pooling crop
(the default) is what rtl's published models were trained and evaluated with; align / pool are what rtl's
code computes since 2019 (torchvision RoIAlign / RoIPool). The file is read with torch.load(weights_only=True):
nothing in it can run code.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from faster_rcnn.convert.from_rtl import RTL_POOLING_MODES, convert_rtl_state_dict
from faster_rcnn.convert.io import parse_number_list, read_category_ids, read_class_names, write_detector
from faster_rcnn.convert.rtl_names import NETS
from faster_rcnn.cli import ToolParser, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Convert a pytorch-faster-rcnn (ruotianluo) model')
    parser.add_argument('--net', required=True, choices=NETS, help='the network the file holds')
    parser.add_argument('--pth', required=True, help="the model file (rtl's state_dict .pth)")
    classes = parser.add_mutually_exclusive_group(required=True)
    classes.add_argument('--imdb', default=None,
                         help='dataset whose classes the model detects (voc_2007_test, coco_2014_minival, ...)')
    classes.add_argument('--classes', default=None, help='a text file of class names, one a line, in training order')
    parser.add_argument('--pooling', default='crop', choices=RTL_POOLING_MODES,
                        help="RoI pooling the model runs with (default crop: rtl's published models)")
    parser.add_argument('--anchors', default='8,16,32', help='anchor scales, e.g. 4,8,16,32 for COCO (default 8,16,32)')
    parser.add_argument('--ratios', default='0.5,1,2', help='anchor ratios (default 0.5,1,2)')
    parser.add_argument('--out', required=True, help='the detector file to write (.pth)')
    parser.add_argument('--set', dest='set_cfgs', default=[], nargs=argparse.REMAINDER,
                        help="TEST.* KEY VALUE pairs to record as the model's test settings (must come last)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    classes = read_class_names(imdb=args.imdb, path=args.classes)
    category_ids = read_category_ids(imdb=args.imdb, classes=classes)
    payload = convert_rtl_state_dict(args.pth, args.net, classes, pooling_mode=args.pooling,
                                     anchor_scales=parse_number_list(args.anchors, '--anchors'),
                                     anchor_ratios=parse_number_list(args.ratios, '--ratios'),
                                     test_set=[a for a in args.set_cfgs if a != '--debug'], category_ids=category_ids)
    write_detector(payload, args.out)
    skipped = ', '.join(f'{n} {why}' for why, n in payload['source']['skipped'].items()) or 'none'
    print(f'{args.net}: {payload["source"]["tensors"]} tensors converted (skipped: {skipped}), '
          f'{len(classes) - 1} classes, pooling {args.pooling} -> {args.out} '
          f'({os.path.getsize(args.out) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
