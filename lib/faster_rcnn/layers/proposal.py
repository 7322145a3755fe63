"""RPN proposals (tf-faster-rcnn's proposal_layer): decode, clip, pre-NMS top-N, NMS, post-NMS top-N."""
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

from ..boxes import bbox_transform_inv, clip_boxes
from ..ops.nms import nms_sorted

__all__ = ["proposal_layer", "im_shape_of"]


def im_shape_of(im_info: Union[Tensor, Sequence[float]], device: torch.device) -> Union[Tensor, Tuple[float, float]]:
    """``(H, W)`` of ``im_info``: a tensor stays on the device (no host round trip)."""
    if isinstance(im_info, Tensor):
        return im_info.reshape(-1)[:2].to(device)
    return (float(im_info[0]), float(im_info[1]))


def proposal_layer(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    im_info: Union[Tensor, Sequence[float]],
    *,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float,
) -> Tuple[Tensor, Tensor]:
    """Region proposals of one image.

    Args:
        scores: (N,) foreground probabilities, rows in the anchors' order.
        deltas: (N, 4) RPN box deltas.
        anchors: (N, 4).
        im_info: ``(H, W, scale)`` of the scaled image (tensor or sequence).
        pre_nms_top_n: boxes kept by score before NMS (<= 0: all).
        post_nms_top_n: boxes kept after NMS (<= 0: all).

    Returns:
        rois (R, 5) float32 ``[0, x1, y1, x2, y2]`` by decreasing score and roi_scores (R,),
        R <= post_nms_top_n. No minimum-size filter (as the published models).
    """
    scores = scores.reshape(-1).to(torch.float32)
    deltas = deltas.reshape(-1, 4).to(torch.float32)
    # Stable sort: equal scores keep the lower anchor index first, as the NMS rule wants.
    order = torch.sort(scores, descending=True, stable=True)[1]
    if pre_nms_top_n > 0:
        order = order[:pre_nms_top_n]
    # Decoding and clipping are row-wise: only the rows that reach NMS are decoded.
    proposals = clip_boxes(
        bbox_transform_inv(anchors.to(torch.float32).index_select(0, order), deltas.index_select(0, order)),
        im_shape_of(im_info, deltas.device),
    )
    scores = scores.index_select(0, order)
    keep = nms_sorted(proposals, nms_thresh, max_keep=post_nms_top_n if post_nms_top_n > 0 else None)
    # [0, x1, y1, x2, y2]: a zero batch-index column in front.
    rois = torch.nn.functional.pad(proposals.index_select(0, keep), (1, 0))
    return rois, scores.index_select(0, keep)
