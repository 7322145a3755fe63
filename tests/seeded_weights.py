"""Seeded, machine-independent random arrays for the pretrained-model fixtures.

The network-equality fixtures (``tests/data/tf_net_*.npz``, ``tests/data/rtl_net_*.npz``) hold what the
original networks computed from weights drawn by these functions; the tests draw the same weights again,
write them in the original file format, convert them and compare. Only uniform draws are used
(``Generator.random``, which maps raw PCG64 bits to doubles by a fixed rule), so the arrays are the same on
every machine and numpy version. Each array has its own stream, seeded by (seed, crc32 of its name), so
the draws do not depend on the order in which the variables are listed.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

_SQRT3 = float(np.sqrt(3.0))


def stream(name: str, seed: int) -> np.random.Generator:
    """The random stream of the array called ``name``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])))


def uniform(name: str, shape: Sequence[int], seed: int, low: float, high: float) -> np.ndarray:
    """float32 array of ``shape`` uniform in [low, high)."""
    u = stream(name, seed).random(tuple(int(s) for s in shape))
    return (low + (high - low) * u).astype(np.float32)


def centred(name: str, shape: Sequence[int], seed: int, std: float, mean: float = 0.0) -> np.ndarray:
    """float32 array of ``shape``, uniform around ``mean`` with standard deviation ``std``."""
    half = std * _SQRT3
    return uniform(name, shape, seed, mean - half, mean + half)


def seeded_image(height: int, width: int, seed: int) -> np.ndarray:
    """A BGR uint8 image (H, W, 3): smooth gradients plus noise, so that convolutions see structure."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    noise = stream('image', seed).random((height, width, 3))
    base = np.stack([128 + 100 * np.sin(xs / 9.0 + c) * np.cos(ys / 13.0 - c) for c in range(3)], axis=2)
    return np.clip(base + 60.0 * (noise - 0.5), 0, 255).astype(np.uint8)


def seeded_rois(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """float32 (count, 5) rois ``[0, x1, y1, x2, y2]`` inside an image of (height, width), sizes 8 px to the
    whole image, plus the whole image itself as the last row."""
    r = stream('rois', seed).random((count - 1, 4))
    w = 8 + r[:, 0] * (width - 9)
    h = 8 + r[:, 1] * (height - 9)
    x1 = r[:, 2] * (width - 1 - w)
    y1 = r[:, 3] * (height - 1 - h)
    boxes = np.stack([np.zeros_like(x1), x1, y1, x1 + w, y1 + h], axis=1)
    whole = np.array([[0, 0, 0, width - 1, height - 1]], dtype=np.float64)
    return np.concatenate([boxes, whole], axis=0).astype(np.float32)
