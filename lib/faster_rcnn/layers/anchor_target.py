"""RPN training targets (tf-faster-rcnn's anchor_target_layer) for a whole batch in one call.

Labels: 1 foreground, 0 background, -1 ignored, int64 for every anchor of every image, in the anchors' row
order. Anchors not fully inside their image are -1 with zero targets and weights. The N images share the
anchors (one padded feature map); their gt boxes come padded to one count G with a validity mask, so the
IoU of all images is one (N, G, M) tensor and no step loops over images. Sampling uses random keys of
(image seed, anchor index) (``random_keys``): an image gets the same labels alone as in any batch.

What depends on the anchors alone (float64 signed rows and areas, the encoding offsets and scales) is
computed once per anchors tensor, and every step is written for few operator calls: on a GPU the layer is
bound by kernel launches, not arithmetic. ``anchor_target_layer`` is the one-image form (the reference's
signature).
"""
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from ..boxes import iou_of_signed, signed_corners
from ._sampling import device_constant
from .random_keys import KEY_LIMIT, random_keys, seed_terms, seeds_from_generator

__all__ = ["anchor_target_layer", "anchor_targets", "AnchorTargets"]

_SALT = 0x5A17  # this layer's stream of the image seeds


class AnchorTargets(NamedTuple):
    labels: Tensor  # (N, M) int64 in {-1, 0, 1}
    targets: Tensor  # (N, M, 4) float32 encode(anchor, best gt), not normalised (a transposed view of rows)
    inside_weights: Tensor  # (N, M, 1), or (N, M, 4) when RPN_BBOX_INSIDE_WEIGHTS differ by coordinate
    outside_weights: Tensor  # (N, M, 1): broadcast over the 4 coordinates


class _AnchorGeometry(NamedTuple):
    rows: Tensor  # (4, M) float64 (-x1, -y1, x2, y2): IoU in float64 like the reference Cython kernel
    areas: Tensor  # (M,) float64, +1 convention
    upper: Tensor  # (2, M) float32 x2, y2, for the inside test
    lower_ok: Tensor  # (M,) bool: x1, y1 >= -border
    offsets: Tensor  # (4, M) float32 rows cx, cy, 0, 0
    scales: Tensor  # (4, M) float32 rows w, h, w, h


def _geometry(anchors: Tensor, border: float) -> _AnchorGeometry:
    signed, areas = signed_corners(anchors.to(torch.float64))
    a32 = anchors.to(torch.float32)
    # Same float32 arithmetic, in the same order, as boxes.bbox_transform: dx = (gx - cx) / w, dw = log(gw / w).
    sizes = a32[:, 2:4] - a32[:, 0:2] + 1.0
    centres = a32[:, 0:2] + 0.5 * sizes
    return _AnchorGeometry(signed.t().contiguous(), areas, a32[:, 2:4].t().contiguous(),
                           (a32[:, 0:2] >= -border).all(1),
                           torch.cat((centres, torch.zeros_like(centres)), 1).t().contiguous(),
                           torch.cat((sizes, sizes), 1).t().contiguous())


class _Candidates(NamedTuple):
    geometry: _AnchorGeometry  # of the candidate anchors only
    rows: Tensor | None  # (C,) int64 rows of the candidates among the anchors; None: all anchors


@lru_cache(maxsize=16)
def _cached_candidates(anchors: Tensor, version: int, border: float, extent: tuple[float, float] | None
                       ) -> _Candidates:
    # Keyed by the tensor object and its version counter, so an in-place change is never served stale.
    return _candidates(anchors, border, extent)


def _candidates(anchors: Tensor, border: float, extent: tuple[float, float] | None) -> _Candidates:
    if extent is None:
        return _Candidates(_geometry(anchors, border), None)
    a = anchors.to(torch.float32)
    h, w = float(extent[0]), float(extent[1])
    inside = (a[:, 0] >= -border) & (a[:, 1] >= -border) & (a[:, 2] < w + border) & (a[:, 3] < h + border)
    index = inside.nonzero().squeeze(1)  # once per (anchors, extent): the only host read, cached
    if index.shape[0] == anchors.shape[0]:
        return _Candidates(_geometry(anchors, border), None)
    return _Candidates(_geometry(anchors[index], border), index)


