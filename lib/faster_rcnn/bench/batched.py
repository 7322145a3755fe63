"""The batched layers for N = 1, 2, 4 images: median time and operators dispatched per call (torch.profiler),
for each layer and for a whole training step outside the backbone (part of ``benchmark.py layers``).

Inputs per image as in the per-layer table: 600 x 800 images, a 38 x 50 x 9 anchor map (17100 anchors), 6 gt
boxes (the second image of a batch has none: a background-only image), TRAIN proposal settings (12000 -> NMS
0.7 -> 2000), 128 rois sampled per image. "Operators" are the aten operators called from Python (views
included: each is a dispatch, though not a kernel launch); "kernels" leaves the views out. The training step
is forward + backward of everything but the backbone, on a stub backbone (a fixed feature map as the head, a
mean as the tail), from the RPN convolution to the four losses.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from ..layers.anchor_target import anchor_targets
from ..layers.anchors import anchors_for
from ..layers.gt_batch import pad_gt_boxes
from ..layers.proposal import proposals
from ..layers.proposal_target import proposal_targets

GT_BOXES = [[48, 64, 300, 420, 15], [320, 100, 560, 380, 7], [500, 260, 790, 590, 12], [20, 380, 200, 590, 9],
            [600, 20, 700, 140, 3], [250, 420, 330, 520, 1]]
VIEWS = {'aten::slice', 'aten::select', 'aten::unsqueeze', 'aten::view', 'aten::reshape', 'aten::expand',
         'aten::transpose', 'aten::t', 'aten::permute', 'aten::detach', 'aten::alias', 'aten::resolve_conj',
         'aten::resolve_neg', 'aten::unbind', 'aten::lift_fresh', 'aten::narrow', 'aten::view_as', 'aten::squeeze',
         'aten::contiguous', 'aten::to', 'aten::empty', 'aten::empty_like'}


def operator_counts(fn: Callable[[], object]) -> tuple[int, int]:
    """(operators, kernels): top-level aten calls of one ``fn()`` (after a warm-up call), without views."""
    fn()
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])]
    with profile(activities=activities) as prof:
        fn()
    names = [e.name for e in prof.events() if e.name.startswith('aten::')
             and (e.cpu_parent is None or not e.cpu_parent.name.startswith('aten::'))]
    return len(names), sum(1 for n in names if n not in VIEWS)


def _timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def median_ms(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_timed_ms(fn, device) for _ in range(repeat))


def interleaved_median_ms(fns: dict, device: torch.device, repeat: int, warmup: int) -> dict:
    """Median ms of each ``fns`` entry, timed round-robin (one call of each per round), so that a slow
    spell of a shared machine falls on every entry alike rather than on whichever ran then."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            times[key].append(_timed_ms(fn, device))
    return {key: statistics.median(t) for key, t in times.items()}


def _stub_detector(device: torch.device):
    from ..nets.backbone import Backbone
    from ..nets.network import FasterRCNN
    from ..settings import ModelSettings

    class Stub(Backbone):
        head_channels = tail_channels = 512
        crop_max_pool = True

        def __init__(self) -> None:
            super().__init__()
            self.features: torch.Tensor | None = None

        def head(self, images: torch.Tensor) -> torch.Tensor:
            assert self.features is not None  # each timed step sets them first
            return self.features

        def tail(self, pooled: torch.Tensor) -> torch.Tensor:
            return pooled.mean((2, 3))

    settings = ModelSettings.defaults('vgg16')
    torch.manual_seed(0)
    backbone = Stub()
    return FasterRCNN(backbone, 21, settings).to(device).train(), backbone


