"""Reference anchors and their shifts over a feature map (tf-faster-rcnn's generate_anchors).

Worked example: ``generate_anchors()[0]`` is ``[-84, -40, 99, 55]``: ratio 0.5 gives
w = round(sqrt(256 / 0.5)) = 23, h = round(23 * 0.5) = 12 (half to even), times scale 8 gives
184 x 96, centred at 7.5.
"""
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["generate_anchors", "shift_anchors", "anchors_for"]


def _boxes_around(widths: np.ndarray, heights: np.ndarray, ctr_x: float, ctr_y: float) -> np.ndarray:
    return np.stack(
        (
            ctr_x - 0.5 * (widths - 1),
            ctr_y - 0.5 * (heights - 1),
            ctr_x + 0.5 * (widths - 1),
            ctr_y + 0.5 * (heights - 1),
        ),
        axis=1,
    )


def generate_anchors(
    base_size: int = 16,
    ratios: Sequence[float] = (0.5, 1, 2),
    scales: Sequence[float] = (8, 16, 32),
) -> np.ndarray:
    """Anchors (A, 4), A = len(ratios) * len(scales), ratio-major, scale-minor, float64.

    Base box (0, 0, base_size-1, base_size-1); ratio = h / w; widths are rounded half to even
    (numpy's rounding, as the reference), then multiplied by each scale and re-centred.
    """
    ratio_arr = np.asarray(ratios, dtype=np.float64)
    scale_arr = np.asarray(scales, dtype=np.float64)
    size = float(base_size)
    ctr = 0.5 * (size - 1)
    ratio_ws = np.round(np.sqrt(size * size / ratio_arr))
    ratio_hs = np.round(ratio_ws * ratio_arr)
    widths = (ratio_ws[:, None] * scale_arr[None, :]).reshape(-1)
    heights = (ratio_hs[:, None] * scale_arr[None, :]).reshape(-1)
    return _boxes_around(widths, heights, ctr, ctr)


def shift_anchors(
    anchors: np.ndarray | Tensor,
    feat_h: int,
    feat_w: int,
    stride: int = 16,
    device: str | torch.device | None = None,
) -> Tensor:
    """All anchors of a feature map: (feat_h * feat_w * A, 4) float32.

    Row ``(y * feat_w + x) * A + a`` is anchor ``a`` shifted by ``(x * stride, y * stride)``.
    Sums are formed in float64 and rounded once to float32, as the reference.
    """
    base = torch.as_tensor(np.asarray(anchors) if not isinstance(anchors, Tensor) else anchors)
    base = base.to(device=device if device is not None else base.device, dtype=torch.float64)
    shift_x = torch.arange(feat_w, dtype=torch.float64, device=base.device) * stride
    shift_y = torch.arange(feat_h, dtype=torch.float64, device=base.device) * stride
    sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)
    return (shifts + base.reshape(1, -1, 4)).reshape(-1, 4).to(torch.float32)


@lru_cache(maxsize=64)
def _cached_anchors(
    feat_h: int, feat_w: int, device: torch.device, scales: tuple[float, ...], ratios: tuple[float, ...], stride: int
) -> Tensor:
    return shift_anchors(generate_anchors(stride, ratios, scales), feat_h, feat_w, stride, device=device)


def anchors_for(
    feat_h: int,
    feat_w: int,
    device: str | torch.device,
    scales: Sequence[float] = (8, 16, 32),
    ratios: Sequence[float] = (0.5, 1, 2),
    stride: int = 16,
) -> Tensor:
    """Shifted anchors (feat_h * feat_w * A, 4) on ``device``, computed once per
    (device, size, scales, ratios, stride) and cached. The tensor is shared: do not modify it in place.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_anchors(
        int(feat_h), int(feat_w), device, tuple(float(s) for s in scales), tuple(float(r) for r in ratios), int(stride)
    )