def _anchor_candidates(anchors: Tensor, border: float, extent: tuple[float, float] | None) -> _Candidates:
    """The anchors that can be inside an image no larger than ``extent`` and their geometry, cached unless the
    tensor has no version counter or carries autograd."""
    if anchors.is_inference() or anchors.requires_grad:
        return _candidates(anchors.detach(), border, extent)
    return _cached_candidates(anchors, anchors._version, border, extent)


@lru_cache(maxsize=16)
def _ranks(k: int, device: torch.device) -> Tensor:
    return torch.arange(k, device=device)


def _smallest_keys(members: Tensor, keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Of each row's ``members`` (N, M) bool, the ``k`` smallest ``keys``: (index (N, k), found (N, k) bool),
    in increasing key order; rows with fewer members have ``found`` False at the end."""
    values, index = torch.where(members, keys, KEY_LIMIT).topk(k, dim=1, largest=False, sorted=True)
    return index, values < KEY_LIMIT


def anchor_targets(
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    im_info: Tensor,
    seeds: Tensor,
    *,
    rpn_positive_overlap: float = 0.7,
    rpn_negative_overlap: float = 0.3,
    rpn_clobber_positives: bool = False,
    rpn_batchsize: int = 256,
    rpn_fg_fraction: float = 0.5,
    rpn_positive_weight: float = -1.0,
    rpn_bbox_inside_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    allowed_border: float = 0,
    terms: Tensor | None = None,
    extent: tuple[float, float] | None = None,
) -> AnchorTargets:
    """Assign and sample anchors for the RPN losses of N images.

    Args:
        anchors: (M, 4) float32 anchors of the batch's feature map, in the row order of ``shift_anchors``.
        gt_boxes: (N, G, 5) float32 ``[x1, y1, x2, y2, cls]`` in scaled-image coordinates, padded (G may be 0).
        gt_valid: (N, G) bool, False on padding rows.
        im_info: (N, 3) float32 ``(H, W, scale)`` of each scaled image.
        seeds: (N,) int64, each image's sampling seed (or ``terms``, its ``seed_terms``, computed once).
        extent: host numbers ``(H, W)`` no smaller than any image's ``im_info`` (the padded blob's size): only
            anchors that fit inside it are assigned and sampled, the rest are -1 at once (same result, about
            a third of the work at PASCAL VOC sizes). None: every anchor is a candidate.

    Rules (per image): negatives (max IoU < rpn_negative_overlap) first; then each gt's best anchors (ties
    included) and IoU >= rpn_positive_overlap are positive. A gt whose best IoU is 0 makes no anchor
    positive (the reference would turn every zero-IoU anchor positive). At most
    ``rpn_fg_fraction * rpn_batchsize`` positives are kept, negatives fill the batch; an image without gt
    gets negatives only.
    """
    full_m = anchors.shape[0]
    extent = None if extent is None else (float(extent[0]), float(extent[1]))
    geometry, rows = _anchor_candidates(anchors, float(allowed_border), extent)
    # (N, M): inside [-border, W + border) x [-border, H + border) of each image, on the device.
    upper_ok = (geometry.upper < (im_info[:, :2].flip(1) + allowed_border).unsqueeze(2)).all(1)
    inside = upper_ok & geometry.lower_ok
    positive, negative, targets = _assign(geometry, inside, gt_boxes, gt_valid, rpn_positive_overlap,
                                          rpn_negative_overlap, rpn_clobber_positives)
    positive, negative = _sample(positive, negative, seeds, terms, rows, rpn_fg_fraction, rpn_batchsize)
    labels, inside_w, outside_w = _labels_and_weights(positive, negative, rpn_positive_weight,
                                                      rpn_bbox_inside_weights)
    if rows is not None:
        labels, targets, inside_w, outside_w = _scatter_candidates(rows, full_m, labels, targets, inside_w, outside_w)
    return AnchorTargets(labels, targets.transpose(1, 2), inside_w, outside_w)


def _assign(geometry: _AnchorGeometry, inside: Tensor, gt_boxes: Tensor, gt_valid: Tensor, rpn_positive_overlap: float,
            rpn_negative_overlap: float, rpn_clobber_positives: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Step 1 (docs/design.md §2.3): label the inside anchors (M of them) of N images by IoU with the gts.

    Returns positive (N, M) bool, negative (N, M) bool, disjoint, and the regression targets (N, 4, M) float32
    of every inside anchor towards its max-IoU gt (zeros where the image has no gt)."""
    n, g, m = gt_boxes.shape[0], gt_boxes.shape[1], geometry.areas.shape[0]
    if g > 0 and m > 0:
        gt_signed, gt_areas = signed_corners(gt_boxes[..., :4].double())
        # (N, G, M) float64 IoU. Outside anchors and padding gts get IoU 0 (a mask multiply, no gather):
        # they cannot raise a gt's best IoU, and where that best is 0 no anchor counts as its best anyway.
        overlaps = iou_of_signed(geometry.rows, geometry.areas, gt_signed, gt_areas)
        overlaps.mul_(inside.unsqueeze(1) & gt_valid.unsqueeze(2))
        # Ties go to the first gt (documented for max over a dimension), as the reference's argmax.
        max_overlaps, argmax = overlaps.max(dim=1)
        gt_max = overlaps.amax(dim=2, keepdim=True)
        # IoU never exceeds 1: a best IoU of 0 becomes 2, which no anchor equals.
        is_gt_best = (overlaps == gt_max.masked_fill_(gt_max <= 0, 2.0)).any(1)
        del overlaps
        targets = _encode_matched(geometry, gt_boxes, argmax)
        # Targets only where an inside anchor has a gt to point at (an image without gt keeps zeros).
        targets.mul_((inside & gt_valid.any(1, keepdim=True)).unsqueeze(1))
        negative = inside & (max_overlaps < rpn_negative_overlap)
        positive = inside & (is_gt_best | (max_overlaps >= rpn_positive_overlap))
    else:
        targets = torch.zeros((n, 4, m), dtype=torch.float32, device=inside.device)
        negative = inside
        positive = torch.zeros_like(inside)
    if rpn_clobber_positives:
        positive &= ~negative
    else:
        negative &= ~positive
    return positive, negative, targets


