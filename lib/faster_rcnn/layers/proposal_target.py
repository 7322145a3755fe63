"""R-CNN training targets (tf-faster-rcnn's proposal_target_layer) for a whole batch in one call.

Every image gives exactly ``batch_size`` rois. Sampling, per image, in the reference's cases:
- fg and bg exist: fg without replacement up to ``round(fg_fraction * batch_size)``, bg fills the
  rest (with replacement only when there are too few bg);
- only fg, or only bg: that set fills the batch (with replacement only when short);
- neither: random rois (with replacement when short) as background.
All counts stay on the device: the cases are selected with tensor arithmetic, not Python branches, and
the N images are one (N, R) problem: their proposals come padded with a validity mask (``Proposals``),
their gt boxes padded with another. One sort per batch orders each image's candidates fg first, then bg,
each group in the random order of its keys (``random_keys`` of the image seed and the candidate's place
in the image's own list), so an image gets the same sample alone as in any batch.
``proposal_target_layer`` is the one-image form (the reference's signature).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from ..boxes import iou_of_signed, signed_corners
from ._sampling import device_constant
from .random_keys import KEY_LIMIT, random_keys, seed_terms, seeds_from_generator, uniform_from_keys

__all__ = ["proposal_target_layer", "proposal_targets", "ProposalTargets"]

_SALT = 0x0F6A
_DRAW_POSITIONS = 1 << 30  # positions of the with-replacement draws, apart from any candidate's
_GT_POSITIONS = 1 << 29  # positions of the gt boxes (use_gt) when proposals are keyed by anchor index


class ProposalTargets(NamedTuple):
    rois: Tensor  # (N * B, 5) [image index, x1, y1, x2, y2], image by image, fg rows first in each
    roi_scores: Tensor  # (N * B,)
    labels: Tensor  # (N * B,) int64, 0 on bg rows
    bbox_targets: Tensor  # (N * B, 4K)
    bbox_inside_weights: Tensor  # (N * B, 4K)
    bbox_outside_weights: Tensor  # (N * B, 4K)
    attributes: Tensor | None = None  # (N * B, L) int64 with gt_attributes: the labels of ``attribute_loss``


@lru_cache(maxsize=16)
def _slots(count: int, device: torch.device) -> Tensor:
    return torch.arange(count, device=device)


@lru_cache(maxsize=16)
def _draw_positions(n: int, count: int, device: torch.device) -> Tensor:
    return (torch.arange(count, device=device) + _DRAW_POSITIONS).expand(n, count)


@lru_cache(maxsize=16)
def _image_column(n: int, per_image: int, device: torch.device) -> Tensor:
    """(n * per_image, 1) float32 image indices, image by image."""
    return torch.arange(n, dtype=torch.float32, device=device).repeat_interleave(per_image)[:, None]


def _gt_geometry(boxes: Tensor) -> Tensor:
    """Boxes (..., 4) -> (cx, cy, w, h) (..., 4), float32 as bbox_transform computes them."""
    lo = boxes[..., 0:2]
    sizes = boxes[..., 2:4] - lo + 1.0
    return torch.cat((lo + 0.5 * sizes, sizes), -1)


def _offsets_and_scales(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes (R, 4) -> ((cx, cy, 0, 0), (w, h, w, h)), each (R, 4): ``(geometry - offsets) / scales`` is
    bbox_transform's (dx, dy) and its (gw / ew, gh / eh) before the log."""
    lo = boxes[:, 0:2]
    sizes = boxes[:, 2:4] - lo + 1.0
    centres = lo + 0.5 * sizes
    return torch.cat((centres, torch.zeros_like(centres)), 1), torch.cat((sizes, sizes), 1)


