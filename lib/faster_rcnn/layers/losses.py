"""Smooth L1 box loss of tf-faster-rcnn (``_smooth_l1_loss``)."""
from typing import Sequence

import torch.nn.functional as F
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

    With ``d = inside_w * pred - inside_w * targets``: ``0.5 * sigma^2 * d^2`` where ``|d| < 1 / sigma^2``
    (strictly), else ``|d| - 0.5 / sigma^2``; times ``outside_w``. The weights broadcast against ``pred``
    (e.g. one weight per anchor, (N, M, 1) for (N, M, 4) deltas). RPN: sigma 3; R-CNN: sigma 1, dim (1,) on
    (B, 4K). Returns a scalar. torch's fused smooth L1 with beta = 1 / sigma^2 is the same function in one
    operator (and one for its gradient), instead of the reference's chain of elementwise ones.
    """
    beta = 1.0 / (sigma * sigma)
    loss = F.smooth_l1_loss(inside_w * pred, inside_w * targets, reduction="none", beta=beta)
    return (outside_w * loss).sum(dim=tuple(dim)).mean()
