"""TIDE error breakdown for box detections (Bolya et al., ECCV 2020), in numpy.

The numbers are those of the ``tidecv`` package (1.0.1) in box mode with its default definitions;
boxes here are inclusive ``x1 y1 x2 y2`` and are turned into COCO ``x y w h`` with
``w = x2 - x1 + 1`` (as the COCO conversion of this project does), so TIDE's IoU equals ours.

Definitions (everything per image unless said otherwise):

* Detections are sorted by descending score (ties keep their input order) and only the first
  ``max_dets`` (100) are evaluated; the rest are dropped, as TIDE drops them.
* Matching: in that order each detection takes the unused same-class ground truth with the highest
  IoU (the first one on ties) if that IoU is >= ``pos_thresh``; this makes it a true positive.
* Ignore (crowd / difficult) boxes are not ground truth. An unmatched detection whose intersection
  over its own area with an ignore box of its class is > ``pos_thresh`` is "ignored": it is left out
  of the AP, but it still gets an error type, and fixing that error can still add it back (see Cls/Loc).
* Every unmatched detection gets the first error type whose test passes, in this order
  (IoUs are to the image's non-ignore ground truth; an image without any gets Bkg):

  =====  ==================================================================================
  Loc    ``bg_thresh <= max IoU with same-class gt <= pos_thresh``, target: that gt
  Cls    ``max IoU with other-class gt >= pos_thresh``, target: that gt
  Dupe   ``max IoU with already matched same-class gt >= pos_thresh``
  Bkg    ``max IoU with any gt <= bg_thresh``
  Both   anything else (in effect: wrong class and ``bg_thresh < IoU < pos_thresh``)
  =====  ==================================================================================

* A gt that no detection matched is a false negative; it is a Miss unless it is the unmatched
  target of a Cls or Loc error.
* AP of a class: the detections' precision/recall curve (each detection one point, ties in score
  kept in the order TIDE stores them), precision made monotone from the right, sampled at the 101
  recalls 0, 0.01, ..., 1 (the precision of the first point whose recall is >= r, 0 past the end)
  and averaged, times 100. A class without gt has AP 0.
* mAP: the mean over the classes that have gt or at least one (non-ignored) detection, so a class
  with only false positives counts with AP 0, and a class that a fix leaves with neither drops out
  of the mean.
* Oracle fixes, each applied alone to the original data, dAP = mAP(fixed) - ``ap50``, clamped at 0:

  ======  ================================================================================
  cls     the one detection per target gt with the highest score among the Cls *and* Loc
          errors on that gt becomes a true positive of the gt's class; every other Cls error
          (also those whose target was matched) is removed
  loc     the same for Loc errors, in their own class
  both    Both errors removed
  dupe    Dupe errors removed
  bkg     Bkg errors removed
  miss    each Miss gt is taken out of its class's gt count
  ======  ================================================================================

  Special errors, not clamped: ``false_pos`` gives every true positive score 1 and every false
  positive score 0; ``false_neg`` takes every unmatched gt out of the gt counts.

Per class: :attr:`TideResult.per_class` has, for each class in the mean, that class's AP and the
same fixes measured on that class's AP alone (main errors clamped at 0 as overall). All of TIDE's
numbers are defined per class this way, but they do not average to the overall dAPs: a fix can
change which classes are in the mean (removing all false positives of a class without gt, or all gt
of a class without detections), a Cls fix moves a detection from one class to another, and the
clamp is applied after averaging. Classes without gt have AP 0 under every fix, so their per-class
dAPs are always 0; their whole effect is through the class count of the mean.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .matching import greedy_match

__all__ = ["ImageGroundTruth", "ImageDetections", "ImageErrors", "ClassBreakdown", "TideResult", "tide",
           "UNEVALUATED", "TRUE_POSITIVE", "CLS", "LOC", "BOTH", "DUPE", "BKG", "ERROR_NAMES",
           "MAIN_ERRORS", "SPECIAL_ERRORS"]

# Per-detection codes of ImageErrors.det_error.
UNEVALUATED = -1   # beyond the first max_dets of its image: not evaluated at all
TRUE_POSITIVE = 0
CLS = 1
LOC = 2
BOTH = 3
DUPE = 4
BKG = 5
ERROR_NAMES = {UNEVALUATED: "unevaluated", TRUE_POSITIVE: "tp", CLS: "cls", LOC: "loc", BOTH: "both",
               DUPE: "dupe", BKG: "bkg"}

MAIN_ERRORS = ("cls", "loc", "both", "dupe", "bkg", "miss")
SPECIAL_ERRORS = ("false_pos", "false_neg")

_RECALL_SAMPLES = np.arange(101) / 100  # 0, 0.01, ..., 1 exactly as x / 100


@dataclass
class ImageGroundTruth:
    """Ground truth of one image.

    boxes: (G, 4) float64 inclusive ``x1 y1 x2 y2`` (width ``x2 - x1 + 1``).
    labels: (G,) int64 class index in ``1..K-1``.
    ignore: (G,) bool, crowd / 'difficult' boxes, used as TIDE's ignore regions.
    """
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray


@dataclass
class ImageDetections:
    """Detections of one image: boxes (D, 4) inclusive ``x1 y1 x2 y2``, scores (D,), labels (D,) in ``1..K-1``."""
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


@dataclass
class ImageErrors:
    """What TIDE made of one image, in the order of its inputs.

    det_error: (D,) int8, TRUE_POSITIVE / CLS / LOC / BOTH / DUPE / BKG, or UNEVALUATED.
    det_ignored: (D,) bool, unmatched detections on an ignore box (left out of the AP; they still
        have an error code).
    det_gt: (D,) int64 index into the image's gt arrays: the gt a true positive matched, the target
        of a Cls / Loc error, the matched gt a Dupe duplicates; -1 otherwise.
    gt_missed: (G,) bool, the gt counted as Miss errors (never an ignore box).
    ap_lost: estimate, in mAP points, of what this image's errors cost (see :func:`tide`).
    """
    det_error: np.ndarray
    det_ignored: np.ndarray
    det_gt: np.ndarray
    gt_missed: np.ndarray
    ap_lost: float


@dataclass
class ClassBreakdown:
    """AP (0-100) and dAPs of the main and special errors, for all classes or for one."""
    ap50: float
    main: dict[str, float]
    special: dict[str, float]

    def to_json(self) -> dict:
        return {"ap50": float(self.ap50), "main": {k: float(v) for k, v in self.main.items()},
                "special": {k: float(v) for k, v in self.special.items()}}


@dataclass
class TideResult(ClassBreakdown):
    """The overall breakdown, per class breakdowns, error counts and per image assignments.

    per_class: {class index: ClassBreakdown} for the classes in TIDE's mean.
    counts: number of errors of each main type (TIDE's error counts, ignored detections included).
    images: one ImageErrors per input image.
    """
    per_class: dict[int, ClassBreakdown]
    counts: dict[str, int]
    images: list[ImageErrors]

    def to_json(self) -> dict:
        out = super().to_json()
        out["per_class"] = {str(k): v.to_json() for k, v in sorted(self.per_class.items())}
        return out


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass
class _Flat:
    """All images concatenated. Detections: only the evaluated ones, in TIDE's order (image by image,
    descending score, ties in input order); their position in these arrays is TIDE's storage order,
    which breaks score ties in the AP.
    """
    num_images: int
    det_count: np.ndarray   # (I,) input detections per image
    det_src: np.ndarray     # (D,) index of each evaluated detection in the concatenated input
    det_image: np.ndarray   # (D,)
    det_label: np.ndarray   # (D,)
    det_score: np.ndarray   # (D,)
    det_xywh: np.ndarray    # (D, 4)
    gt_count: np.ndarray    # (I,) input gt per image, ignore boxes included
    gt_label: np.ndarray    # (N,) all gt, input order
    gt_ignore: np.ndarray   # (N,)
    gt_image: np.ndarray    # (N,)
    gt_xywh: np.ndarray     # (N, 4)


def _as_boxes(boxes: np.ndarray, n: int, what: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] != n:
        raise ValueError(f"{what}: {boxes.shape[0]} boxes for {n} labels")
    return boxes


def _to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive x1 y1 x2 y2 -> (N, 4) COCO x y w h with the +1 width."""
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2] + 1.0
    return out


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> None:
    if labels.size and (labels.min() < 1 or labels.max() >= num_classes):
        raise ValueError(f"{what} labels must be in 1..{num_classes - 1}")


