"""Image blobs: resizing and normalising images for the network, as tf-faster-rcnn's blob.py.

Pixel means and standard deviations are in BGR order on the 0-255 scale (the PIXEL_MEANS / PIXEL_STDS keys);
the channel order of the result is chosen afterwards ('BGR' for Caffe-style weights, 'RGB' for torchvision's).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def image_scale(height: int, width: int, target_size: int, max_size: int) -> float:
    """The factor that makes the shorter side ``target_size`` unless the longer side would pass ``max_size``."""
    short, long = min(height, width), max(height, width)
    scale = float(target_size) / float(short)
    if np.round(scale * long) > max_size:
        scale = float(max_size) / float(long)
    return scale


def normalize_image(im: np.ndarray, pixel_means: np.ndarray, pixel_stds: np.ndarray,
                    channel_order: str) -> np.ndarray:
    """BGR uint8/float (H, W, 3) -> float32 (H, W, 3): (im - means) / stds, then reordered to channel_order."""
    out = im.astype(np.float32, copy=True)
    out -= np.asarray(pixel_means, dtype=np.float32).reshape(1, 1, 3)
    stds = np.asarray(pixel_stds, dtype=np.float32).reshape(1, 1, 3)
    if not np.all(stds == 1.0):
        out /= stds
    if channel_order == 'RGB':
        out = np.ascontiguousarray(out[:, :, ::-1])
    elif channel_order != 'BGR':
        raise ValueError(f'CHANNEL_ORDER must be "BGR" or "RGB", got {channel_order!r}')
    return out


def prep_im_for_blob(im: np.ndarray, target_size: int, max_size: int, pixel_means: np.ndarray,
                     pixel_stds: np.ndarray | None = None, channel_order: str = 'BGR') -> tuple[np.ndarray, float]:
    """Normalise a BGR image (H, W, 3) and resize it bilinearly so that its shorter side is ``target_size``
    and its longer side at most ``max_size``. Returns (float32 (H', W', 3), scale)."""
    if pixel_stds is None:
        pixel_stds = np.ones(3, dtype=np.float32)
    im = normalize_image(im, pixel_means, pixel_stds, channel_order)
    scale = image_scale(im.shape[0], im.shape[1], target_size, max_size)
    im = cv2.resize(im, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return im, scale


def im_list_to_blob(ims: Sequence[np.ndarray]) -> np.ndarray:
    """Images (H_i, W_i, 3) -> float32 (N, 3, max H, max W), zero-padded at the bottom and right."""
    max_h = max(im.shape[0] for im in ims)
    max_w = max(im.shape[1] for im in ims)
    blob = np.zeros((len(ims), 3, max_h, max_w), dtype=np.float32)
    for i, im in enumerate(ims):
        blob[i, :, :im.shape[0], :im.shape[1]] = im.transpose(2, 0, 1)
    return blob


def get_test_blob(im: np.ndarray, scales: Sequence[int], max_size: int, pixel_means: np.ndarray,
                  pixel_stds: np.ndarray | None = None, channel_order: str = 'BGR') -> tuple[np.ndarray, np.ndarray]:
    """One BGR image -> (blob float32 (S, 3, H, W) with one resized copy per scale, im_scales (S,))."""
    ims, im_scales = [], []
    for target in scales:
        resized, scale = prep_im_for_blob(im, target, max_size, pixel_means, pixel_stds, channel_order)
        ims.append(resized)
        im_scales.append(scale)
    return im_list_to_blob(ims), np.array(im_scales, dtype=np.float64)
