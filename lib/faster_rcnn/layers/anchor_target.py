"""RPN training targets (tf-faster-rcnn's anchor_target_layer), on the anchors' device.

Labels: 1 foreground, 0 background, -1 ignored; returned as int64 for every anchor, in the
anchors' row order. Anchors not fully inside the image are -1 with zero targets and weights.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..boxes import bbox_overlaps, bbox_transform
from ._sampling import keep_random_subset

__all__ = ["anchor_target_layer"]


def _inside_image(anchors: Tensor, im_info: Tensor, allowed_border: float) -> Tensor:
    return (
        (anchors[:, 0] >= -allowed_border)
        & (anchors[:, 1] >= -allowed_border)
        & (anchors[:, 2] < im_info[1] + allowed_border)
        & (anchors[:, 3] < im_info[0] + allowed_border)
    )


def anchor_target_layer(
    anchors: Tensor,
    gt_boxes: Tensor,
    im_info: Union[Tensor, Sequence[float]],
    *,
    rpn_positive_overlap: float = 0.7,
    rpn_negative_overlap: float = 0.3,
    rpn_clobber_positives: bool = False,
    rpn_batchsize: int = 256,
    rpn_fg_fraction: float = 0.5,
    rpn_positive_weight: float = -1.0,
    rpn_bbox_inside_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    allowed_border: float = 0,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Assign and sample anchors for the RPN losses.

    Args:
        anchors: (N, 4) float32 anchors in the row order of ``shift_anchors``.
        gt_boxes: (G, 5) ``[x1, y1, x2, y2, cls]`` in scaled-image coordinates (G may be 0).
        im_info: ``(H, W, scale)`` of the scaled image, a tensor or a sequence.

    Returns:
        labels (N,) int64 in {-1, 0, 1}; bbox_targets (N, 4) float32 (encode(anchor, best gt),
        not normalised); bbox_inside_weights (N, 4); bbox_outside_weights (N, 4).

    Rules: negatives (max IoU < rpn_negative_overlap) first; then each gt's best anchors (ties
    included) and IoU >= rpn_positive_overlap are positive. A gt whose best IoU is 0 makes no
    anchor positive (the reference would turn every zero-IoU anchor positive). At most
    ``rpn_fg_fraction * rpn_batchsize`` positives are kept, negatives fill the batch.
    """
    device = anchors.device
    n = anchors.shape[0]
    anchors = anchors.to(torch.float32)
    gt_boxes = gt_boxes.to(device=device, dtype=torch.float32)
    info = torch.as_tensor(im_info, dtype=torch.float32).to(device)
    inside = _inside_image(anchors, info, float(allowed_border))

    if gt_boxes.shape[0] > 0:
        # float64 IoU like the reference Cython kernel, so equality ties and thresholds agree.
        overlaps = bbox_overlaps(anchors.double(), gt_boxes[:, :4].double())
        overlaps.masked_fill_(~inside[:, None], -1.0)
        max_overlaps, argmax = overlaps.max(dim=1)
        gt_max = overlaps.max(dim=0).values
        is_gt_best = ((overlaps == gt_max[None, :]) & (gt_max[None, :] > 0)).any(dim=1)
        matched_gt = gt_boxes[argmax, :4]
    else:
        max_overlaps = torch.zeros(n, dtype=torch.float64, device=device)
        is_gt_best = torch.zeros(n, dtype=torch.bool, device=device)
        matched_gt = anchors

    negative = inside & (max_overlaps < rpn_negative_overlap)
    positive = inside & (is_gt_best | (max_overlaps >= rpn_positive_overlap))
    if rpn_clobber_positives:
        positive = positive & ~negative
    else:
        negative = negative & ~positive

    positive = keep_random_subset(positive, int(rpn_fg_fraction * rpn_batchsize), generator)
    num_bg = rpn_batchsize - positive.sum()
    negative = keep_random_subset(negative, num_bg, generator)

    labels = positive.to(torch.int64) - (~(positive | negative)).to(torch.int64)

    targets = bbox_transform(anchors, matched_gt) if n > 0 else anchors.new_zeros((0, 4))
    targets = targets * inside[:, None].to(targets.dtype)

    in_w = torch.as_tensor(rpn_bbox_inside_weights, dtype=torch.float32, device=device)
    inside_weights = positive[:, None].to(torch.float32) * in_w[None, :]

    num_pos = positive.sum().to(torch.float32)
    num_neg = negative.sum().to(torch.float32)
    if rpn_positive_weight < 0:
        num_sampled = (num_pos + num_neg).clamp(min=1.0)
        pos_w = 1.0 / num_sampled
        neg_w = 1.0 / num_sampled
    else:
        if not 0.0 < rpn_positive_weight < 1.0:
            raise ValueError(
                f"anchor_target_layer: rpn_positive_weight (TRAIN.RPN_POSITIVE_WEIGHT) must be in (0, 1) "
                f"or negative for uniform weights, got {rpn_positive_weight}"
            )
        pos_w = rpn_positive_weight / num_pos.clamp(min=1.0)
        neg_w = (1.0 - rpn_positive_weight) / num_neg.clamp(min=1.0)
    outside_w = positive.to(torch.float32) * pos_w + negative.to(torch.float32) * neg_w
    outside_weights = outside_w[:, None].expand(n, 4).contiguous()
    return labels, targets, inside_weights, outside_weights
