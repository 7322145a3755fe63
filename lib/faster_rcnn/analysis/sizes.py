"""AP by object size, with COCO's area ranges, in the dataset's own metric (also for VOC-style datasets).

Ranges (area = ``w * h`` of a box in original pixels, inclusive widths ``x2 - x1 + 1``), as COCOeval's
``areaRng``, whose bounds are inclusive on both sides: a box of exactly 32² or 96² pixels is in both
neighbouring ranges, as in COCOeval.

    all     0 .. 1e10        small   0 .. 32²        medium  32² .. 96²        large   96² .. 1e10

For one range, as COCOeval does: gt boxes outside the range are ignored (like VOC difficult boxes / COCO crowd
regions, which are ignored in every range); a detection that matches an ignored box is left out of the AP
(neither true nor false positive), and so is an unmatched detection whose own area is outside the range.
Everything else is the dataset's metric:

* ``voc07`` / ``voc`` (the VOC evaluation, voc_eval): per class, detections in decreasing score (equal scores in
  image order, then in their order in the image); each is compared with the gt box of its class, ignored ones
  included, of highest IoU (the first on ties); IoU ``> iou`` (strictly) and that box ignored: left out; not
  ignored and not yet matched: true positive; already matched: false positive. Else a false positive (or left
  out, see above). AP: the 11-point AP (``voc07``) or the area under the precision envelope (``voc``) of
  ``voc_ap``. Detections are rounded as the VOC evaluation's result files store them (scores to 3 decimals,
  1-based corners to 1 decimal), so that the 'all' range reproduces test_net's per-class APs exactly.
* ``coco`` (COCOeval at one IoU): per image and class the 100 best detections; each takes, among the boxes of
  its class with IoU ``>= iou`` not taken yet (crowd regions can be taken again; their overlap is the
  intersection over the detection's area), a non-ignored box before an ignored one, then the highest IoU (the
  last such box on ties, as COCOeval's loop); AP: precision at the 101 recalls 0, 0.01, .., 1, averaged.

A class without (non-ignored) gt in a range has no AP there (``None``) and is left out of that range's mean, as
COCOeval's -1; the mean over the others is the range's mAP. APs are on the 0-1 scale of the datasets'
evaluations.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..datasets.voc_eval import voc_ap
from .matching import greedy_match, inclusive_iou, same_image_pairs, to_xywh, xywh_overlap
from .tide import ImageDetections, ImageGroundTruth

__all__ = ['SIZE_RANGES', 'METRICS', 'RangeAP', 'SizeAP', 'size_aps', 'box_areas']

SIZE_RANGES: tuple[tuple[str, float, float], ...] = (
    ('all', 0.0, 1e5 ** 2), ('small', 0.0, 32.0 ** 2), ('medium', 32.0 ** 2, 96.0 ** 2), ('large', 96.0 ** 2, 1e5 ** 2))
METRICS = ('voc07', 'voc', 'coco')
_COCO_RECALLS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)  # COCOeval's recThrs


@dataclass
class RangeAP:
    """One area range: the mean AP over the classes with gt in it (None: no class has), the number of
    non-ignored gt boxes in it, and each class's AP (None without gt in the range)."""
    name: str
    area: tuple[float, float]
    mean_ap: float | None
    num_gt: int
    per_class: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {'area': [float(self.area[0]), float(self.area[1])], 'mean_ap': self.mean_ap, 'num_gt': self.num_gt,
                'per_class': dict(self.per_class)}


@dataclass
class SizeAP:
    metric: str
    iou: float
    ranges: list[RangeAP]

    def to_json(self) -> dict:
        return {'metric': self.metric, 'iou': float(self.iou), 'ranges': {r.name: r.to_json() for r in self.ranges}}

    def range(self, name: str) -> RangeAP:
        return next(r for r in self.ranges if r.name == name)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive corners -> (N,) areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)


@dataclass
class _Flat:
    """Detections sorted by (image, class, descending score; ties in input order) and all boxes in image order.

    det_*: (D,); det_box (D, 4); gt_*: (G,); gt_box (G, 4). Boxes are inclusive corners, float64.
    """
    num_images: int
    det_image: np.ndarray
    det_label: np.ndarray
    det_score: np.ndarray
    det_box: np.ndarray
    gt_image: np.ndarray
    gt_label: np.ndarray
    gt_ignore: np.ndarray
    gt_box: np.ndarray


