"""DataLoaders for training and validation: decode and resize in workers, pin, prefetch."""
from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from ..settings import InputSettings
from .dataset import RoidbDataset, collate_batch
from .sampler import InfiniteBatchSampler


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which finishes its iteration and writes a snapshot
    (a worker that died of the terminal's SIGINT would end the run before that)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_train_loader(roidb: list[dict], inputs: InputSettings, *, ims_per_batch: int, seed: int,
                       use_all_gt: bool = True, start_batch: int = 0, rank: int = 0, world_size: int = 1,
                       num_workers: int = 0, aspect_grouping: bool = False) -> DataLoader:
    """An endless loader of training batches (see ``collate_batch`` for their format).

    ``inputs``: the training input settings (TRAIN.SCALES / MAX_SIZE, normalisation); ``use_all_gt``: keep the
    'difficult' boxes. ``start_batch`` is the number of batches the training loop already consumed: the loader
    then yields exactly what an uninterrupted one would from that batch on. Ranks of a distributed run see
    disjoint images.
    """
    dataset = RoidbDataset(roidb, seed, inputs, use_all_gt)
    # A float64 array serves as the sequence of ratios the sampler indexes.
    ratios = cast(Sequence[float], dataset.aspect_ratios())
    sampler = InfiniteBatchSampler(ratios, ims_per_batch, seed, start_batch=start_batch,
                                   rank=rank, world_size=world_size, aspect_grouping=aspect_grouping)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=ignore_interrupts)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_batch,
                      pin_memory=torch.cuda.is_available(), **kwargs)
