"""Detections against ground truth inside each image, for all images at once: the (detection, gt) pairs of the
same image, their overlaps, and a greedy matching with any preference order.

The analyses (confusion matrix, AP by size) each define who may match whom and in which order; the loops over
images that this would take in Python become a few numpy passes over the flat pair list here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def same_image_pairs(det_image: np.ndarray, gt_image: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, gt) pair of the same image.

    det_image: (D,) image of each detection; gt_image: (G,) image of each gt, sorted (gts of an image together).
    Returns pair_det (P,) and pair_gt (P,): detection-major, each detection's gts in their order.
    """
    per_image = np.bincount(gt_image, minlength=num_images) if gt_image.size else np.zeros(num_images, np.int64)
    first_gt = np.cumsum(per_image) - per_image
    seg_len = per_image[det_image] if det_image.size else np.zeros(0, np.int64)
    pair_det = np.repeat(np.arange(det_image.size), seg_len)
    seg_start = np.cumsum(seg_len) - seg_len
    offset = np.arange(pair_det.size) - seg_start[pair_det]
    pair_gt = first_gt[det_image[pair_det]] + offset
    return pair_det.astype(np.int64), pair_gt.astype(np.int64)


def inclusive_iou(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """IoU of row-aligned (P, 4) inclusive ``x1 y1 x2 y2`` boxes (widths ``x2 - x1 + 1``) -> (P,).

    The operations are those of the VOC evaluation (voc_eval), in its order, so that an IoU lying exactly on a
    threshold compares the same way as there.
    """
    iw = np.maximum(np.minimum(g[:, 2], d[:, 2]) - np.maximum(g[:, 0], d[:, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(g[:, 3], d[:, 3]) - np.maximum(g[:, 1], d[:, 1]) + 1.0, 0.0)
    inter = iw * ih
    union = ((d[:, 2] - d[:, 0] + 1.0) * (d[:, 3] - d[:, 1] + 1.0)
             + (g[:, 2] - g[:, 0] + 1.0) * (g[:, 3] - g[:, 1] + 1.0) - inter)
    return inter / union


def xywh_overlap(d: np.ndarray, g: np.ndarray, over_detection: np.ndarray | bool = False) -> np.ndarray:
    """COCO's box overlap of row-aligned (P, 4) ``x y w h`` boxes -> (P,), in pycocotools' order of operations.

    over_detection: (P,) bool or one bool, divide by the detection's area instead of the union (COCO's overlap
    with a crowd region).
    """
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    det_area = d[:, 2] * d[:, 3]
    union = np.where(over_detection, det_area, det_area + g[:, 2] * g[:, 3] - inter)
    out = np.zeros(w.shape)
    np.divide(inter, union, out=out, where=(w > 0) & (h > 0) & (union > 0))
    return out


def to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive corners -> (N, 4) COCO ``x y w h`` with this project's ``w = x2 - x1 + 1``."""
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, 2:] = out[:, 2:] - out[:, :2] + 1.0
    return out


def greedy_match(pair_det: np.ndarray, pair_gt: np.ndarray, preference: Sequence[np.ndarray], det_image: np.ndarray,
                 num_dets: int, num_gt: int, reusable: np.ndarray | None = None) -> np.ndarray:
    """Sequential greedy matching: detections in index order (per image), each takes its most preferred
    candidate gt that is still free, computed for all images together.

    pair_det, pair_gt: (P,) the allowed (candidate) pairs. preference: keys of (P,) values, most important
    first, lower preferred (np.lexsort semantics). det_image: (D,) image of each detection.
    reusable: (num_gt,) bool, gts that any number of detections may take (crowd regions); others are free until
    one detection took them.
    Returns (num_dets,) the gt each detection took, -1 for none.

    Why rounds give the sequential answer: a detection only loses candidates (gts taken before it), so the
    first remaining candidate pair of each image (pairs sorted by detection, then preference) is the next match
    that the sequential loop makes there; every earlier detection of that image has no free candidate left and
    stays unmatched. One round makes that match in every image and drops the pairs it made impossible; there
    are as many rounds as matches in the busiest image.
    """
    match = np.full(num_dets, -1, dtype=np.int64)
    if pair_det.size == 0:
        return match
    keys = tuple(reversed([np.asarray(k) for k in preference])) + (pair_det,)
    order = np.lexsort(keys)
    c_det, c_gt = pair_det[order], pair_gt[order]
    taken = np.zeros(num_gt, dtype=bool)
    reuse = np.zeros(num_gt, dtype=bool) if reusable is None else np.asarray(reusable, dtype=bool)
    while c_det.size:
        img = det_image[c_det]
        head = np.ones(c_det.size, dtype=bool)
        head[1:] = img[1:] != img[:-1]
        match[c_det[head]] = c_gt[head]
        taken[c_gt[head]] = True
        keep = (match[c_det] < 0) & (~taken[c_gt] | reuse[c_gt])
        c_det, c_gt = c_det[keep], c_gt[keep]
    return match
