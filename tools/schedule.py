#!/usr/bin/env python3
"""Print the schedule a training run will use at a world size (the linear scaling rule, engine/schedule.py):

    python tools/schedule.py --cfg experiments/cfgs/vgg16.yml --iters 70000 --world-size 8 --set TRAIN.STEPSIZE "[50000]"

``--final-iter`` prints only the last iteration (the experiment scripts name the final snapshot with it); with
``--world-size 1,2,4,8`` one line per world size.
"""
from __future__ import annotations

import argparse
import sys

from faster_rcnn.cli import ToolParser, add_config_args, apply_config, run_tool, train_settings
from faster_rcnn.config import cfg
from faster_rcnn.engine.schedule import describe, run_schedule
from faster_rcnn.errors import UsageError


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('--iters', type=int, required=True, help='iterations at the config\'s TRAIN.REFERENCE_BATCH')
    parser.add_argument('--world-size', default='1',
                        help='processes (GPUs) of the run (default 1; a comma list with --final-iter)')
    parser.add_argument('--keep-schedule', action='store_true', help='as trainval_net.py --keep-schedule')
    parser.add_argument('--final-iter', action='store_true', help='print only the final iteration')
    add_config_args(parser)
    args = parser.parse_args(argv)
    try:
        worlds = [int(w) for w in args.world_size.split(',')]
    except ValueError:
        raise UsageError(f'--world-size {args.world_size}: expected a number or a comma list of numbers') from None
    if min(worlds) < 1 or args.iters < 1 or (len(worlds) > 1 and not args.final_iter):
        raise UsageError(f'--world-size must be >= 1 (a list only with --final-iter) and --iters >= 1, got '
                         f'{args.world_size} and {args.iters}')
    apply_config(args, verbose=False)
    if args.keep_schedule:
        cfg.TRAIN.SCALE_SCHEDULE = False
    settings = train_settings()
    for world in worlds:
        given, used = run_schedule(settings, args.iters, world, reference_batch=int(cfg.TRAIN.REFERENCE_BATCH),
                                   scale=bool(cfg.TRAIN.SCALE_SCHEDULE),
                                   scaled_warmup_iters=int(cfg.TRAIN.SCALED_WARMUP_ITERS))
        if args.final_iter:
            print(used.iters)
        else:
            print(describe(given, used, world, int(cfg.TRAIN.IMS_PER_BATCH), bool(cfg.TRAIN.SCALE_SCHEDULE)))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
