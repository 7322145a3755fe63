"""What ``Detector`` accepts as an image, turned into the BGR uint8 (H, W, 3) array the pipeline starts from.

Accepted: a file path (str or ``os.PathLike``); a numpy uint8 array (H, W, 3), (H, W) grayscale or (H, W, 4)
with alpha (dropped); a PIL image (any mode PIL converts to RGB); a uint8 torch tensor (H, W, 3) / (H, W) /
(H, W, 4), or (3, H, W) / (4, H, W) channels-first. Nothing is rescaled: a float array or tensor is refused with
the reason (its range, 0-1 or 0-255, is ambiguous), as is an empty image. Each refusal is one UsageError naming
the argument.

The channel order of each input type follows the library it comes from (``channel_order=None``): a numpy array
is BGR (OpenCV's ``cv2.imread``), a torch tensor RGB (torchvision's ``read_image`` / ``decode_image``), a PIL image
RGB (PIL's modes). ``channel_order='BGR'`` or ``'RGB'`` overrides it for arrays and tensors (an RGB numpy array,
e.g. ``np.asarray(pil_image)``, takes 'RGB'); a PIL image's mode names its channels, so it needs none.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.dataset import read_image
from ..errors import UsageError

CHANNEL_ORDERS = ('BGR', 'RGB')
ARRAY_ORDER = 'BGR'  # OpenCV's
TENSOR_ORDER = 'RGB'  # torchvision's


def _dtype_advice(floating: bool) -> str:
    if floating:
        return ('a float image could be on a 0-1 or a 0-255 scale and nothing is rescaled silently: convert it '
                'to uint8 as fits its range, e.g. (x * 255).round().astype(np.uint8) for 0-1')
    return 'convert it to uint8 (0-255)'


def _from_array(a: np.ndarray, name: str, channel_order: str) -> np.ndarray:
    if a.dtype != np.uint8:
        raise UsageError(f'{name}: expected a uint8 image, got dtype {a.dtype}; '
                         f'{_dtype_advice(np.issubdtype(a.dtype, np.floating))}')
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UsageError(f'{name}: expected an image (H, W, 3), (H, W) grayscale or (H, W, 4) with alpha, got shape '
                         f'{tuple(a.shape)}')
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise UsageError(f'{name}: the image is empty (shape {tuple(a.shape)})')
    if channel_order == 'RGB':
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def check_channel_order(channel_order: str | None) -> None:
    """UsageError unless ``channel_order`` is None (each input type's own), 'BGR' or 'RGB'."""
    if channel_order is not None and channel_order not in CHANNEL_ORDERS:
        raise UsageError(f'channel_order={channel_order!r}: expected one of {list(CHANNEL_ORDERS)}, or None for '
                         'the order of each input type (numpy arrays BGR, tensors and PIL images RGB)')


def to_bgr(image: Any, channel_order: str | None = None, name: str = 'image') -> np.ndarray:
    """``image`` (see the module docstring) as a BGR uint8 array (H, W, 3), possibly the caller's own (not to write);
    ``channel_order`` None: the input type's own order. UsageError / DataError naming ``name`` when it cannot
    be used."""
    check_channel_order(channel_order)
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise UsageError(f'{name}: {path} is not a readable file')
        return read_image(path, stops='nothing was detected')
    if isinstance(image, np.ndarray):
        return _from_array(image, name, channel_order or ARRAY_ORDER)
    module = type(image).__module__
    if module.startswith('PIL.'):
        rgb = np.asarray(image.convert('RGB'))
        return _from_array(rgb, name, 'RGB')
    if module.startswith('torch'):
        import torch
        if not isinstance(image, torch.Tensor):
            raise UsageError(f'{name}: expected an image, got {type(image).__name__}')
        t = image.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3, 4) and t.shape[2] not in (1, 3, 4):
            t = t.permute(1, 2, 0)  # channels-first
        if t.dtype != torch.uint8:
            raise UsageError(f'{name}: expected a uint8 tensor, got {t.dtype}; {_dtype_advice(t.is_floating_point())}')
        return _from_array(t.numpy(), name, channel_order or TENSOR_ORDER)
    raise UsageError(f'{name}: expected a file path, a numpy uint8 array, a PIL image or a uint8 torch tensor, got '
                     f'{type(image).__name__}')