def _encode_matched(geometry: _AnchorGeometry, gt_boxes: Tensor, argmax: Tensor) -> Tensor:
    """(N, 4, M) float32: each anchor's matched gt ``argmax`` (N, M) encoded against the anchor (§2.1)."""
    n, m = argmax.shape
    # Each gt's (cx, cy, w, h), gathered to the anchors, encoded against them in one expression.
    gt_lo = gt_boxes[..., 0:2]
    gt_sizes = gt_boxes[..., 2:4] - gt_lo + 1.0
    gt_geometry = torch.cat((gt_lo + 0.5 * gt_sizes, gt_sizes), dim=2).transpose(1, 2)  # (N, 4, G)
    # As rows (N, 4, M), each contiguous: the elementwise steps (the log above all) run on long rows.
    matched = gt_geometry.gather(2, argmax.unsqueeze(1).expand(n, 4, m))
    targets = (matched - geometry.offsets).div_(geometry.scales)
    targets[:, 2:4].log_()
    return targets


def _sample(positive: Tensor, negative: Tensor, seeds: Tensor, terms: Tensor | None, rows: Tensor | None,
            rpn_fg_fraction: float, rpn_batchsize: int) -> tuple[Tensor, Tensor]:
    """Step 2: at most ``rpn_fg_fraction * rpn_batchsize`` positives, negatives filling the batch, each the
    smallest keys hashed from (image seed, anchor row) (``layers/random_keys.py``). (N, M) bool each."""
    n, m = positive.shape
    device = positive.device
    # One key per anchor serves both draws: positives and negatives are disjoint sets.
    terms = seed_terms(seeds) if terms is None else terms
    # Keyed by the anchor's row among all anchors, so the candidate subset does not change the draw.
    keys = random_keys(terms, m, _SALT) if rows is None else random_keys(terms, m, _SALT, rows.expand(n, m))
    fg_quota = min(int(rpn_fg_fraction * rpn_batchsize), m)
    index, found = _smallest_keys(positive, keys, fg_quota)
    positive = torch.zeros_like(positive).scatter_(1, index, found)
    num_pos = found.sum(1, keepdim=True)
    k = min(int(rpn_batchsize), m)
    index, found = _smallest_keys(negative, keys, k)
    negative = torch.zeros_like(negative).scatter_(1, index, found & (_ranks(k, device) < rpn_batchsize - num_pos))
    return positive, negative


