#!/usr/bin/env python3
"""Train a Faster R-CNN network (tf-faster-rcnn's trainval_net.py, same flags).

Multi-GPU: torchrun --nproc_per_node=N tools/trainval_net.py ... (one process per GPU, DDP). The schedule
(--iters, LEARNING_RATE, STEPSIZE, intervals) is scaled to the global batch by the linear scaling rule, so N
GPUs train the reference's schedule in images (engine/schedule.py); --keep-schedule takes the numbers as given.
Starting again with the same --imdb / --tag / EXP_DIR resumes from the newest snapshot; --fresh starts over.
--finetune FILE starts a new run from a detector file (ours or a converted one), also for other classes.
Any network but tiny needs one of them (or --weight): from random weights it diverges, so such a run is refused
unless --from-scratch asks for it. Output goes to output/<EXP_DIR>/<imdb>/<tag>, EXP_DIR the network's name unless
the config names the experiment otherwise.
"""
from __future__ import annotations

import argparse
import sys

from faster_rcnn.cli import ToolParser, add_config_args, apply_config, apply_detector_config, resolve_device, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.engine.distributed import cleanup, init_distributed
from faster_rcnn.engine.run import build_run
from faster_rcnn.engine.trainer import train_net
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
    parser.add_argument('--from-scratch', action='store_true',
                        help='let a network other than tiny start from random weights (without it, a run with no '
                             '--weight, no --finetune and no snapshot to resume is refused: it diverges)')
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
    run = build_run(cfg, net=net, imdb=args.imdb_name, iters=args.max_iters, world_size=info.world_size,
                    imdbval=args.imdbval_name, tag=args.tag, weight=args.weight, finetune=detector, fresh=args.fresh,
                    workers=args.workers, verbose=info.is_main, from_scratch=args.from_scratch)
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
