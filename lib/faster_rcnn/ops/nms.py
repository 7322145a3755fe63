"""Non-maximum suppression with the rule of tf-faster-rcnn's GPU kernel, on CPU and CUDA tensors.

Rule: boxes are visited by decreasing score (equal scores: lower index first); a box is
suppressed when its IoU (+1 widths and heights) with an already kept box is > ``thresh``
(strictly). CUDA tensors use torchvision's compiled kernel; CPU tensors use the Cython kernel
in ``_native.pyx``, which stops as soon as ``max_keep`` boxes are kept.
"""
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import torch
import torchvision
from torch import Tensor

from . import _native

__all__ = ["nms", "nms_sorted", "nms_sorted_batch"]


def nms(boxes: Tensor, scores: Tensor, thresh: float, *, max_keep: int | None = None) -> Tensor:
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


def nms_sorted(boxes: Tensor, thresh: float, *, max_keep: int | None = None) -> Tensor:
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


def nms_sorted_batch(boxes: Tensor, thresh: float, *, max_keep: int | None = None,
                     limits: Sequence[int] | None = None) -> list[Tensor]:
    """NMS of each image of ``boxes`` (N, K, 4), every row already in visiting order; ``limits[i]``: only the
    first limits[i] boxes of image i take part (default all K).

    Returns N int64 tensors of kept positions into each row, increasing, each at most ``max_keep`` long.
    What does not depend on the image (the +1 shift, the surrogate scores) is prepared once for the batch,
    so the loop over images holds one kernel call each.
    """
    n, k = boxes.shape[0], boxes.shape[1]
    limit = k if max_keep is None else max(int(max_keep), 0)
    counts = [k] * n if limits is None else [int(c) for c in limits]
    empty = boxes.new_zeros((0,), dtype=torch.int64)
    if boxes.device.type == "cpu":
        table = boxes.detach().to(torch.float32).contiguous().numpy()

        def one(i: int) -> Tensor:
            c = counts[i]
            return torch.from_numpy(_native.greedy_nms_sorted(table[i, :c], float(thresh), limit)) \
                if c > 0 and limit > 0 else empty

        # The kernel releases the GIL: the images of a batch run side by side on torch's CPU threads, the
        # calling thread taking the first share rather than waiting idle.
        workers = min(n, torch.get_num_threads())
        if workers > 1:
            shares = [range(w, n, workers) for w in range(workers)]

            def run_share(share: range) -> list[Tensor]:
                return [one(i) for i in share]

            futures = [_cpu_pool(workers - 1).submit(run_share, share) for share in shares[1:]]
            done = {0: [one(i) for i in shares[0]]}
            done.update({w + 1: f.result() for w, f in enumerate(futures)})
            out: list[Tensor] = [empty] * n
            for w, share in enumerate(shares):
                for i, keep in zip(share, done[w]):
                    out[i] = keep
            return out
        return [one(i) for i in range(n)]
    shifted, surrogate = _torchvision_operands(boxes.detach().reshape(n * k, 4))
    shifted = shifted.view(n, k, 4)
    return [torchvision.ops.nms(shifted[i, :c], surrogate[:c], float(thresh))[:limit]
            if c > 0 and limit > 0 else empty for i, c in enumerate(counts)]


@lru_cache(maxsize=4)
def _cpu_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nms")


def _nms_cpu(boxes: Tensor, thresh: float, limit: int) -> Tensor:
    boxes32 = boxes.to(torch.float32).contiguous()
    # .numpy() shares the CPU tensor's memory: no copy into the kernel.
    keep = _native.greedy_nms_sorted(boxes32.numpy(), float(thresh), int(limit))
    return torch.from_numpy(keep)


def _torchvision_operands(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes (K, 4) in visiting order -> (shifted boxes (K, 4), surrogate scores (K,)) for torchvision's NMS."""
    # torchvision's IoU uses (x2 - x1) widths: shifting x2, y2 by +1 gives the +1 convention.
    sorted_boxes = boxes.to(torch.float32)
    shifted = torch.cat((sorted_boxes[:, :2], sorted_boxes[:, 2:] + 1.0), dim=1)
    # torchvision sorts scores itself, not stably; strictly decreasing surrogate scores make
    # its visiting order exactly ours (a prefix of them is still strictly decreasing).
    surrogate = torch.arange(sorted_boxes.shape[0], 0, -1, dtype=torch.float32, device=boxes.device)
    return shifted, surrogate


def _nms_torchvision(boxes: Tensor, thresh: float) -> Tensor:
    shifted, surrogate = _torchvision_operands(boxes)
    return torchvision.ops.nms(shifted, surrogate, float(thresh))
