#!/usr/bin/env python3
"""Test a trained Faster R-CNN network on a dataset and print its mAP (tf-faster-rcnn's test_net.py).

    python tools/test_net.py --imdb voc_2007_test --model output/.../vgg16_faster_rcnn_iter_70000.pth
    torchrun --nproc_per_node=8 tools/test_net.py --imdb coco_2014_minival --model ...   # images sharded over GPUs

A model file of this project (a snapshot or a converted model) records its normalisation, anchors, layout
and test settings, so ``--cfg`` and ``--net`` are only needed for older snapshots and bare state_dicts.
Under torchrun each process tests every N-th image; rank 0 gathers the detections in image order, writes one
detections.pkl and evaluates: the result is the single-process one.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from faster_rcnn.config import cfg, get_output_dir, get_output_tb_dir
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.detector_file import open_detector
from faster_rcnn.engine.distributed import cleanup, init_distributed
from faster_rcnn.engine.tester import test_net
from faster_rcnn.utils.cli import ToolParser, add_config_args, apply_detector_config, resolve_device
from faster_rcnn.utils.errors import run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Test a Faster R-CNN network')
    parser.add_argument('--model', required=True, help='model file to test (<prefix>_iter_<N>.pth)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test', help='dataset to test')
    parser.add_argument('--comp', dest='comp_mode', action='store_true', help='competition mode (VOC: the '
                        'comp4_det_* result files are kept after evaluation)')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=None,
                        help='maximum detections per image over all classes (0: no limit; default '
                             'TEST.MAX_PER_IMAGE, 100)')
    parser.add_argument('--tag', default='', help='tag of the model (output sub-folder)')
    parser.add_argument('--net', default=None,
                        help="vgg16, res50, res101, res152, mobile or tiny (default: the model file's)")
    parser.add_argument('--workers', type=int, default=None,
                        help='data loader worker processes per process (default: DATA_LOADER.NUM_WORKERS)')
    add_config_args(parser)
    return parser.parse_args(argv)


def write_tensorboard(result, tb_dir: str, detector) -> None:
    """The mean AP, each class's AP and (VOC) the precision / recall curves, at the model's iteration."""
    from tensorboardX import SummaryWriter
    from faster_rcnn.datasets.evaluation import render_pr_curves
    step = int(detector.contents.get('iter', 0))
    with SummaryWriter(tb_dir) as writer:
        writer.add_scalar('test/mean_ap', result.mean_ap, step)
        for name, ap in result.per_class.items():
            writer.add_scalar(f'test/ap/{name}', ap, step)
        if result.curves:
            writer.add_image('test/pr_curves', render_pr_curves(result.curves, result.per_class).transpose(2, 0, 1),
                             step)
    print(f'TensorBoard: {tb_dir}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = init_distributed(resolve_device(args.device))
    finished = False
    try:
        if info.is_main:
            print('Called with args:')
            print(args)
        detector = open_detector(args.model, args.net)
        apply_detector_config(args, detector, verbose=info.is_main)
        max_per_image = cfg.TEST.MAX_PER_IMAGE if args.max_per_image is None else args.max_per_image

        filename = osp.splitext(osp.basename(args.model))[0]
        tag = args.tag if args.tag else 'default'
        imdb = get_imdb(args.imdb_name)
        imdb.competition_mode(args.comp_mode)
        model = detector.build(info.device, num_classes=imdb.num_classes)
        if info.is_main:
            if detector.classes is not None and tuple(detector.classes) != tuple(imdb.classes):
                print(f'WARNING: {args.model} was trained on classes {detector.classes}; {imdb.name} has '
                      f'{list(imdb.classes)}')
            print(f'Loaded network {args.model} ({detector.net}); testing {imdb.num_images} images on '
                  f'{info.world_size} process(es), {cfg.TEST.IMS_PER_BATCH} per batch'
                  f'{f", {cfg.TEST.AMP} autocast" if cfg.TEST.AMP else ""}')
        output_dir = get_output_dir(imdb.name, tag=tag, weights_filename=filename)
        _, result = test_net(model, imdb, output_dir, info.device, max_per_image=max_per_image, rank=info.rank,
                             world_size=info.world_size, num_workers=args.workers, progress=info.is_main)
        if result is not None:
            write_tensorboard(result, get_output_tb_dir(imdb.name, tag=tag, weights_filename=filename), detector)
        finished = True
    finally:
        cleanup(info, finished)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