def _cases(n: int, anchors: torch.Tensor, model, backbone, data: tuple, device: torch.device) -> dict:
    """The timed calls for a batch of the first ``n`` images of ``data`` (scores, deltas, features)."""
    all_scores, all_deltas, all_features = data
    info = torch.tensor([[600.0, 800.0, 1.6]] * n, device=device)
    gts = [torch.tensor(GT_BOXES, dtype=torch.float32) for _ in range(n)]
    if n > 1:
        gts[1] = torch.zeros((0, 5))
    gt_boxes, gt_valid = pad_gt_boxes(gts, device)
    seeds = torch.arange(n, device=device)
    scores, deltas = all_scores[:n].contiguous(), all_deltas[:n].contiguous()
    kw: dict[str, Any] = dict(pre_nms_top_n=12000, post_nms_top_n=2000, nms_thresh=0.7)
    props = proposals(scores, deltas, anchors, info, **kw)
    features = all_features[:n].clone().requires_grad_()
    images = torch.zeros(n, 3, 600, 800, device=device)

    def step() -> None:
        backbone.features = features
        model(images, info, gt_boxes, gt_valid, seeds=seeds)['total_loss'].backward()

    cases: dict[str, Callable[[], object]] = {
        'anchor_target': lambda: anchor_targets(anchors, gt_boxes, gt_valid, info, seeds, extent=(600, 800)),
        'proposal': lambda: proposals(scores, deltas, anchors, info, **kw),
        'proposal_target': lambda: proposal_targets(props.boxes, props.scores, props.valid, gt_boxes, gt_valid,
                                                    seeds, 21, batch_size=128, bg_thresh_lo=0.0),
        'train_step_outside_backbone': step,
    }
    three = [cases['anchor_target'], cases['proposal'], cases['proposal_target']]
    cases['three_layers'] = lambda: [fn() for fn in three]
    return cases


def run_batched(device: torch.device, repeat: int, warmup: int, sizes=(1, 2, 4)) -> dict:
    gen = torch.Generator().manual_seed(0)
    anchors = anchors_for(38, 50, device)
    m = anchors.shape[0]
    model, backbone = _stub_detector(device)
    # Image i of every batch is the same image (NMS time depends on the boxes): N = 4 holds N = 1's image.
    most = max(sizes)
    data = (torch.softmax(torch.randn(most, m, 2, generator=gen) * 2, dim=2)[..., 1].to(device),
            (torch.randn(most, m, 4, generator=gen) * 0.1).to(device),
            torch.randn(most, 512, 38, 50, generator=gen).to(device))
    out: dict = {}
    timed: dict = {}
    for n in sizes:
        entry = {}
        for name, fn in _cases(n, anchors, model, backbone, data, device).items():
            if name != 'three_layers':
                ops, kernels = operator_counts(fn)
                entry[name] = {'operators': ops, 'kernels': kernels}
            timed[(n, name)] = fn
        out[str(n)] = entry
    # Round-robin over every (N, call): the ratios between batch sizes are what the table is for.
    for (n, name), ms in interleaved_median_ms(timed, device, repeat, warmup).items():
        if name == 'three_layers':
            out[str(n)]['three_layers_ms'] = ms
        else:
            out[str(n)][name]['ms'] = ms
    first, last = out[str(sizes[0])], out[str(sizes[-1])]
    out['three_layers_time_ratio'] = last['three_layers_ms'] / first['three_layers_ms']
    out['step_operator_ratio'] = (last['train_step_outside_backbone']['operators'] /
                                  first['train_step_outside_backbone']['operators'])
    return out


def table(result: dict, sizes=(1, 2, 4)) -> str:
    lines = ['', 'Batched layers, per call (median ms / operators / kernels):', '',
             '| layer | ' + ' | '.join(f'N = {n}' for n in sizes) + ' |', '| --- |' + ' ---: |' * len(sizes)]
    for name in ('anchor_target', 'proposal', 'proposal_target', 'train_step_outside_backbone'):
        cells = [f"{result[str(n)][name]['ms']:.2f} / {result[str(n)][name]['operators']} / "
                 f"{result[str(n)][name]['kernels']}" for n in sizes]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines.append('| three layers in a row, ms | '
                 + ' | '.join(f"{result[str(n)]['three_layers_ms']:.2f}" for n in sizes) + ' |')
    lines.append('')
    lines.append(f"three layers N = {sizes[-1]} / N = {sizes[0]}: {result['three_layers_time_ratio']:.2f}x time; "
                 f"training step operators {result['step_operator_ratio']:.2f}x")
    return '\n'.join(lines)