def proposal_targets(
    boxes: Tensor,
    scores: Tensor,
    valid: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    seeds: Tensor,
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
    terms: Tensor | None = None,
    positions: Tensor | None = None,
    gt_attributes: Tensor | None = None,
) -> ProposalTargets:
    """Sample rois and build their classification and class-specific regression targets, for N images.

    Args:
        boxes: (N, P, 4) float32 proposals ``x1, y1, x2, y2``; scores: (N, P); valid: (N, P) bool (padding
            False), each image's valid entries first (as ``Proposals`` has them).
        gt_boxes: (N, G, 5) float32 ``[x1, y1, x2, y2, cls]`` padded; gt_valid: (N, G) bool (an image may have
            none: every roi is background).
        seeds: (N,) int64 sampling seeds (or ``terms``, their ``seed_terms``). num_classes: K, background
            included.
        positions: (N, P) int64 in [0, 2**29), what keys each proposal's random draw (e.g. its anchor index);
            by default its place in the image's list (the one-image layer's rule).
        gt_attributes: (N, G, L) int64 attributes of the gt boxes (1..A, 0-padded; BUTD: L = 16), optional.
            Then ``attributes`` (N * B, L) are the labels of the attribute loss: a fg roi takes its argmax gt's
            row with the 0 padding of columns 1.. set to -1 (so an object without attributes trains slot 0,
            "no attribute"); a bg roi's row is all -1 (no attribute loss). The sample does not depend on them.

    Targets of a fg roi of class c sit in columns 4c..4c+3, normalised by means / stds.
    """
    device = boxes.device
    n, b = boxes.shape[0], int(batch_size)
    boxes, scores, valid, positions = _candidates(boxes, scores, valid, gt_boxes, gt_valid, positions, use_gt)
    gt_labels, matched, fg, bg, assignment = _assign(boxes, valid, gt_boxes, gt_valid, fg_thresh, bg_thresh_hi,
                                                     bg_thresh_lo)
    keep, is_fg_slot = _sample(fg, bg, valid, positions, seeds, terms, b, fg_fraction)
    labels = torch.where(is_fg_slot, gt_labels.gather(1, keep), 0.0).to(torch.int64).reshape(-1)
    keep4 = keep.unsqueeze(2).expand(n, b, 4)
    out_boxes = boxes.gather(1, keep4).reshape(-1, 4)
    matched_rows = None if matched is None else matched.gather(1, keep4).reshape(-1, 4)
    bbox_targets, inside = _class_targets(out_boxes, matched_rows, labels, num_classes,
                                          bbox_normalize_targets_precomputed, bbox_normalize_means,
                                          bbox_normalize_stds, bbox_inside_weights)
    rois = torch.cat((_image_column(n, b, device), out_boxes), dim=1)
    attributes = None
    if gt_attributes is not None:
        attributes = _roi_attributes(gt_attributes, assignment, keep, (labels > 0).unsqueeze(1))
    return ProposalTargets(rois, scores.gather(1, keep).reshape(-1), labels, bbox_targets, inside,
                           (inside > 0).to(torch.float32), attributes)


