"""Non-maximum suppression with the rule of tf-faster-rcnn's GPU kernel, on CPU and CUDA tensors.

Rule: boxes are visited by decreasing score (equal scores: lower index first); a box is
suppressed when its IoU (+1 widths and heights) with an already kept box is > ``thresh``
(strictly). CUDA tensors use torchvision's compiled kernel; CPU tensors use the Cython kernel
in ``_native.pyx``, which stops as soon as ``max_keep`` boxes are kept.
"""
from typing import Optional

import torch
import torchvision
from torch import Tensor

from . import _native

__all__ = ["nms", "nms_sorted"]


def nms(boxes: Tensor, scores: Tensor, thresh: float, *, max_keep: Optional[int] = None) -> Tensor:
    """Greedy NMS.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2`` inclusive pixel boxes, on CPU or CUDA.
        scores: (N,) scores.
        thresh: IoU above which a lower-scoring box is dropped.
        max_keep: return at most this many indices (the first ``max_keep`` of the full result;
            on CPU the scan stops there, which is most of the proposal layer's saving).

    Returns:
        int64 (K,) indices into ``boxes`` of the kept boxes, by decreasing score, on ``boxes.device``.

    Example: boxes ``[[0,0,9,9], [1,0,10,9], [20,20,29,29]]`` with scores ``[0.9, 0.8, 0.7]`` and
    thresh 0.7 keep ``[0, 2]`` (the first two have IoU 90/110 = 0.818).
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"nms: boxes must be (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: scores must be (N,) = ({boxes.shape[0]},), got {tuple(scores.shape)}")
    limit = boxes.shape[0] if max_keep is None else max(int(max_keep), 0)
    if boxes.shape[0] == 0 or limit == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    # A stable sort fixes the order of equal scores (lower index first), as the reference kernel.
    order = torch.sort(scores.detach(), descending=True, stable=True)[1]
    return order[nms_sorted(boxes[order], thresh, max_keep=limit)]


def nms_sorted(boxes: Tensor, thresh: float, *, max_keep: Optional[int] = None) -> Tensor:
    """NMS of boxes (N, 4) already in visiting order (decreasing score, ties resolved).

    Returns int64 positions into ``boxes`` of the kept boxes, increasing. The proposal layer
    sorts once and calls this directly.
    """
    limit = boxes.shape[0] if max_keep is None else max(int(max_keep), 0)
    if boxes.shape[0] == 0 or limit == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    boxes = boxes.detach()
    if boxes.device.type == "cpu":
        return _nms_cpu(boxes, thresh, limit)
    return _nms_torchvision(boxes, thresh)[:limit]


def _nms_cpu(boxes: Tensor, thresh: float, limit: int) -> Tensor:
    boxes32 = boxes.to(torch.float32).contiguous()
    # .numpy() shares the CPU tensor's memory: no copy into the kernel.
    keep = _native.greedy_nms_sorted(boxes32.numpy(), float(thresh), int(limit))
    return torch.from_numpy(keep)


def _nms_torchvision(boxes: Tensor, thresh: float) -> Tensor:
    # torchvision's IoU uses (x2 - x1) widths: shifting x2, y2 by +1 gives the +1 convention.
    sorted_boxes = boxes.to(torch.float32)
    shifted = torch.cat((sorted_boxes[:, :2], sorted_boxes[:, 2:] + 1.0), dim=1)
    # torchvision sorts scores itself, not stably; strictly decreasing surrogate scores make
    # its visiting order exactly ours.
    n = sorted_boxes.shape[0]
    surrogate = torch.arange(n, 0, -1, dtype=torch.float32, device=boxes.device)
    return torchvision.ops.nms(shifted, surrogate, float(thresh))
