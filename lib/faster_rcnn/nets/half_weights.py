"""Half-precision inference without re-casting the weights at every call: an inference copy of a network whose
convolution and linear weights are held in bf16 (or fp16) once.

Under autocast every convolution and linear layer casts its fp32 weight to the autocast dtype at each call, and a
``FoldedConv2d`` first multiplies its weight by the folded norm's scale: a pass over every weight of the network
per forward (about 60 M parameters for ``res101_butd``: more time than the RoI pooling and post-processing
together on a 2-core CPU). ``with_half_weights`` makes those casts once. The copy still runs under autocast
(``FasterRCNN.detect(amp=...)``): autocast finds the weights already in its dtype and casts nothing, the
activations are cast where they were, and what ``docs/design.md`` §4 keeps in fp32 (RPN scores and deltas,
proposals, boxes, RoI coordinates, the class softmax, decoding and NMS) stays fp32, because the network casts
those explicitly. The held weights are the values autocast would make (the same fp32 product, rounded the same
way), so the copy computes what autocast computes on the original.

The copy is a snapshot: later changes to the original's weights (training) do not reach it; make a new one.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .folded_norm import FoldedConv2d

__all__ = ['held_weight_dtypes', 'with_half_weights']


def _folded_weights(conv: FoldedConv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight (O, I, kh, kw) and bias (O,) a ``FoldedConv2d`` convolves with, in fp32 (its forward's own ops)."""
    norm = conv._norm[0]
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    shift = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    return conv.weight * scale.reshape(-1, 1, 1, 1), shift


def _plain_conv(conv: FoldedConv2d, dtype: torch.dtype) -> nn.Conv2d:
    """A plain Conv2d with the folded weight and bias of ``conv`` held in ``dtype`` (memory layout kept)."""
    weight, bias = _folded_weights(conv)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]  # 2-d tuples
                    stride=conv.stride, padding=conv.padding, dilation=conv.dilation,  # type: ignore[arg-type]
                    groups=conv.groups, bias=True, device='meta')
    out.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    out.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return out.eval()


def _hold(layer: nn.Conv2d | nn.Linear, dtype: torch.dtype) -> None:
    """Replace the layer's weight and bias by ``dtype`` copies (``Tensor.to`` keeps channels-last weights so)."""
    layer.weight = nn.Parameter(layer.weight.detach().to(dtype), requires_grad=False)
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.detach().to(dtype), requires_grad=False)


@torch.no_grad()
def with_half_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """An eval-mode copy of ``model`` whose Conv2d and Linear weights and biases are ``dtype`` (folded norms
    folded for good); ``model`` itself is left as it is. Run the copy under autocast to the same ``dtype``."""
    half = copy.deepcopy(model).eval()
    for parent in list(half.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FoldedConv2d):
                setattr(parent, name, _plain_conv(child, dtype))
            elif isinstance(child, (nn.Conv2d, nn.Linear)):
                _hold(child, dtype)
    return half


def held_weight_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The dtypes of the weights of ``model``'s Conv2d and Linear layers (a copy made above: {its dtype})."""
    return {m.weight.dtype for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