def _candidates(boxes: Tensor, scores: Tensor, valid: Tensor, gt_boxes: Tensor, gt_valid: Tensor,
                positions: Tensor | None, use_gt: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Step 0: the R candidate rois of each image, the proposals (with the gt boxes appended when ``use_gt``;
    by default none, §2.5): boxes (N, R, 4), scores (N, R), valid (N, R), positions (N, R) keying each draw."""
    n, g = boxes.shape[0], gt_boxes.shape[1]
    gt_first: Tensor | int
    if positions is None:
        positions = valid.cumsum(1).sub_(1)  # each valid proposal's place in its image's own list
        gt_first = valid.sum(1, keepdim=True)  # gt boxes come after the proposals in that list
    else:
        gt_first = _GT_POSITIONS  # apart from any anchor index
    if use_gt and g > 0:
        boxes = torch.cat((boxes, gt_boxes[..., :4]), dim=1)
        scores = torch.cat((scores, scores.new_zeros((n, g))), dim=1)
        positions = torch.cat((positions, gt_first + _slots(g, boxes.device).expand(n, g)), dim=1)
        valid = torch.cat((valid, gt_valid), dim=1)
    if boxes.shape[1] == 0:
        raise ValueError(
            "proposal_target_layer: there are no rois to sample from (the proposal layer returned none "
            "and use_gt is off or the image has no gt box); check the image and anchor settings"
        )
    return boxes, scores, valid, positions


def _assign(boxes: Tensor, valid: Tensor, gt_boxes: Tensor, gt_valid: Tensor, fg_thresh: float,
            bg_thresh_hi: float, bg_thresh_lo: float
            ) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor | None]:
    """Step 1: each roi's max-IoU gt. Returns its class (N, R) float, its (cx, cy, w, h) (N, R, 4) (None without
    gt), foreground (IoU >= fg_thresh) and background ([bg_thresh_lo, bg_thresh_hi)) candidates (N, R) bool, and
    the gt index itself (N, R) int64 (None without gt)."""
    n, g, r = boxes.shape[0], gt_boxes.shape[1], boxes.shape[1]
    if g == 0:
        # Every IoU is 0: background, or "neither", which makes every roi background too.
        return boxes.new_zeros((n, r)), None, torch.zeros_like(valid), valid, None
    # (N, G, R) float64 IoU like the reference kernel, so thresholds agree; padding gts count 0.
    roi_signed, roi_areas = signed_corners(boxes.double())
    gt_signed, gt_areas = signed_corners(gt_boxes[..., :4].double())
    overlaps = iou_of_signed(roi_signed.transpose(1, 2).unsqueeze(1), roi_areas.unsqueeze(1), gt_signed, gt_areas)
    overlaps.mul_(gt_valid.unsqueeze(2))
    # Ties go to the first gt (documented for max over a dimension), as the reference's argmax.
    max_overlaps, assignment = overlaps.max(dim=1)
    gt_labels = gt_boxes[..., 4].gather(1, assignment)
    matched = _gt_geometry(gt_boxes[..., :4]).gather(1, assignment.unsqueeze(2).expand(n, r, 4))
    fg = valid & (max_overlaps >= fg_thresh)
    bg = valid & (max_overlaps < bg_thresh_hi) & (max_overlaps >= bg_thresh_lo)
    return gt_labels, matched, fg, bg, assignment


def _sample(fg: Tensor, bg: Tensor, valid: Tensor, positions: Tensor, seeds: Tensor, terms: Tensor | None, b: int,
            fg_fraction: float) -> tuple[Tensor, Tensor]:
    """Step 2: ``b`` rois per image, ``round(fg_fraction * b)`` foreground at most, without replacement, background
    filling the rest, with replacement when short; the only-fg / only-bg / neither cases of the reference.
    Returns the kept candidates' indices (N, B) and whether each slot is foreground (N, B)."""
    n, r = fg.shape
    device = fg.device
    num_fg = fg.sum(1, keepdim=True)
    have_bg = bg.any(1, keepdim=True)
    # "neither": every roi of the image becomes a background candidate.
    bg = bg | (valid & ~(have_bg | (num_fg > 0)))
    num_bg = bg.sum(1, keepdim=True)

    fg_quota = int(round(fg_fraction * b))
    fg_count = torch.where(have_bg, num_fg.clamp(max=fg_quota), torch.where(num_fg > 0, b, num_fg))
    bg_count = b - fg_count

    # One key stream: each candidate's key (by its place in the image's own list) and one per slot for
    # draws with replacement; one sort orders fg candidates by key, then bg by key, then the rest.
    positions = torch.cat((positions, _draw_positions(n, b, device)), dim=1)
    keys = random_keys(seed_terms(seeds) if terms is None else terms, r + b, _SALT, positions)
    order = keys[:, :r].add_(torch.where(fg, 0, torch.where(bg, KEY_LIMIT, 2 * KEY_LIMIT))).argsort(dim=1, stable=True)
    draw = uniform_from_keys(keys[:, r:])  # (N, B)
    slots = _slots(b, device)
    fg_rank = torch.where(num_fg >= fg_count, slots, (draw * num_fg).floor_().to(torch.int64))
    bg_rank = torch.where(num_bg >= bg_count, slots - fg_count, (draw * num_bg).floor_().to(torch.int64))
    is_fg_slot = slots < fg_count
    keep = order.gather(1, torch.where(is_fg_slot, fg_rank, bg_rank.add_(num_fg)).clamp_(0, r - 1))  # (N, B)
    return keep, is_fg_slot


