"""RPN training targets (tf-faster-rcnn's anchor_target_layer), on the anchors' device.

Labels: 1 foreground, 0 background, -1 ignored; returned as int64 for every anchor, in the
anchors' row order. Anchors not fully inside the image are -1 with zero targets and weights.

Everything per anchor is laid out as rows (k, N) with the anchors contiguous, and what depends on
the anchors alone (float64 coordinate rows and areas, centres and sizes) is computed once per
anchors tensor: the same cached tensor comes back from ``anchors_for`` for every image.
"""
from functools import lru_cache
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..boxes import bbox_overlaps_from_rows, best_query, box_rows
from ._sampling import device_constant, keep_random_subset

__all__ = ["anchor_target_layer"]


class _AnchorGeometry(NamedTuple):
    rows: Tensor  # (4, N) float64 x1, y1, x2, y2: IoU in float64 like the reference Cython kernel
    areas: Tensor  # (N,) float64, +1 convention
    centres: Tensor  # (2, N) float32 (cx, cy), for encoding
    sizes: Tensor  # (2, N) float32 (w, h)


@lru_cache(maxsize=8)
def _cached_geometry(anchors: Tensor, version: int) -> _AnchorGeometry:
    # Keyed by the tensor object and its version counter, so an in-place change is never served stale.
    return _geometry(anchors)


def _geometry(anchors: Tensor) -> _AnchorGeometry:
    rows, areas = box_rows(anchors.to(torch.float64))
    rows32 = anchors.to(torch.float32).t().contiguous()  # contiguous rows, like every per-call operand
    # Same float32 arithmetic, in the same order, as boxes.bbox_transform.
    sizes = rows32[2:4] - rows32[0:2] + 1.0
    return _AnchorGeometry(rows, areas, rows32[0:2] + 0.5 * sizes, sizes)


def _anchor_geometry(anchors: Tensor) -> _AnchorGeometry:
    """The anchors' geometry, cached unless the tensor has no version counter or carries autograd."""
    if anchors.is_inference() or anchors.requires_grad:
        return _geometry(anchors.detach())
    return _cached_geometry(anchors, anchors._version)


def _inside_image(rows: Tensor, im_info: Union[Tensor, Sequence[float]], allowed_border: float) -> Tensor:
    """(N,) bool: anchors (coordinate rows (4, N)) inside ``[-border, W + border) x [-border, H + border)``."""
    lower_ok = rows[0:2] >= -allowed_border
    if isinstance(im_info, Tensor):
        # (W + border, H + border) on the device: no host round trip.
        upper = im_info.reshape(-1)[:2].to(device=rows.device, dtype=torch.float32).flip(0) + allowed_border
        ok = lower_ok & (rows[2:4] < upper[:, None])
        return ok[0] & ok[1]
    width, height = float(im_info[1]) + allowed_border, float(im_info[0]) + allowed_border
    return lower_ok[0] & lower_ok[1] & (rows[2] < width) & (rows[3] < height)


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
    geometry = _anchor_geometry(anchors)
    gt_boxes = gt_boxes.to(device=device, dtype=torch.float32)
    inside = _inside_image(geometry.rows, im_info, float(allowed_border))

    # Encoding targets as rows (4, N): (dx, dy, dw, dh), each against the anchor's best gt.
    targets = torch.zeros((4, n), dtype=torch.float32, device=device)
    if gt_boxes.shape[0] > 0 and n > 0:
        # (G, N) float64 IoU. Outside anchors get IoU 0 (a mask multiply, no gather): they cannot
        # raise a gt's best IoU, and where that best is 0 no anchor counts as its best anyway.
        overlaps = bbox_overlaps_from_rows(geometry.rows, geometry.areas, gt_boxes[:, :4].double()).mul_(inside)
        max_overlaps, argmax = best_query(overlaps)
        gt_max = overlaps.amax(dim=1, keepdim=True)
        # IoU never exceeds 1: a best IoU of 0 becomes 2, which no anchor equals.
        gt_max.masked_fill_(gt_max <= 0, 2.0)
        is_gt_best = (overlaps == gt_max).view(torch.uint8).amax(dim=0).view(torch.bool)
        del overlaps
        # Centres and sizes of the few gt boxes first, then one gather to the anchors.
        gt_sizes = gt_boxes[:, 2:4] - gt_boxes[:, 0:2] + 1.0
        gt_geometry = torch.cat((gt_boxes[:, 0:2] + 0.5 * gt_sizes, gt_sizes), dim=1).t()  # (4, G)
        matched = gt_geometry.index_select(1, argmax)  # (4, N)
        torch.sub(matched[0:2], geometry.centres, out=targets[0:2]).div_(geometry.sizes)
        torch.div(matched[2:4], geometry.sizes, out=targets[2:4]).log_()
        targets.masked_fill_(~inside, 0.0)
    else:
        max_overlaps = torch.zeros(n, dtype=torch.float64, device=device)
        is_gt_best = torch.zeros(n, dtype=torch.bool, device=device)

    negative = inside & (max_overlaps < rpn_negative_overlap)
    positive = inside & (is_gt_best | (max_overlaps >= rpn_positive_overlap))
    if rpn_clobber_positives:
        positive = positive & ~negative
    else:
        negative = negative & ~positive

    positive = keep_random_subset(positive, int(rpn_fg_fraction * rpn_batchsize), generator)
    num_pos = positive.sum()
    negative = keep_random_subset(negative, rpn_batchsize - num_pos, generator)
    sampled = positive | negative

    # 1 positive, 0 negative, -1 ignored.
    labels = sampled.to(torch.int64).add_(positive).sub_(1)

    positive_f = positive.to(torch.float32)
    if rpn_positive_weight < 0:
        # Uniform: 1 / N_sampled on every sampled anchor.
        outside_w = sampled.to(torch.float32).div_(sampled.sum().clamp(min=1).to(torch.float32))
    else:
        if not 0.0 < rpn_positive_weight < 1.0:
            raise ValueError(
                f"anchor_target_layer: rpn_positive_weight (TRAIN.RPN_POSITIVE_WEIGHT) must be in (0, 1) "
                f"or negative for uniform weights, got {rpn_positive_weight}"
            )
        pos_w = rpn_positive_weight / num_pos.clamp(min=1).to(torch.float32)
        neg_w = (1.0 - rpn_positive_weight) / negative.sum().clamp(min=1).to(torch.float32)
        outside_w = positive_f * pos_w + negative.to(torch.float32) * neg_w

    if len(set(rpn_bbox_inside_weights)) == 1:
        # Both weight tensors from one broadcast copy: (2, N) -> (2, N, 4).
        per_anchor = torch.stack((positive_f * float(rpn_bbox_inside_weights[0]), outside_w))
        inside_weights, outside_weights = per_anchor[:, :, None].expand(2, n, 4).contiguous().unbind(0)
    else:
        in_w = device_constant(rpn_bbox_inside_weights, device)
        inside_weights = positive_f[:, None] * in_w[None, :]
        outside_weights = outside_w[:, None].expand(n, 4).contiguous()
    # (4, N) rows -> (N, 4): through a (1, N, 4) permuted view, whose CPU copy runs about 4x faster
    # than the copy of the plain 2-D transpose (same values, one kernel on CUDA either way).
    targets = targets[:, None].permute(1, 2, 0).contiguous().view(n, 4)
    return labels, targets, inside_weights, outside_weights
