"""Visual Genome evaluation: VOC-style AP at IoU 0.5 for each of many classes, as bottom-up-attention's vg_eval.

Per class, the detections are matched to the gt boxes with ``voc_eval``'s rules (IoU with +1 widths, strictly
above 0.5, a second match of a gt box is a false positive, no difficult boxes) and the AP is the area under the
precision envelope (not the 2007 11-point metric: BUTD's ``use_07_metric = False``). Two means are reported:
the mean AP over the classes that have gt boxes in the evaluated images, and the mean weighted by each class's
number of gt boxes (BUTD's "weighted mean AP").

The same functions score attributes: a gt box counts for attribute ``a`` when ``a`` is one of its attributes
(BUTD's ``eval_attributes``); ``attribute_ground_truth`` builds those records from a roidb.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .voc_eval import voc_eval_from_records

# gt boxes of one class: image id -> (n, 4) 0-based [x1, y1, x2, y2].
ClassGroundTruth = dict[object, np.ndarray]
# detections of one class: (image id, score, [x1, y1, x2, y2]) 0-based.
ClassDetections = list[tuple[object, float, list[float]]]


@dataclass
class ClassAP:
    """rec (D,), prec (D,): the curve after each detection; ap; npos: the number of gt boxes."""

    rec: np.ndarray
    prec: np.ndarray
    ap: float
    npos: int


def object_ground_truth(roidb: Sequence[dict], image_ids: Sequence[object], num_classes: int
                        ) -> list[ClassGroundTruth]:
    """gt[c][image id] = (n, 4) boxes of class c (1..num_classes-1) in each image; gt[0] is empty."""
    gt: list[ClassGroundTruth] = [{} for _ in range(num_classes)]
    for entry, image_id in zip(roidb, image_ids):
        for c in np.unique(entry['gt_classes']):
            gt[int(c)][image_id] = entry['boxes'][entry['gt_classes'] == c].reshape(-1, 4)
    return gt


def attribute_ground_truth(roidb: Sequence[dict], image_ids: Sequence[object], num_attributes: int
                           ) -> list[ClassGroundTruth]:
    """gt[a][image id] = (n, 4) boxes having attribute a (1..num_attributes-1, from 'gt_attributes' (G, 16))."""
    gt: list[ClassGroundTruth] = [{} for _ in range(num_attributes)]
    for entry, image_id in zip(roidb, image_ids):
        attrs = np.asarray(entry['gt_attributes']).reshape(len(entry['boxes']), -1)
        for a in np.unique(attrs[attrs > 0]):
            gt[int(a)][image_id] = entry['boxes'][(attrs == a).any(axis=1)].reshape(-1, 4)
    return gt


def detections_of(all_boxes: Sequence[Sequence[np.ndarray | None]], image_ids: Sequence[object]
                  ) -> list[ClassDetections]:
    """``all_boxes[c][i]`` ((n, 5) [x1, y1, x2, y2, score]) -> per class [(image id, score, box)]."""
    out: list[ClassDetections] = []
    for per_image in all_boxes:
        dets: ClassDetections = []
        for image_id, d in zip(image_ids, per_image):
            if d is None or len(d) == 0:
                continue
            d = np.asarray(d, dtype=np.float64)
            dets.extend((image_id, float(row[4]), [float(v) for v in row[:4]]) for row in d)
        out.append(dets)
    return out


def class_ap(gt: ClassGroundTruth, dets: ClassDetections, ovthresh: float = 0.5) -> ClassAP:
    """The AP of one class (area under the precision envelope); only the images with gt or detections matter."""
    npos = int(sum(len(b) for b in gt.values()))
    images = list(dict.fromkeys([*gt.keys(), *(d[0] for d in dets)]))
    recs = {i: [{'name': 'c', 'difficult': 0, 'bbox': [float(v) for v in box]} for box in gt.get(i, ())]
            for i in images}
    if npos == 0:
        return ClassAP(np.zeros(0), np.zeros(0), float('nan'), 0)
    rec, prec, ap = voc_eval_from_records(recs, images, 'c', dets, ovthresh=ovthresh, use_07_metric=False)
    return ClassAP(rec, prec, float(ap), npos)


def mean_aps(aps: Sequence[ClassAP]) -> tuple[float, float]:
    """(mean AP over the classes with gt, mean AP weighted by their number of gt boxes); nan when none has gt."""
    scored = [a for a in aps if a.npos > 0]
    if not scored:
        return float('nan'), float('nan')
    values = np.array([a.ap for a in scored])
    weights = np.array([a.npos for a in scored], dtype=np.float64)
    return float(values.mean()), float(np.average(values, weights=weights))
