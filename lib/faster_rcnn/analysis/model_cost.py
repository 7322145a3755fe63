"""What a detector costs: parameters per part, FLOPs per part of a test forward, peak activation memory.

Parts of a ``FasterRCNN``: the backbone head, the RPN (rpn_conv + rpn_cls_score + rpn_bbox_pred), the
proposal layer (decoding, NMS), RoI pooling, the backbone tail, the predictors (cls_score, bbox_pred) and the
post-processing (``nets.postprocess``: decoding, per-class NMS).

Parameters (``parameter_parts``): a backbone's head and tail are methods, not modules, so which parameters
belong to each is found by running them: ``head`` on a small image and ``tail`` on one pooled RoI under a
dispatch mode that records the storage of every tensor an operator receives; a parameter whose storage shows
up belongs to that part (a view, a transposed weight or a norm folded into a convolution,
``nets.folded_norm``, still names its parameter's storage). The RPN and the predictors are modules.
Anything the probes did not touch is reported as 'unused', so the parts always add up to the total.

FLOPs (``inference_cost``) are ``torch.utils.flop_counter.FlopCounterMode``'s: it counts convolutions and matrix
products only (aten.convolution, mm, addmm, bmm, baddbmm, attention), 2 FLOPs per multiply-add, nothing for
elementwise operators, pooling, norms or indexing. MACs (multiply-adds) are FLOPs / 2. torchvision's
``Weights.meta['_ops']`` ("GFLOPS") are MACs in this sense: FlopCounterMode over torchvision's own ResNet-50
gives 8.178 GFLOPs = 4.089 G multiply-adds, its published 4.089. Each part runs under its own nested counter
(entered by wrapping the model's methods for the duration of the count); RoI pooling is what
``FasterRCNN._box_head`` counts besides the tail and the predictors. FlopCounterMode has no formula for
torchvision's roi_align / roi_pool, for the crop kernels (``ops.crop_cpu``, embedding_bag) or for NMS, so
RoI pooling, the proposal layer and the post-processing count (next to) nothing. RoI pooling is also estimated
analytically (``roi_pooling_macs``: 4 multiply-adds per bilinear sample and channel; not in the totals).
NMS is not counted: it is comparisons, and its work depends on the boxes.

Memory (``peak_memory``): on CUDA, ``torch.cuda.max_memory_allocated`` during the call minus what was
allocated before it (the caching allocator's tensor bytes). On CPU, a dispatch mode adds up the bytes of the
storages that operators make while they are alive (a storage counts from the operator that returned it, none
of its inputs having it, until it is freed): the peak of that sum during the call. Either way what existed
before the call (weights, the input batch) is not counted; activations kept for backward, temporaries,
outputs and gradients are. The training step is one forward with losses and its backward (no optimizer
step). Storage bytes, not the allocator's rounding; numpy and Cython buffers outside torch are not seen.
"""
from __future__ import annotations

import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from ..nets.factory import build_backbone
from ..nets.network import FasterRCNN
from ..nets.postprocess import postprocess
from ..nets.registry import networks_where, spec
from ..settings import BackboneSettings

PARTS = ('head', 'rpn', 'proposals', 'roi_pooling', 'tail', 'predictors', 'postprocess')
PARAMETER_PARTS = ('head', 'rpn', 'tail', 'predictors', 'unused')


# -- parameters ----------------------------------------------------------------------------------------------
class _StoragesSeen(TorchDispatchMode):
    """Records the storage of every tensor an operator receives (held, so their identities stay unique)."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, object] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, Tensor):
                s = t.untyped_storage()
                self.storages[id(s)] = s
        return func(*args, **(kwargs or {}))


def _used_parameters(model: nn.Module, run: Callable[[], object]) -> set[str]:
    """Names of ``model``'s parameters whose storage an operator receives while ``run()`` runs."""
    seen = _StoragesSeen()
    with torch.no_grad(), seen:
        run()
    return {name for name, p in model.named_parameters() if id(p.untyped_storage()) in seen.storages}


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for a probe (a trained BatchNorm must not update its statistics), restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


