"""``RegionFeatures``: one image's regions and their pooled features, as ``Detector.features`` returns them.

Three ways to choose the regions (``select``):

- ``'butd'``: bottom-up-attention's ``generate_tsv.py`` (``inference.butd_select``): the RPN proposals themselves
  (not the regressed boxes), kept by per-class NMS 0.3, ``max_conf >= conf_thresh`` and the count clamped to
  [min_boxes, max_boxes]; the features are those of the test pass (the tail's output of each proposal).
- ``'detections'``: what ``Detector.__call__`` returns (regressed, per-class NMS, score threshold, cap), with
  their features pooled again on those boxes; ``objects`` / ``object_scores`` are the detections' labels and
  scores.
- given boxes (``boxes=``): the features of exactly those boxes, in their order.

Labels keep the codebase's convention: ``objects`` are class indices 1..K-1 (``classes[objects[i]]`` names
them), ``attributes`` 1..A (``attributes[0]`` is "no attribute"); writers for formats that count from 0 without
the background (LXMERT) subtract 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..nets.amp import autocast
from ..nets.network import FasterRCNN
from ..nets.postprocess import HeadOutputs, postprocess
from .butd_select import butd_keep, max_conf_after_nms

__all__ = ['RegionFeatures', 'Selection', 'SELECT_MODES', 'BUTD_NMS', 'regions_of_batch']

SELECT_MODES = ('butd', 'detections')
BUTD_NMS = 0.3  # generate_tsv.py's cfg.TEST.NMS


@dataclass(frozen=True)
class RegionFeatures:
    """One image's regions.

    boxes: (N, 4) float32 x1, y1, x2, y2 in the input image's pixels (inclusive, as ``Detections``).
    features: (N, D) float32, the network tail's output for each box (VGG16 fc7 4096, ResNets' pooled res5 2048).
    objects: (N,) int64 class index 1..K-1 of the most probable class other than the background;
    object_scores: (N,) float32 its probability (in 'detections' mode: the detection's label and score).
    cls_prob: (N, K) float32 class probabilities, background in column 0.
    attributes / attribute_scores: (N,) int64 1..A and float32, the most probable attribute other than "no
    attribute", where the model has an attribute head; None otherwise. attr_prob: (N, A + 1) float32 or None.
    image_size: the input image's (h, w).
    """

    boxes: np.ndarray
    features: np.ndarray
    objects: np.ndarray
    object_scores: np.ndarray
    cls_prob: np.ndarray
    image_size: tuple[int, int]
    attributes: np.ndarray | None = None
    attribute_scores: np.ndarray | None = None
    attr_prob: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_boxes(self) -> int:
        return len(self)


@dataclass(frozen=True)
class Selection:
    """How ``regions_of_batch`` picks the regions when no boxes are given."""

    mode: str = 'butd'
    min_boxes: int = 10
    max_boxes: int = 100
    conf_thresh: float = 0.2


def _argmax_without_first(prob: Tensor) -> tuple[Tensor, Tensor]:
    """(N, K) -> index 1..K-1 of the largest of columns 1.. and its value (N,)."""
    if prob.shape[0] == 0:
        return prob.new_zeros(0, dtype=torch.int64), prob.new_zeros(0)
    values, idx = prob[:, 1:].max(dim=1)
    return idx + 1, values


def _regions(boxes: Tensor, out: HeadOutputs, rows: Tensor | slice, size: tuple[int, int],
             labels: tuple[Tensor, Tensor] | None = None) -> RegionFeatures:
    """A ``RegionFeatures`` from one image's rows of the head outputs; ``boxes`` (N, 4) in input pixels."""
    prob = out.cls_prob[rows].float()
    objects, scores = labels if labels is not None else _argmax_without_first(prob)
    attr = getattr(out, 'attr_prob', None)
    attributes = attribute_scores = attr_prob = None
    if attr is not None:
        attr_rows = attr[rows].float()
        a, s = _argmax_without_first(attr_rows)
        attributes, attribute_scores, attr_prob = a.cpu().numpy(), s.cpu().numpy(), attr_rows.cpu().numpy()
    assert out.features is not None
    return RegionFeatures(boxes.float().cpu().numpy(), out.features[rows].float().cpu().numpy(),
                          objects.long().cpu().numpy(), scores.float().cpu().numpy(), prob.cpu().numpy(),
                          (int(size[0]), int(size[1])), attributes, attribute_scores, attr_prob)


def _counts(rois: Tensor, n: int) -> list[int]:
    return [rois.shape[0]] if n == 1 else torch.bincount(rois[:, 0].long(), minlength=n).tolist()


def _given_boxes(model: FasterRCNN, data: Tensor, im_info: Tensor, boxes: Sequence[Tensor],
                 sizes: Sequence[tuple[int, int]], amp: str,
                 labels: Sequence[tuple[Tensor, Tensor]] | None = None) -> list[RegionFeatures]:
    """The regions of given boxes (one (N_i, 4) float32 tensor in input pixels per image)."""
    scales = im_info[:, 2].tolist()
    parts = []
    for i, b in enumerate(boxes):
        b = b.to(data.device, torch.float32)
        index = torch.full((b.shape[0], 1), float(i), device=data.device)
        parts.append(torch.cat((index, b * scales[i]), 1))
    rois = torch.cat(parts, 0)
    out = model.box_features(data, im_info, rois, amp=amp)
    result, start = [], 0
    for i, b in enumerate(boxes):
        rows = slice(start, start + b.shape[0])
        start += b.shape[0]
        result.append(_regions(b, out, rows, sizes[i], labels[i] if labels is not None else None))
    return result


@torch.no_grad()
def regions_of_batch(model: FasterRCNN, data: Tensor, im_info: Tensor, sizes: Sequence[tuple[int, int]],
                     selection: Selection, boxes: Sequence[Tensor] | None = None,
                     amp: str = '') -> list[RegionFeatures]:
    """The regions of each image of a padded test batch (``data`` (N, 3, H, W), ``im_info`` (N, 3)) on the model's
    device; ``sizes`` the original (h, w); ``boxes``: given boxes per image (input pixels), else ``selection``."""
    if boxes is not None:
        return _given_boxes(model, data, im_info, boxes, sizes, amp)
    with autocast(data.device, amp, 'TEST.AMP'):
        out = model(data, im_info)
    if selection.mode == 'detections':
        dets = postprocess(out, im_info, sizes, model.settings.detection)
        return _given_boxes(model, data, im_info, [d.boxes for d in dets], sizes, amp,
                            labels=[(d.labels, d.scores) for d in dets])
    n = data.shape[0]
    scales = im_info[:, 2].tolist()
    result, start = [], 0
    for i, count in enumerate(_counts(out.rois, n)):
        rows = slice(start, start + count)
        start += count
        # generate_tsv.py: the proposals in original pixels (float32 rois / scale).
        proposals = out.rois[rows, 1:5].float() / scales[i]
        max_conf = max_conf_after_nms(proposals, out.cls_prob[rows].float(), BUTD_NMS)
        keep = butd_keep(max_conf, selection.conf_thresh, selection.min_boxes, selection.max_boxes)
        sub = HeadOutputs(out.rois[rows][keep], out.cls_prob[rows][keep], out.bbox_pred[rows][keep],
                          out.features[rows][keep] if out.features is not None else None,
                          out.attr_prob[rows][keep] if out.attr_prob is not None else None)
        result.append(_regions(proposals[keep], sub, slice(None), sizes[i]))
    return result
