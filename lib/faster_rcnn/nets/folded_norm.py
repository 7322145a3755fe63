"""Frozen BatchNorms folded into the convolutions before them.

A frozen BatchNorm is the fixed per-channel affine map ``y = x * s + t``. Applied after a convolution it
costs two passes over the convolution's output, forward and backward. Scaling the convolution's weights
by ``s`` and using ``t`` as its bias gives the same map in the convolution itself: ``conv(x, w * s) + t``.
The weights ``w`` stay the trainable parameter (their gradient flows through the product), the norm keeps
its buffers under its own state_dict keys (ImageNet files and checkpoints are unchanged), and it becomes
a pass-through because the convolution has already applied it.
"""
from __future__ import annotations

from typing import cast

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = ["fold_frozen_norms", "FoldedConv2d", "AppliedNorm"]

_Pair = tuple[int, int]  # a Conv2d's size tuples have two entries (the stubs type them as any length)


class AppliedNorm(FrozenBatchNorm2d):
    """A frozen BatchNorm whose convolution applies it (``FoldedConv2d``): forward passes its input through."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class FoldedConv2d(nn.Conv2d):
    """A Conv2d followed by the frozen norm it holds (not as a submodule: the norm stays where it was)."""

    _norm: tuple[AppliedNorm]

    def forward(self, x: Tensor) -> Tensor:
        norm = self._norm[0]
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        shift = norm.bias - norm.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias * scale
        return self._conv_forward(x, self.weight * scale.reshape(-1, 1, 1, 1), shift)


def _folded(conv: nn.Conv2d, norm: FrozenBatchNorm2d) -> tuple[FoldedConv2d, AppliedNorm]:
    """Replacements for a (conv, frozen norm) pair that share the originals' parameters and buffers."""
    if conv.padding_mode != 'zeros':
        raise ValueError(f'fold_frozen_norms: {conv} uses padding_mode {conv.padding_mode!r}; only zeros is folded')
    padding = conv.padding if isinstance(conv.padding, str) else cast(_Pair, conv.padding)
    new_conv = FoldedConv2d(conv.in_channels, conv.out_channels, cast(_Pair, conv.kernel_size),
                            stride=cast(_Pair, conv.stride), padding=padding, dilation=cast(_Pair, conv.dilation),
                            groups=conv.groups, bias=conv.bias is not None, device='meta')
    new_conv.weight = conv.weight
    if conv.bias is not None:
        new_conv.bias = conv.bias
    new_norm = AppliedNorm(norm.weight.shape[0], eps=norm.eps)
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        new_norm.register_buffer(name, getattr(norm, name))
    object.__setattr__(new_conv, '_norm', (new_norm,))  # a plain reference: no second state_dict entry
    new_conv.train(conv.training)
    new_norm.train(norm.training)
    return new_conv, new_norm


def _applies_children_in_order(module: nn.Module) -> bool:
    """Parents whose forward applies a conv child and the norm child registered right after it in a row."""
    return isinstance(module, (nn.Sequential, Bottleneck, BasicBlock))


def fold_frozen_norms(root: nn.Module, extra_parents: tuple[type, ...] = ()) -> int:
    """Fold every FrozenBatchNorm2d into the Conv2d registered just before it, in place.

    Only parents known to apply those two children back to back are rewritten: ``nn.Sequential``,
    torchvision's ResNet blocks, and the types in ``extra_parents`` (a backbone whose own forward does
    ``bn1(conv1(x))``). Returns the number of pairs folded.
    """
    count = 0
    for parent in list(root.modules()):
        if not (_applies_children_in_order(parent) or isinstance(parent, extra_parents)):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = parent._modules[first], parent._modules[second]
            if (type(conv) is nn.Conv2d and type(norm) is FrozenBatchNorm2d
                    and cast(FrozenBatchNorm2d, norm).weight.shape[0] == conv.out_channels):
                new_conv, new_norm = _folded(conv, norm)
                setattr(parent, first, new_conv)
                setattr(parent, second, new_norm)
                count += 1
    return count