@dataclass(frozen=True)
class ParameterParts:
    """Parameter counts: ``parts`` maps each of PARAMETER_PARTS to (parameters, trainable parameters)."""

    total: int
    trainable: int
    parts: dict[str, tuple[int, int]]


def parameter_parts(model: FasterRCNN) -> ParameterParts:
    """Count ``model``'s (a FasterRCNN) parameters by part, the head and tail found by running them (see the
    module docstring). A parameter both probes touch is counted in the head."""
    device = next(model.parameters()).device
    backbone = model.backbone
    size = model.settings.network.pooling_size
    image = torch.zeros((1, 3, 64, 64), device=device).contiguous(memory_format=model.input_memory_format)
    pooled = torch.zeros((1, backbone.head_channels, size, size), device=device)
    with _eval_mode(model):
        head = _used_parameters(model, lambda: backbone.head(image))
        tail = _used_parameters(model, lambda: backbone.tail(pooled)) - head
    rpn = {f'{m}.{n}' for m in ('rpn_conv', 'rpn_cls_score', 'rpn_bbox_pred')
           for n, _ in getattr(model, m).named_parameters()}
    predictors = {f'{m}.{n}' for m in ('cls_score', 'bbox_pred') for n, _ in getattr(model, m).named_parameters()}
    named = dict(model.named_parameters())
    groups = {'head': head, 'rpn': rpn - head - tail, 'tail': tail, 'predictors': predictors - head - tail - rpn}
    groups['unused'] = set(named) - set().union(*groups.values())

    def count(names: set[str]) -> tuple[int, int]:
        return (sum(named[n].numel() for n in names), sum(named[n].numel() for n in names if named[n].requires_grad))

    return ParameterParts(total=sum(p.numel() for p in named.values()),
                          trainable=sum(p.numel() for p in named.values() if p.requires_grad),
                          parts={k: count(groups[k]) for k in PARAMETER_PARTS})


# -- FLOPs per part ------------------------------------------------------------------------------------------
class _PartCounter:
    """FLOPs per part: one FlopCounterMode for the whole call and a nested one for each part entered."""

    def __init__(self) -> None:
        self.flops: dict[str, int] = defaultdict(int)
        self.roi_macs = 0.0
        self.rois = 0

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        counter = FlopCounterMode(display=False)
        with counter:
            yield
        self.flops[name] += counter.get_total_flops()


@contextmanager
def _wrapped(obj: object, attr: str, wrapper: Callable) -> Iterator[None]:
    """``obj.attr`` replaced by ``wrapper(original)`` as an instance attribute, removed afterwards."""
    original = getattr(obj, attr)
    setattr(obj, attr, wrapper(original))
    try:
        yield
    finally:
        delattr(obj, attr)


def _counting(counter: _PartCounter, name: str) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        def run(*args, **kwargs):
            with counter.part(name):
                return fn(*args, **kwargs)
        return run
    return wrap


def roi_pooling_macs(rois: Tensor, channels: int, mode: str, pooling_size: int, crop_max_pool: bool,
                     spatial_scale: float = 1.0 / 16) -> float:
    """Multiply-adds of RoI pooling ``rois`` (R, 5) from a map of ``channels`` channels, counted as 4 per
    bilinear sample and channel (the four weighted neighbours; the max-pool and bin averages are not counted).

    'crop': (2P)^2 samples per RoI with crop_max_pool, else P^2. 'align' (torchvision roi_align with
    sampling_ratio 0, aligned False): per bin ceil(h / P) x ceil(w / P) samples, h and w the RoI's size on
    the map (at least 1). 'pool': max only, 0.
    """
    r = int(rois.shape[0])
    if r == 0 or mode == 'pool':
        return 0.0
    if mode == 'crop':
        s = 2 * pooling_size if crop_max_pool else pooling_size
        return 4.0 * r * channels * s * s
    box = rois[:, 1:5].detach().double().cpu() * spatial_scale
    w = (box[:, 2] - box[:, 0]).clamp(min=1.0)
    h = (box[:, 3] - box[:, 1]).clamp(min=1.0)
    grid = torch.ceil(h / pooling_size) * torch.ceil(w / pooling_size)
    return 4.0 * channels * pooling_size * pooling_size * float(grid.sum())


