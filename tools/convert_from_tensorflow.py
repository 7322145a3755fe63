#!/usr/bin/env python3
"""Convert a tf-faster-rcnn checkpoint into a detector file of this project, without TensorFlow.

    python tools/convert_from_tensorflow.py --net res101 \\
        --ckpt output/res101/voc_2007_trainval+voc_2012_trainval/default/res101_faster_rcnn_iter_110000.ckpt \\
        --imdb voc_2007_test --out output/res101/voc_2007_trainval+voc_2012_trainval/default/res101_faster_rcnn_iter_110000.pth
    python tools/convert_from_tensorflow.py --net res101 --ckpt coco_model/ --imdb coco_2014_minival \\
        --anchors 4,8,16,32 --out res101_coco.pth

--ckpt takes the checkpoint prefix (…ckpt), its .index file, or the folder holding it. The classes come from
a dataset name (the built-in VOC and COCO names need no data on disk) or a file of class names, one a line.
The file written records the network's layout (BGR Caffe-mean input, crop pooling, slim's ResNet strides,
MobileNetV1), so test_net.py and demo.py run it with no --cfg.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from faster_rcnn.convert.from_tensorflow import NETS, convert_tf_checkpoint
from faster_rcnn.convert.io import parse_number_list, read_category_ids, read_class_names, write_detector
from faster_rcnn.cli import ToolParser, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Convert a tf-faster-rcnn checkpoint (no TensorFlow needed)')
    parser.add_argument('--net', required=True, choices=NETS, help='the network the checkpoint holds')
    parser.add_argument('--ckpt', required=True, help='checkpoint prefix, its .index file, or the folder holding it')
    classes = parser.add_mutually_exclusive_group(required=True)
    classes.add_argument('--imdb', default=None,
                         help='dataset whose classes the model detects (voc_2007_test, coco_2014_minival, ...)')
    classes.add_argument('--classes', default=None, help='a text file of class names, one a line, in training order')
    parser.add_argument('--anchors', default='8,16,32',
                        help="anchor scales, e.g. 4,8,16,32 for tf-faster-rcnn's COCO models (default 8,16,32)")
    parser.add_argument('--ratios', default='0.5,1,2', help='anchor ratios (default 0.5,1,2)')
    parser.add_argument('--out', required=True, help='the detector file to write (.pth)')
    parser.add_argument('--set', dest='set_cfgs', default=[], nargs=argparse.REMAINDER,
                        help='TEST.* KEY VALUE pairs to record as the model\'s test settings (must come last)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    classes = read_class_names(imdb=args.imdb, path=args.classes)
    category_ids = read_category_ids(imdb=args.imdb, classes=classes)
    payload = convert_tf_checkpoint(args.ckpt, args.net, classes, anchor_scales=parse_number_list(args.anchors, '--anchors'),
                                    anchor_ratios=parse_number_list(args.ratios, '--ratios'),
                                    test_set=[a for a in args.set_cfgs if a != '--debug'], category_ids=category_ids)
    write_detector(payload, args.out)
    skipped = ', '.join(f'{n} {why}' for why, n in payload['source']['skipped'].items()) or 'none'
    print(f'{args.net}: {payload["source"]["tensors"]} tensors converted (skipped: {skipped}), '
          f'{len(classes) - 1} classes -> {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB) in '
          f'{time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
