#!/usr/bin/env python3
"""Say what a model file holds: network, classes, training state, where it came from, its recorded config.

    python tools/describe_model.py output/res101/voc_2007_trainval+voc_2012_trainval/default/res101_faster_rcnn_iter_110000.pth
    python tools/describe_model.py FILE --has-config     # exit 0 if FILE records its config, 1 if not (scripts)
    python tools/describe_model.py tiny.onnx             # an exported graph: its metadata (.onnx or .pt2)

A .pth is read with torch.load(weights_only=True), an exported graph's metadata with the onnx package (.onnx) or
from the zip archive (.pt2): nothing in a file can run code.
"""
from __future__ import annotations

import argparse
import sys

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.export.metadata import read_graph_metadata
from faster_rcnn.model_file import describe_record, exported_kind, load_model_file, open_detector


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Describe a Faster R-CNN model file')
    parser.add_argument('model', help='a snapshot or a converted detector file (.pth), or an exported graph '
                        '(.onnx, .pt2)')
    parser.add_argument('--has-config', action='store_true',
                        help='print nothing; exit 0 if the file records its config (no --cfg needed), 1 if not')
    return parser.parse_args(argv)


def describe_graph(path: str, has_config: bool) -> int:
    """An exported graph: what its metadata says (network, classes, the settings baked in, the recorded config)."""
    meta = read_graph_metadata(path)
    if has_config:
        return 0 if meta.get('config') else 1
    kind = 'ONNX graph' if exported_kind(path, by_contents=True) == 'onnx' else 'torch.export program (.pt2)'
    classes = [str(c) for c in meta['classes']]
    print(path)
    print(f'  kind: exported {kind} (export format {meta.get("faster_rcnn_export", "?")}), '
          f'network: {meta.get("net", "?")}')
    print(f'  classes ({len(classes) - 1}): {", ".join(classes[1:])}')
    print(f'  input: one uint8 image (H, W, 3) in {meta["channel_order"]} order')
    print('  baked settings (Detector.load: a higher score_thresh or smaller max_per_image filters; others '
          'need a new export):')
    print('\n'.join(f'  {k} = {v!r}' for k, v in meta.get('settings', {}).items()))
    print('  recorded config:')
    print('\n'.join(describe_record(meta.get('config'))))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if exported_kind(args.model, by_contents=True) is not None:
        return describe_graph(args.model, args.has_config)
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