@contextmanager
def _counting_parts(model: FasterRCNN, counter: _PartCounter) -> Iterator[None]:
    """Wrap the model's parts so that each runs under its own counter (``PARTS``)."""
    s = model.settings.network

    def box_head(fn: Callable) -> Callable:
        def run(features, rois, *args, **kwargs):
            counter.roi_macs += roi_pooling_macs(rois, int(features.shape[1]), s.pooling_mode, s.pooling_size,
                                                 model.backbone.crop_max_pool)
            counter.rois += int(rois.shape[0])
            with counter.part('box_head'):
                return fn(features, rois, *args, **kwargs)
        return run

    with ExitStack() as stack:
        stack.enter_context(_wrapped(model.backbone, 'head', _counting(counter, 'head')))
        stack.enter_context(_wrapped(model.backbone, 'tail', _counting(counter, 'tail')))
        stack.enter_context(_wrapped(model, '_rpn', _counting(counter, 'rpn')))
        stack.enter_context(_wrapped(model, '_proposals', _counting(counter, 'proposals')))
        stack.enter_context(_wrapped(model, '_box_head', box_head))
        for m in (model.cls_score, model.bbox_pred):
            stack.enter_context(_wrapped(m, 'forward', _counting(counter, 'predictors')))
        yield


# -- memory ----------------------------------------------------------------------------------------------------
class _LiveBytes(TorchDispatchMode):
    """The bytes of the storages operators make, while they are alive, and the peak of that sum. A storage
    is made by an operator that returns it when none of the operator's inputs had it (views and in-place
    results of weights or of the input are not allocations)."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs))
                  if isinstance(t, Tensor) and t.device.type != 'meta'}
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, Tensor) or t.device.type == 'meta':
                continue
            s = t.untyped_storage()
            key, n = id(s), int(s.nbytes())
            if key in self._live:
                grown = n - self._live[key]  # an operator that resized its output
                if grown > 0:
                    self._live[key] = n
                    self.current += grown
            elif key not in inputs:
                self._live[key] = n
                self.current += n
                # A storage is one Python object while it is alive: the finaliser fires when it is freed.
                weakref.finalize(s, self._freed, key)
            self.peak = max(self.peak, self.current)
        return out


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Measures the peak bytes of tensors made inside the block (see the module docstring); the dict it
    yields gets 'bytes' and 'method' when the block ends."""
    result: dict = {}
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.update(bytes=int(torch.cuda.max_memory_allocated(device) - base),
                      method='torch.cuda.max_memory_allocated - memory_allocated before')
        return
    mode = _LiveBytes()
    with mode:
        yield result
    result.update(bytes=int(mode.peak), method='live bytes of the storages operators made (dispatch mode)')


# -- a test forward and a training step ---------------------------------------------------------------------------
@dataclass(frozen=True)
class InferenceCost:
    """Means per image over ``images`` test images: FLOPs per part (PARTS, plus 'other': the rest of the
    forward, and 'total'), RoIs, the RoI-pooling estimate (MACs, not in the totals); peak memory (the largest
    over the images) and seconds per image."""

    images: int
    flops: dict[str, float]
    rois: float
    roi_pooling_macs: float
    peak_bytes: int
    memory_method: str
    seconds: float
    input_sizes: list[tuple[int, int]] = field(default_factory=list)


