"""Attribute mAP, as BUTD evaluates its attribute head: VOC-style AP per attribute, at detections and at gt boxes.

At detections: for attribute a, every detection of an image is a candidate scored by its probability of a; the
gt boxes that have a are the positives. Candidates are visited by decreasing score; one whose best IoU with an
unmatched positive of its image is > 0.5 is a true positive (that gt is then matched), any other a false
positive. Difficult gt boxes are ignored (a detection matching one counts neither way).

At gt boxes (BUTD's test on the gt rois): every gt box is scored for every attribute; the AP of attribute a ranks
all gt boxes by their probability of a, the boxes having a being the positives.

Both give the AP of every attribute that some (non-difficult) gt box has (NaN for the others, left out of the
means), their mean and the mean weighted by the number of gt boxes having each attribute. AP is the area under
the precision envelope (``voc_ap``, not the 07 metric).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .voc_eval import voc_ap

__all__ = ['AttributeImage', 'AttributeAP', 'attribute_ap_at_detections', 'attribute_ap_at_gt']


@dataclass
class AttributeImage:
    """One image's gt and what the network gave on it.

    gt_boxes: (G, 4) 0-based inclusive; gt_attributes: (G, L) int attribute indices 1..A, 0-padded;
    gt_hard: (G,) bool (ignored); det_boxes: (D, 4); det_attr_prob: (D, A + 1); gt_attr_prob: (G, A + 1) the
    attribute probabilities with the gt boxes as rois (None: not measured).
    """

    gt_boxes: np.ndarray
    gt_attributes: np.ndarray
    gt_hard: np.ndarray
    det_boxes: np.ndarray
    det_attr_prob: np.ndarray
    gt_attr_prob: np.ndarray | None = None


@dataclass
class AttributeAP:
    """Per attribute name its AP (NaN: no gt has it), the mean over attributes with gt, the gt-weighted mean."""

    per_attribute: dict[str, float]
    mean_ap: float
    weighted_ap: float

    def summary(self) -> dict:
        return {'mean_ap': self.mean_ap, 'weighted_ap': self.weighted_ap,
                'per_attribute': {k: (None if np.isnan(v) else v) for k, v in self.per_attribute.items()}}


def _has(gt_attributes: np.ndarray, a: int) -> np.ndarray:
    """(G,) bool: the gt boxes that have attribute ``a``."""
    labels = np.asarray(gt_attributes)
    return (labels == a).any(axis=1) if labels.ndim == 2 else labels == a


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with boxes (G, 4), VOC's +1 pixel convention."""
    iw = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1.0, 0.0)
    inter = iw * ih
    area = lambda b: (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def _result(aps: list[float], counts: list[int], names: Sequence[str]) -> AttributeAP:
    ap = np.array(aps, np.float64)
    n = np.array(counts, np.float64)
    have = n > 0
    mean = float(ap[have].mean()) if have.any() else float('nan')
    weighted = float((ap[have] * n[have]).sum() / n[have].sum()) if have.any() else float('nan')
    return AttributeAP({names[a]: float(ap[a - 1]) for a in range(1, len(names))}, mean, weighted)


def _ap_of_ranking(tp: np.ndarray, fp: np.ndarray, positives: int) -> float:
    """AP of candidates already in decreasing score order, with ``positives`` gt to find."""
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / positives
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(rec, prec, use_07_metric=False)


def attribute_ap_at_detections(images: Sequence[AttributeImage], names: Sequence[str],
                               iou_thresh: float = 0.5) -> AttributeAP:
    """The AP of each attribute over the detections of ``images`` (module docstring); ``names``: the attribute
    names, '__no_attribute__' first (slot 0 is not evaluated)."""
    aps, counts = [], []
    for a in range(1, len(names)):
        scores, owners, rows = [], [], []
        positives = 0
        for k, im in enumerate(images):
            positives += int((_has(im.gt_attributes, a) & ~np.asarray(im.gt_hard, bool)).sum())
            d = len(im.det_boxes)
            scores.append(np.asarray(im.det_attr_prob, np.float64).reshape(d, -1)[:, a] if d else np.zeros(0))
            owners.append(np.full(d, k))
            rows.append(np.arange(d))
        counts.append(positives)
        if positives == 0:
            aps.append(float('nan'))
            continue
        score, owner, row = np.concatenate(scores), np.concatenate(owners), np.concatenate(rows)
        order = np.argsort(-score, kind='stable')
        matched = [np.zeros(len(im.gt_boxes), bool) for im in images]
        tp, fp = np.zeros(len(order)), np.zeros(len(order))
        for i, j in enumerate(order):
            im = images[owner[j]]
            relevant = _has(im.gt_attributes, a)
            if not relevant.any():
                fp[i] = 1
                continue
            overlaps = np.where(relevant, _iou(np.asarray(im.det_boxes[row[j]], np.float64),
                                               np.asarray(im.gt_boxes, np.float64)), -np.inf)
            g = int(np.argmax(overlaps))
            if overlaps[g] > iou_thresh:
                if im.gt_hard[g]:
                    continue
                if not matched[owner[j]][g]:
                    matched[owner[j]][g] = True
                    tp[i] = 1
                else:
                    fp[i] = 1
            else:
                fp[i] = 1
        aps.append(_ap_of_ranking(tp, fp, positives))
    return _result(aps, counts, names)


def attribute_ap_at_gt(images: Sequence[AttributeImage], names: Sequence[str]) -> AttributeAP:
    """The AP of each attribute over the (non-difficult) gt boxes scored as rois (module docstring)."""
    kept = [~np.asarray(im.gt_hard, bool) for im in images]
    probs = np.concatenate([np.asarray(im.gt_attr_prob, np.float64)[k] for im, k in zip(images, kept)])
    labels = np.concatenate([np.asarray(im.gt_attributes)[k] for im, k in zip(images, kept)])
    aps, counts = [], []
    for a in range(1, len(names)):
        positive = _has(labels, a)
        counts.append(int(positive.sum()))
        if not positive.any():
            aps.append(float('nan'))
            continue
        order = np.argsort(-probs[:, a], kind='stable')
        aps.append(_ap_of_ranking(positive[order].astype(np.float64), (~positive[order]).astype(np.float64),
                                  int(positive.sum())))
    return _result(aps, counts, names)