def _flatten(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], num_classes: int,
             max_dets: int) -> _Flat:
    if len(gt) != len(dets):
        raise ValueError(f"{len(gt)} ground-truth images but {len(dets)} detection images")
    n_img = len(gt)
    gt_labels = [np.asarray(g.labels, dtype=np.int64).reshape(-1) for g in gt]
    gt_ignore = [np.asarray(g.ignore, dtype=bool).reshape(-1) for g in gt]
    gt_boxes = [_as_boxes(g.boxes, len(lab), "gt") for g, lab in zip(gt, gt_labels)]
    det_labels = [np.asarray(d.labels, dtype=np.int64).reshape(-1) for d in dets]
    det_scores = [np.asarray(d.scores, dtype=np.float64).reshape(-1) for d in dets]
    det_boxes = [_as_boxes(d.boxes, len(lab), "detections") for d, lab in zip(dets, det_labels)]
    if any(len(i) != len(lab) for i, lab in zip(gt_ignore, gt_labels)):
        raise ValueError("gt ignore and labels differ in length")
    if any(len(s) != len(lab) for s, lab in zip(det_scores, det_labels)):
        raise ValueError("detection scores and labels differ in length")

    def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
        return np.concatenate(parts) if parts else empty

    gt_count = np.array([len(lab) for lab in gt_labels], dtype=np.int64)
    det_count = np.array([len(lab) for lab in det_labels], dtype=np.int64)
    g_label = cat(gt_labels, np.zeros(0, np.int64))
    d_label = cat(det_labels, np.zeros(0, np.int64))
    _check_labels(g_label, num_classes, "gt")
    _check_labels(d_label, num_classes, "detection")
    d_score = cat(det_scores, np.zeros(0))
    d_image = np.repeat(np.arange(n_img), det_count)

    # lexsort is stable: within an image, equal scores keep their input order, as TIDE's sort does.
    order = np.lexsort((-d_score, d_image))
    det_start = np.cumsum(det_count) - det_count
    rank = np.arange(order.size) - det_start[d_image[order]]
    src = order[rank < max_dets]
    d_xywh = _to_xywh(cat(det_boxes, np.zeros((0, 4))))
    return _Flat(num_images=n_img, det_count=det_count, det_src=src, det_image=d_image[src],
                 det_label=d_label[src], det_score=d_score[src], det_xywh=d_xywh[src],
                 gt_count=gt_count, gt_label=g_label, gt_ignore=cat(gt_ignore, np.zeros(0, bool)),
                 gt_image=np.repeat(np.arange(n_img), gt_count),
                 gt_xywh=_to_xywh(cat(gt_boxes, np.zeros((0, 4)))))


