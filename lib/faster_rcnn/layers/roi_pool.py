"""RoI feature extraction: TensorFlow-style crop-and-resize ('crop'), RoIAlign ('align'), RoIPool ('pool')."""
from functools import lru_cache

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

from faster_rcnn.ops.crop_cpu import crop_pool_cpu

__all__ = ["crop_and_resize", "roi_features", "POOLING_MODES"]

POOLING_MODES = ("crop", "align", "pool")


@lru_cache(maxsize=32)
def _grid_constants(h: int, w: int, stride: float, crop_size: int, device: torch.device) -> tuple[Tensor, ...]:
    """Per (map size, crop size): TensorFlow's normalisers ``((W - 1) * stride, (H - 1) * stride)`` (2,), the
    extents ``(W - 1, H - 1)`` as (2,), (2, 1) and (2, 1, 1) float32, the divisor ``crop_size - 1`` (2,), the
    sample steps ``0 .. crop_size - 1`` (S,). Device tensors, made once: a Python scalar divisor on CUDA
    goes through its reciprocal, which rounds differently from TensorFlow's true division."""
    f32 = torch.float32
    extent = torch.tensor([w - 1.0, h - 1.0], dtype=f32, device=device)
    return (torch.tensor([(w - 1) * stride, (h - 1) * stride], dtype=f32, device=device), extent, extent.view(2, 1),
            extent.view(2, 1, 1), torch.full((2,), float(max(crop_size - 1, 1)), dtype=f32, device=device),
            torch.arange(crop_size, dtype=f32, device=device))


def _neighbours(features: Tensor, rois: Tensor, crop_size: int, spatial_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """TensorFlow's crop geometry as table lookups, x and y computed together.

    Returns the channels-last table (N * H_f * W_f, C) of ``features`` (N, C, H_f, W_f), and for each
    of the (R, crop_size, crop_size) samples the table rows of its four bilinear neighbours
    (R, S, S, 4) int64 and their weights (R, S, S, 4) float32, 0 for a sample outside the map.
    Sample coordinates repeat TensorFlow's float32 operations, so they are bit-identical to it:
    ``lo * (size - 1) + i * (hi - lo) * (size - 1) / (crop_size - 1)`` on box edges normalised by
    ``(size - 1) * stride``, the centre when crop_size is 1.
    """
    n, c, h, w = features.shape
    r, s = rois.shape[0], crop_size
    rois = rois.detach()
    if rois.dtype != torch.float32 or rois.device != features.device:
        rois = rois.to(device=features.device, dtype=torch.float32)
    norm, extent, extent_col, extent_cells, divisor, steps = _grid_constants(h, w, 1.0 / spatial_scale, s,
                                                                             features.device)
    corners = rois[:, 1:5].view(r, 2, 2) / norm  # (R, 2 corners, 2 axes (x, y))
    lo, hi = corners.unbind(1)
    if s == 1:
        pos = ((lo + hi) * 0.5 * extent).unsqueeze(2)
    else:
        step = (hi - lo).mul_(extent).div_(divisor)
        pos = (lo * extent).unsqueeze(2) + steps * step.unsqueeze(2)  # (R, 2 axes, S)
    inside = ((pos >= 0) & (pos <= extent_col)).to(torch.float32)
    low = pos.floor()
    frac = pos - low
    # (R, 2 axes, 2 neighbours (low, high), S): cell indices, clamped into the map, and bilinear weights.
    cells = torch.minimum(torch.stack((low, pos.ceil()), 2).clamp_(min=0), extent_cells).to(torch.int64)
    blend = torch.stack((1.0 - frac, frac), 2).mul_(inside.unsqueeze(2))
    base = rois[:, 0].to(torch.int64).clamp_(0, n - 1).mul_(h * w)
    # rows[r, sy, sx, 2a + b] = base + y_a * W + x_b: y from axis 1 along sy, x from axis 0 along sx.
    y_rows = (cells[:, 1] * w + base.view(r, 1, 1)).transpose(1, 2).reshape(r, s, 1, 2, 1)
    x_rows = cells[:, 0].transpose(1, 2).reshape(r, 1, s, 1, 2)
    rows = (y_rows + x_rows).view(r, s, s, 4)
    weights = (blend[:, 1].transpose(1, 2).reshape(r, s, 1, 2, 1) *
               blend[:, 0].transpose(1, 2).reshape(r, 1, s, 1, 2)).view(r, s, s, 4)
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
    if mode in ("align", "pool"):
        # Boxes stay fp32 (a bf16 coordinate near 1000 is off by up to 4 pixels), and so do the features the
        # torchvision kernels read: their CPU roi_pool has no bf16 kernel. A max of bf16 values is exact in fp32,
        # so 'pool' under bf16 gives the bf16 kernel's result; the cast is of one feature map, not of the rois.
        size = (pooling_size, pooling_size)
        x = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features  # fp64 stays
        r = rois.detach().to(x.dtype)
        if mode == "align":
            pooled = torchvision.ops.roi_align(x, r, size, spatial_scale, 0, False)
        else:
            pooled = torchvision.ops.roi_pool(x, r, size, spatial_scale)
        return pooled.to(features.dtype)
    raise ValueError(f"Unknown POOLING_MODE {mode!r}: choose one of {', '.join(repr(m) for m in POOLING_MODES)}")
