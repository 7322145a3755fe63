"""The box selection of bottom-up-attention's ``tools/generate_tsv.py``, vectorised over the classes.

The original, per image: the R proposals (rois / scale, not the regressed boxes) and their class probabilities
(R, K); for every class c = 1..K-1 py-faster-rcnn's ``cpu_nms`` at 0.3 on (proposal, probability of c) over all R
proposals; ``max_conf[i]`` = the largest probability of box i among the classes where it survived; the boxes with
``max_conf >= conf_thresh`` in proposal (RPN) order, or, when fewer than ``min_boxes`` or more than ``max_boxes``
remain, the ``min_boxes`` / ``max_boxes`` boxes of largest ``max_conf``.

``cpu_nms``'s rule: +1 widths, IoU in float32 arithmetic (``inter / (area_i + area_j - inter)``), a box is
suppressed when its IoU with a kept box is >= the threshold, compared in double precision. The proposals are the
same boxes for every class, so the IoU matrix is computed once; the greedy pass then runs as R steps over all
classes at once (step t visits each class's t-th best box) instead of K - 1 separate NMS calls.

Equal scores: visited lower index first, and ``max_conf`` ties sorted lower index first. The original sorts
with numpy's unstable ``argsort()[::-1]``, whose order for exact ties is numpy's implementation detail; softmax
probabilities rarely tie except where they underflow.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['pairwise_iou_cpu_nms', 'max_conf_after_nms', 'butd_keep']


def pairwise_iou_cpu_nms(boxes: Tensor) -> Tensor:
    """(R, 4) float32 boxes -> (R, R) float32 IoU, computed in the operation order of ``cpu_nms``."""
    b = boxes.float()
    x1, y1, x2, y2 = b.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    w = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :]) + 1).clamp_min(0)
    h = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :]) + 1).clamp_min(0)
    inter = w * h
    return inter / (areas[:, None] + areas[None, :] - inter)


def _kept_by_class(scores: Tensor, pairs: tuple[Tensor, Tensor]) -> Tensor:
    """Greedy NMS of C classes over the same R boxes: (C, R) scores and the overlapping pairs (i, j), i != j, of
    the boxes (IoU >= threshold) -> (C, R) bool kept.

    Greedy NMS keeps box i of class c exactly when no kept box ranked above it in c overlaps it; that rule defines
    the kept set uniquely, rank by rank. Starting from "all kept" and applying the rule to every box at once, the
    first t boxes of each class's ranking are right after t rounds, so the rounds stop at the unique fixed point
    (after as many rounds as the longest chain of suppressions, usually a handful) with exactly greedy NMS's set.
    Only overlapping pairs can suppress, so each round costs C x (number of pairs), not C x R x R.
    """
    i, j = pairs
    s_i, s_j = scores[:, i], scores[:, j]
    # j ranks above i in class c: a larger score; equal scores, the lower index first.
    above = (s_j > s_i) | ((s_j == s_i) & (j < i)[None, :])  # (C, P)
    kept = torch.ones_like(scores, dtype=torch.bool)
    for _ in range(scores.shape[1] + 1):
        threats = (above & kept[:, j]).to(torch.float32)
        now = torch.zeros_like(scores).index_add_(1, i, threats) == 0
        if torch.equal(now, kept):
            break
        kept = now
    return kept


def max_conf_after_nms(boxes: Tensor, scores: Tensor, nms_thresh: float = 0.3) -> Tensor:
    """``max_conf`` of generate_tsv.py.

    Args:
        boxes: (R, 4) float32 proposals; scores: (R, K) class probabilities, background in column 0 (unused).
    Returns (R,) float32: per box, the largest score among the classes 1..K-1 where per-class NMS kept it, 0 where
    none did.
    """
    r, k = scores.shape
    if r == 0 or k < 2:
        return scores.new_zeros(r, dtype=torch.float32)
    cls = scores[:, 1:].t().float().contiguous()  # (C, R)
    # Double precision comparison, as cpu_nms compares its float32 IoU with a double threshold.
    overlap = pairwise_iou_cpu_nms(boxes).double() >= float(nms_thresh)  # (R, R)
    overlap.fill_diagonal_(False)
    rows, cols = overlap.nonzero(as_tuple=True)
    pairs = (rows, cols)
    chunk = max(1, (1 << 24) // max(int(pairs[0].numel()), 1))  # classes at once: memory chunk x pairs
    best = torch.zeros(r, dtype=torch.float32, device=cls.device)
    for start in range(0, cls.shape[0], chunk):
        part = cls[start:start + chunk]
        kept = _kept_by_class(part, pairs)
        best = torch.maximum(best, torch.where(kept, part, torch.zeros_like(part)).amax(dim=0))
    return best


def butd_keep(max_conf: Tensor, conf_thresh: float = 0.2, min_boxes: int = 10, max_boxes: int = 100) -> Tensor:
    """The indices generate_tsv.py keeps from ``max_conf`` (R,): those >= ``conf_thresh`` in index order, or the
    top ``min_boxes`` / ``max_boxes`` by decreasing ``max_conf`` when their count is out of range."""
    # Double precision, as the original compares its float64 max_conf with a Python float.
    keep = (max_conf.double() >= float(conf_thresh)).nonzero(as_tuple=True)[0]
    n = int(keep.numel())
    if min_boxes <= n <= max_boxes:
        return keep
    top = torch.sort(max_conf, descending=True, stable=True).indices
    return top[:min_boxes] if n < min_boxes else top[:max_boxes]