# --------------------------------------------------------------------------------------------------
# Geometry


def _same_image_pairs(det_image: np.ndarray, gt_image: np.ndarray, num_images: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (detection, gt) pair of the same image, detection-major, gts in their order.

    det_image: (D,) sorted; gt_image: (M,) sorted.
    Returns pair_det (P,), pair_gt (P,) and each detection's segment start (D,) and length (D,).
    Flat pairs instead of per-image matrices: one numpy call covers all images.
    """
    per_image = np.bincount(gt_image, minlength=num_images)
    gt_start = np.cumsum(per_image) - per_image
    seg_len = per_image[det_image]
    seg_start = np.cumsum(seg_len) - seg_len
    pair_det = np.repeat(np.arange(det_image.size), seg_len)
    within = np.arange(pair_det.size) - seg_start[pair_det]
    pair_gt = gt_start[det_image][pair_det] + within
    return pair_det, pair_gt, seg_start, seg_len


def _pair_iou(d: np.ndarray, g: np.ndarray, crowd: bool) -> np.ndarray:
    """IoU of row-aligned (P, 4) xywh boxes, operation for operation as pycocotools' bbIou.

    crowd: divide by the detection's area instead of the union (COCO's crowd overlap).
    Same operation order as pycocotools so that IoUs exactly at a threshold compare the same way.
    """
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    overlap = (w > 0) & (h > 0)
    inter = w * h
    det_area = d[:, 2] * d[:, 3]
    union = det_area if crowd else det_area + g[:, 2] * g[:, 3] - inter
    out = np.zeros(w.shape)
    np.divide(inter, union, out=out, where=overlap)
    return out


def _segment_max(values: np.ndarray, seg_start: np.ndarray, seg_len: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Max of each detection's segment of pair values, and the pair index of its first maximum.

    values: (P,) >= 0; seg_start, seg_len: (D,) consecutive segments covering P.
    Returns (D,) max (0 for an empty segment) and (D,) pair index (-1 for an empty segment);
    "first" mirrors numpy's argmax over a row, which TIDE uses to pick an error's target gt.
    """
    best = np.zeros(seg_len.size)
    first = np.full(seg_len.size, -1, dtype=np.int64)
    full = seg_len > 0
    if not full.any():
        return best, first
    starts = seg_start[full]
    seg_max = np.maximum.reduceat(values, starts)
    best[full] = seg_max
    at_max = values == np.repeat(seg_max, seg_len[full])
    first[full] = np.minimum.reduceat(np.where(at_max, np.arange(values.size), values.size), starts)
    return best, first


