"""Writing a training snapshot: a detector file plus everything an exact resume needs.

    {... the detector file (``faster_rcnn.model_file``) ..., 'kind': 'snapshot', 'iter': N,
     'optimizer': state_dict, 'rng': {python, numpy, torch, cuda}, ['grad_scaler': state_dict],
     'data': {'images_consumed', 'global_batch', 'batches_consumed', 'seed'}}

The data order is a pure function of (seed, images consumed), so one integer restores it, also at another
global batch (world size x TRAIN.IMS_PER_BATCH).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch.nn.parallel import DistributedDataParallel

from faster_rcnn.model_file import SNAPSHOT_FORMAT, detector_payload, prune_snapshots, save_atomic, snapshot_path
from faster_rcnn.settings import TrainSettings

from .rng import get_rng_states
from .train_loop import TrainState

logger = logging.getLogger(__name__)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def write_snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, *,
                   settings: TrainSettings, net: str, classes: list[str], record: dict, output_dir: str,
                   scaler: torch.amp.GradScaler | None, final: bool = False,
                   category_ids: Sequence[int] | None = None, attributes: list[str] | None = None) -> str:
    """Write ``<prefix>_iter_<N>.pth`` atomically and prune to TRAIN.SNAPSHOT_KEPT (the final one is kept on top
    of those); returns its path. ``record``: the run's recorded config; ``category_ids``: the dataset's id of
    each class (default 1..K-1); ``attributes``: the attribute names of a network with an attribute head."""
    path = snapshot_path(output_dir, settings.snapshot_prefix, state.iteration)
    payload = detector_payload(net=net, classes=classes, state_dict=unwrap(model).state_dict(), record=record,
                               kind='snapshot', category_ids=category_ids, attributes=attributes)
    payload.update({
        'format': SNAPSHOT_FORMAT,
        'iter': state.iteration,
        'optimizer': optimizer.state_dict(),
        'rng': get_rng_states(),
        'data': {'images_consumed': state.images, 'global_batch': state.global_batch,
                 'batches_consumed': state.iteration, 'seed': int(settings.seed)},
    })
    if scaler is not None:
        payload['grad_scaler'] = scaler.state_dict()
    save_atomic(payload, path)
    logger.info(f'Wrote snapshot to: {path}')
    prune_snapshots(output_dir, settings.snapshot_prefix, settings.snapshot_kept,
                    protect=state.iteration if final else None)
    return path
