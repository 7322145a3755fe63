"""Test-time proposals without NMS (TEST.MODE 'top'): the top-scoring anchors, decoded and clipped."""
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

from ..boxes import bbox_transform_inv, clip_boxes
from .proposal import im_shape_of

__all__ = ["proposal_top_layer"]


def proposal_top_layer(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    im_info: Union[Tensor, Sequence[float]],
    *,
    rpn_top_n: int,
) -> Tuple[Tensor, Tensor]:
    """Keep the ``rpn_top_n`` highest-scoring anchors (equal scores: lower index first).

    Args: as :func:`faster_rcnn.layers.proposal.proposal_layer`.

    Returns:
        rois (R, 5) ``[0, x1, y1, x2, y2]`` and roi_scores (R,), R = min(rpn_top_n, N), by
        decreasing score. (With fewer anchors than rpn_top_n the reference resampled anchors at
        random with replacement; here every anchor is kept once, deterministically.)
    """
    scores = scores.reshape(-1).to(torch.float32)
    deltas = deltas.reshape(-1, 4).to(torch.float32)
    order = torch.sort(scores, descending=True, stable=True)[1][: max(int(rpn_top_n), 0)]
    proposals = bbox_transform_inv(anchors.to(torch.float32)[order], deltas[order])
    proposals = clip_boxes(proposals, im_shape_of(im_info, deltas.device))
    rois = torch.cat((proposals.new_zeros((proposals.shape[0], 1)), proposals), dim=1)
    return rois, scores[order]
