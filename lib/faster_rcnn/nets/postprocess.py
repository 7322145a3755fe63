"""From the network's test outputs to detections: box decoding, clipping, per-class NMS and the per-image cap.

This is the one place that turns ``FasterRCNN``'s test outputs into detections; the tester, the TensorBoard
summaries, the demo and ``faster_rcnn.Detector`` all come through ``postprocess`` (the exported graphs compute
the same steps in their own operators, ``faster_rcnn.export.graph``).

tf-faster-rcnn's rules (its ``test_net``): the rois are mapped back to the original image (divided by the
scale), the class-specific deltas decoded onto them (``TEST.BBOX_REG``; else every class gets the roi itself)
and clipped to the original image; a (roi, class) pair is a candidate when its probability is > the score
threshold; NMS runs per class; at most ``max_per_image`` detections remain, all ties with the last one kept.

Worked example (K = 3 classes, score_thresh 0.0, nms 0.3): two rois whose boxes overlap by IoU 0.5 in
every class, with class probabilities ``[[0.1, 0.7, 0.2], [0.2, 0.1, 0.7]]``, give four candidates; class 1
keeps roi 0 (0.7) and suppresses roi 1 (0.1), class 2 keeps roi 1 (0.7) and suppresses roi 0 (0.2): labels
``[1, 2]``, scores ``[0.7, 0.7]``. With rois that do not overlap all four remain.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..boxes import bbox_transform_inv, clip_boxes
from ..ops import nms
from ..settings import DetectionSettings

__all__ = ['HeadOutputs', 'Detections', 'decode_boxes', 'select_detections', 'postprocess', 'split_by_class',
           'top_attributes']


class HeadOutputs(NamedTuple):
    """What ``FasterRCNN`` returns at test time for a batch of N images."""

    rois: Tensor  # (R, 5) [image index, x1, y1, x2, y2] in network-input pixels, the rois of image 0 first
    cls_prob: Tensor  # (R, K) class probabilities, background in column 0
    bbox_pred: Tensor  # (R, 4K) class-specific deltas, de-normalised (x stds + means): ready to decode
    features: Tensor | None = None  # (R, D) fp32 the tail's output (pooled feature) of each roi
    attr_prob: Tensor | None = None  # (R, A + 1) fp32 attribute probabilities ("no attribute" first), None without


class Detections(NamedTuple):
    """One image's detections, on the model's device; ordered by class, then by decreasing score."""

    boxes: Tensor  # (D, 4) float32 x1, y1, x2, y2 in original-image pixels (0-based, inclusive)
    scores: Tensor  # (D,) float32
    labels: Tensor  # (D,) int64 class indices 1..K-1 (0, the background, never appears)
    attr_prob: Tensor | None = None  # (D, A + 1) the attribute probabilities of the roi each box comes from


def decode_boxes(rois: Tensor, bbox_pred: Tensor, scale: float, size: tuple[int, int], num_classes: int,
                 bbox_reg: bool = True) -> Tensor:
    """Class-specific boxes (R, 4K) in the original image of one image's rois (R, 5) and deltas (R, 4K).

    ``scale``: the image's resize factor; ``size``: its original (H, W), the clipping bounds.
    """
    boxes = rois[:, 1:5].float() / scale
    if not bbox_reg:
        return boxes.repeat(1, num_classes)
    return clip_boxes(bbox_transform_inv(boxes, bbox_pred.float()), size)


def select_detections(scores: Tensor, boxes: Tensor, settings: DetectionSettings,
                      attr_prob: Tensor | None = None) -> Detections:
    """Per-class NMS and the per-image cap of one image.

    Args:
        scores: (R, K) class probabilities; boxes: (R, 4K) class-specific boxes; attr_prob: (R, A + 1) attribute
            probabilities, optional (a detection gets those of the roi it was regressed from).
    Candidates are the (roi, class >= 1) pairs scoring > ``settings.score_thresh``; within a class they are
    visited by decreasing score, equal scores lower roi first (they come out of ``nonzero`` row-major).
    """
    num_classes = scores.shape[1]
    cand = scores[:, 1:] > settings.score_thresh
    rows, cols = cand.nonzero(as_tuple=True)
    labels = cols + 1
    cls_boxes = boxes.view(boxes.shape[0], num_classes, 4)[rows, labels]
    cls_scores = scores[rows, labels]
    keep_parts = []
    for j in range(1, num_classes):
        idx = (labels == j).nonzero(as_tuple=True)[0]
        if idx.numel():
            keep_parts.append(idx[nms(cls_boxes[idx], cls_scores[idx], settings.nms)])
    keep = torch.cat(keep_parts) if keep_parts else rows.new_zeros(0)
    kept_scores = cls_scores[keep]
    cap = int(settings.max_per_image)
    if cap > 0 and keep.numel() > cap:
        image_thresh = torch.topk(kept_scores, cap).values[-1]
        keep = keep[kept_scores >= image_thresh]
    return Detections(cls_boxes[keep], cls_scores[keep], labels[keep],
                      None if attr_prob is None else attr_prob[rows[keep]])


def postprocess(outputs: HeadOutputs, im_info: Tensor, sizes: Sequence[tuple[int, int]],
                settings: DetectionSettings) -> list[Detections]:
    """The detections of each image of a batch.

    Args:
        outputs: the network's test outputs for N images.
        im_info: (N, 3) rows (h, w, scale) of the network input.
        sizes: the original (H_i, W_i) of each image.
    """
    rois, cls_prob, bbox_pred = outputs.rois, outputs.cls_prob.float(), outputs.bbox_pred.float()
    n = im_info.shape[0]
    num_classes = cls_prob.shape[1]
    # One host read per batch: how many rois each image has, and the scales.
    counts = [rois.shape[0]] if n == 1 else torch.bincount(rois[:, 0].long(), minlength=n).tolist()
    scales = im_info[:, 2].tolist()
    attr_parts = [None] * n if outputs.attr_prob is None else outputs.attr_prob.float().split(counts)
    out = []
    for i, (r, p, b) in enumerate(zip(rois.split(counts), cls_prob.split(counts), bbox_pred.split(counts))):
        boxes = decode_boxes(r, b, scales[i], sizes[i], num_classes, settings.bbox_reg)
        out.append(select_detections(p, boxes, settings, attr_parts[i]))
    return out


def top_attributes(attr_prob: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """The ``k`` most probable attributes of each box, "no attribute" (slot 0) excluded.

    attr_prob: (D, A + 1) -> (indices (D, k') int64 in 1..A, probabilities (D, k') float32), k' = min(k, A),
    by decreasing probability.
    """
    values, indices = attr_prob[:, 1:].float().topk(min(k, attr_prob.shape[1] - 1), dim=1)
    return indices + 1, values


def split_by_class(dets: Detections, num_classes: int) -> list[np.ndarray]:
    """tf-faster-rcnn's per-class layout of one image: K float32 arrays (n_k, 5) ``[x1, y1, x2, y2, score]``,
    entry 0 (background) empty."""
    stacked = torch.cat([dets.boxes, dets.scores[:, None]], dim=1).cpu().numpy().astype(np.float32)
    labels = dets.labels.cpu().numpy()
    out = [np.zeros((0, 5), dtype=np.float32)]
    for j in range(1, num_classes):
        out.append(stacked[labels == j])
    return out
