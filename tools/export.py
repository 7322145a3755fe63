#!/usr/bin/env python3
"""Export a detector file as one graph: ONNX (run by ONNX Runtime) or a torch.export program (.pt2).

    python tools/export.py --model output/tiny/shapes_trainval/default/tiny_faster_rcnn_iter_1600.pth \\
        --format onnx --out tiny.onnx
    python tools/export.py --model res101_voc0712.pth --format pt2 --out res101.pt2 [--max-per-image 50]

Inside the graph: resize and normalisation of a uint8 (H, W, 3) image in the model's channel order, the backbone,
RPN, proposals with NMS, RoI features (crop-and-resize's exact geometry, RoIAlign or RoIPool), the tail and
predictors, box decoding, per-class NMS and the caps; out come ``boxes``, ``scores``, ``labels``. The test-time
settings (the file's recorded TEST.* values, or the flags below) are baked in; a setting without an exported form
is an error naming its key. ``tools/test_net.py --model X.onnx`` and ``tools/demo.py --model X.onnx`` run the
result, as ``faster_rcnn.Detector.load('X.onnx')`` does.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.errors import UsageError
from faster_rcnn.inference import Detector
from faster_rcnn.model_file import exported_kind, open_detector


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Export a Faster R-CNN detector file to ONNX or torch.export (.pt2)')
    parser.add_argument('--model', required=True, help='a snapshot or converted detector file (.pth)')
    parser.add_argument('--format', required=True, choices=('onnx', 'pt2'), help='onnx or pt2')
    parser.add_argument('--out', required=True, help='the file to write (.onnx / .pt2)')
    parser.add_argument('--cfg', dest='cfg_file', default=None,
                        help='only for files from before the recorded config: the yml they were trained with')
    parser.add_argument('--score-thresh', type=float, default=None, help='TEST.SCORE_THRESH to bake in')
    parser.add_argument('--nms', type=float, default=None, help='TEST.NMS to bake in')
    parser.add_argument('--max-per-image', type=int, default=None, help='TEST.MAX_PER_IMAGE to bake in')
    parser.add_argument('--scales', type=int, default=None, help='TEST.SCALES (one shorter side) to bake in')
    parser.add_argument('--max-size', type=int, default=None, help='TEST.MAX_SIZE to bake in')
    parser.add_argument('--raw-outputs', action='store_true',
                        help='also output rois, cls_prob and class_boxes (for checking against the network)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if exported_kind(args.model, by_contents=True) is not None:
        raise UsageError(f'--model {args.model}: already an exported graph; pass the detector file (.pth)')
    t0 = time.perf_counter()
    detector = Detector.load(args.model, 'cpu', config=args.cfg_file, score_thresh=args.score_thresh, nms=args.nms,
                             max_per_image=args.max_per_image, scales=args.scales, max_size=args.max_size, amp='')
    detector_file = open_detector(args.model)
    record = detector_file.record
    model = detector.model.place('cpu')
    model = model.to(memory_format=torch.contiguous_format)  # the graph is NCHW
    net = model.settings.net
    if args.format == 'onnx':
        from faster_rcnn.export.onnx_export import export_onnx
        export_onnx(model, detector.classes, args.out, net=net, record=record, raw_outputs=args.raw_outputs,
                    category_ids=detector_file.category_ids)
    else:
        from faster_rcnn.export.pt2_export import export_pt2
        export_pt2(model, detector.classes, args.out, net=net, record=record, raw_outputs=args.raw_outputs,
                   category_ids=detector_file.category_ids)
    print(f'{args.model} ({net}, {len(detector.classes) - 1} classes, {model.settings.network.pooling_mode} pooling) '
          f'-> {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
