"""DataLoaders for training and validation: decode and resize in workers, pin, prefetch."""
from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader

from ..config import cfg
from .dataset import BlobConfig, RoidbDataset, collate_batch
from .sampler import InfiniteBatchSampler


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which finishes its iteration and writes a snapshot
    (a worker that died of the terminal's SIGINT would end the run before that)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_train_loader(roidb: list[dict], *, ims_per_batch: int, seed: int, start_batch: int = 0, rank: int = 0,
                       world_size: int = 1, num_workers: int | None = None, aspect_grouping: bool | None = None,
                       blob_cfg: BlobConfig | None = None) -> DataLoader:
    """An endless loader of training batches (see ``collate_batch`` for their format).

    ``start_batch`` is the number of batches the training loop already consumed: the loader then yields
    exactly what an uninterrupted one would from that batch on. Ranks of a distributed run see disjoint
    images.
    """
    if num_workers is None:
        num_workers = int(cfg.DATA_LOADER.NUM_WORKERS)
    if aspect_grouping is None:
        aspect_grouping = bool(cfg.TRAIN.ASPECT_GROUPING)
    dataset = RoidbDataset(roidb, seed, blob_cfg or BlobConfig.from_cfg(training=True))
    sampler = InfiniteBatchSampler(dataset.aspect_ratios(), ims_per_batch, seed, start_batch=start_batch,
                                   rank=rank, world_size=world_size, aspect_grouping=aspect_grouping)
    kwargs = {}
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=ignore_interrupts)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_batch,
                      pin_memory=torch.cuda.is_available(), **kwargs)


def build_val_loader(roidb: list[dict], *, seed: int, ims_per_batch: int = 1, num_workers: int = 1,
                     blob_cfg: BlobConfig | None = None) -> DataLoader:
    """An endless loader over a validation roidb, in the training format (the validation loss of
    tf-faster-rcnn's summaries). Its order depends on ``seed`` only."""
    return build_train_loader(roidb, ims_per_batch=ims_per_batch, seed=seed, num_workers=num_workers,
                              aspect_grouping=False, blob_cfg=blob_cfg)
