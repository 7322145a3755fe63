"""Ground-truth boxes of a batch as one padded tensor, the form the batched target layers take."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["pad_gt_boxes"]


def pad_gt_boxes(gt_boxes: Sequence[Tensor], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Per-image gt boxes [(G_i, 5)] -> (boxes (N, G, 5) float32 zero-padded, valid (N, G) bool), G = max G_i.

    Built on the host side of the list (its lengths are Python ints), then moved once: the data loader does
    this in its workers (``collate_batch``), so the training step receives the padded pair.
    """
    counts = [int(g.shape[0]) for g in gt_boxes]
    width = max(counts, default=0)
    target = torch.device(device) if device is not None else (gt_boxes[0].device if len(gt_boxes) else None)
    boxes = torch.zeros((len(gt_boxes), width, 5), dtype=torch.float32, device=target)
    for i, g in enumerate(gt_boxes):
        if counts[i]:
            boxes[i, :counts[i]] = g.to(device=target, dtype=torch.float32).reshape(-1, 5)
    valid = torch.arange(width, device=target)[None, :] < torch.tensor(counts, device=target)[:, None]
    return boxes, valid
