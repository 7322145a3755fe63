"""``train_net``: one training run, from its start state through the loop and its hooks to the final snapshot.

What a run trains is a ``TrainRun`` (built by ``tools/trainval_net.py`` from the config, at the edge): the
network and its settings, the training settings (the schedule already scaled to the global batch), the roidb,
where its files go and how it starts. ``engine.start`` decides the start (resume, fine-tune, ImageNet, scratch),
``engine.train_loop`` holds the step and the loop, ``engine.hooks`` what happens around each step.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.errors import DataError
from faster_rcnn.model_file import DetectorFile, snapshot_path
from faster_rcnn.settings import ModelSettings, TrainSettings

from .distributed import DistInfo
from .hooks import default_hooks
from .start import first_batch, start_run
from .summary import SummaryWriters
from .train_loop import HookBase, Trainer, TrainState, loss_names

logger = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """Everything one training run needs; nothing else is read (no global config)."""

    net: str
    model: ModelSettings
    train: TrainSettings
    classes: Sequence[str]
    roidb: list[dict]
    output_dir: str
    tb_dir: str
    max_iters: int
    record: dict  # the recorded config every snapshot carries (faster_rcnn.config.config_record)
    imdb_name: str = ''
    valroidb: list[dict] | None = None
    imagenet_weights: str | None = None
    finetune: DetectorFile | None = None
    fresh: bool = False
    from_scratch: bool = False  # a network other than tiny may start from random weights (engine.start)
    eval_imdb: Any = None
    extra: dict = field(default_factory=dict)
    attributes: Sequence[str] | None = None  # the dataset's attribute names ('__no_attribute__' first): a head
    category_ids: Sequence[int] | None = None  # the dataset's id of classes 1..K-1, recorded in every snapshot


def _endless(loader) -> Iterator[dict]:
    return itertools.chain.from_iterable(itertools.repeat(loader))


def _check_roidb(run: TrainRun, info: DistInfo) -> None:
    needed = run.train.ims_per_batch * info.world_size
    if len(run.roidb) < needed:
        raise DataError(f'{run.imdb_name}: {len(run.roidb)} training image(s) after dropping those without a usable '
                        f'box, fewer than one batch of {needed} ({run.train.ims_per_batch} per process x '
                        f'{info.world_size}); add images, or lower TRAIN.IMS_PER_BATCH')


def train_net(run: TrainRun, info: DistInfo, extra_hooks: Sequence[HookBase] = ()) -> str:
    """Train ``run`` to ``run.max_iters``; returns the final snapshot's path. ``extra_hooks`` run after the
    default ones (see ``engine.train_loop`` for an example)."""
    s = run.train
    start = start_run(run, info)
    final = snapshot_path(run.output_dir, s.snapshot_prefix, max(start.iteration, run.max_iters))
    if start.iteration >= run.max_iters:
        if info.is_main:
            logger.info(f'Nothing to do: {final} already reached iteration {start.iteration} >= --iters '
                        f'{run.max_iters}')
        return final
    train_model = start.model
    if info.distributed:
        ids = [info.device.index] if info.device.type == 'cuda' else None
        train_model = DistributedDataParallel(start.model, device_ids=ids)
    _check_roidb(run, info)
    loader = build_train_loader(run.roidb, s.input, ims_per_batch=s.ims_per_batch, seed=s.seed,
                                use_all_gt=s.use_all_gt, start_batch=start.iteration, rank=info.rank,
                                world_size=info.world_size, num_workers=s.num_workers,
                                aspect_grouping=s.aspect_grouping)
    batches = _endless(loader)
    batch = first_batch(batches, start)
    if info.is_main:
        logger.info(f'Training {run.net} on {info.device}, world size {info.world_size}, {s.ims_per_batch} '
                    f'image(s) per process per iteration')
    state = TrainState(iteration=start.iteration, images=start.images, global_batch=s.ims_per_batch * info.world_size,
                       first_bad=torch.full((), -1, dtype=torch.long, device=info.device),
                       last_snapshot=start.resume_path,
                       loss_sums=torch.zeros(len(loss_names(start.model)), device=info.device))
    trainer = Trainer(model=start.model, train_model=train_model, optimizer=start.optimizer, scaler=start.scaler,
                      batches=batches, first_batch=batch, settings=s, state=state, max_iters=run.max_iters, info=info)
    writers = SummaryWriters(run.tb_dir, enabled=info.is_main, inputs=s.input, use_all_gt=s.use_all_gt, seed=s.seed)
    trainer.register_hooks(default_hooks(writers=writers, valroidb=run.valroidb, classes=run.classes,
                                         category_ids=run.category_ids,
                                         output_dir=run.output_dir, net=run.net, record=run.record,
                                         attributes=run.attributes,
                                         summary_interval=s.summary_interval, eval_imdb=run.eval_imdb,
                                         eval_interval=s.eval_interval))
    trainer.register_hooks(extra_hooks)
    trainer.train()
    return final
