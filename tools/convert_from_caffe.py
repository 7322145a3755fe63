#!/usr/bin/env python3
"""Convert bottom-up-attention's Caffe model (Visual Genome, 1600 objects, 400 attributes) into a detector file.

    python tools/convert_from_caffe.py --caffemodel data/butd/resnet101_faster_rcnn_final.caffemodel \
        --objects-vocab data/butd/objects_vocab.txt --attributes-vocab data/butd/attributes_vocab.txt \
        --out data/butd/res101_butd_vg.pth

The caffemodel is read by a protobuf wire-format reader of this project (no Caffe, no protoc), memory-mapped.
The file written is a ``res101_butd`` detector that records BUTD's input (BGR minus Caffe's means), RoIPool
14x14, 12 anchors, the 16-pixel proposal minimum and its already de-normalised box deltas, so test_net.py,
demo.py, export.py and --finetune take it with no --cfg. Without --attributes-vocab the attribute branch is
left out. data/scripts/fetch_butd_model.py downloads the model and the vocabularies.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.convert.from_caffe import convert_butd, read_vocabulary
from faster_rcnn.convert.io import write_detector


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description="Convert bottom-up-attention's Caffe model into a res101_butd detector file")
    parser.add_argument('--caffemodel', required=True, help='resnet101_faster_rcnn_final[_iter_320000].caffemodel')
    parser.add_argument('--objects-vocab', required=True,
                        help='objects_vocab.txt: the 1600 object names, one a line (synonyms after commas)')
    parser.add_argument('--attributes-vocab', default=None,
                        help='attributes_vocab.txt: the 400 attribute names (leave out to drop the attribute branch)')
    parser.add_argument('--out', required=True, help='the detector file to write (.pth)')
    parser.add_argument('--set', dest='set_cfgs', default=[], nargs=argparse.REMAINDER,
                        help="TEST.* KEY VALUE pairs to record as the model's test settings (must come last)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    objects = read_vocabulary(args.objects_vocab, '--objects-vocab', '__background__')
    attributes = None
    if args.attributes_vocab is not None:
        attributes = read_vocabulary(args.attributes_vocab, '--attributes-vocab', '__no_attribute__')
    payload = convert_butd(args.caffemodel, objects, attributes,
                           test_set=[a for a in args.set_cfgs if a != '--debug'])
    write_detector(payload, args.out)
    src = payload['source']
    attrs = f', {len(attributes) - 1} attributes' if attributes is not None else ', no attribute branch'
    print(f'res101_butd: {src["tensors"]} tensors from {src["layers"]} layers (skipped {src["skipped_layers"]} '
          f'training-only layers), {len(objects) - 1} classes{attrs} -> {args.out} '
          f'({os.path.getsize(args.out) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