def inference_cost(model: FasterRCNN, batches: Iterable[dict]) -> InferenceCost:
    """Run the test forward and the post-processing of each batch (``data.test_loader.collate_test``'s dicts,
    one image each) under the part counters; ``model`` is placed on its device."""
    device = next(model.parameters()).device
    totals: dict[str, float] = defaultdict(float)
    rois = roi_macs = 0.0
    peak, method, seconds, n = 0, '', 0.0, 0
    sizes = []
    model.eval()
    for batch in batches:
        images = batch['data'].to(device)
        im_info = batch['im_info'].to(device)
        counter = _PartCounter()
        total = FlopCounterMode(display=False)
        start = time.perf_counter()
        with torch.no_grad(), peak_memory(device) as memory, total, _counting_parts(model, counter):
            outputs = model(images, im_info)
            with counter.part('postprocess'):
                postprocess(outputs, im_info, batch['sizes'], model.settings.detection)
        seconds += time.perf_counter() - start
        f = dict(counter.flops)
        f['roi_pooling'] = f.pop('box_head', 0) - f.get('tail', 0) - f.get('predictors', 0)
        f['total'] = total.get_total_flops()
        f['other'] = f['total'] - sum(f.get(p, 0) for p in PARTS)
        for k, v in f.items():
            totals[k] += v
        rois += counter.rois
        roi_macs += counter.roi_macs
        peak, method = max(peak, memory['bytes']), memory['method']
        sizes.append((int(images.shape[2]), int(images.shape[3])))
        n += 1
    if n == 0:
        raise ValueError('inference_cost needs at least one image')
    return InferenceCost(images=n, flops={k: v / n for k, v in totals.items()}, rois=rois / n,
                    roi_pooling_macs=roi_macs / n, peak_bytes=peak, memory_method=method, seconds=seconds / n,
                    input_sizes=sizes)


@dataclass(frozen=True)
class TrainCost:
    flops: float  # forward with losses + backward, FlopCounterMode's count
    peak_bytes: int
    memory_method: str
    seconds: float
    input_size: tuple[int, int]


def train_step_cost(model: nn.Module, images: Tensor, im_info: Tensor, gt_boxes: Sequence[Tensor]) -> TrainCost:
    """One training forward (losses) and backward on ``images`` (N, 3, H, W) with ``gt_boxes`` [(G_i, 5)];
    gradients are set to None before and after, the model's train/eval modes restored."""
    device = next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    model.train()
    counter = FlopCounterMode(display=False)
    images, im_info = images.to(device), im_info.to(device)
    gt = [g.to(device) for g in gt_boxes]
    start = time.perf_counter()
    try:
        with peak_memory(device) as memory, counter:
            losses = model(images, im_info, gt)
            losses['total_loss'].backward()
            del losses
    finally:
        for p in params:
            p.grad = None
        for m, mode in modes.items():
            m.train(mode)
    return TrainCost(flops=float(counter.get_total_flops()), peak_bytes=memory['bytes'],
                     memory_method=memory['method'], seconds=time.perf_counter() - start,
                     input_size=(int(images.shape[2]), int(images.shape[3])))


# -- the ImageNet check --------------------------------------------------------------------------------------
IMAGENET_SIZE = 224
# torchvision's last feature map at 224 px is 7 x 7: the tail's input is one 7 x 7 RoI, as POOLING_SIZE 7 gives.
IMAGENET_GRID = 7


@dataclass(frozen=True)
class ImagenetCheck:
    """Our backbone counted at 224 x 224 against torchvision's classifier of the same backbone, in G
    multiply-adds (FlopCounterMode / 2). ``ours = head + tail + missing``: ``missing`` is what the cut leaves
    out (``notes`` say what); ``counted`` is FlopCounterMode over torchvision's own model; ``published`` its
    ``Weights.IMAGENET1K_V1.meta['_ops']``."""

    net: str
    head: float
    tail: float
    missing: float
    counted: float
    published: float
    notes: str

    @property
    def ours(self) -> float:
        return self.head + self.tail + self.missing

    def relative_error(self) -> float:
        return abs(self.ours - self.published) / self.published


