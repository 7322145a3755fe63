"""R-CNN training targets (tf-faster-rcnn's proposal_target_layer), on the rois' device.

Always returns exactly ``batch_size`` rois. Sampling, in the reference's cases:
- fg and bg exist: fg without replacement up to ``round(fg_fraction * batch_size)``, bg fills the
  rest (with replacement only when there are too few bg);
- only fg, or only bg: that set fills the batch (with replacement only when short);
- neither: random rois (with replacement when short) as background.
All counts stay on the device: the cases are selected with tensor arithmetic, not Python branches.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..boxes import bbox_overlaps_by_query, bbox_transform, best_query
from ._sampling import device_constant, member_of_rank, random_member_order

__all__ = ["proposal_target_layer"]


def _draw(
    pool: Tensor, pool_size: Tensor, count: Tensor, slots: Tensor, generator: Optional[torch.Generator]
) -> Tensor:
    """Roi index for each slot in ``slots`` (B,), drawn from the rois in ``pool`` (R,) bool holding
    ``pool_size`` of them: slot s takes the s-th pool member in a random order when the pool holds
    ``count`` members or more (without replacement), else an independent uniform draw from the pool."""
    perm, met = random_member_order(pool, generator)
    uniform_draw = torch.rand(slots.shape[0], generator=generator, device=pool.device)
    with_replacement = (uniform_draw * pool_size.to(torch.float32)).floor().to(torch.int64)
    return member_of_rank(perm, met, torch.where(pool_size >= count, slots, with_replacement))


def proposal_target_layer(
    rois: Tensor,
    roi_scores: Tensor,
    gt_boxes: Tensor,
    num_classes: int,
    *,
    batch_size: int = 128,
    fg_fraction: float = 0.25,
    fg_thresh: float = 0.5,
    bg_thresh_hi: float = 0.5,
    bg_thresh_lo: float = 0.1,
    bbox_normalize_targets_precomputed: bool = True,
    bbox_normalize_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
    bbox_normalize_stds: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
    bbox_inside_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    use_gt: bool = False,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Sample rois and build their classification and class-specific regression targets.

    Args:
        rois: (R, 5) ``[0, x1, y1, x2, y2]`` proposals; roi_scores: (R,).
        gt_boxes: (G, 5) ``[x1, y1, x2, y2, cls]`` (G may be 0: every roi is background).
        num_classes: K, background included.

    Returns:
        rois (B, 5), roi_scores (B,), labels (B,) int64 (fg rows first, then bg rows with 0),
        bbox_targets (B, 4K), bbox_inside_weights (B, 4K), bbox_outside_weights (B, 4K), B = batch_size.
        Targets of a fg roi of class c sit in columns 4c..4c+3, normalised by means / stds.
    """
    device = rois.device
    rois = rois.to(torch.float32)
    roi_scores = roi_scores.reshape(-1).to(torch.float32)
    gt_boxes = gt_boxes.to(device=device, dtype=torch.float32)
    if use_gt and gt_boxes.shape[0] > 0:
        gt_rois = torch.cat((gt_boxes.new_zeros((gt_boxes.shape[0], 1)), gt_boxes[:, :4]), dim=1)
        rois = torch.cat((rois, gt_rois), dim=0)
        roi_scores = torch.cat((roi_scores, roi_scores.new_zeros(gt_boxes.shape[0])), dim=0)
    n = rois.shape[0]
    if n == 0:
        raise ValueError(
            "proposal_target_layer: there are no rois to sample from (the proposal layer returned none "
            "and use_gt is off or the image has no gt box); check the image and anchor settings"
        )

    if gt_boxes.shape[0] > 0:
        # (G, R) float64 IoU like the reference kernel, so thresholds agree.
        overlaps = bbox_overlaps_by_query(rois[:, 1:5].double(), gt_boxes[:, :4].double())
        max_overlaps, assignment = best_query(overlaps)
        gt_labels = gt_boxes[:, 4].index_select(0, assignment).to(torch.int64)
        matched_gt = gt_boxes[:, :4].index_select(0, assignment)
    else:
        max_overlaps = torch.zeros(n, dtype=torch.float64, device=device)
        gt_labels = torch.zeros(n, dtype=torch.int64, device=device)
        matched_gt = rois[:, 1:5]

    fg = max_overlaps >= fg_thresh
    bg = (max_overlaps < bg_thresh_hi) & (max_overlaps >= bg_thresh_lo)
    num_fg = fg.sum()
    num_bg = bg.sum()
    have_fg = num_fg > 0
    have_bg = num_bg > 0
    # "neither": every roi becomes a background candidate.
    bg = bg | (~have_fg & ~have_bg)
    num_bg = bg.sum()

    fg_quota = int(round(fg_fraction * batch_size))
    fg_count = torch.where(
        have_bg, torch.clamp(num_fg, max=fg_quota), torch.where(have_fg, torch.full_like(num_fg, batch_size), num_fg)
    )
    bg_count = batch_size - fg_count

    slots = torch.arange(batch_size, device=device)
    fg_pick = _draw(fg, num_fg, fg_count, slots, generator)
    bg_pick = _draw(bg, num_bg, bg_count, (slots - fg_count).clamp(min=0), generator)
    is_fg_slot = slots < fg_count
    keep = torch.where(is_fg_slot, fg_pick, bg_pick)

    labels = torch.where(is_fg_slot, gt_labels.index_select(0, keep), torch.zeros_like(keep))
    out_rois = rois.index_select(0, keep)
    out_scores = roi_scores.index_select(0, keep)

    targets = bbox_transform(out_rois[:, 1:5], matched_gt.index_select(0, keep))
    if bbox_normalize_targets_precomputed:
        means = device_constant(bbox_normalize_means, device)
        stds = device_constant(bbox_normalize_stds, device)
        targets = (targets - means) / stds
    is_fg_row = (labels > 0)[:, None]
    columns = 4 * labels[:, None] + torch.arange(4, device=device)[None, :]
    in_w = device_constant(bbox_inside_weights, device).expand(batch_size, 4)
    bbox_targets = targets.new_zeros((batch_size, 4 * num_classes))
    bbox_targets.scatter_(1, columns, torch.where(is_fg_row, targets, torch.zeros_like(targets)))
    inside = targets.new_zeros((batch_size, 4 * num_classes))
    inside.scatter_(1, columns, torch.where(is_fg_row, in_w, torch.zeros_like(in_w)))
    outside = (inside > 0).to(torch.float32)
    return out_rois, out_scores, labels, bbox_targets, inside, outside
