"""``python tools/benchmark.py data``: training-loader throughput (images per second) by worker count.

The loader is the one training uses (decode with OpenCV, flip, resize, normalise, pad, collate), over the
training roidb of ``--imdb`` with the current cfg (``--cfg`` / ``--set`` as for the tools). The first
``--warmup`` batches (worker start-up included) are not timed; each setting is measured ``--repeats`` times
and the median is reported.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ..cli import ToolParser
from ..config import load_config
from ..settings import RoidbSettings, TrainSettings


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py data', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--imdb', default='shapes_trainval', help='training dataset name(s), joined by +')
    p.add_argument('--workers', default='0,1,2', help='worker counts to compare, comma-separated')
    p.add_argument('--ims-per-batch', type=int, default=None, help='default: TRAIN.IMS_PER_BATCH')
    p.add_argument('--batches', type=int, default=50, help='timed batches per run')
    p.add_argument('--warmup', type=int, default=5, help='untimed batches first')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--json', default=None, help='write the results to this file')
    p.add_argument('--cfg', dest='cfg_file', default=None)
    p.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def measure(roidb: list[dict], train: TrainSettings, workers: int, ims_per_batch: int, batches: int,
            warmup: int) -> float:
    """Images per second of one loader run."""
    from ..data.loader import build_train_loader
    loader = build_train_loader(roidb, train.input, ims_per_batch=ims_per_batch, seed=train.seed,
                                use_all_gt=train.use_all_gt, num_workers=workers)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)['data'].shape[0]
    elapsed = time.perf_counter() - t0
    del it, loader  # stops the persistent workers
    return n / elapsed


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    config = load_config(args.cfg_file, args.set_cfgs)
    train = TrainSettings.from_config(config)
    from ..data.roidb import combined_roidb
    _, roidb = combined_roidb(args.imdb, RoidbSettings.from_config(config), data_dir=config.DATA_DIR)
    ims = args.ims_per_batch or train.ims_per_batch
    results = {'imdb': args.imdb, 'ims_per_batch': ims, 'scales': list(train.input.scales),
               'max_size': train.input.max_size, 'torch': torch.__version__,
               'cpu_threads': torch.get_num_threads(), 'images_per_second': {}}
    print(f'{"workers":>8s} {"images/s (median)":>18s}  runs')
    for w in (int(x) for x in args.workers.split(',')):
        runs = [measure(roidb, train, w, ims, args.batches, args.warmup) for _ in range(args.repeats)]
        med = statistics.median(runs)
        results['images_per_second'][str(w)] = {'median': med, 'runs': runs}
        print(f'{w:>8d} {med:>18.1f}  {", ".join(f"{r:.1f}" for r in runs)}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
        print(f'Wrote {args.json}')
    return 0
