"""Whole-network timings at 600 x 1000, ours vs torchvision's FasterRCNN on the same backbone cut
(``python tools/benchmark.py nets --nets vgg16,res101 --device cuda``).

Both models share everything but the detection code: torchvision's ``FasterRCNN`` gets our backbone's
head as its ``backbone`` (``out_channels`` = the head's channels), an AnchorGenerator with the same 9
anchors (sizes 128, 256, 512 x ratios 0.5, 1, 2), a 7x7 MultiScaleRoIAlign on the single map, the same
proposal counts (12000 / 2000 in training, 6000 / 300 in testing), 256 RoIs per image, our tail as its
``box_head``, and min_size 600 / max_size 1000 (so a 600 x 1000 input is not resized).

Reported per network: the functions below run in turn, round after round (``--warmup`` untimed rounds,
then ``--repeat`` timed ones, CUDA synchronised), and each gets the median of its rounds. Interleaving
makes a drift of the machine (clock, other tenants) hit every function alike.
  test_ms   eval forward of one image. Ours returns rois / class probabilities / de-normalised deltas
            (the per-class NMS runs in the tester); torchvision's includes its transform and postprocess.
  train_ms  forward + backward + SGD step (momentum 0.9) of one image with 6 gt boxes.
  test_outside_backbone_ms / train_outside_backbone_ms: the same two calls on a stub backbone of the same
            shapes that costs next to nothing (a fixed feature map as the head, a spatial mean and one
            linear layer as the tail): the cost of the detection code itself (RPN, proposals, targets, RoI
            features, predictors, losses, postprocessing, the optimizer step on the detection layers).
  peak_mb   on CUDA, the most memory allocated during the call above what was held just before it
            (weights, optimizer state, the previous step's gradients): the step's activations and
            temporaries, comparable between the two detectors that live side by side. On CPU, the
            resident-memory high-water mark of a fresh process that builds one detector and runs one test
            forward (test_peak_mb), then two training steps (train_peak_mb): weights, optimizer state and
            libraries included, alike for both.
  train_rois  RoIs the tail processed in the last training step. Both detectors must see about 256: with
            random weights a ResNet's activations explode through its frozen (identity) BatchNorms, the RPN
            proposes degenerate boxes, torchvision drops them (min-size filter) and its tail then sees a
            handful of RoIs. So, as ImageNet weights would, the backbones start "tame": the last norm of every
            residual branch is zeroed (torchvision's zero_init_residual), for both detectors alike.
``--json FILE`` writes all of it, with ``train_step_vs_torchvision``, ``test_vs_torchvision`` and the
outside-the-backbone ratios (our time / torchvision's) per network.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn

from ..cli import ToolParser
from ..config import new_config
from ..engine.optimizer import build_optimizer
from ..errors import UsageError
from ..nets.backbone import Backbone
from ..nets.factory import build_backbone, build_network
from ..settings import ModelSettings, OptimizerSettings

IMAGE_HW = (600, 1000)
NUM_CLASSES = 21
GT_BOXES = [[48, 64, 300, 420, 15], [320, 100, 560, 380, 7], [500, 260, 790, 590, 12],
            [20, 380, 200, 590, 9], [600, 20, 700, 140, 3], [850, 250, 990, 520, 1]]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = ToolParser(prog='benchmark.py nets', description=__doc__.splitlines()[0])
    parser.add_argument('--nets', default=None,
                        help='comma-separated networks (default: vgg16,res50,res101,res152,mobile on cuda, '
                             'mobile,vgg16 on cpu)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--repeat', type=int, default=None, help='timed runs (default 20 on cuda, 3 on cpu)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed runs first (default 5 on cuda, 1 on cpu)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch\'s default)')
    parser.add_argument('--no-torchvision', action='store_true', help='time our network only')
    parser.add_argument('--json', type=Path, default=None, help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    cuda = args.device.startswith('cuda')
    args.nets = args.nets or ('vgg16,res50,res101,res152,mobile' if cuda else 'mobile,vgg16')
    args.repeat = args.repeat if args.repeat is not None else (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    return args


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed_call(fn: Callable[[], object], device: torch.device) -> tuple[float, float | None]:
    """(milliseconds, on CUDA the MB allocated at the call's peak above what was held before it)."""
    _sync(device)
    held = 0
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        held = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    ms = (time.perf_counter() - start) * 1e3
    extra = (torch.cuda.max_memory_allocated(device) - held) / 2**20 if device.type == 'cuda' else None
    return ms, extra


_Key = TypeVar('_Key', bound=Hashable)
_M = TypeVar('_M', bound=nn.Module)


def _interleaved(fns: Mapping[_Key, Callable[[], object]], device: torch.device, repeat: int,
                 warmup: int) -> dict[_Key, tuple[float, float | None]]:
    """name -> (median ms, largest step peak in MB or None), the functions run in turn each round.

    Round-robin timing: a slow drift of the machine (clock, other tenants) shifts every function
    alike instead of whichever happened to run during it, so the ratios and differences hold.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[_Key, list[float]] = {k: [] for k in fns}
    peaks: dict[_Key, float | None] = {k: None for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            ms, extra = _timed_call(fn, device)
            times[name].append(ms)
            if extra is not None:
                peaks[name] = max(extra, peaks[name] or 0.0)
    return {k: (statistics.median(times[k]), peaks[k]) for k in fns}


def _tame(backbone: _M) -> _M:
    """Zero the last norm of each residual branch (bounded activations from random weights); see above."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.models.resnet import Bottleneck
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, Bottleneck):
                m.bn3.weight.zero_()
            elif isinstance(m, InvertedResidual) and m.use_res_connect:
                m.conv[-1].weight.zero_()
    return backbone