def _macs(run: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        run()
    return counter.get_total_flops() / 2.0


def _linear_macs(layer: nn.Linear) -> float:
    return float(layer.in_features * layer.out_features)


def _conv_macs(conv: nn.Conv2d, out_hw: int) -> float:
    """Multiply-adds of ``conv`` producing an out_hw x out_hw map."""
    k = conv.kernel_size[0] * conv.kernel_size[1]
    return float(conv.out_channels * (conv.in_channels // conv.groups) * k * out_hw * out_hw)


def imagenet_check(net: str, settings: BackboneSettings | None = None) -> ImagenetCheck:
    """Count ``net``'s head on a 224 x 224 image and its tail on one 7 x 7 RoI of the head's channels, add what
    the detection cut leaves out of torchvision's classifier, and compare with torchvision (module docstring
    of tests/test_analyze_model.py states the comparison). Built on the meta device: no weights, no data."""
    import torchvision.models as tvm
    settings = settings or BackboneSettings()
    entry = spec(net)
    if entry.classifier is None or entry.imagenet is None:
        raise ConfigError(f'--net {net}: torchvision publishes no ImageNet classifier of this backbone; the check '
                          f'exists for {sorted(networks_where(classifier=True))}')
    if entry.family == 'resnet' and settings.resnet_layout != 'torchvision':
        raise ConfigError(f'config key RESNET.LAYOUT = {settings.resnet_layout!r}: only the torchvision layout has '
                          "torchvision's strides; check with RESNET.LAYOUT torchvision")
    if entry.family == 'mobilenet' and (settings.mobilenet_version != 2 or settings.mobilenet_depth_multiplier != 1.0):
        raise ConfigError('config keys MOBILENET.VERSION / DEPTH_MULTIPLIER: torchvision publishes MobileNetV2 at '
                          'width 1.0 only; check with MOBILENET.VERSION 2 and MOBILENET.DEPTH_MULTIPLIER 1.0')
    builder, weights = entry.classifier, entry.imagenet[0]
    with torch.device('meta'):
        ours = build_backbone(net, settings).eval()
        theirs = getattr(tvm, builder)(weights=None).eval()
        image = torch.zeros((1, 3, IMAGENET_SIZE, IMAGENET_SIZE))
        pooled = torch.zeros((1, ours.head_channels, IMAGENET_GRID, IMAGENET_GRID))
    head = _macs(lambda: ours.head(image))
    tail = _macs(lambda: ours.tail(pooled))
    counted = _macs(lambda: theirs(image))
    head_hw = IMAGENET_SIZE // 16
    if entry.family == 'vgg':
        missing = _linear_macs(theirs.classifier[6])
        notes = ('the last max-pool (no multiply-adds) and fc8, the 1000-way classifier; the tail fc6/fc7 on the 7x7 '
                 'RoI is what torchvision runs on its pooled 7x7 map')
    elif entry.family == 'resnet':
        conv1 = cast(nn.Conv2d, cast(Any, ours).layer4[0].conv1)  # torchvision's ResNet layout
        missing = _linear_macs(theirs.fc) + _conv_macs(conv1, head_hw) - _conv_macs(conv1, IMAGENET_GRID)
        notes = ("fc, and layer4's first 1x1 conv: torchvision runs it on the 14x14 map before its stride-2 3x3, "
                 'our stride-1 tail on the 7x7 RoI (the rest of layer4 has the same 7x7 outputs in both)')
    elif entry.family == 'mobilenet':
        expand = cast(nn.Conv2d, cast(Any, ours).features[14].conv[0][0])  # torchvision's MobileNetV2 layout
        missing = _linear_macs(theirs.classifier[1]) + _conv_macs(expand, head_hw) - _conv_macs(expand, IMAGENET_GRID)
        notes = ("the classifier, and features[14]'s expanding 1x1 conv: torchvision runs it on the 14x14 map before "
                 'its stride-2 depthwise conv, our stride-1 tail on the 7x7 RoI')
    else:
        missing = 0.0
        notes = f'no detection cut is described for family {entry.family!r}: head and tail only'
    published = float(getattr(getattr(tvm, weights), entry.imagenet[1]).meta['_ops'])
    return ImagenetCheck(net=net, head=head / 1e9, tail=tail / 1e9, missing=missing / 1e9, counted=counted / 1e9,
                         published=published, notes=notes)


# -- the report ------------------------------------------------------------------------------------------------
def _g(v: float) -> str:
    return f'{v / 1e9:9.3f}'


def format_parameters(p: ParameterParts) -> str:
    lines = [f'parameters: {p.total:,} ({p.trainable:,} trainable)',
             f'  {"part":<12} {"parameters":>14} {"trainable":>14} {"share":>7}']
    for name in PARAMETER_PARTS:
        n, t = p.parts[name]
        lines.append(f'  {name:<12} {n:>14,} {t:>14,} {100.0 * n / max(p.total, 1):6.1f}%')
    lines.append('  (head / tail: the parameters the backbone\'s head() / tail() read when run; rpn: rpn_conv, '
                 'rpn_cls_score, rpn_bbox_pred; predictors: cls_score, bbox_pred)')
    return '\n'.join(lines)


def format_inference_cost(c: InferenceCost) -> str:
    total = c.flops.get('total', 0.0)
    lines = [f'test forward + post-processing, mean over {c.images} image(s) '
             f'(inputs {", ".join(f"{h}x{w}" for h, w in c.input_sizes[:5])}{" ..." if len(c.input_sizes) > 5 else ""}'
             f'), {c.rois:.0f} RoIs per image:',
             f'  {"part":<12} {"GFLOPs":>9} {"GMACs":>9} {"share":>7}']
    for name in PARTS + ('other',):
        v = c.flops.get(name, 0.0)
        lines.append(f'  {name:<12} {_g(v)} {_g(v / 2)} {100.0 * v / max(total, 1):6.1f}%')
    lines.append(f'  {"total":<12} {_g(total)} {_g(total / 2)}')
    lines.append('  FLOPs: FlopCounterMode (convolutions and matrix products, 2 per multiply-add); MACs = FLOPs / 2. '
                 'Not counted: NMS (proposals, post-processing), roi_align / roi_pool / the CPU crop kernel, '
                 'elementwise operators.')
    lines.append(f'  RoI pooling estimate (not in the totals): {c.roi_pooling_macs / 1e9:.4f} GMACs '
                 '(4 multiply-adds per bilinear sample and channel)')
    lines.append(f'  peak activation memory: {c.peak_bytes / 2 ** 20:.1f} MiB ({c.memory_method}); '
                 f'{c.seconds:.2f} s per image')
    return '\n'.join(lines)


def format_train_cost(c: TrainCost) -> str:
    return (f'training step (forward with losses + backward, input {c.input_size[0]}x{c.input_size[1]}): '
            f'{c.flops / 1e9:.3f} GFLOPs ({c.flops / 2e9:.3f} GMACs); peak activation memory '
            f'{c.peak_bytes / 2 ** 20:.1f} MiB ({c.memory_method}); {c.seconds:.2f} s')


def format_imagenet_check(c: ImagenetCheck) -> str:
    return '\n'.join([
        f'backbone at {IMAGENET_SIZE}x{IMAGENET_SIZE} against torchvision ({c.net}), G multiply-adds:',
        f'  head {c.head:.4f} + tail on one {IMAGENET_GRID}x{IMAGENET_GRID} RoI {c.tail:.4f} + left out by the cut '
        f'{c.missing:.4f} = {c.ours:.4f}',
        f'  torchvision counted {c.counted:.4f}, published _ops {c.published:.4f}: ours is '
        f'{100 * (c.ours - c.published) / c.published:+.3f}% off the published number',
        f'  left out: {c.notes}'])


def fake_test_images(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` BGR uint8 noise images (height, width, 3): inputs for a network without a dataset."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(n)]
