"""RoI feature extraction: TensorFlow-style crop-and-resize ('crop'), RoIAlign ('align'), RoIPool ('pool')."""
from typing import Tuple

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

from faster_rcnn.ops.crop_cpu import crop_pool_cpu

__all__ = ["crop_and_resize", "roi_features", "POOLING_MODES"]

POOLING_MODES = ("crop", "align", "pool")


def _sample_positions(lo: Tensor, hi: Tensor, size: int, crop_size: int) -> Tensor:
    """(R, crop_size) sample coordinates in feature cells, with TensorFlow's float32 arithmetic.

    ``lo`` / ``hi`` (R,) are box edges normalised by ``(size - 1) * stride``; TensorFlow samples
    ``lo * (size - 1) + i * (hi - lo) * (size - 1) / (crop_size - 1)``, the centre when crop_size is 1.
    Repeating its operations keeps the coordinates bit-identical.
    """
    extent = float(size - 1)
    if crop_size == 1:
        return (0.5 * (lo + hi) * extent)[:, None]
    # A device tensor divisor: CUDA divides by a Python scalar through its reciprocal, which
    # rounds differently from TensorFlow's true division.
    step = (hi - lo) * extent / torch.full_like(lo, float(crop_size - 1))
    steps = torch.arange(crop_size, dtype=lo.dtype, device=lo.device)
    return (lo * extent)[:, None] + steps[None, :] * step[:, None]


