"""Smooth L1 box loss of tf-faster-rcnn (``_smooth_l1_loss``)."""
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["smooth_l1_loss"]


def smooth_l1_loss(
    pred: Tensor,
    targets: Tensor,
    inside_w: Tensor,
    outside_w: Tensor,
    sigma: float = 1.0,
    dim: Sequence[int] = (1,),
) -> Tensor:
    """Weighted smooth L1, summed over ``dim`` and averaged over the remaining (first) axis.

    With ``d = inside_w * (pred - targets)``: ``0.5 * sigma^2 * d^2`` where ``|d| < 1 / sigma^2``
    (strictly), else ``|d| - 0.5 / sigma^2``; times ``outside_w``. RPN: sigma 3, dim (1, 2, 3) on
    (1, H, W, 4A); R-CNN: sigma 1, dim (1,) on (B, 4K). Returns a scalar.
    """
    sigma_2 = sigma * sigma
    diff = inside_w * (pred - targets)
    abs_diff = diff.abs()
    quadratic = abs_diff < 1.0 / sigma_2
    loss = torch.where(quadratic, 0.5 * sigma_2 * diff * diff, abs_diff - 0.5 / sigma_2)
    loss = outside_w * loss
    return loss.sum(dim=tuple(dim)).mean()
