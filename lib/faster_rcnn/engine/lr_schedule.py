"""Learning-rate schedules as pure functions of the iteration, so a resume needs no scheduler state."""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch


def lr_factor(iteration: int, *, policy: str, max_iters: int, stepsize: Sequence[int], gamma: float,
              warmup_iters: int = 0, warmup_factor: float = 0.001) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based: the step about to be taken).

    'step' (tf-faster-rcnn): ``gamma ** (number of STEPSIZE entries <= iteration)``; e.g. stepsize [50000]
    gives 1.0 for iterations 0..49999 and 0.1 from 50000 on. 'cosine': from 1 down to 0 at ``max_iters``.
    A linear warm-up from ``warmup_factor`` to 1 over ``warmup_iters`` multiplies either.
    """
    if policy == 'step':
        factor = gamma ** bisect.bisect_right(sorted(stepsize), iteration)
    elif policy == 'cosine':
        progress = min(iteration / max(max_iters, 1), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"TRAIN.LR_POLICY {policy!r} is unknown: use 'step' or 'cosine'")
    if warmup_iters > 0 and iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_factor * (1.0 - alpha) + alpha
    return factor


def apply_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set each group's lr to ``base_lr * factor * group['lr_mult']``; returns the base group's lr."""
    for group in optimizer.param_groups:
        group['lr'] = base_lr * factor * group.get('lr_mult', 1.0)
    return base_lr * factor
