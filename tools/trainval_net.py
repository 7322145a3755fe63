#!/usr/bin/env python3
"""Train a Faster R-CNN network (tf-faster-rcnn's trainval_net.py, same flags).

Multi-GPU: torchrun --nproc_per_node=N tools/trainval_net.py ... (one process per GPU, DDP). The schedule
(--iters, LEARNING_RATE, STEPSIZE, intervals) is scaled to the global batch by the linear scaling rule, so N
GPUs train the reference's schedule in images (engine/schedule.py); --keep-schedule takes the numbers as given.
Starting again with the same --imdb / --tag / EXP_DIR resumes from the newest snapshot; --fresh starts over.
--finetune FILE starts a new run from a detector file (ours or a converted one), also for other classes.
"""
from __future__ import annotations

import argparse
import sys

from dataclasses import replace

from faster_rcnn.cli import (ToolParser, add_config_args, apply_config, apply_detector_config, model_settings,
                             resolve_device, roidb_settings, run_record, run_tool, train_settings)
from faster_rcnn.config import cfg, get_output_dir, get_output_tb_dir
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.distributed import cleanup, init_distributed
from faster_rcnn.engine.schedule import apply_schedule, describe, run_schedule
from faster_rcnn.engine.trainer import TrainRun, train_net
from faster_rcnn.errors import StoppedBySignal, UsageError
from faster_rcnn.model_file import open_detector
from faster_rcnn.nets.registry import describe_networks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Train a Faster R-CNN network')
    parser.add_argument('--weight', default=None,
                        help='ImageNet initialisation (a torchvision state_dict file, e.g. '
                             'data/imagenet_weights/vgg16.pth); not needed for --net tiny')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_trainval',
                        help="dataset(s) to train on, '+' joins several")
    parser.add_argument('--imdbval', dest='imdbval_name', default='voc_2007_test',
                        help="dataset for the validation summaries ('' to disable)")
    parser.add_argument('--iters', dest='max_iters', type=int, default=70000,
                        help='number of iterations at the config\'s TRAIN.REFERENCE_BATCH (scaled to the run\'s global batch)')
    parser.add_argument('--tag', default=None, help='tag of the experiment (output sub-folder)')
    parser.add_argument('--net', default=None,
                        help=f'{describe_networks()} (default: the --finetune file\'s, else res50)')
    parser.add_argument('--finetune', default=None, metavar='DETECTOR',
                        help='start a new run from the weights of this detector file (a snapshot or a converted '
                             'model; its recorded normalisation, anchors and layout are kept). Classes the new '
                             '--imdb shares with it keep their predictor rows, others start fresh. Not a resume '
                             '(which happens by itself in the same output folder) and not --weight (ImageNet)')
    parser.add_argument('--workers', type=int, default=None,
                        help='data loader worker processes (default: DATA_LOADER.NUM_WORKERS)')
    parser.add_argument('--fresh', action='store_true',
                        help='ignore existing snapshots in the output folder and start from iteration 0')
    parser.add_argument('--keep-schedule', action='store_true',
                        help='train with --iters, LEARNING_RATE, STEPSIZE, ... as given, whatever the global batch '
                             '(default: scale them to the global batch the config was written for, '
                             'TRAIN.REFERENCE_BATCH, by the linear scaling rule)')
    add_config_args(parser)
    return parser.parse_args(argv)


def train(args: argparse.Namespace, info) -> str:
    """Config, datasets and the training run of one process; returns the final snapshot."""
    detector = None
    if args.finetune:
        detector = open_detector(args.finetune, args.net)
        apply_detector_config(args, detector, verbose=info.is_main, test_keys=False)
    else:
        apply_config(args, verbose=info.is_main)
    net = args.net or (detector.net if detector is not None else 'res50')
    if args.keep_schedule:
        cfg.TRAIN.SCALE_SCHEDULE = False
    settings = train_settings(args.workers)
    given, used = run_schedule(settings, args.max_iters, info.world_size, reference_batch=int(cfg.TRAIN.REFERENCE_BATCH),
                               scale=bool(cfg.TRAIN.SCALE_SCHEDULE),
                               scaled_warmup_iters=int(cfg.TRAIN.SCALED_WARMUP_ITERS))
    settings = apply_schedule(settings, used)
    if info.is_main:
        print(describe(given, used, info.world_size, settings.ims_per_batch, bool(cfg.TRAIN.SCALE_SCHEDULE)),
              flush=True)

    roidb_opts = roidb_settings()
    imdb, roidb = combined_roidb(args.imdb_name, roidb_opts, data_dir=cfg.DATA_DIR)
    print(f'{len(roidb)} roidb entries')
    output_dir = get_output_dir(imdb.name, tag=args.tag)
    tb_dir = get_output_tb_dir(imdb.name, tag=args.tag)
    print(f'Output will be saved to `{output_dir}`')
    print(f'TensorFlow summaries will be saved to `{tb_dir}`')

    eval_imdb = None
    if cfg.TRAIN.EVAL_INTERVAL > 0:
        if not args.imdbval_name or '+' in args.imdbval_name:
            raise UsageError(f'TRAIN.EVAL_INTERVAL {cfg.TRAIN.EVAL_INTERVAL} evaluates on --imdbval, which must name '
                             f'one dataset (got {args.imdbval_name!r})')
        eval_imdb = get_imdb(args.imdbval_name, cfg.DATA_DIR)
        eval_imdb.limit(int(cfg.TRAIN.EVAL_IMAGES))
        if info.is_main:
            print(f'Evaluating on {eval_imdb.name} ({eval_imdb.num_images} images) every '
                  f'{cfg.TRAIN.EVAL_INTERVAL} iterations')

    valroidb = None
    if args.imdbval_name:
        # The validation images are never flipped.
        _, valroidb = combined_roidb(args.imdbval_name, replace(roidb_opts, use_flipped=False), data_dir=cfg.DATA_DIR)
        print(f'{len(valroidb)} validation roidb entries')

    run = TrainRun(net=net, model=model_settings(net), train=settings, classes=list(imdb.classes), roidb=roidb,
                   output_dir=output_dir, tb_dir=tb_dir, max_iters=used.iters, record=run_record(net),
                   imdb_name=imdb.name, valroidb=valroidb, imagenet_weights=args.weight, finetune=detector,
                   fresh=args.fresh, eval_imdb=eval_imdb)
    return train_net(run, info)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    if args.finetune and args.weight:
        raise UsageError('--finetune and --weight both initialise the network: pass one of them')
    info = init_distributed(resolve_device(args.device))
    finished = False
    try:
        final = train(args, info)
        finished = True
    except StoppedBySignal:
        finished = True  # every process stopped at the same iteration, after the snapshot: leave together
        raise
    finally:
        cleanup(info, finished)
    if info.is_main:
        print(f'done solving: {final}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
