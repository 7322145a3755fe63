"""Tensor layouts of the published detectors and how each becomes ours (PyTorch's).

TensorFlow stores convolutions HWIO, depthwise convolutions [H, W, C, 1] and fully connected layers
[in, out]; PyTorch wants OIHW, [C, 1, H, W] and [out, in]. VGG16's fc6 is also flattened differently: TF
flattens the 7x7x512 pool5 of NHWC in (h, w, c) order, PyTorch's NCHW in (c, h, w).
"""
from __future__ import annotations

import numpy as np

# Transform names used by the name tables.
COPY = 'copy'
CONV = 'conv'            # HWIO -> OIHW
DEPTHWISE = 'depthwise'  # [H, W, C, 1] -> [C, 1, H, W]
FC = 'fc'                # [in, out] -> [out, in]
FC_FROM_NHWC = 'fc_from_nhwc'  # [H*W*C, out] flattened (h, w, c) -> [out, C*H*W] flattened (c, h, w)


def transform(array: np.ndarray, kind: str, *, channels: int | None = None) -> np.ndarray:
    """``array`` in the original layout -> a C-contiguous array in PyTorch's layout.

    ``channels`` (C) is needed for FC_FROM_NHWC: the input is a square H = W grid of C channels.

    >>> transform(np.zeros((3, 3, 16, 32), np.float32), CONV).shape
    (32, 16, 3, 3)
    """
    if kind == COPY:
        return np.ascontiguousarray(array)
    if kind == CONV:
        _expect_rank(array, 4, kind)
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if kind == DEPTHWISE:
        _expect_rank(array, 4, kind)
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))
    if kind == FC:
        _expect_rank(array, 2, kind)
        return np.ascontiguousarray(array.T)
    if kind == FC_FROM_NHWC:
        _expect_rank(array, 2, kind)
        if channels is None:
            raise ValueError('fc_from_nhwc needs the channel count')
        inputs, outputs = array.shape
        side = int(round((inputs / channels) ** 0.5))
        if side * side * channels != inputs:
            raise ValueError(f'fc_from_nhwc: {inputs} inputs are not a square grid of {channels} channels')
        hwc = array.reshape(side, side, channels, outputs)
        return np.ascontiguousarray(hwc.transpose(3, 2, 0, 1).reshape(outputs, inputs))
    raise ValueError(f'unknown layout transform {kind!r}')


def transformed_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """The shape ``transform`` gives for an input of ``shape`` (for error messages before reading)."""
    if kind == CONV and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if kind == DEPTHWISE and len(shape) == 4:
        return (shape[2], shape[3], shape[0], shape[1])
    if kind in (FC, FC_FROM_NHWC) and len(shape) == 2:
        return (shape[1], shape[0])
    return tuple(shape)


def _expect_rank(array: np.ndarray, rank: int, kind: str) -> None:
    if array.ndim != rank:
        raise ValueError(f'{kind} transform expects a rank-{rank} tensor, got shape {list(array.shape)}')
