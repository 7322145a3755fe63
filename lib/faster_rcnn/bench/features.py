"""``python tools/benchmark.py features``: region-feature extraction speed, images/s and share of the machine's rate.

    python tools/benchmark.py features [--net res101_butd] [--batches 1,4] [--repeat 3] [--threads 0] [--json FILE]

The work timed is the network path region features take: for a padded batch of 600 x 1000 images (the structured
picture of ``benchmark.py infer``, repeated), the head, the RPN, the proposals (TEST.RPN_POST_NMS_TOP_N of the
net's yml: 300 for res101_butd), RoI pooling and the tail on every roi, up to the class and box layers: the test
forward of ``FasterRCNN`` returning ``HeadOutputs`` (``features_path`` below, the one place to swap in another
callable). The network is built with its yml's settings and seeded random weights (residual branches started at
zero as in ``bench.nets``, so the RPN proposes ordinary boxes), 1601 classes by default (BUTD's).

Rows, for each batch size, run in turn round after round (``--warmup`` untimed rounds, then ``--repeat`` timed
ones; each row gets the median of its rounds):

  eager_fp32           the fp32 network
  eager_bf16_autocast  bf16 autocast on the fp32 network: every weight cast (and every frozen norm folded) per call
  eager_bf16           bf16 autocast on a copy holding its weights in bf16 (``nets.half_weights``: what
                       ``Detector(amp='bf16')`` runs)

Each row's FLOPs are counted once per batch size with ``torch.utils.flop_counter.FlopCounterMode`` on the work
itself (the rois the proposals actually gave); GFLOP/s is that over the median time, reported as a share of the
machine's rate for its precision (the faster of ``bench.infer.machine_limit``'s matmul and convolution, measured
in the same run on the same threads).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..cli import ToolParser
from ..config import load_config
from ..data.test_loader import collate_test, prepare_test_image
from ..nets.amp import autocast
from ..nets.factory import build_network
from ..nets.half_weights import with_half_weights
from ..nets.network import FasterRCNN
from ..nets.postprocess import HeadOutputs
from ..nets.registry import spec
from ..settings import ModelSettings
from .infer import _REPO, IMAGE_HW, _image, _timed, machine_limit
from .nets import _tame

ROWS = ('eager_fp32', 'eager_bf16_autocast', 'eager_bf16')


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py features', description=__doc__.splitlines()[0])
    p.add_argument('--net', default='res101_butd')
    p.add_argument('--num-classes', type=int, default=1601, help="classes, background included (BUTD's 1601)")
    p.add_argument('--batches', default='1,4', help='batch sizes, comma separated')
    p.add_argument('--repeat', type=int, default=3, help='timed rounds (the median is reported)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument('--json', default=None, help='write the results to this file')
    return p.parse_args(argv)


def _model(net: str, num_classes: int) -> FasterRCNN:
    """The network of ``net``'s yml with seeded weights and tamed residual branches, channels-last on the CPU."""
    config = load_config(osp.join(_REPO, 'experiments', 'cfgs', spec(net).config_file))
    torch.manual_seed(0)
    model = build_network(net, num_classes, ModelSettings.from_config(config, net))
    _tame(model.backbone)
    return model.eval().place('cpu')


def _batch(model: FasterRCNN, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of ``n`` copies of the benchmark picture: images (n, 3, H, W), im_info (n, 3)."""
    im = _image()
    blob, im_info = prepare_test_image(im, model.settings.input)
    batch = collate_test([{'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': i} for i in range(n)])
    return batch['data'], batch['im_info']


def features_path(model: torch.nn.Module, amp: str) -> Callable[[torch.Tensor, torch.Tensor], object]:
    """The timed callable: images (N, 3, H, W), im_info (N, 3) -> the network's test outputs (``HeadOutputs``: the
    rois and their heads, after RoI pooling and the tail). Swap for ``Detector.features`` here."""
    def run(images: torch.Tensor, im_info: torch.Tensor) -> object:
        with torch.no_grad(), autocast(images.device, amp, 'TEST.AMP'):
            return model(images, im_info)
    return run


def _count(fn: Callable[[], object]) -> tuple[int, int]:
    """(FLOPs of one call, rois it processed)."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    assert isinstance(out, HeadOutputs)
    return int(counter.get_total_flops()), int(out.rois.shape[0])


