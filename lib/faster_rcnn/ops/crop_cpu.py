"""Bilinear RoI crops with an optional fused k x k max-pool, on CPU float32 tensors (Cython kernels).

``faster_rcnn.layers.roi_pool`` computes TensorFlow's sample geometry, the four neighbour rows and
weights of every sample, and hands them here for CPU float32 features. One pass gathers, blends,
max-pools and writes the NCHW result, where tensor code would write the full-size crop, pool it and
copy it again for the tail's flatten. The kernels release the GIL; the channels are split across
``torch.get_num_threads()`` Python threads, so every thread writes its own slice and the result is
the same for any thread count.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _crop  # type: ignore[attr-defined]  # compiled extension: mypy cannot see inside the .so

__all__ = ["crop_pool_cpu"]

# Below this many channels per thread a thread costs more than it saves.
_MIN_CHANNELS_PER_THREAD = 16

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _reset_pool_after_fork() -> None:
    # A forked child (a data-loader worker) inherits the executor object but not its threads.
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=size, thread_name_prefix="crop_cpu"), size
        return _pool


def _over_channels(channels: int, run: Callable[[int, int], None]) -> None:
    """Calls ``run(c0, c1)`` on disjoint channel slices covering ``[0, channels)``, in parallel."""
    parts = max(1, min(torch.get_num_threads(), channels // _MIN_CHANNELS_PER_THREAD))
    bounds = [channels * i // parts for i in range(parts + 1)]
    if parts == 1:
        run(0, channels)
        return
    futures = [_executor(parts).submit(run, bounds[i], bounds[i + 1]) for i in range(parts)]
    for f in futures:
        f.result()  # re-raises a kernel error here


class _CropPool(torch.autograd.Function):
    """Autograd wrapper: gradients flow to the feature table only."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor, weights: Tensor, k: int) -> Tensor:
        r, s = rows.shape[0], rows.shape[1]
        c = table.shape[1]
        p = s // k
        out = torch.empty((r, c, p, p), dtype=torch.float32)
        # The window positions of the maxima are only kept when a gradient will need them.
        argmax = torch.empty((r, p, p, c), dtype=torch.uint8) if k > 1 and ctx.needs_input_grad[0] else None
        t_np, r_np, w_np, o_np = table.numpy(), rows.numpy(), weights.numpy(), out.numpy()
        a_np = argmax.numpy() if argmax is not None else None
        _over_channels(c, lambda c0, c1: _crop.crop_pool_forward(t_np, r_np, w_np, k, o_np, a_np, c0, c1))
        ctx.save_for_backward(rows, weights, argmax if argmax is not None else torch.empty(0, dtype=torch.uint8))
        ctx.k = k
        ctx.table_shape = table.shape
        return out

    @staticmethod
    @once_differentiable  # a second derivative would silently be zero: make it an error instead
    def backward(ctx, grad_out: Tensor):
        rows, weights, argmax = ctx.saved_tensors
        k = ctx.k
        grad_table = torch.zeros(ctx.table_shape, dtype=torch.float32)
        g_np = grad_out.to(torch.float32).contiguous().numpy()
        r_np, w_np, gt_np = rows.numpy(), weights.numpy(), grad_table.numpy()
        a_np = argmax.numpy() if k > 1 else None
        _over_channels(grad_table.shape[1],
                       lambda c0, c1: _crop.crop_pool_backward(g_np, r_np, w_np, a_np, k, gt_np, c0, c1))
        return grad_table, None, None, None


def crop_pool_cpu(table: Tensor, rows: Tensor, weights: Tensor, k: int) -> Tensor:
    """Blended samples, max-pooled over k x k windows.

    Args:
        table: (M, C) float32 CPU features, channels-last rows (one per image, y, x).
        rows: (R, S, S, 4) int64 rows of each sample's four bilinear neighbours.
        weights: (R, S, S, 4) float32 weights of those neighbours (0 outside the map).
        k: the max-pool window and stride, dividing S (1: no pooling).

    Returns:
        (R, C, S / k, S / k) float32, contiguous NCHW; differentiable with respect to ``table``.
    """
    if table.device.type != "cpu" or table.dtype != torch.float32 or table.dim() != 2:
        raise ValueError(f"crop_pool_cpu: table must be a (M, C) float32 CPU tensor, got {table.dtype} "
                         f"{tuple(table.shape)} on {table.device}")
    s = rows.shape[1]
    if k < 1 or s % k or rows.shape[1:] != (s, s, 4) or weights.shape != rows.shape:
        raise ValueError(f"crop_pool_cpu: rows / weights must be (R, S, S, 4) with S divisible by k={k}, got "
                         f"{tuple(rows.shape)} / {tuple(weights.shape)}")
    # The kernel indexes raw memory: an out-of-range row must be an error, not a stray read.
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= table.shape[0]):
        raise ValueError(f"crop_pool_cpu: rows must index the table's {table.shape[0]} rows, got "
                         f"[{int(rows.min())}, {int(rows.max())}]")
    return _CropPool.apply(table.contiguous(), rows.to(torch.int64).contiguous(),
                           weights.to(torch.float32).contiguous(), int(k))
