#!/usr/bin/env python3
"""Compare test runs: mean AP, per-class AP and COCO's 12 numbers of result folders of tools/test_net.py, with the
difference to the first run, and the config keys in which the runs' detector files differ.

    python tools/compare_runs.py output/tiny/shapes_test/default/a_iter_300 output/tiny/shapes_test/default/b_iter_300
    python tools/compare_runs.py DIR_A DIR_B --imdb voc_dir:/data/mine:test --models a.pth b.pth --format text

Each folder's numbers come from its eval.json when it has one for its current detections.pkl, else from the
dataset's evaluation run again on detections.pkl (--imdb, default: the dataset named in the folder's path,
output/<EXP_DIR>/<imdb>/<tag>/<model>/). The model file is found as output/<EXP_DIR>/*/*/<model>.pth, or given
with --models (one per folder, in order). See faster_rcnn/analysis/compare.py.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from faster_rcnn.analysis.compare import attach_model, comparison_tables, format_table, load_run
from faster_rcnn.analysis.results import dataset_from_path
from faster_rcnn.cli import ToolParser, apply_config, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import UsageError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Compare result folders of test_net.py: AP per class, COCO numbers, config '
                                    'differences')
    parser.add_argument('folders', nargs='+', help='result folders (each holding detections.pkl), the first is the '
                                                   'reference')
    parser.add_argument('--imdb', dest='imdb_name', default=None,
                        help='dataset of every folder (default: the one named in each folder path)')
    parser.add_argument('--models', nargs='+', default=None, metavar='MODEL',
                        help='the model file of each folder, in order (default: found as '
                             'output/<EXP_DIR>/*/*/<folder name>.pth)')
    parser.add_argument('--format', dest='style', choices=('markdown', 'text'), default='markdown',
                        help='table style (default markdown)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='experiment config file (YAML), for DATA_DIR')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='config overrides as KEY VALUE pairs, e.g. --set DATA_DIR /data (must come last)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if len(args.folders) < 2:
        raise UsageError('compare_runs.py: give at least two result folders (the first is the reference)')
    if args.models is not None and len(args.models) != len(args.folders):
        raise UsageError(f'--models: {len(args.models)} model files for {len(args.folders)} folders; give one per '
                         'folder, in the same order')
    for folder in args.folders:  # every path first: a typo in the last one should not cost an evaluation
        if not osp.isdir(folder):
            raise UsageError(f'{folder}: no such folder; pass result folders of tools/test_net.py '
                             '(output/<EXP_DIR>/<imdb>/<tag>/<model>/)')
    apply_config(args, verbose=False)
    datasets: dict = {}

    def dataset_of(folder: str):
        """The folder's dataset, built once per name (only for folders without a usable eval.json)."""
        name = args.imdb_name or dataset_from_path(folder)
        if name not in datasets:
            datasets[name] = get_imdb(name, cfg.DATA_DIR)
        return datasets[name]

    runs = []
    for k, folder in enumerate(args.folders):
        run = load_run(folder, lambda folder=folder: dataset_of(folder), args.imdb_name)
        attach_model(run, args.models[k] if args.models else None)
        runs.append(run)
    print('\n\n'.join(format_table(t, args.style) for t in comparison_tables(runs)))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