# --------------------------------------------------------------------------------------------------
# Matching and error types


def _greedy_match(pair_det: np.ndarray, pair_gt: np.ndarray, iou: np.ndarray, same_class: np.ndarray,
                  det_image: np.ndarray, num_dets: int, num_gt: int, pos_thresh: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """TIDE's sequential matching, computed in rounds over all images at once.

    Sequentially, each detection (score order) takes its best unused same-class gt if IoU >= thresh.
    Detections before an image's next match have no unused candidate, and gts only ever get used,
    so they stay unmatched: the next match of each image is simply the first remaining candidate
    pair of that image (pairs sorted by detection, then IoU descending, then gt order). Each round
    takes that pair in every image and drops the pairs of its detection and its gt; the number of
    rounds is the largest number of matches in one image.

    Returns det_match (num_dets,) gt index or -1 and gt_used (num_gt,) bool.
    """
    cand = np.flatnonzero(same_class & (iou >= pos_thresh))
    det_match = greedy_match(pair_det[cand], pair_gt[cand], (-iou[cand], pair_gt[cand]), det_image, num_dets, num_gt)
    gt_used = np.zeros(num_gt, dtype=bool)
    gt_used[det_match[det_match >= 0]] = True
    return det_match, gt_used


@dataclass
class _Assignment:
    """Per evaluated detection (D,) and per non-ignore gt (R,) outcome of TIDE's rules."""
    code: np.ndarray      # (D,) int8
    ignored: np.ndarray   # (D,) bool
    target: np.ndarray    # (D,) non-ignore gt index or -1 (match, Cls/Loc target, Dupe's gt)
    fixable: np.ndarray   # (D,) bool, the Cls/Loc error that its fix turns into a true positive
    gt_used: np.ndarray   # (R,) bool
    gt_missed: np.ndarray  # (R,) bool
    real: np.ndarray      # (R,) index of each non-ignore gt among all gt


def _assign(flat: _Flat, pos_thresh: float, bg_thresh: float) -> _Assignment:
    """Match, mark ignored detections, give every unmatched detection its error type and target,
    pick the Cls/Loc error each unused gt would be fixed by, and mark the Miss gt (module docstring)."""
    real = np.flatnonzero(~flat.gt_ignore)
    crowd = np.flatnonzero(flat.gt_ignore)
    n_det = flat.det_label.size
    r_label = flat.gt_label[real]

    pair_det, pair_gt, seg_start, seg_len = _same_image_pairs(flat.det_image, flat.gt_image[real], flat.num_images)
    iou = _pair_iou(flat.det_xywh[pair_det], flat.gt_xywh[real][pair_gt], crowd=False)
    same = flat.det_label[pair_det] == r_label[pair_gt]
    det_match, gt_used = _greedy_match(pair_det, pair_gt, iou, same, flat.det_image, n_det, real.size, pos_thresh)
    matched = det_match >= 0

    # Ignore boxes only ever affect unmatched detections of their class, and the test is strict (>).
    ignored = np.zeros(n_det, dtype=bool)
    if crowd.size:
        c_det, c_gt, _, _ = _same_image_pairs(flat.det_image, flat.gt_image[crowd], flat.num_images)
        c_iou = _pair_iou(flat.det_xywh[c_det], flat.gt_xywh[crowd][c_gt], crowd=True)
        hit = (c_iou > pos_thresh) & (flat.det_label[c_det] == flat.gt_label[crowd][c_gt])
        ignored[c_det[hit]] = True
        ignored &= ~matched

    # Row maxima of TIDE's masked IoU matrices (same class, other class, same class and matched).
    zero = np.zeros_like(iou)
    cls_max, cls_arg = _segment_max(np.where(same, iou, zero), seg_start, seg_len)
    other_max, other_arg = _segment_max(np.where(same, zero, iou), seg_start, seg_len)
    used_max, used_arg = _segment_max(np.where(same & gt_used[pair_gt], iou, zero), seg_start, seg_len)
    any_max = np.maximum(cls_max, other_max)
    no_gt = seg_len == 0

    code = np.select(
        [matched, no_gt, (cls_max >= bg_thresh) & (cls_max <= pos_thresh), other_max >= pos_thresh,
         used_max >= pos_thresh, any_max <= bg_thresh],
        [TRUE_POSITIVE, BKG, LOC, CLS, DUPE, BKG], default=BOTH).astype(np.int8)

    target_pair = np.select([code == LOC, code == CLS, code == DUPE], [cls_arg, other_arg, used_arg], default=-1)
    target = np.where(target_pair >= 0, pair_gt[np.maximum(target_pair, 0)] if pair_gt.size else -1, -1)
    target = np.where(matched, det_match, target)

    # A Cls or Loc error on an unused gt competes with all other Cls and Loc errors on that gt: only
    # the first (highest score) becomes a true positive when fixed; the gt is then not a Miss.
    # Detections are in score order, so np.unique's first occurrence is that winner.
    target_used = np.ones(n_det, dtype=bool)
    has_target = target >= 0
    target_used[has_target] = gt_used[target[has_target]]
    competing = np.flatnonzero(((code == CLS) | (code == LOC)) & ~target_used)
    fixable = np.zeros(n_det, dtype=bool)
    usable = np.zeros(real.size, dtype=bool)
    if competing.size:
        gts, first = np.unique(target[competing], return_index=True)
        fixable[competing[first]] = True
        usable[gts] = True
    gt_missed = ~gt_used & ~usable
    return _Assignment(code=code, ignored=ignored, target=target, fixable=fixable, gt_used=gt_used,
                       gt_missed=gt_missed, real=real)


# --------------------------------------------------------------------------------------------------
# AP


def _interpolated_ap(tp_sorted: np.ndarray, num_gt: int) -> float:
    """TIDE's AP (0-100) of one class from its (N,) true-positive flags in ranking order."""
    if num_gt == 0 or tp_sorted.size == 0:
        return 0.0
    tps = np.cumsum(tp_sorted)
    precision = tps / np.arange(1, tps.size + 1)
    recall = tps / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, _RECALL_SAMPLES, side="left")
    samples = np.where(at < precision.size, precision[np.minimum(at, precision.size - 1)], 0.0)
    # cumsum adds left to right like Python's sum(), so the sum is bit-identical to TIDE's.
    return float(np.cumsum(samples)[-1] / samples.size * 100)