def _flatten(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], voc_rounding: bool) -> _Flat:
    if len(gt) != len(dets):
        raise ValueError(f'{len(gt)} ground-truth images but {len(dets)} detection images')
    boxes, scores, labels = [], [], []
    for d in dets:
        b = np.asarray(d.boxes).reshape(-1, 4)
        s = np.asarray(d.scores).reshape(-1)
        if voc_rounding:
            # What the comp4 result files keep: '%.3f' of the score, '%.1f' of the 1-based corner (computed in the
            # array's own dtype, as the writer does). For float32 values, x * 10**n is exact in float64, so
            # numpy's round is the correctly rounded decimal that the file holds; the -1 is undone by
            # comparing with 1-based gt boxes (see size_aps).
            s = np.round(s.astype(np.float64), 3)
            b = np.round((b + 1).astype(np.float64), 1)
        boxes.append(np.asarray(b, dtype=np.float64))
        scores.append(np.asarray(s, dtype=np.float64))
        labels.append(np.asarray(d.labels, dtype=np.int64).reshape(-1))
    count = np.array([len(x) for x in labels], dtype=np.int64)
    image = np.repeat(np.arange(len(dets)), count)
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    label, score, box = cat(labels, 0).astype(np.int64), cat(scores, 0), cat(boxes, (0, 4))
    order = np.lexsort((np.arange(label.size), -score, label, image))
    g_lab = [np.asarray(g.labels, dtype=np.int64).reshape(-1) for g in gt]
    g_box = [np.asarray(g.boxes, dtype=np.float64).reshape(-1, 4) + (1.0 if voc_rounding else 0.0) for g in gt]
    return _Flat(num_images=len(gt), det_image=image[order], det_label=label[order], det_score=score[order],
                 det_box=box[order].reshape(-1, 4),
                 gt_image=np.repeat(np.arange(len(gt)), [len(x) for x in g_lab]).astype(np.int64),
                 gt_label=cat(g_lab, 0).astype(np.int64),
                 gt_ignore=cat([np.asarray(g.ignore, dtype=bool).reshape(-1) for g in gt], 0).astype(bool),
                 gt_box=cat(g_box, (0, 4)).reshape(-1, 4))


def _class_pairs(f: _Flat) -> tuple[np.ndarray, np.ndarray]:
    """The (detection, gt) pairs of the same image and class."""
    pair_det, pair_gt = same_image_pairs(f.det_image, f.gt_image, f.num_images)
    same = f.det_label[pair_det] == f.gt_label[pair_gt]
    return pair_det[same], pair_gt[same]