class _RoICounter:
    """Counts the RoIs a tail sees (a forward pre-hook on it)."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self, module: nn.Module, args: tuple) -> None:
        self.last = int(args[0].shape[0])


class _HeadAsBackbone(nn.Module):
    """Our head in torchvision's backbone role (a module with ``out_channels``)."""

    def __init__(self, backbone: Backbone | _StubBackbone) -> None:
        super().__init__()
        self.body = backbone
        self.out_channels = backbone.head_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.head(x)


class _TailAsBoxHead(nn.Module):
    def __init__(self, backbone: Backbone | _StubBackbone) -> None:
        super().__init__()
        self.body = backbone

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.body.tail(pooled)


class _StubBackbone(nn.Module):
    """A backbone that costs next to nothing, with the real one's interface and output shapes.

    head: a fixed (trainable) feature map of the real head's shape, whatever the image; tail: a spatial
    mean and one linear layer to the real tail's width. A detector on it spends its time in the
    detection code: that is how the time outside the backbone is measured.
    """

    def __init__(self, real: Backbone, device: torch.device) -> None:
        super().__init__()
        self.head_channels, self.tail_channels = real.head_channels, real.tail_channels
        self.crop_max_pool = real.crop_max_pool
        # Room for torchvision's input too, which its transform pads to a multiple of 32.
        h, w = (2 * math.ceil(s / 32) for s in IMAGE_HW)
        self.features = nn.Parameter(torch.randn(1, real.head_channels, h, w, device=device))
        self.proj = nn.Linear(real.head_channels, real.tail_channels, device=device)

    def head(self, images: torch.Tensor) -> torch.Tensor:
        """The real head's output shape: (N, head_channels, ceil(H / 16), ceil(W / 16))."""
        h, w = (math.ceil(s / 16) for s in images.shape[2:])
        return self.features[:, :, :h, :w].expand(images.shape[0], -1, -1, -1)

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(pooled.mean(dim=(2, 3)))


