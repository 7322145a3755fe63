#!/usr/bin/env python3
"""Analyse saved detections without a network: TIDE's error breakdown, a confusion matrix, AP by object size and
a gallery of the images whose errors cost the most.

    python tools/analyze_results.py output/<exp>/<imdb>/<tag>/<model>/ [--imdb NAME] [--json FILE] [--gallery N]
    python tools/analyze_results.py output/.../detections_<imdb>_results.json --imdb coco_2014_minival

The first argument is the output folder of tools/test_net.py (its detections.pkl) or a COCO results json. The
analysis is printed and written into that folder (for a json: the json's folder): tide.json, confusion.csv,
confusion.png, sizes.json and, with --gallery N, gallery/<rank>_<image>.jpg. Definitions:
faster_rcnn/analysis/{tide,confusion,sizes}.py.
"""
from __future__ import annotations

import argparse
import math
import os.path as osp
import sys

from faster_rcnn.analysis.gallery import write_gallery
from faster_rcnn.analysis.results import (analyze, confusion_summary, dataset_from_path, dataset_metric, ground_truth,
                                          read_results, size_table, tide_table, write_analysis)
from faster_rcnn.cli import ToolParser, apply_config, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import UsageError
from faster_rcnn.utils.json_file import write_json_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Analyse detections saved by test_net.py: TIDE errors, confusion matrix, AP '
                                    'by object size, gallery of the worst images')
    parser.add_argument('results', help='folder holding detections.pkl (written by test_net.py), or a COCO '
                                        'results .json')
    parser.add_argument('--imdb', dest='imdb_name', default=None,
                        help='the dataset the results are of (default: the dataset folder test_net named, '
                             'output/<EXP_DIR>/<imdb>/<tag>/<model>/)')
    parser.add_argument('--json', dest='json_file', default=None,
                        help="also write TIDE's breakdown (tide.json's content) to this file")
    parser.add_argument('--gallery', type=int, default=0, metavar='N',
                        help='draw the N images with the most AP lost into <folder>/gallery/')
    parser.add_argument('--score-thresh', dest='score_thresh', type=float, default=0.5,
                        help='score threshold of the confusion matrix and the gallery (default 0.5)')
    parser.add_argument('--iou', type=float, default=0.5,
                        help='IoU threshold of the confusion matrix and the size APs (default 0.5; TIDE keeps '
                             'its 0.5 / 0.1)')
    parser.add_argument('--normalize', action='store_true', help='colour confusion.png by row fractions')
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='experiment config file (YAML), for DATA_DIR')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='config overrides as KEY VALUE pairs, e.g. --set DATA_DIR /data (must come last)')
    return parser.parse_args(argv)


def _check_flags(args: argparse.Namespace) -> None:
    if args.gallery < 0:
        raise UsageError(f'--gallery {args.gallery}: must be a number of images >= 0')
    if not 0.0 < args.iou <= 1.0:
        raise UsageError(f'--iou {args.iou}: must be in (0, 1]')
    if not math.isfinite(args.score_thresh):
        raise UsageError(f'--score-thresh {args.score_thresh}: must be a finite number')
    if args.json_file and not osp.isdir(osp.dirname(osp.abspath(args.json_file))):
        raise UsageError(f'--json {args.json_file}: its folder does not exist; create it or write elsewhere')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _check_flags(args)
    apply_config(args, verbose=False)
    name = args.imdb_name or dataset_from_path(args.results)
    db = get_imdb(name, cfg.DATA_DIR)
    dets, folder = read_results(args.results, db)
    gt = ground_truth(db)
    print(f'Analysing {sum(len(d.scores) for d in dets)} detections on {db.num_images} images of {db.name}')
    analysis = analyze(gt, dets, db.classes, dataset_metric(db), score_thresh=args.score_thresh, iou=args.iou)
    print(tide_table(analysis.tide, db.classes))
    print()
    print(confusion_summary(analysis.confusion))
    print()
    print(size_table(analysis.sizes, db.classes))
    written = write_analysis(folder, analysis, normalize=args.normalize)
    if args.json_file:
        write_json_atomic(args.json_file, analysis.tide.to_json())
        written['json'] = args.json_file
    if args.gallery:
        pictures = write_gallery(osp.join(folder, 'gallery'), analysis.tide, gt, dets, db.classes, db.image_path_at,
                                 args.gallery, args.score_thresh)
        written['gallery'] = f'{len(pictures)} pictures in {osp.join(folder, "gallery")}'
    print()
    print('Wrote ' + ', '.join(written.values()))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