def _voc_outcomes(f: _Flat, iou: float, gt_ignored: Sequence[np.ndarray], det_outside: Sequence[np.ndarray]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per range, (D,) true-positive and (D,) left-out flags of the VOC rule (module docstring)."""
    pair_det, pair_gt = _class_pairs(f)
    n = f.det_label.size
    best = np.full(n, -1, dtype=np.int64)
    over = np.zeros(n)
    if pair_det.size:
        ov = inclusive_iou(f.det_box[pair_det], f.gt_box[pair_gt])
        order = np.lexsort((pair_gt, -ov, pair_det))  # per detection: highest IoU, first gt on ties (argmax)
        dets_sorted = pair_det[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = dets_sorted[1:] != dets_sorted[:-1]
        best[dets_sorted[first]] = pair_gt[order][first]
        over[dets_sorted[first]] = ov[order][first]
    hit = (best >= 0) & (over > iou)
    # The evaluation's order: per class, descending score, equal scores in image order then input order.
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), -f.det_score, f.det_label))] = np.arange(n)
    out = []
    for ignored, outside in zip(gt_ignored, det_outside):
        on_ignored = np.zeros(n, dtype=bool)
        on_ignored[hit] = ignored[best[hit]]
        scoring = np.flatnonzero(hit & ~on_ignored)
        tp = np.zeros(n, dtype=bool)
        if scoring.size:
            by_rank = scoring[np.argsort(rank[scoring])]
            _, first = np.unique(best[by_rank], return_index=True)  # the first detection on each gt box
            tp[by_rank[first]] = True
        left_out = on_ignored | (~hit & outside)
        out.append((tp, left_out))
    return out


def _coco_outcomes(f: _Flat, iou: float, gt_ignored: Sequence[np.ndarray], det_outside: Sequence[np.ndarray],
                   max_dets: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(D,) evaluated flags (the 100 best per image and class) and, per range, (D,) true-positive and left-out
    flags of COCOeval's rule (module docstring)."""
    n = f.det_label.size
    group = f.det_image * (int(f.det_label.max()) + 1 if n else 1) + f.det_label
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if n else np.zeros(0, np.int64)
    rank_in_group = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.zeros(0, np.int64)
    evaluated = rank_in_group < max_dets
    pair_det, pair_gt = _class_pairs(f)
    keep = evaluated[pair_det]
    pair_det, pair_gt = pair_det[keep], pair_gt[keep]
    crowd = f.gt_ignore
    ov = xywh_overlap(to_xywh(f.det_box[pair_det]), to_xywh(f.gt_box[pair_gt]), crowd[pair_gt]) if pair_det.size \
        else np.zeros(0)
    ok = ov >= min(iou, 1 - 1e-10)
    pair_det, pair_gt, ov = pair_det[ok], pair_gt[ok], ov[ok]
    out = []
    for ignored, outside in zip(gt_ignored, det_outside):
        match = greedy_match(pair_det, pair_gt, [ignored[pair_gt], -ov, -pair_gt], f.det_image, n,
                             f.gt_label.size, reusable=crowd)
        matched = match >= 0
        on_ignored = np.zeros(n, dtype=bool)
        on_ignored[matched] = ignored[match[matched]]
        tp = matched & ~on_ignored
        left_out = on_ignored | (~matched & outside)
        out.append((tp & evaluated, left_out | ~evaluated))
    return evaluated, out


def _voc_class_ap(tp_sorted: np.ndarray, num_gt: int, use_07: bool) -> float:
    """voc_eval's AP from (N,) true-positive flags in ranking order (counted detections only)."""
    if tp_sorted.size == 0:
        return 0.0
    tp = np.cumsum(tp_sorted.astype(np.float64))
    fp = np.cumsum((~tp_sorted).astype(np.float64))
    rec = tp / float(num_gt)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(rec, prec, use_07)


def _coco_class_ap(tp_sorted: np.ndarray, num_gt: int) -> float:
    """COCOeval's AP at one IoU from (N,) true-positive flags in ranking order (counted detections only)."""
    tp = np.cumsum(tp_sorted).astype(np.float64)
    fp = np.cumsum(~tp_sorted).astype(np.float64)
    if tp.size == 0:
        return 0.0
    rec = tp / num_gt
    prec = tp / (fp + tp + np.spacing(1))
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    at = np.searchsorted(rec, _COCO_RECALLS, side='left')
    q = np.where(at < prec.size, prec[np.minimum(at, prec.size - 1)], 0.0)
    return float(np.mean(q))


def size_aps(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], classes: Sequence[str],
             metric: str = 'voc07', iou: float = 0.5, ranges: Sequence[tuple[str, float, float]] = SIZE_RANGES,
             max_dets: int = 100) -> SizeAP:
    """AP of each class and the mean, per area range (module docstring), of ``dets`` against ``gt`` (parallel
    per-image sequences; labels in 1..K-1; ``ignore`` boxes: VOC difficult / COCO crowd).

    classes: the K names, background first. metric: 'voc07', 'voc' or 'coco'. iou: the match threshold (VOC:
    ``>``, COCO: ``>=``). max_dets: detections per image and class (COCO only; VOC evaluates all).
    """
    if metric not in METRICS:
        raise ValueError(f'metric {metric!r}: expected one of {METRICS}')
    voc = metric != 'coco'
    f = _flatten(gt, dets, voc_rounding=voc)
    gt_area, det_area = box_areas(f.gt_box), box_areas(f.det_box)
    gt_ignored = [f.gt_ignore | (gt_area < lo) | (gt_area > hi) for _, lo, hi in ranges]
    det_outside = [(det_area < lo) | (det_area > hi) for _, lo, hi in ranges]
    if voc:
        outcomes = _voc_outcomes(f, iou, gt_ignored, det_outside)
    else:
        _, outcomes = _coco_outcomes(f, iou, gt_ignored, det_outside, max_dets)
    # Ranking per class: descending score, equal scores in image order, then in the image's order.
    n = f.det_label.size
    ranking = np.lexsort((np.arange(n), -f.det_score, f.det_label))
    ranked_label = f.det_label[ranking]
    result = []
    for (name, lo, hi), ignored, (tp, left_out) in zip(ranges, gt_ignored, outcomes):
        per_class: dict[str, float | None] = {}
        counted_tp = tp[ranking]
        counted = ~left_out[ranking]
        num_gt = np.bincount(f.gt_label[~ignored], minlength=len(classes))
        for k in range(1, len(classes)):
            if num_gt[k] == 0:
                per_class[classes[k]] = None
                continue
            flags = counted_tp[(ranked_label == k) & counted]
            per_class[classes[k]] = (_coco_class_ap(flags, int(num_gt[k])) if not voc
                                     else _voc_class_ap(flags, int(num_gt[k]), metric == 'voc07'))
        values = [v for v in per_class.values() if v is not None]
        result.append(RangeAP(name=name, area=(float(lo), float(hi)),
                              mean_ap=float(np.mean(values)) if values else None,
                              num_gt=int(num_gt[1:].sum()), per_class=per_class))
    return SizeAP(metric=metric, iou=float(iou), ranges=result)
