#!/usr/bin/env python3
"""Train a Faster R-CNN network (tf-faster-rcnn's trainval_net.py, same flags).

Multi-GPU: torchrun --nproc_per_node=N tools/trainval_net.py ... (one process per GPU, DDP).
Starting again with the same --imdb / --tag / EXP_DIR resumes from the newest snapshot; --fresh starts over.
"""
from __future__ import annotations

import argparse
import sys

from faster_rcnn.config import cfg, get_output_dir, get_output_tb_dir
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.engine.distributed import cleanup, init_distributed
from faster_rcnn.engine.trainer import NonFiniteLossError, train_net
from faster_rcnn.utils.cli import add_config_args, apply_config, resolve_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a Faster R-CNN network')
    parser.add_argument('--weight', default=None,
                        help='ImageNet initialisation (a torchvision state_dict file, e.g. '
                             'data/imagenet_weights/vgg16.pth); not needed for --net tiny')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_trainval',
                        help="dataset(s) to train on, '+' joins several")
    parser.add_argument('--imdbval', dest='imdbval_name', default='voc_2007_test',
                        help="dataset for the validation summaries ('' to disable)")
    parser.add_argument('--iters', dest='max_iters', type=int, default=70000, help='number of iterations')
    parser.add_argument('--tag', default=None, help='tag of the experiment (output sub-folder)')
    parser.add_argument('--net', default='res50', help='vgg16, res50, res101, res152, mobile or tiny')
    parser.add_argument('--workers', type=int, default=None,
                        help='data loader worker processes (default: DATA_LOADER.NUM_WORKERS)')
    parser.add_argument('--fresh', action='store_true',
                        help='ignore existing snapshots in the output folder and start from iteration 0')
    add_config_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print('Called with args:')
    print(args)
    info = init_distributed(resolve_device(args.device))
    apply_config(args, verbose=info.is_main)

    imdb, roidb = combined_roidb(args.imdb_name, training=True)
    print(f'{len(roidb)} roidb entries')
    output_dir = get_output_dir(imdb.name, tag=args.tag)
    tb_dir = get_output_tb_dir(imdb.name, tag=args.tag)
    print(f'Output will be saved to `{output_dir}`')
    print(f'TensorFlow summaries will be saved to `{tb_dir}`')

    valroidb = None
    if args.imdbval_name:
        # The validation images are never flipped.
        orig_flip = cfg.TRAIN.USE_FLIPPED
        cfg.TRAIN.USE_FLIPPED = False
        _, valroidb = combined_roidb(args.imdbval_name, training=True)
        cfg.TRAIN.USE_FLIPPED = orig_flip
        print(f'{len(valroidb)} validation roidb entries')

    try:
        final = train_net(net=args.net, imdb=imdb, roidb=roidb, valroidb=valroidb, output_dir=output_dir,
                          tb_dir=tb_dir, pretrained_model=args.weight, max_iters=args.max_iters, info=info,
                          fresh=args.fresh, num_workers=args.workers)
    except NonFiniteLossError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 3
    finally:
        cleanup(info)
    if info.is_main:
        print(f'done solving: {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