def _torchvision_model(name: str, stub_device: torch.device | None = None) -> nn.Module:
    """torchvision's FasterRCNN on our backbone ``name`` (on a ``_StubBackbone`` of it with ``stub_device``)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    real = _tame(build_backbone(name))  # same cut, freezing and frozen BN as ours
    backbone: Backbone | _StubBackbone = real if stub_device is None else _StubBackbone(real, stub_device)
    return FasterRCNN(
        _HeadAsBackbone(backbone), num_classes=None, min_size=IMAGE_HW[0], max_size=IMAGE_HW[1],
        rpn_anchor_generator=AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)),
        rpn_pre_nms_top_n_train=12000, rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=6000, rpn_post_nms_top_n_test=300, rpn_nms_thresh=0.7,
        rpn_batch_size_per_image=256, box_batch_size_per_image=256,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=['0'], output_size=7, sampling_ratio=2),
        box_head=_TailAsBoxHead(backbone), box_predictor=FastRCNNPredictor(backbone.tail_channels, NUM_CLASSES))


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    # The same momentum and weight decay as our optimizer (TRAIN.MOMENTUM, TRAIN.WEIGHT_DECAY defaults).
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                           weight_decay=1e-4)


def _phases(model: nn.Module, opt: torch.optim.Optimizer, seen: _RoICounter, test_forward: Callable[[], object],
            train_loss: Callable[[], torch.Tensor]) -> tuple[dict[str, Callable[[], None]], Callable[[], int]]:
    """A detector's timed calls, {'test': eval forward, 'train': SGD step}, and the RoI count its tail
    (watched by ``seen``) got in the latest training step."""
    rois_in_train = [0]

    def test() -> None:
        model.eval()
        with torch.no_grad():
            test_forward()

    def train() -> None:
        model.train()
        loss = train_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rois_in_train[0] = seen.last
    return {'test': test, 'train': train}, lambda: rois_in_train[0]


def _ours(name: str, device: torch.device,
          stub: bool = False) -> tuple[dict[str, Callable[[], None]], Callable[[], int]]:
    """Our detector's timed functions (test, train) and its tail's RoI count; on a stub backbone if ``stub``."""
    config = new_config()
    config.TRAIN.BATCH_SIZE = 256
    torch.manual_seed(0)
    model = build_network(name, NUM_CLASSES, ModelSettings.from_config(config, name))
    _tame(model.backbone)
    if stub:
        # A stand-in with the interface the detector uses (duck-typed, not a Backbone subclass).
        model.backbone = cast(Backbone, _StubBackbone(model.backbone, device))
    model.place(device)  # channels-last on CPU (CHANNELS_LAST 'cpu'), as the tools run it
    seen = _RoICounter()
    tail = model.backbone.tail

    def counting_tail(pooled: torch.Tensor) -> torch.Tensor:
        seen(model.backbone, (pooled,))
        return tail(pooled)
    setattr(model.backbone, 'tail', counting_tail)  # an instance attribute over the method
    opt = build_optimizer(model, OptimizerSettings.from_config(config))
    images = torch.randn(1, 3, *IMAGE_HW, device=device)
    im_info = torch.tensor([[IMAGE_HW[0], IMAGE_HW[1], 1.0]], device=device)
    gt = [torch.tensor(GT_BOXES, dtype=torch.float32, device=device)]
    return _phases(model, opt, seen, lambda: model(images, im_info), lambda: model(images, im_info, gt)['total_loss'])


def _torchvision(name: str, device: torch.device,
                 stub: bool = False) -> tuple[dict[str, Callable[[], None]], Callable[[], int]]:
    """torchvision's detector on the same backbone (or its stub): its timed functions and its tail's RoI count."""
    # The memory layout ours runs in on this device (CHANNELS_LAST 'cpu'): the backbone is the same module.
    layout = torch.channels_last if device.type == 'cpu' else torch.contiguous_format
    # Module.to takes a memory format with a device; the stubs only know them apart.
    model = _torchvision_model(name, device if stub else None).to(  # type: ignore[call-overload]
        device=device, memory_format=layout)
    seen = _RoICounter()
    model.roi_heads.box_head.register_forward_pre_hook(seen)
    images = [torch.randn(3, *IMAGE_HW, device=device)]
    boxes = torch.tensor(GT_BOXES, dtype=torch.float32, device=device)
    targets = [{'boxes': boxes[:, :4], 'labels': boxes[:, 4].long()}]
    return _phases(model, _sgd(model), seen, lambda: model(images), lambda: sum(model(images, targets).values()))


_PROBE = """
import json, sys, torch
from faster_rcnn.bench.nets import _peak_rss_mb, _ours, _torchvision
torch.set_num_threads({threads})
fns, _ = (_ours if {who!r} == 'ours' else _torchvision)({name!r}, torch.device('cpu'))
fns['test']()
test_peak = _peak_rss_mb()
for _ in range(2):
    fns['train']()
