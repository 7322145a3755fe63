#!/usr/bin/env python3
"""Say what a model file holds: network, classes, training state, where it came from, its recorded config.

    python tools/describe_model.py output/res101/voc_2007_trainval+voc_2012_trainval/default/res101_faster_rcnn_iter_110000.pth
    python tools/describe_model.py FILE --has-config     # exit 0 if FILE records its config, 1 if not (scripts)

The file is read with torch.load(weights_only=True): nothing in it can run code.
"""
from __future__ import annotations

import argparse
import sys

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.model_file import describe_record, load_model_file, open_detector


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Describe a Faster R-CNN model file')
    parser.add_argument('model', help='a snapshot or a converted detector file (.pth)')
    parser.add_argument('--has-config', action='store_true',
                        help='print nothing; exit 0 if the file records its config (no --cfg needed), 1 if not')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    detector = open_detector(args.model) if not args.has_config else None
    if args.has_config:
        return 0 if load_model_file(args.model).get('config') else 1
    c = detector.contents
    print(f'{args.model}')
    print(f'  kind: {detector.kind} (format {c.get("format", 1)}), network: {detector.net}')
    if detector.classes is not None:
        print(f'  classes ({len(detector.classes) - 1}): {", ".join(detector.classes[1:])}')
    if 'iter' in c:
        print(f'  iteration: {c["iter"]}; training state: {"yes" if "optimizer" in c else "no"}')
    if 'source' in c:
        print(f'  converted from: {c["source"]}')
    print('  recorded config:')
    print('\n'.join(describe_record(detector.record)))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
