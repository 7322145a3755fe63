#!/usr/bin/env python3
"""Speed measurements. Every speed number in the README comes from here.

    python tools/benchmark.py layers [--device cpu|cuda] [--json FILE]   # RPN / R-CNN layers vs torchvision NMS
    python tools/benchmark.py nets   [--nets vgg16,res101] [--device ...]  # whole networks vs torchvision FasterRCNN
    python tools/benchmark.py data   [--imdb shapes_trainval]             # loader images/s with 0, 1, 2 workers
    python tools/benchmark.py train  [--net tiny --imdb shapes_trainval]  # s / training iteration, data included
    python tools/benchmark.py test   [--nets tiny,vgg16,res101]           # test images/s by batch, precision, processes
    python tools/benchmark.py infer  [--nets tiny,mobile,vgg16,res101]    # one 600x1000 image: eager, bf16, ONNX, .pt2
    python tools/benchmark.py features [--net res101_butd --batches 1,4] # region features: images/s, share of the rate
    python tools/benchmark.py analysis [--images 5000 --dets 100]         # analyze_results.py's analysis, generated

Each prints medians over several runs after a warm-up; `--json FILE` writes them. Run `... <what> --help`.
"""
from __future__ import annotations

import importlib
import sys

from faster_rcnn.cli import run_tool

_MODULES = {'layers': 'faster_rcnn.bench.layers', 'nets': 'faster_rcnn.bench.nets',
            'data': 'faster_rcnn.bench.data', 'train': 'faster_rcnn.bench.engine', 'test': 'faster_rcnn.bench.testing',
            'infer': 'faster_rcnn.bench.infer',
            'features': 'faster_rcnn.bench.features', 'analysis': 'faster_rcnn.bench.analysis'}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in _MODULES:
        print(__doc__)
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    module = importlib.import_module(_MODULES[argv[0]])
    if argv[0] == 'train':
        return module.main(argv)
    return module.main(argv[1:])


if __name__ == '__main__':
    sys.exit(run_tool(lambda: main(sys.argv[1:])))