def _labels_and_weights(positive: Tensor, negative: Tensor, rpn_positive_weight: float,
                        rpn_bbox_inside_weights: Sequence[float]) -> tuple[Tensor, Tensor, Tensor]:
    """Step 3: labels (N, M) int64 (1 positive, 0 negative, -1 ignored), inside weights (N, M, 4 or 1) on the
    positives, outside weights (N, M, 1): 1 / N_sampled, or ``rpn_positive_weight`` split over the positives."""
    sampled = positive | negative
    labels = sampled.to(torch.int64).add_(positive).sub_(1)
    if rpn_positive_weight < 0:
        # Uniform: 1 / N_sampled on every sampled anchor of the image.
        outside_w = sampled.to(torch.float32).div_(sampled.sum(1, keepdim=True).clamp_(min=1))
    else:
        if not 0.0 < rpn_positive_weight < 1.0:
            raise ValueError(
                f"anchor_target_layer: rpn_positive_weight (TRAIN.RPN_POSITIVE_WEIGHT) must be in (0, 1) "
                f"or negative for uniform weights, got {rpn_positive_weight}"
            )
        num_pos = positive.sum(1, keepdim=True)
        pos_w = rpn_positive_weight / num_pos.clamp(min=1).to(torch.float32)
        neg_w = (1.0 - rpn_positive_weight) / negative.sum(1, keepdim=True).clamp_(min=1).to(torch.float32)
        outside_w = positive.to(torch.float32) * pos_w + negative.to(torch.float32) * neg_w
    inside_w = positive.to(torch.float32).unsqueeze(2)
    if len(set(rpn_bbox_inside_weights)) > 1:
        inside_w = inside_w * device_constant(rpn_bbox_inside_weights, positive.device)
    elif float(rpn_bbox_inside_weights[0]) != 1.0:
        inside_w = inside_w * float(rpn_bbox_inside_weights[0])
    return labels, inside_w, outside_w.unsqueeze(2)


def _scatter_candidates(index: Tensor, m: int, labels: Tensor, targets: Tensor, inside_w: Tensor,
                        outside_w: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The candidates' labels (N, C), targets (N, 4, C) and weights (N, C, k) placed at their rows ``index``
    (C,) among all M anchors; every other anchor is ignored (-1) with zero targets and weights."""
    n = labels.shape[0]
    full_labels = labels.new_full((n, m), -1).index_copy_(1, index, labels)
    full_targets = targets.new_zeros((n, 4, m)).index_copy_(2, index, targets)
    full_inside = inside_w.new_zeros((n, m, inside_w.shape[2])).index_copy_(1, index, inside_w)
    full_outside = outside_w.new_zeros((n, m, 1)).index_copy_(1, index, outside_w)
    return full_labels, full_targets, full_inside, full_outside


def anchor_target_layer(
    anchors: Tensor,
    gt_boxes: Tensor,
    im_info: Tensor | Sequence[float],
    *,
    generator: torch.Generator | None = None,
    seed: Tensor | None = None,
    **settings,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Anchor targets of one image: :func:`anchor_targets` with N = 1.

    Args:
        anchors: (M, 4); gt_boxes: (G, 5) (G may be 0), every row a gt; im_info: ``(H, W, scale)``, a tensor
        or a sequence; ``seed``: a (1,) int64 seed, else one is drawn from ``generator`` (or the global RNG).
        Other keywords: those of :func:`anchor_targets`.

    Returns:
        labels (M,) int64 in {-1, 0, 1}; bbox_targets (M, 4) float32; bbox_inside_weights (M, 4);
        bbox_outside_weights (M, 4).
    """
    device = anchors.device
    gt = gt_boxes.to(device=device, dtype=torch.float32).reshape(1, -1, 5)
    info = torch.as_tensor(im_info, dtype=torch.float32).reshape(1, -1).to(device)
    if seed is None:
        seed = seeds_from_generator(1, generator, device)
    valid = torch.ones(gt.shape[:2], dtype=torch.bool, device=device)
    # The image's own extent narrows the candidates when it is known on the host (no device read for it).
    extent = settings.pop('extent', None)
    if extent is None and not (isinstance(im_info, Tensor) and im_info.device.type != 'cpu'):
        hw = torch.as_tensor(im_info, dtype=torch.float32).reshape(-1)[:2].tolist()
        extent = (hw[0], hw[1])
    out = anchor_targets(anchors, gt, valid, info, seed.reshape(1).to(device), extent=extent, **settings)
    m = anchors.shape[0]
    return (out.labels[0], out.targets[0].contiguous(), out.inside_weights[0].expand(m, 4).contiguous(),
            out.outside_weights[0].expand(m, 4).contiguous())
