"""Padded batches that compute, inside each image, exactly what the image alone computes.

A batch of images of different sizes is zero-padded to one size. The zeros are what a convolution's own
padding would read at the first layer, but after it (a bias, a folded norm) the padded region holds values
that leak into the border of each image through every later 3x3 convolution. ``PaddingMask`` zeroes, after
each layer that can make them non-zero (convolutions, norms) or that changes the resolution (pools,
subsampling), every position outside each image's own extent at that resolution. The extent follows each
layer's own arithmetic (kernel, stride, padding, dilation, ceil mode), so it is the size the layer's output
would have for the image alone: at stride 16 ``ceil(h / 16)`` for the ceil-mode networks, ``floor(h / 16)``
for a floor-mode VGG16. Max-pools read the padded zeros where an image alone reads their -inf padding; they
agree because every pool of these backbones follows a ReLU (inputs >= 0).

    mask = PaddingMask(backbone)
    with mask.active([(600, 800), (480, 640)], (600, 800)):
        features = backbone.head(images)        # images (2, 3, 600, 800), the second padded
    mask.extent(features.shape[-2:])            # [(38, 50), (30, 40)]
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from .folded_norm import AppliedNorm
from .resnet import Subsample


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def output_length(length: int, kernel: int, stride: int, padding: int, dilation: int = 1,
                  ceil_mode: bool = False) -> int:
    """PyTorch's output length of a convolution or pool over ``length`` input cells."""
    span = dilation * (kernel - 1) + 1
    num = length + 2 * padding - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1  # the last window must start inside the input or its left padding
    return max(out, 0)


def _geometry(module: nn.Module):
    """(kernel, stride, padding, dilation, ceil_mode) per dimension, or None for a size-preserving layer."""
    if isinstance(module, nn.Conv2d):
        return _pair(module.kernel_size), _pair(module.stride), _pair(module.padding), _pair(module.dilation), False
    if isinstance(module, nn.MaxPool2d):
        return (_pair(module.kernel_size), _pair(module.stride), _pair(module.padding), _pair(module.dilation),
                bool(module.ceil_mode))
    if isinstance(module, Subsample):  # x[:, :, ::s, ::s]
        return (1, 1), (module.stride, module.stride), (0, 0), (1, 1), False
    return None


def _is_masked(module: nn.Module) -> bool:
    if isinstance(module, AppliedNorm):  # its convolution applies it: already masked there
        return False
    return isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, FrozenBatchNorm2d, Subsample))


class PaddingMask:
    """Forward hooks on a backbone's spatial layers, idle unless ``active``."""

    def __init__(self, module: nn.Module) -> None:
        self._on = False
        self._lengths: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        self._masks: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}
        for m in module.modules():
            if _is_masked(m):
                m.register_forward_hook(self._hook)

    @contextlib.contextmanager
    def active(self, sizes: Sequence[tuple[int, int]], padded: tuple[int, int]) -> Iterator[PaddingMask]:
        """Within the block, layers' outputs are masked for images of ``sizes`` (h, w) padded to ``padded``."""
        self._lengths = {(padded[0], padded[1]): ([int(h) for h, _ in sizes], [int(w) for _, w in sizes])}
        self._masks = {}
        self._on = True
        try:
            yield self
        finally:
            self._on = False

    def extent(self, size: Sequence[int]) -> list[tuple[int, int]]:
        """Each image's own (h, w) at a feature size seen in the last ``active`` block."""
        hs, ws = self._lengths[cast(tuple[int, int], tuple(int(s) for s in size))]
        return list(zip(hs, ws))

    def _lengths_after(self, module: nn.Module, size_in: tuple[int, int], size_out: tuple[int, int]
                       ) -> tuple[list[int], list[int]]:
        if size_out in self._lengths:
            return self._lengths[size_out]
        if size_in not in self._lengths:
            raise RuntimeError(f'PaddingMask: {type(module).__name__} reads a {size_in} feature map no earlier '
                               'layer produced; this backbone is not supported for padded batches')
        geometry = _geometry(module)
        hs, ws = self._lengths[size_in]
        if geometry is not None:
            (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil = geometry
            hs = [output_length(h, kh, sh, ph, dh, ceil) for h in hs]
            ws = [output_length(w, kw, sw, pw, dw, ceil) for w in ws]
        self._lengths[size_out] = (hs, ws)
        return hs, ws

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not self._on or not isinstance(output, torch.Tensor) or output.dim() != 4:
            return None
        # 4-d maps: (h, w) pairs
        size_in = cast(tuple[int, int], tuple(int(s) for s in inputs[0].shape[-2:]))
        size_out = cast(tuple[int, int], tuple(int(s) for s in output.shape[-2:]))
        hs, ws = self._lengths_after(module, size_in, size_out)
        key = (size_out[0], size_out[1], output.device, output.dtype)
        mask = self._masks.get(key)
        if mask is None:
            rows = torch.arange(size_out[0], device=output.device)
            cols = torch.arange(size_out[1], device=output.device)
            h = torch.tensor(hs, device=output.device)[:, None, None]
            w = torch.tensor(ws, device=output.device)[:, None, None]
            mask = ((rows[None, :, None] < h) & (cols[None, None, :] < w)).to(output.dtype)[:, None]
            self._masks[key] = mask
        if output.requires_grad or output._base is not None:  # a view (Subsample) shares its input's memory
            return output * mask
        output.mul_(mask)
        return None


def padded_extent_is_uniform(sizes: Sequence[tuple[int, int]], padded: tuple[int, int]) -> bool:
    """True when no image of the batch is padded (nothing to mask)."""
    return all(int(h) == padded[0] and int(w) == padded[1] for h, w in sizes)


__all__ = ['PaddingMask', 'output_length', 'padded_extent_is_uniform']