def _corners(pos: Tensor, size: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lower / upper cell indices and their bilinear weights for positions (R, S); 0 weights outside the map."""
    valid = ((pos >= 0) & (pos <= size - 1)).to(pos.dtype)
    low = pos.floor()
    frac = pos - low
    return (
        low.clamp(0, size - 1).to(torch.int64),
        pos.ceil().clamp(0, size - 1).to(torch.int64),
        (1.0 - frac) * valid,
        frac * valid,
    )


def _neighbours(features: Tensor, rois: Tensor, crop_size: int, spatial_scale: float) -> Tuple[Tensor, Tensor, Tensor]:
    """TensorFlow's crop geometry as table lookups.

    Returns the channels-last table (N * H_f * W_f, C) of ``features`` (N, C, H_f, W_f), and for each
    of the (R, crop_size, crop_size) samples the table rows of its four bilinear neighbours
    (R, S, S, 4) int64 and their weights (R, S, S, 4) float32, 0 for a sample outside the map.
    """
    n, c, h, w = features.shape
    rois = rois.detach().to(device=features.device, dtype=torch.float32)
    stride = 1.0 / spatial_scale
    # TensorFlow's normalisation, kept so the sample coordinates are bit-identical to it. ``torch.full``
    # fills on the device; ``torch.tensor(..., device=cuda)`` would be a blocking host-to-device copy.
    norm_x = torch.full((), (w - 1) * stride, dtype=torch.float32, device=rois.device)
    norm_y = torch.full((), (h - 1) * stride, dtype=torch.float32, device=rois.device)
    xs = _sample_positions(rois[:, 1] / norm_x, rois[:, 3] / norm_x, w, crop_size)
    ys = _sample_positions(rois[:, 2] / norm_y, rois[:, 4] / norm_y, h, crop_size)
    x0, x1, wx0, wx1 = (t[:, None, :] for t in _corners(xs, w))
    y0, y1, wy0, wy1 = (t[:, :, None] for t in _corners(ys, h))
    base = (rois[:, 0].to(torch.int64).clamp(0, n - 1) * (h * w))[:, None, None]
    rows = torch.stack((base + y0 * w + x0, base + y0 * w + x1, base + y1 * w + x0, base + y1 * w + x1), dim=-1)
    weights = torch.stack((wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1), dim=-1)
    table = features.permute(0, 2, 3, 1).reshape(n * h * w, c)
    return table, rows, weights


def _crop_pool(features: Tensor, rois: Tensor, crop_size: int, spatial_scale: float, k: int) -> Tensor:
    """(R, C, crop_size / k, crop_size / k): the crops, max-pooled over k x k windows when k > 1."""
    if rois.shape[0] == 0:
        return features.new_zeros((0, features.shape[1], crop_size // k, crop_size // k))
    table, rows, weights = _neighbours(features, rois, crop_size, spatial_scale)
    if features.device.type == "cpu" and features.dtype == torch.float32:
        # One fused Cython pass on CPU (see ops.crop_cpu); same values as the tensor code below.
        return crop_pool_cpu(table, rows, weights, k)
    return _blend_tensor(table, rows, weights, k)


def _blend_tensor(table: Tensor, rows: Tensor, weights: Tensor, k: int) -> Tensor:
    """The tensor-code twin of ``ops.crop_cpu.crop_pool_cpu``, for any device and dtype.

    table (M, C), rows / weights (R, S, S, 4) -> (R, C, S / k, S / k), channels-last memory layout.
    """
    r, s = rows.shape[0], rows.shape[1]
    crops = F.embedding_bag(
        rows.reshape(-1, 4), table, per_sample_weights=weights.reshape(-1, 4).to(table.dtype), mode="sum"
    )
    crops = crops.reshape(r, s, s, table.shape[1]).permute(0, 3, 1, 2)
    return F.max_pool2d(crops, kernel_size=k, stride=k) if k > 1 else crops


def crop_and_resize(features: Tensor, rois: Tensor, crop_size: int, spatial_scale: float = 1.0 / 16) -> Tensor:
    """Bilinear crops with tf.image.crop_and_resize's geometry, from NCHW features.

    Args:
        features: (N, C, H_f, W_f).
        rois: (R, 5) ``[batch_index, x1, y1, x2, y2]`` in image pixels.
        crop_size: samples per side.
        spatial_scale: feature cells per image pixel (1/16).

    Returns:
        (R, C, crop_size, crop_size). The first and last samples lie on ``x1 * spatial_scale`` and
        ``x2 * spatial_scale`` (likewise y); a sample outside ``[0, W_f - 1] x [0, H_f - 1]`` is 0; a
        reversed box gives a flipped crop. Gradients flow to ``features`` only, never to the box coordinates.

    Each output pixel is a weighted sum of 4 feature rows of the channels-last map: a Cython kernel for
    CPU float32, ``embedding_bag`` otherwise (no (R, S, S, 4, C) intermediate on either path).
    """
    return _crop_pool(features, rois, crop_size, spatial_scale, 1)


def roi_features(
    features: Tensor,
    rois: Tensor,
    *,
    mode: str,
    pooling_size: int = 7,
    max_pool: bool = True,
    spatial_scale: float = 1.0 / 16,
) -> Tensor:
    """RoI features (R, C, pooling_size, pooling_size) by POOLING_MODE.

    'crop': crop 2 * pooling_size then 2x2 max-pool when ``max_pool`` (VGG16, MobileNet), else crop
    pooling_size directly (ResNet); 'align': torchvision roi_align (sampling_ratio 0, aligned=False);
    'pool': torchvision roi_pool.
    """
    if mode == "crop":
        if max_pool:
            return _crop_pool(features, rois, pooling_size * 2, spatial_scale, 2)
        return _crop_pool(features, rois, pooling_size, spatial_scale, 1)
    if mode == "align":
        return torchvision.ops.roi_align(
            features, rois.detach().to(features.dtype), (pooling_size, pooling_size), spatial_scale, 0, False
        )
    if mode == "pool":
        return torchvision.ops.roi_pool(features, rois.detach().to(features.dtype), (pooling_size, pooling_size), spatial_scale)
    raise ValueError(f"Unknown POOLING_MODE {mode!r}: choose one of {', '.join(repr(m) for m in POOLING_MODES)}")
