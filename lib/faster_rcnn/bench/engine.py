"""``tools/benchmark.py train``: seconds per training iteration, data pipeline included.

    python tools/benchmark.py train --net tiny --imdb shapes_trainval --cfg experiments/cfgs/shapes.yml
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from faster_rcnn.cli import ToolParser, add_config_args, resolve_device
from faster_rcnn.config import Config, load_config
from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.engine.optimizer import build_optimizer
from faster_rcnn.engine.rng import seed_everything
from faster_rcnn.engine.train_loop import batch_to_device
from faster_rcnn.nets.amp import autocast
from faster_rcnn.nets.factory import build_network
from faster_rcnn.settings import ModelSettings, RoidbSettings, TrainSettings


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None


def bench_train(args: argparse.Namespace, config: Config, device: torch.device) -> dict:
    train = TrainSettings.from_config(config, args.workers)
    seed_everything(train.seed)
    imdb, roidb = combined_roidb(args.imdb, RoidbSettings.from_config(config), data_dir=config.DATA_DIR)
    model = build_network(args.net, imdb.num_classes, ModelSettings.from_config(config, args.net)).place(device)
    model.train()
    optimizer = build_optimizer(model, train.optimizer)
    loader = build_train_loader(roidb, train.input, ims_per_batch=train.ims_per_batch, seed=train.seed,
                                use_all_gt=train.use_all_gt, num_workers=train.num_workers,
                                aspect_grouping=train.aspect_grouping)
    it = iter(loader)
    step_times, wait_times = [], []
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        batch = next(it)
        images, im_info, gt_boxes, gt_valid, seeds = batch_to_device(batch, device, train.seed)
        t1 = time.perf_counter()
        with autocast(device, train.amp, 'TRAIN.AMP'):
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
            'ims_per_batch': train.ims_per_batch, 'iters': args.iters,
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
    config = load_config(args.cfg_file, args.set_cfgs)
    device = torch.device(resolve_device(args.device))
    result = bench_train(args, config, device)
    for k, v in result.items():
        print(f'{k:>22}: {v:.4f}' if isinstance(v, float) else f'{k:>22}: {v}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return 0