def _class_aps(labels: np.ndarray, scores: np.ndarray, is_tp: np.ndarray, order: np.ndarray,
               num_gt: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """AP of every class from a set of data points.

    labels, scores, is_tp, order: (N,) points; ``order`` ranks equal scores (lower first), as the
    insertion order of TIDE's point lists does. num_gt: (K,) gt per class.
    Returns ap (K,) and counted (K,) bool: the classes in TIDE's mean (a point or a gt).
    """
    sort = np.lexsort((order, -scores, labels))
    tp_sorted = is_tp[sort]
    n_points = np.bincount(labels, minlength=num_classes)
    ends = np.cumsum(n_points)
    ap = np.zeros(num_classes)
    for k in np.flatnonzero((num_gt > 0) & (n_points > 0)):
        ap[k] = _interpolated_ap(tp_sorted[ends[k] - n_points[k]:ends[k]], int(num_gt[k]))
    return ap, (n_points > 0) | (num_gt != 0)


def _mean_ap(ap: np.ndarray, counted: np.ndarray) -> float:
    return float(sum(ap[counted].tolist()) / counted.sum()) if counted.any() else 0.0


# --------------------------------------------------------------------------------------------------
# Per image estimate of AP lost


def _ap_lost_per_image(flat: _Flat, a: _Assignment, num_gt: np.ndarray, counted: np.ndarray,
                       num_classes: int) -> np.ndarray:
    """(I,) first-order estimate of the mAP points each image's errors cost.

    On the un-interpolated AP of a class, ``AP = sum over true positives j of (tp_j / n_j) / N``
    (n_j: rank, tp_j: true positives up to it, N: gt count), each error is valued alone with all
    else unchanged: a counted false positive at rank r by the gain from removing it,
    ``sum_{TP j > r} tp_j / (n_j (n_j - 1)) / N``; an unmatched gt by the gain from dropping it
    from N, ``AP / (N - 1)``. An image's value is the sum over its errors, divided by the number of
    classes in the mean and times 100: its share of the FalsePos and FalseNeg special errors.
    One sort and a cumulative sum per class; not an oracle (errors interact, no interpolation).
    """
    n_classes = max(int(counted.sum()), 1)
    keep = np.flatnonzero(~a.ignored)
    labels, is_tp = flat.det_label[keep], a.code[keep] == TRUE_POSITIVE
    sort = np.lexsort((keep, -flat.det_score[keep], labels))
    n_points = np.bincount(labels, minlength=num_classes)
    ends = np.cumsum(n_points)
    det_gain = np.zeros(flat.det_label.size)
    raw_ap = np.zeros(num_classes)
    for k in np.flatnonzero((n_points > 0) & (num_gt > 0)):
        idx = sort[ends[k] - n_points[k]:ends[k]]
        tp = is_tp[idx]
        rank = np.arange(1, idx.size + 1, dtype=np.float64)
        tps = np.cumsum(tp)
        raw_ap[k] = float((tps / rank)[tp].sum() / num_gt[k])
        term = np.zeros(idx.size)
        term[1:] = np.where(tp[1:], tps[1:] / (rank[1:] * (rank[1:] - 1)), 0.0)
        after = np.cumsum(term[::-1])[::-1] - term  # sum over later ranks only
        det_gain[keep[idx]] = np.where(tp, 0.0, after / num_gt[k])
    r_label = flat.gt_label[a.real]
    n_real = num_gt[r_label]
    gt_gain = np.where(~a.gt_used & (n_real > 1), raw_ap[r_label] / np.maximum(n_real - 1, 1), 0.0)
    total = (np.bincount(flat.det_image, weights=det_gain, minlength=flat.num_images)
             + np.bincount(flat.gt_image[a.real], weights=gt_gain, minlength=flat.num_images))
    return total * 100.0 / n_classes


# --------------------------------------------------------------------------------------------------
# Entry point


def tide(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], num_classes: int, *,
         pos_thresh: float = 0.5, bg_thresh: float = 0.1, max_dets: int = 100) -> TideResult:
    """TIDE's error breakdown of ``dets`` against ``gt`` (parallel sequences, one entry per image).

    num_classes: K, background included (labels are 1..K-1).
    pos_thresh / bg_thresh: TIDE's foreground and background IoU; max_dets: detections per image.
    Returns a :class:`TideResult` on TIDE's 0-100 scale (definitions in the module docstring).

    ``ImageErrors.ap_lost``, for ranking images, is a first-order estimate in mAP points: on each
    class's un-interpolated AP, every counted false positive of the image is valued by what removing
    it alone would gain, every unmatched gt by what dropping it alone from the gt count would gain;
    the sum is divided by the number of classes in the mean (the image's share of the FalsePos and
    FalseNeg special errors, ignoring interactions and the 101-point sampling).
    Runs in a handful of numpy passes over all (detection, gt) pairs of the same image; the only
    Python loops are over classes and over matching rounds.
    """
    flat = _flatten(gt, dets, num_classes, max_dets)
    a = _assign(flat, pos_thresh, bg_thresh)
    n_det = flat.det_label.size
    idx = np.arange(n_det)
    r_label = flat.gt_label[a.real]
    num_gt = np.bincount(r_label, minlength=num_classes)
    code, label, score = a.code, flat.det_label, flat.det_score
    is_tp = code == TRUE_POSITIVE
    is_err = ~is_tp
    fix_label = np.where(code == CLS, r_label[np.maximum(a.target, 0)] if r_label.size else label, label)
    # In a fixed point list TIDE stores the errors first, then the true positives: that order
    # (not the original one) ranks equal scores.
    fixed_order = np.where(is_tp, n_det + idx, idx)

    def aps(mask: np.ndarray, labels: np.ndarray, tp: np.ndarray, scores: np.ndarray, order: np.ndarray,
            n_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _class_aps(labels[mask], scores[mask], tp[mask], order[mask], n_gt, num_classes)

    counted_pts = ~a.ignored
    base_ap, base_counted = aps(counted_pts, label, is_tp, score, idx, num_gt)
    ap50 = _mean_ap(base_ap, base_counted)

    fixed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, err in (("cls", CLS), ("loc", LOC), ("both", BOTH), ("dupe", DUPE), ("bkg", BKG)):
        this = code == err
        into_tp = this & a.fixable
        mask = (is_tp | (is_err & ~this & ~a.ignored)) | into_tp
        labels = np.where(into_tp, fix_label, label)
        fixed[name] = aps(mask, labels, is_tp | into_tp, score, fixed_order, num_gt)
    missed_per_class = np.bincount(r_label[a.gt_missed], minlength=num_classes)
    fixed["miss"] = aps(counted_pts, label, is_tp, score, fixed_order, num_gt - missed_per_class)
    unmatched_per_class = np.bincount(r_label[~a.gt_used], minlength=num_classes)
    special = {
        "false_pos": aps(counted_pts, label, is_tp, is_tp.astype(np.float64), fixed_order, num_gt),
        "false_neg": aps(counted_pts, label, is_tp, score, fixed_order, num_gt - unmatched_per_class),
    }

    per_class = {
        int(k): ClassBreakdown(
            ap50=float(base_ap[k]),
            main={n: max(float(fixed[n][0][k] - base_ap[k]), 0.0) for n in MAIN_ERRORS},
            special={n: float(special[n][0][k] - base_ap[k]) for n in SPECIAL_ERRORS})
        for k in np.flatnonzero(base_counted)}
    counts = {name: int((code == err).sum()) for name, err in
              (("cls", CLS), ("loc", LOC), ("both", BOTH), ("dupe", DUPE), ("bkg", BKG))}
    counts["miss"] = int(a.gt_missed.sum())

    ap_lost = _ap_lost_per_image(flat, a, num_gt, base_counted, num_classes)
    return TideResult(
        ap50=ap50,
        main={n: max(_mean_ap(*fixed[n]) - ap50, 0.0) for n in MAIN_ERRORS},
        special={n: _mean_ap(*special[n]) - ap50 for n in SPECIAL_ERRORS},
        per_class=per_class, counts=counts,
        images=_per_image(flat, a, ap_lost))


def _per_image(flat: _Flat, a: _Assignment, ap_lost: np.ndarray) -> list[ImageErrors]:
    """Scatter the per detection / per gt outcome back to input order and split it by image."""
    n_in = int(flat.det_count.sum())
    det_error = np.full(n_in, UNEVALUATED, dtype=np.int8)
    det_error[flat.det_src] = a.code
    det_ignored = np.zeros(n_in, dtype=bool)
    det_ignored[flat.det_src] = a.ignored
    # gt index within its own image, counting ignore boxes, as the caller's arrays do.
    gt_start = np.cumsum(flat.gt_count) - flat.gt_count
    local = a.real - gt_start[flat.gt_image[a.real]]
    det_gt = np.full(n_in, -1, dtype=np.int64)
    det_gt[flat.det_src] = np.where(a.target >= 0, local[np.maximum(a.target, 0)] if local.size else -1, -1)
    gt_missed = np.zeros(flat.gt_label.size, dtype=bool)
    gt_missed[a.real] = a.gt_missed
    d_cuts = np.cumsum(flat.det_count)[:-1]
    g_cuts = np.cumsum(flat.gt_count)[:-1]
    return [ImageErrors(det_error=e, det_ignored=i, det_gt=t, gt_missed=m, ap_lost=float(lost))
            for e, i, t, m, lost in zip(np.split(det_error, d_cuts), np.split(det_ignored, d_cuts),
                                        np.split(det_gt, d_cuts), np.split(gt_missed, g_cuts), ap_lost)]
