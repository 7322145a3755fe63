"""Test-time proposals without NMS (TEST.MODE 'top'): the top-scoring anchors, decoded and clipped."""
from collections.abc import Sequence

import torch
from torch import Tensor

from .proposal import top_scoring

__all__ = ["proposal_top_layer"]


def proposal_top_layer(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    im_info: Tensor | Sequence[float],
    *,
    rpn_top_n: int,
) -> tuple[Tensor, Tensor]:
    """Keep the ``rpn_top_n`` highest-scoring anchors of one image (equal scores: lower index first); the
    batched form is :func:`faster_rcnn.layers.proposal.top_scoring`.

    Args: as :func:`faster_rcnn.layers.proposal.proposal_layer`.

    Returns:
        rois (R, 5) ``[0, x1, y1, x2, y2]`` and roi_scores (R,), R = min(rpn_top_n, N), by
        decreasing score. (With fewer anchors than rpn_top_n the reference resampled anchors at
        random with replacement; here every anchor is kept once, deterministically.)
    """
    top_n = int(rpn_top_n)
    if top_n <= 0:
        return deltas.new_zeros((0, 5), dtype=torch.float32), deltas.new_zeros((0,), dtype=torch.float32)
    info = torch.as_tensor(im_info, dtype=torch.float32).reshape(1, -1).to(deltas.device)
    boxes, top, _ = top_scoring(scores.reshape(1, -1), deltas.reshape(1, -1, 4), anchors, info, top_n)
    return torch.nn.functional.pad(boxes[0], (1, 0)), top[0]