def _class_targets(out_boxes: Tensor, matched: Tensor | None, labels: Tensor, num_classes: int,
                   precomputed: bool, means: Sequence[float], stds: Sequence[float],
                   inside_weights: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Step 3: class-specific targets and inside weights (N B, 4K) of the kept rois ``out_boxes`` (N B, 4)
    towards their gt ``matched`` (N B, 4) (cx, cy, w, h), normalised by ``means`` / ``stds``; zero off the
    foreground rows and outside columns 4c..4c+3 of the roi's class c."""
    device = out_boxes.device
    fg_rows = (labels > 0).unsqueeze(1)
    if matched is None:
        targets = out_boxes.new_zeros((out_boxes.shape[0], 4))
    else:
        # bbox_transform's float32 arithmetic: dx = (gx - ex) / ew, dw = log(gw / ew), as one expression.
        offsets, scales = _offsets_and_scales(out_boxes)
        targets = matched.sub_(offsets).div_(scales)  # a gathered copy: changed in place
        targets[:, 2:4].log_()
        if precomputed:
            if any(float(v) != 0.0 for v in means):
                targets.sub_(device_constant(means, device))
            targets.div_(device_constant(stds, device))
        targets.mul_(fg_rows)
    columns = 4 * labels.unsqueeze(1) + _slots(4, device)
    bbox_targets = targets.new_zeros((out_boxes.shape[0], 4 * num_classes)).scatter_(1, columns, targets)
    inside = targets.new_zeros((out_boxes.shape[0], 4 * num_classes)).scatter_(
        1, columns, device_constant(inside_weights, device) * fg_rows)
    return bbox_targets, inside


def _roi_attributes(gt_attributes: Tensor, assignment: Tensor | None, keep: Tensor, fg_rows: Tensor) -> Tensor:
    """Step 4 (networks with an attribute head): attribute labels (N * B, L) int64 of the sampled rois ``keep``
    (N, B) (see ``proposal_targets``).

    ``assignment``: (N, R) each candidate's argmax gt (None without gt: every roi is background);
    ``fg_rows``: (N * B, 1) bool.
    """
    n, b = keep.shape
    width = gt_attributes.shape[2]
    if assignment is None or width == 0:
        return torch.full((n * b, width), -1, dtype=torch.int64, device=keep.device)
    gt_index = assignment.gather(1, keep)  # (N, B)
    rows = gt_attributes.to(torch.int64).gather(1, gt_index.unsqueeze(2).expand(n, b, width)).reshape(n * b, width)
    # Column 0 keeps its 0 ("no attribute"); the padding after it is no label.
    padding = (rows == 0) & (_slots(width, keep.device) > 0)
    return rows.masked_fill(padding, -1).masked_fill(~fg_rows, -1)


def proposal_target_layer(
    rois: Tensor,
    roi_scores: Tensor,
    gt_boxes: Tensor,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
    seed: Tensor | None = None,
    **settings,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Targets of one image: :func:`proposal_targets` with N = 1.

    Args:
        rois: (R, 5) ``[0, x1, y1, x2, y2]`` proposals; roi_scores: (R,).
        gt_boxes: (G, 5) ``[x1, y1, x2, y2, cls]`` (G may be 0), every row a gt.
        num_classes: K, background included. ``seed``: a (1,) int64 seed, else one is drawn from
        ``generator`` (or the global RNG). Other keywords: those of :func:`proposal_targets`.

    Returns:
        rois (B, 5), roi_scores (B,), labels (B,) int64 (fg rows first, then bg rows with 0),
        bbox_targets (B, 4K), bbox_inside_weights (B, 4K), bbox_outside_weights (B, 4K), B = batch_size.
    """
    device = rois.device
    boxes = rois[:, 1:5].to(torch.float32)[None]
    gt = gt_boxes.to(device=device, dtype=torch.float32).reshape(1, -1, 5)
    if seed is None:
        seed = seeds_from_generator(1, generator, device)
    valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=device)
    out = proposal_targets(boxes, roi_scores.reshape(1, -1), valid,
                           gt, torch.ones(gt.shape[:2], dtype=torch.bool, device=device), seed.reshape(1).to(device),
                           num_classes, **settings)
    return out[0], out[1], out[2], out[3], out[4], out[5]
