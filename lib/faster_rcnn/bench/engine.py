"""``tools/benchmark.py train``: seconds per training iteration, data pipeline included.

    python tools/benchmark.py train --net tiny --imdb shapes_trainval --cfg experiments/cfgs/shapes.yml
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from faster_rcnn.config import cfg
from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.engine.optimizer import build_optimizer
from faster_rcnn.engine.rng import seed_everything
from faster_rcnn.engine.trainer import autocast_context, batch_to_device
from faster_rcnn.nets.factory import build_network
from faster_rcnn.utils.cli import ToolParser, add_config_args, apply_config, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None


def bench_train(args: argparse.Namespace, device: torch.device) -> dict:
    seed_everything(cfg.RNG_SEED)
    imdb, roidb = combined_roidb(args.imdb, training=True)
    model = build_network(args.net, imdb.num_classes, cfg=cfg).place(device).train()
    optimizer = build_optimizer(model, cfg)
    loader = build_train_loader(roidb, ims_per_batch=cfg.TRAIN.IMS_PER_BATCH, seed=cfg.RNG_SEED,
                                num_workers=args.workers if args.workers is not None else cfg.DATA_LOADER.NUM_WORKERS,
                                aspect_grouping=cfg.TRAIN.ASPECT_GROUPING)
    it = iter(loader)
    step_times, wait_times = [], []
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        batch = next(it)
        images, im_info, gt_boxes, gt_valid, seeds = batch_to_device(batch, device)
        t1 = time.perf_counter()
        with autocast_context(device):
            losses = model(images, im_info, gt_boxes, gt_valid, seeds=seeds)
        optimizer.zero_grad(set_to_none=True)
        losses['total_loss'].backward()
        optimizer.step()
        _sync(device)
        t2 = time.perf_counter()
        if i >= args.warmup:
            step_times.append(t2 - t0)
            wait_times.append(t1 - t0)
    return {'what': 'train', 'net': args.net, 'imdb': args.imdb, 'device': str(device),
            'ims_per_batch': cfg.TRAIN.IMS_PER_BATCH, 'iters': args.iters,
            'median_s_per_iter': statistics.median(step_times),
            'median_data_wait_s': statistics.median(wait_times),
            'peak_memory_mb': _peak_memory_mb(device)}


def main(argv: list[str]) -> int:
    what, rest = argv[0], argv[1:]
    parser = ToolParser(prog=f'benchmark.py {what}', description='seconds per training iteration')
    parser.add_argument('--net', default='tiny')
    parser.add_argument('--imdb', default='shapes_trainval')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--workers', type=int, default=None)
    parser.add_argument('--json', default=None, help='write the numbers to this file')
    add_config_args(parser)
    args = parser.parse_args(rest)
    apply_config(args, verbose=False)
    device = torch.device(resolve_device(args.device))
    result = bench_train(args, device)
    for k, v in result.items():
        print(f'{k:>22}: {v:.4f}' if isinstance(v, float) else f'{k:>22}: {v}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return 0
