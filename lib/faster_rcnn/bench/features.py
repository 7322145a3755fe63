"""``python tools/benchmark.py features``: region-feature extraction (``Detector.features``, BUTD selection) in
images per second, and the bf16 feature error against fp32.

    python tools/benchmark.py features [--net res101] [--device cuda] [--batches 1,4] [--repeat 3] [--json FILE]

One 600 x 1000 picture (``bench.infer``'s), the network's yml with 300 proposals per image (TEST.RPN_POST_NMS_TOP_N),
random seeded weights (residual branches started at zero so that the RPN proposes ordinary boxes; 1601 classes,
as BUTD's Visual Genome model). ``res101_butd`` is taken where the network table has it. Rows, for each batch size
(the same picture repeated), interleaved round after round (``--repeat`` timed rounds after one warm-up, medians):

  eager_fp32          ``Detector.features`` in fp32
  eager_bf16          the same under bf16 autocast (the weights are cast at every call)
  eager_bf16_weights  bf16 autocast on a copy whose backbone weights are bf16 (``nets.amp.bf16_backbone``: the
                      casts of the weights at every call are gone); what extract_features.py --amp bf16 runs

The machine's rate is measured in the same run on the same device: ``torch.mm`` of two 4096 x 4096 matrices in fp32
and bf16; each row's FLOPs (counted once with ``FlopCounterMode``) over its time is reported as a share of the rate
of its precision. The bf16 error: cosine similarity (smallest over the regions) and largest relative error
(max |bf16 - fp32| / max |fp32| per region, the largest over regions) of the features of the same boxes.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os.path as osp
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from ..cli import ToolParser
from ..config import load_config, set_key
from ..nets.amp import bf16_backbone
from ..settings import ModelSettings
from .infer import _image

_REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
NUM_CLASSES = 1601
PROPOSALS = 300


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py features', description=__doc__.splitlines()[0])
    p.add_argument('--net', default=None, help='default: res101_butd where the network table has it, else res101')
    p.add_argument('--device', default=None, help="'cuda' or 'cpu' (default: cuda when available)")
    p.add_argument('--batches', default='1,4', help='batch sizes (comma-separated)')
    p.add_argument('--repeat', type=int, default=3, help='timed rounds (the median is reported)')
    p.add_argument('--classes', type=int, default=NUM_CLASSES, help='classes, background included (default 1601)')
    p.add_argument('--json', default=None, help='write the results to this file')
    return p.parse_args(argv)


def _default_net() -> str:
    from ..nets.registry import NETWORKS
    return 'res101_butd' if 'res101_butd' in NETWORKS else 'res101'


def _model(net: str, num_classes: int, device: torch.device) -> torch.nn.Module:
    from ..nets.factory import build_network
    from .nets import _tame
    yml = osp.join(_REPO, 'experiments', 'cfgs', f'{net}.yml')
    config = load_config(yml if osp.isfile(yml) else None)
    set_key('TEST.RPN_POST_NMS_TOP_N', PROPOSALS, config)
    torch.manual_seed(0)
    model = build_network(net, num_classes, ModelSettings.from_config(config, net))
    _tame(model.backbone)
    return model.eval().place(device)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def machine_rate(device: torch.device, repeat: int) -> dict[str, float]:
    """GFLOP/s of a 4096^2 matmul in fp32 and bf16 on ``device``."""
    out = {}
    a = torch.randn(4096, 4096, device=device)
    for dtype, name in ((torch.float32, 'fp32'), (torch.bfloat16, 'bf16')):
        aa = a.to(dtype)
        torch.mm(aa, aa)
        s = statistics.median(_timed(lambda: torch.mm(aa, aa), device) for _ in range(max(repeat, 3)))
        out[name] = 2 * 4096 ** 3 / s / 1e9
    return out


def feature_error(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Smallest cosine similarity and largest relative error (max-abs difference over max-abs value) over the
    regions of (N, D) features."""
    ref, oth = reference.astype(np.float64), other.astype(np.float64)
    cos = (ref * oth).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(oth, axis=1), 1e-30)
    rel = np.abs(ref - oth).max(1) / np.maximum(np.abs(ref).max(1), 1e-30)
    return {'min_cosine': float(cos.min()), 'max_relative_error': float(rel.max())}


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def main(argv: list[str]) -> int:
    from ..cli import resolve_device
    from ..inference import Detector
    from ..inference.region_features import RegionFeatures
    args = parse_args(argv)
    device = torch.device(resolve_device(args.device))
    net = args.net or _default_net()
    batches = [int(b) for b in args.batches.split(',') if b.strip()]
    model = _model(net, args.classes, device)
    classes = ['__background__'] + [f'c{i}' for i in range(1, args.classes)]
    half = bf16_backbone(copy.deepcopy(model))
    im = _image()
    results: dict = {'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
                     'torch': torch.__version__, 'net': net, 'image': list(im.shape[:2]), 'proposals': PROPOSALS,
                     'repeat': args.repeat, 'machine_gflops': machine_rate(device, args.repeat), 'rows': {}}
    print(f'{net} on {results["device"]}: machine ' + ', '.join(
        f'{k} {v:.0f} GFLOP/s' for k, v in results['machine_gflops'].items()), flush=True)
    runners: dict[str, tuple[Callable[[], object], str, int]] = {}
    for b in batches:
        images = [im] * b
        for key, m, amp in (('eager_fp32', model, ''), ('eager_bf16', model, 'bf16'),
                            ('eager_bf16_weights', half, 'bf16')):
            det = Detector.from_model(m, classes, device=device, amp=amp, batch_size=b)
            runners[f'{key}_b{b}'] = (functools.partial(det.features, images), 'bf16' if amp else 'fp32', b)
    flops = {k: _flops(fn) for k, (fn, _, _) in runners.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    with torch.no_grad():
        for fn, _, _ in runners.values():
            fn()
        for _ in range(args.repeat):
            for k, (fn, _, _) in runners.items():
                times[k].append(_timed(fn, device))
    lines = ['| row | batch | images/s | TFLOP/image | share of the machine |', '| --- | ---: | ---: | ---: | ---: |']
    for k, (_, precision, b) in runners.items():
        s = statistics.median(times[k])
        share = flops[k] / s / 1e9 / results['machine_gflops'][precision]
        results['rows'][k] = {'batch': b, 'images_per_s': b / s, 'flops_per_image': flops[k] / b, 'share': share,
                              'runs_s': times[k]}
        lines.append(f'| {k.rsplit("_b", 1)[0]} | {b} | {b / s:.2f} | {flops[k] / b / 1e12:.2f} | {share:.0%} |')
    fp32 = Detector.from_model(model, classes, device=device)
    reference = fp32.features(im)
    assert isinstance(reference, RegionFeatures)  # one image in, one RegionFeatures out
    for key, m in (('eager_bf16', model), ('eager_bf16_weights', half)):
        got = Detector.from_model(m, classes, device=device, amp='bf16').features(im, boxes=reference.boxes)
        assert isinstance(got, RegionFeatures)
        results[f'{key}_error'] = feature_error(reference.features, got.features)
        print(f'{key} vs fp32 on the same {len(reference)} boxes: ' + ', '.join(
            f'{k} {v:.6f}' for k, v in results[f'{key}_error'].items()))
    print('\n'.join(lines))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
    return 0
