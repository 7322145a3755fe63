"""The confusion matrix of a detector's classes, background included, at one score threshold and IoU.

``counts[g, p]`` (K x K, K = classes with the background, index 0): how many detections of predicted class
``p`` were assigned to a ground-truth box of class ``g``. Index 0 is not a class but the "nothing" of each side:

* row 0 ("background"): detections assigned to no gt box (false positives: on background, duplicates, or
  overlapping no free gt enough), by predicted class;
* column 0 ("missed"): gt boxes no detection was assigned to, by gt class;
* ``counts[0, 0]`` is always 0. The diagonal (1..K-1) holds the correct detections.

Assignment, per image (images are independent):

1. Only detections with ``score >= score_thresh`` take part (the ``>=`` of ``Detections.above``), in order of
   decreasing score (equal scores keep their input order).
2. In that order each detection takes one box among the image's gt boxes *and* ignore boxes (VOC difficult,
   COCO crowd) whose IoU with it is ``>= iou``, and not yet taken by an earlier detection (ignore boxes can be
   taken any number of times, as COCO's crowd regions). Its preference, most important first:
   a. a box of its own class before a box of another class (so that a correct detection is never counted as a
      confusion because it also overlaps a neighbour of another class a little more);
   b. a gt box before an ignore box;
   c. the higher IoU; d. on equal IoU, the box listed first.
3. A detection that took a gt box of class g counts in ``counts[g, p]``; one that took an ignore box is not
   counted at all (an object the dataset does not score); one that took nothing counts in ``counts[0, p]``.
4. Every gt box (not an ignore box) that no detection took counts in ``counts[g, 0]``.

So each detection above the threshold is counted at most once and each gt box exactly once: the sum of row g
is the number of gt boxes of class g, the sum of column p (p >= 1) the number of counted detections of class p.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .matching import greedy_match, inclusive_iou, same_image_pairs
from .tide import ImageDetections, ImageGroundTruth

__all__ = ['ConfusionMatrix', 'confusion_matrix', 'top_confusions', 'write_confusion_csv', 'plot_confusion']


@dataclass
class ConfusionMatrix:
    """counts: (K, K) int64 [gt class, predicted class], index 0 = background row / missed column (module doc).
    classes: the K class names, '__background__' first."""
    counts: np.ndarray
    classes: tuple[str, ...]
    score_thresh: float
    iou: float

    def row_labels(self) -> list[str]:
        """Display order of the rows: the classes, then 'background'."""
        return list(self.classes[1:]) + ['background']

    def col_labels(self) -> list[str]:
        """Display order of the columns: the classes, then 'missed'."""
        return list(self.classes[1:]) + ['missed']

    def display(self) -> np.ndarray:
        """(K, K) the counts in display order (background row and missed column last)."""
        order = list(range(1, len(self.classes))) + [0]
        return self.counts[np.ix_(order, order)]

    def to_json(self) -> dict:
        return {'score_thresh': float(self.score_thresh), 'iou': float(self.iou), 'rows': self.row_labels(),
                'columns': self.col_labels(), 'counts': self.display().tolist()}


def _flatten(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], score_thresh: float):
    """Detections above the threshold sorted by (image, descending score), and all gt boxes in image order.

    Returns det_image (D,), det_label (D,), det_box (D, 4) and gt_image (G,), gt_label (G,), gt_ignore (G,),
    gt_box (G, 4), all boxes float64 inclusive corners.
    """
    d_img, d_lab, d_sc, d_box = [], [], [], []
    for i, d in enumerate(dets):
        scores = np.asarray(d.scores, dtype=np.float64).reshape(-1)
        keep = np.flatnonzero(scores >= score_thresh)
        keep = keep[np.argsort(-scores[keep], kind='stable')]
        d_img.append(np.full(keep.size, i, np.int64))
        d_lab.append(np.asarray(d.labels, dtype=np.int64).reshape(-1)[keep])
        d_sc.append(scores[keep])
        d_box.append(np.asarray(d.boxes, dtype=np.float64).reshape(-1, 4)[keep])
    g_img = [np.full(len(np.asarray(g.labels).reshape(-1)), i, np.int64) for i, g in enumerate(gt)]

    def cat(parts, shape):
        return np.concatenate(parts) if parts else np.zeros(shape)

    return (cat(d_img, 0).astype(np.int64), cat(d_lab, 0).astype(np.int64), cat(d_box, (0, 4)),
            cat(g_img, 0).astype(np.int64),
            cat([np.asarray(g.labels, np.int64).reshape(-1) for g in gt], 0).astype(np.int64),
            cat([np.asarray(g.ignore, bool).reshape(-1) for g in gt], 0).astype(bool),
            cat([np.asarray(g.boxes, np.float64).reshape(-1, 4) for g in gt], (0, 4)))


def confusion_matrix(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], classes: Sequence[str],
                     score_thresh: float = 0.5, iou: float = 0.5) -> ConfusionMatrix:
    """The confusion matrix of ``dets`` against ``gt`` (parallel per-image sequences; labels in 1..K-1).

    classes: the K names, background first. The assignment is the module docstring's.
    """
    if len(gt) != len(dets):
        raise ValueError(f'{len(gt)} ground-truth images but {len(dets)} detection images')
    k = len(classes)
    d_img, d_lab, d_box, g_img, g_lab, g_ign, g_box = _flatten(gt, dets, score_thresh)
    pair_det, pair_gt = same_image_pairs(d_img, g_img, len(gt))
    overlap = inclusive_iou(d_box[pair_det], g_box[pair_gt]) if pair_det.size else np.zeros(0)
    ok = overlap >= iou
    pair_det, pair_gt, overlap = pair_det[ok], pair_gt[ok], overlap[ok]
    other_class = d_lab[pair_det] != g_lab[pair_gt]
    match = greedy_match(pair_det, pair_gt, [other_class, g_ign[pair_gt], -overlap, pair_gt], d_img,
                         d_lab.size, g_lab.size, reusable=g_ign)

    counts = np.zeros((k, k), dtype=np.int64)
    took_gt = match >= 0
    took_ignore = np.zeros_like(took_gt)
    took_ignore[took_gt] = g_ign[match[took_gt]]
    real_match = took_gt & ~took_ignore
    np.add.at(counts, (g_lab[match[real_match]], d_lab[real_match]), 1)
    np.add.at(counts, (np.zeros(int((~took_gt).sum()), np.int64), d_lab[~took_gt]), 1)
    found = np.zeros(g_lab.size, dtype=bool)
    found[match[real_match]] = True
    missed = ~found & ~g_ign
    np.add.at(counts, (g_lab[missed], np.zeros(int(missed.sum()), np.int64)), 1)
    return ConfusionMatrix(counts=counts, classes=tuple(classes), score_thresh=float(score_thresh), iou=float(iou))


def top_confusions(matrix: ConfusionMatrix, n: int = 5) -> list[tuple[str, str, int]]:
    """The ``n`` largest off-diagonal counts between two classes (background and missed left out), as
    (gt class, predicted class, count), largest first; equal counts in class order; zero counts left out."""
    c = matrix.counts[1:, 1:].copy()
    np.fill_diagonal(c, 0)
    flat = np.argsort(-c.reshape(-1), kind='stable')[:n]
    names = matrix.classes[1:]
    size = c.shape[1]
    return [(names[f // size], names[f % size], int(c.reshape(-1)[f])) for f in flat if c.reshape(-1)[f] > 0]


def write_confusion_csv(path: str, matrix: ConfusionMatrix) -> None:
    """``path``: a header row ``gt \\ predicted,<classes>,missed`` and one row per gt class, then 'background'."""
    import csv
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(['gt \\ predicted'] + matrix.col_labels())
        for label, row in zip(matrix.row_labels(), matrix.display()):
            w.writerow([label] + [int(v) for v in row])


def plot_confusion(path: str, matrix: ConfusionMatrix, normalize: bool = False) -> None:
    """Draw the matrix to ``path`` (PNG) with each non-zero cell's count written in it.

    normalize: colour by the fraction of each row (each gt class's boxes, or all false positives) instead of the
    raw count, so that rare classes show their confusions as clearly as common ones; the cells then also show
    the percentage.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shown = matrix.display().astype(np.float64)
    rows, cols = matrix.row_labels(), matrix.col_labels()
    sums = shown.sum(axis=1, keepdims=True)
    colour = np.divide(shown, sums, out=np.zeros_like(shown), where=sums > 0) if normalize else shown
    n = len(rows)
    side = min(max(4.0, 0.45 * n + 2.0), 40.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=100)
    im = ax.imshow(colour, cmap='Blues', vmin=0, vmax=1 if normalize else max(1.0, float(colour.max())))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='fraction of the row' if normalize else 'count')
    font = max(4.0, min(10.0, 120.0 / n))
    threshold = (1.0 if normalize else max(1.0, float(colour.max()))) * 0.6
    for r in range(n):
        for c in range(n):
            if shown[r, c] == 0:
                continue
            text = f'{int(shown[r, c])}' + (f'\n{100 * colour[r, c]:.0f}%' if normalize else '')
            ax.text(c, r, text, ha='center', va='center', fontsize=font,
                    color='white' if colour[r, c] > threshold else 'black')
    ax.set_xticks(range(n))
    ax.set_xticklabels(cols, rotation=90 if n > 6 else 45, ha='right' if n <= 6 else 'center', fontsize=font + 1)
    ax.set_yticks(range(n))
    ax.set_yticklabels(rows, fontsize=font + 1)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('ground-truth class')
    ax.set_title(f'confusion at score >= {matrix.score_thresh:g}, IoU >= {matrix.iou:g}')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