print(json.dumps({{'test': test_peak, 'train': _peak_rss_mb()}}))
"""


def _peak_rss_mb() -> float | None:
    """This process's resident-memory high-water mark in MB (Linux's VmHWM); None where /proc has none.

    Not ``getrusage``: its ru_maxrss is carried over from the parent through fork, so a probe started by a
    large benchmark process would report the parent's peak.
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _cpu_peaks(who: str, name: str) -> tuple[float | None, float | None]:
    """(test, train) peak resident MB of a fresh process that builds one detector and runs it on CPU."""
    code = _PROBE.format(threads=torch.get_num_threads(), who=who, name=name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark.py nets: the memory probe of {who} {name} failed:\n{proc.stderr[-3000:]}')
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    return peaks['test'], peaks['train']


def _bench_net(name: str, device: torch.device, args: argparse.Namespace) -> dict:
    makers = {'ours': _ours} if args.no_torchvision else {'ours': _ours, 'torchvision': _torchvision}
    fns: dict[tuple[str, bool, str], Callable[[], None]] = {}
    rois: dict[str, Callable[[], int]] = {}
    for who, make in makers.items():
        for stub in (False, True):
            phases, count = make(name, device, stub)
            fns.update({(who, stub, phase): fn for phase, fn in phases.items()})
            if not stub:
                rois[who] = count
    measured = _interleaved(fns, device, args.repeat, args.warmup)
    entry: dict = {}
    for who in makers:
        (test_ms, test_peak), (train_ms, train_peak) = measured[(who, False, 'test')], measured[(who, False, 'train')]
        entry[who] = {'test_ms': test_ms, 'train_ms': train_ms, 'test_peak_mb': test_peak,
                      'train_peak_mb': train_peak, 'train_rois': rois[who](),
                      'test_outside_backbone_ms': measured[(who, True, 'test')][0],
                      'train_outside_backbone_ms': measured[(who, True, 'train')][0]}
        if device.type == 'cpu':
            entry[who]['test_peak_mb'], entry[who]['train_peak_mb'] = _cpu_peaks(who, name)
    if 'torchvision' in entry:
        o, t = entry['ours'], entry['torchvision']
        entry['train_step_vs_torchvision'] = o['train_ms'] / t['train_ms']
        entry['test_vs_torchvision'] = o['test_ms'] / t['test_ms']
        entry['test_outside_backbone_vs_torchvision'] = o['test_outside_backbone_ms'] / t['test_outside_backbone_ms']
        entry['train_outside_backbone_vs_torchvision'] = (o['train_outside_backbone_ms']
                                                          / t['train_outside_backbone_ms'])
    return entry


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UsageError('--device cuda: no CUDA device is available')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict = {'device': str(device), 'image': list(IMAGE_HW), 'repeat': args.repeat, 'warmup': args.warmup,
                     'torch': torch.__version__, 'threads': torch.get_num_threads(), 'nets': {}}
    if device.type == 'cuda':
        results['gpu'] = torch.cuda.get_device_name(device)
    for name in [n.strip() for n in args.nets.split(',') if n.strip()]:
        entry = _bench_net(name, device, args)
        results['nets'][name] = entry
        print(_row(name, entry), flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return results


def _fmt(v: float | None) -> str:
    return 'n/a' if v is None else f'{v:.1f}'


def _row(name: str, e: dict) -> str:
    lines = [f'{name}:']
    for who in ('ours', 'torchvision'):
        r = e.get(who)
        if r is None:
            continue
        lines.append(f'  {who:12s} test {r["test_ms"]:9.1f} ms (outside backbone {r["test_outside_backbone_ms"]:7.1f}, '
                     f'peak {_fmt(r["test_peak_mb"])} MB)   train step {r["train_ms"]:9.1f} ms (outside backbone '
                     f'{r["train_outside_backbone_ms"]:7.1f}, peak {_fmt(r["train_peak_mb"])} MB, '
                     f'{r["train_rois"]} rois)')
    if 'torchvision' in e:
        lines.append(f'  ours / torchvision: test {e["test_vs_torchvision"]:.2f}, '
                     f'train step {e["train_step_vs_torchvision"]:.2f}; outside the backbone: test '
                     f'{e["test_outside_backbone_vs_torchvision"]:.2f}, '
                     f'train {e["train_outside_backbone_vs_torchvision"]:.2f}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv if argv is not None else [])
    results = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
        print(f'wrote {args.json}')
    return 0
