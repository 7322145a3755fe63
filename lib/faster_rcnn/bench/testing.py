"""``python tools/benchmark.py test``: test throughput (images per second) by batch size, precision and processes.

    python tools/benchmark.py test                                  # tiny on shapes_test, CPU
    python tools/benchmark.py test --nets vgg16,res101 --images 8    # 600x1000 images, random weights

Each setting runs the whole test loop of ``tools/test_net.py`` (DataLoader workers decoding and resizing, the
padded batch forward, per-class NMS) over ``--images`` images after a warm-up pass, and reports images per second
of the timed pass from its first loaded batch on (the steady rate; the loader's start-up, a few tenths of a second
per run, is reported apart), and the pass's whole wall time. ``tiny`` runs on ``shapes_test`` with the quick
start's config (and a trained model with ``--model``); vgg16 / res101 run on generated 600x1000 pictures with their
yml's settings and random weights (the work per image is the same as a trained model's: 300 proposals, 100
detections at most). Two processes are two torchrun-style processes over gloo (NCCL on CUDA), each testing every
second image with ``torch.get_num_threads() / 2`` threads; their time is from a barrier before to a barrier after
the pass.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from ..cli import ToolParser
from ..config import Config, load_config
from ..nets.registry import spec

_REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py test', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--nets', default='tiny', help='comma-separated: tiny (shapes_test), vgg16, res101, ...')
    p.add_argument('--batches', default='1,2,4,8', help='TEST.IMS_PER_BATCH values')
    p.add_argument('--amp', default='fp32,bf16', help="precisions: fp32, bf16, fp16")
    p.add_argument('--procs', default='1,2', help='process counts')
    p.add_argument('--images', type=int, default=None,
                   help='images per timed pass (default: 100 for tiny, 8 otherwise)')
    p.add_argument('--workers', type=int, default=1, help='DataLoader workers per process')
    p.add_argument('--repeat', type=int, default=1, help='timed passes per setting (the median is reported)')
    p.add_argument('--model', default=None, help='(tiny) a trained model file instead of random weights')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    p.add_argument('--json', default=None, help='write the results to this file')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # internal: one rank of a multi-process run
    return p.parse_args(argv)


def _configure(net: str, batch: int, amp: str) -> Config:
    """A private config: the net's yml with this setting's batch and precision."""
    return load_config(osp.join(_REPO, 'experiments', 'cfgs', spec(net).config_file),
                       ['TEST.IMS_PER_BATCH', str(batch), 'TEST.AMP', '' if amp == 'fp32' else amp])


def _images(net: str, count: int, folder: str) -> list[str]:
    """The test pictures: shapes_test's for tiny, generated 600x1000 JPEGs otherwise."""
    if net == 'tiny':
        from ..datasets.factory import get_imdb
        imdb = get_imdb('shapes_test')
        return [imdb.image_path_at(i) for i in range(min(count, imdb.num_images))]
    import cv2
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = osp.join(folder, f'{i:04d}.jpg')
        if not osp.exists(path):
            yy, xx = np.mgrid[0:600, 0:1000]
            base = 128 + 80 * np.sin(xx / (30 + 5 * i))[..., None] * np.cos(yy / 40)[..., None]
            im = np.clip(base + rng.normal(0, 25, (600, 1000, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(path, im)
        paths.append(path)
    return paths


def _detector(net: str, config: Config, device: torch.device, model_path: str | None):
    """A Detector of the trained ``model_path``, or of ``net`` with seeded random weights, at the config's
    TEST.IMS_PER_BATCH and TEST.AMP."""
    from ..engine.rng import seed_everything
    from ..inference import Detector
    from ..nets.factory import build_network
    from ..settings import ModelSettings
    batch, amp = int(config.TEST.IMS_PER_BATCH), str(config.TEST.AMP)
    if model_path:
        return Detector.load(model_path, device, net=net, batch_size=batch, amp=amp)
    seed_everything(int(config.RNG_SEED))
    num_classes = 21 if net != 'tiny' else 4
    model = build_network(net, num_classes, ModelSettings.from_config(config, net)).place(device).eval()
    return Detector.from_model(model, [f'class{i}' for i in range(num_classes)], device=device, amp=amp,
                               batch_size=batch)


def _timed_pass(detector, paths, device, rank: int, world: int, workers: int) -> tuple[float, float]:
    """(steady images per second over all ranks, wall seconds of the pass) of one pass."""
    from ..engine.tester import detect_dataset
    if world > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    timing: dict = {}
    detect_dataset(detector, paths, rank=rank, world_size=world, num_workers=workers, progress=False,
                   timing=timing)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    steady = torch.tensor([timing['steady_s'], float(timing['images'])], dtype=torch.float64)
    if world > 1:
        torch.distributed.barrier()
        longest = steady[:1].clone()
        total = steady[1:].clone()
        torch.distributed.all_reduce(longest, op=torch.distributed.ReduceOp.MAX)
        torch.distributed.all_reduce(total)
        steady = torch.cat([longest, total])
    wall = time.perf_counter() - t0
    return float(steady[1] / max(float(steady[0]), 1e-9)), wall


def run_setting(net: str, batch: int, amp: str, paths: list[str], device: torch.device, *, workers: int,
                repeat: int, model_path: str | None, rank: int = 0, world: int = 1) -> tuple[float, float]:
    """(steady images per second, wall seconds): medians of ``repeat`` timed passes after a warm-up pass."""
    detector = _detector(net, _configure(net, batch, amp), device, model_path)
    _timed_pass(detector, paths[:max(batch * world, 2 * world)], device, rank, world, workers)  # warm-up
    runs = [_timed_pass(detector, paths, device, rank, world, workers) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _multi_process(net: str, batch: int, amp: str, procs: int, count: int, args: argparse.Namespace, device: str,
                   image_dir: str) -> tuple[float, float]:
    """Launch ``procs`` ranks of this benchmark on loopback; rank 0 prints (images/s, wall seconds)."""
    port = _free_port()
    threads = max(torch.get_num_threads() // procs, 1)
    spec = json.dumps({'net': net, 'batch': batch, 'amp': amp, 'images': count, 'workers': args.workers,
                       'repeat': args.repeat, 'model': args.model, 'device': device, 'image_dir': image_dir})
    children = []
    for rank in range(procs):
        env = {**os.environ, 'RANK': str(rank), 'WORLD_SIZE': str(procs), 'LOCAL_RANK': str(rank),
               'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), 'OMP_NUM_THREADS': str(threads)}
        children.append(subprocess.Popen([sys.executable, osp.join(_REPO, 'tools', 'benchmark.py'), 'test',
                                          '--worker', spec], env=env, stdout=subprocess.PIPE, text=True))
    outs = [c.communicate()[0] for c in children]
    if any(c.returncode for c in children):
        raise RuntimeError(f'a benchmark rank failed: {[c.returncode for c in children]}')
    ips, wall = outs[0].strip().splitlines()[-1].split()
    return float(ips), float(wall)


def _worker(spec: dict) -> int:
    from ..engine.distributed import cleanup, init_distributed
    info = init_distributed(spec['device'])
    finished = False
    try:
        paths = _images(spec['net'], spec['images'], spec['image_dir'])
        ips, wall = run_setting(spec['net'], spec['batch'], spec['amp'], paths, info.device, workers=spec['workers'],
                                repeat=spec['repeat'], model_path=spec['model'], rank=info.rank, world=info.world_size)
        if info.is_main:
            print(ips, wall, flush=True)
        finished = True
    finally:
        cleanup(info, finished)
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.worker:
        code = _worker(json.loads(args.worker))
        # A rank that has printed its numbers and left the process group ends here, without the interpreter's
        # teardown: there a gloo thread still being joined can abort the process ("terminate called without an
        # active exception", seen once on 2 cores) after all its work is done. Errors never
        # reach this line; they leave through run_tool with their own exit code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    nets = [n for n in args.nets.split(',') if n]
    batches = [int(b) for b in args.batches.split(',')]
    amps = [a for a in args.amp.split(',') if a]
    procs_list = [int(p) for p in args.procs.split(',')]
    name = torch.cuda.get_device_name(0) if device.startswith('cuda') else f'cpu ({os.cpu_count()} cores)'
    results: dict = {'device': name,
                     'torch': torch.__version__, 'threads': torch.get_num_threads(), 'nets': {}}
    with tempfile.TemporaryDirectory(prefix='frcnn_bench_test_') as image_dir:
        for net in nets:
            count = args.images or (100 if net == 'tiny' else 8)
            paths = _images(net, count, image_dir)
            table, walls = {}, {}
            for procs in procs_list:
                for amp in amps:
                    for batch in batches:
                        if procs == 1:
                            ips, wall = run_setting(net, batch, amp, paths, torch.device(device), workers=args.workers,
                                                    repeat=args.repeat, model_path=args.model)
                        else:
                            ips, wall = _multi_process(net, batch, amp, procs, count, args, device, image_dir)
                        key = f'{procs}proc_{amp}_b{batch}'
                        table[key], walls[key] = ips, wall
                        print(f'{net:>7} {procs} process(es) {amp:>4} batch {batch}: {ips:7.2f} images/s '
                              f'(pass of {count} images: {wall:.2f} s wall)', flush=True)
            entry = {'images': count, 'images_per_s': table, 'wall_s': walls}
            if '1proc_fp32_b1' in table:
                if '1proc_fp32_b8' in table:
                    entry['batch8_vs_batch1'] = table['1proc_fp32_b8'] / table['1proc_fp32_b1']
                if '2proc_fp32_b1' in table:
                    entry['two_processes_time_ratio'] = walls['2proc_fp32_b1'] / walls['1proc_fp32_b1']
            results['nets'][net] = entry
            for key in ('batch8_vs_batch1', 'two_processes_time_ratio'):
                if key in entry:
                    print(f'{net:>7} {key}: {entry[key]:.2f}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
    return 0