def bench_batch(runners: dict[str, Callable[[torch.Tensor, torch.Tensor], object]], model: FasterRCNN, n: int,
                args: argparse.Namespace) -> dict:
    data, im_info = _batch(model, n)
    calls = {k: (lambda fn=fn: fn(data, im_info)) for k, fn in runners.items()}
    flops, rois = _count(calls['eager_bf16'])  # the same arithmetic in every row; bf16 counts fastest
    for _ in range(args.warmup):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.repeat):
        for key, fn in calls.items():
            times[key].append(_timed(fn))
    ms = {k: statistics.median(v) for k, v in times.items()}
    return {'batch': n, 'input_hw': [int(data.shape[2]), int(data.shape[3])], 'rois': rois, 'flops': flops,
            'ms': ms, 'runs_ms': times, 'images_per_s': {k: n * 1000.0 / v for k, v in ms.items()},
            'gflops': {k: flops / v / 1e6 for k, v in ms.items()}}


def feature_error(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Smallest cosine similarity and largest relative error (max-abs difference over max-abs value) over the
    regions of (N, D) features (bf16 against fp32, in docs/features.md)."""
    ref, oth = reference.astype(np.float64), other.astype(np.float64)
    cos = (ref * oth).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(oth, axis=1), 1e-30)
    rel = np.abs(ref - oth).max(1) / np.maximum(np.abs(ref).max(1), 1e-30)
    return {'min_cosine': float(cos.min()), 'max_relative_error': float(rel.max())}


def peak_rates(machine: dict[str, float]) -> dict[str, float]:
    """The machine's rate per precision: the faster of its matmul and convolution, GFLOP/s."""
    return {p: max(machine[f'gemm_{p}_gflops'], machine[f'conv_{p}_gflops']) for p in ('fp32', 'bf16')}


def table(results: dict) -> str:
    peak = peak_rates(results['machine'])
    lines = ['| batch | row | ms / batch | images/s | GFLOP/s | share of the machine |',
             '| ---: | --- | ---: | ---: | ---: | ---: |']
    for e in results['batches']:
        for key, ms in e['ms'].items():
            share = e['gflops'][key] / peak['bf16' if 'bf16' in key else 'fp32']
            lines.append(f'| {e["batch"]} | {key} | {ms:.0f} | {e["images_per_s"][key]:.3f} | '
                         f'{e["gflops"][key]:.0f} | {share:.0%} |')
    return '\n'.join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {'net': args.net, 'device': f'cpu ({os.cpu_count()} cores)', 'torch': torch.__version__,
                     'threads': torch.get_num_threads(), 'image': list(IMAGE_HW), 'repeat': args.repeat}
    results['machine'] = machine_limit(args.repeat)
    print('machine: ' + ', '.join(f'{k} {v:.0f}' for k, v in results['machine'].items()), flush=True)
    model = _model(args.net, args.num_classes)
    half = with_half_weights(model, torch.bfloat16)
    runners = {'eager_fp32': features_path(model, ''), 'eager_bf16_autocast': features_path(model, 'bf16'),
               'eager_bf16': features_path(half, 'bf16')}
    results['batches'] = []
    for n in [int(b) for b in args.batches.split(',') if b.strip()]:
        entry = bench_batch(runners, model, n, args)
        results['batches'].append(entry)
        print(f'batch {n} ({entry["rois"]} rois, {entry["flops"] / 1e12:.2f} TFLOP): '
              + ', '.join(f'{k} {v:.0f} ms' for k, v in entry['ms'].items()), flush=True)
        if args.json:  # after every batch size: a long run's first rows are kept if it is stopped
            with open(args.json, 'w', encoding='utf-8') as f:
                json.dump(results, f, indent=2)
    print(table(results))
    return 0
