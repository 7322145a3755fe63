"""How a training run starts: resumed, fine-tuned from a detector, from ImageNet weights, or from scratch.

``start_run`` does the start-up steps in the order that exact resume depends on, and returns the state the
loop begins from:

1. seed python, numpy and torch (a fresh network's initialisation draws from them);
2. build the network on its device and its optimizer (and the fp16 GradScaler);
3. remove the temporaries of snapshot writes a kill interrupted;
4. resume from the newest snapshot that reads back whole (weights, optimizer, scaler, the position in images,
   and the RNG states to put back), else fine-tune from a detector file, else load ImageNet weights, else
   start from scratch: only a network made for it (``tiny``) or a run that asks for it (``--from-scratch``),
   since the others diverge within a few iterations from a random initialisation (``check_scratch_start``).

The RNG states of a resume are put back by ``first_batch`` only after the data loader has drawn its first
batch: its workers start then and may draw from the global generators, which an uninterrupted run did long
before that point.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from faster_rcnn.errors import CheckpointError, UsageError
from faster_rcnn.model_file import (
    check_same_network,
    list_snapshots,
    load_model_file,
    load_model_weights,
    remove_stray_temporaries,
)
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.registry import spec
from faster_rcnn.nets.weights import load_imagenet_weights

from .distributed import DistInfo
from .finetune import load_finetune_weights
from .optimizer import build_optimizer
from .rng import seed_everything, set_rng_states

logger = logging.getLogger(__name__)


@dataclass
class StartState:
    """Where a run begins: the network and optimizer, the iteration and images consumed, how it started."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    iteration: int = 0
    images: int = 0
    rng_states: dict | None = None
    resume_path: str | None = None
    how: str = 'scratch'  # 'resume', 'finetune', 'imagenet' or 'scratch'


def find_resume_snapshot(output_dir: str, prefix: str, device: torch.device,
                         verbose: bool = True) -> tuple[str, dict] | None:
    """The newest snapshot that reads back whole, with its contents; a damaged newer one (truncated by a
    full disk, a copy cut short) is reported and passed over, and is overwritten when training reaches it."""
    damaged = []
    for _, path in reversed(list_snapshots(output_dir, prefix)):
        try:
            return path, load_model_file(path, map_location=device)
        except CheckpointError as e:
            damaged.append(path)
            if verbose:
                logger.info(f'warning: {path} cannot be read ({str(e).split("(", 1)[-1][:160]}; passing over it to the '
                      'previous snapshot')
    if damaged:
        raise CheckpointError(f'no readable snapshot in {output_dir} (damaged: {damaged}): move them away and start '
                              'again, or pass --fresh')
    return None


def resume_position(snap: dict, global_batch: int, path: str, verbose: bool) -> tuple[int, dict, int]:
    """(iteration, RNG states, images consumed) to resume ``snap`` at ``global_batch``.

    The position is kept in images, so a run resumed with another world size (or TRAIN.IMS_PER_BATCH) goes on
    at the same place in the data and in the schedule: iteration = images / global batch (rounded down to a
    whole batch when it does not divide)."""
    iteration = int(snap['iter'])
    data = snap.get('data') or {}
    saved_batch = int(data.get('global_batch', global_batch))
    images = int(data.get('images_consumed', iteration * saved_batch))
    if saved_batch == global_batch:
        if verbose:
            logger.info(f'Resuming from {path} at iteration {iteration}')
        return iteration, snap['rng'], images
    new_iteration = images // global_batch
    if verbose:
        logger.info(f'Resuming from {path}: written at iteration {iteration} of a global batch of {saved_batch} '
              f'({images} images); with a global batch of {global_batch} that is iteration {new_iteration}'
              + (f' ({images - new_iteration * global_batch} image(s) of a batch are redone)'
                 if images % global_batch else ''))
    return new_iteration, snap['rng'], new_iteration * global_batch


def _resume(start: StartState, path: str, snap: dict, run: Any, global_batch: int, verbose: bool) -> None:
    if 'optimizer' not in snap:
        raise CheckpointError(f'{path} is a detector file without training state, so training cannot '
                              'resume from it: start a new run from it with --finetune in another --tag, or '
                              'pass --fresh')
    check_same_network(snap, path, run.record)
    load_model_weights(start.model, snap, path, net=run.net)
    start.optimizer.load_state_dict(snap['optimizer'])
    if start.scaler is not None and 'grad_scaler' in snap:
        start.scaler.load_state_dict(snap['grad_scaler'])
    start.iteration, start.rng_states, start.images = resume_position(snap, global_batch, path, verbose)
    start.resume_path, start.how = path, 'resume'


def check_scratch_start(net: str, allowed: bool) -> None:
    """A UsageError when ``net`` would start from a random initialisation and neither its table entry
    (``NetSpec.from_scratch``) nor the run (``allowed``: --from-scratch) says that trains."""
    entry = spec(net)
    if allowed or entry.from_scratch:
        return
    imagenet = (f'start from ImageNet weights (python data/scripts/fetch_imagenet_weights.py --net {net}, then '
                f'--weight data/imagenet_weights/{net}.pth) or ' if entry.imagenet is not None else 'start ')
    raise UsageError(f'--net {net}: no --weight, no --finetune and no snapshot to resume, so it would train from '
                     f'random weights, which diverges (a NaN loss) within a few iterations; {imagenet}from a '
                     'detector file (--finetune <detector.pth>), or pass --from-scratch to train from random weights '
                     'anyway')


def start_run(run: Any, info: DistInfo) -> StartState:
    """The start state of ``run`` (an ``engine.trainer.TrainRun``) on this process, steps 1-4 above."""
    s, device, verbose = run.train, info.device, info.is_main
    seed_everything(s.seed)
    attributes = getattr(run, 'attributes', None)
    model = build_network(run.net, len(run.classes), run.model,
                          num_attributes=len(attributes) if attributes else 0).place(device)
    optimizer = build_optimizer(model, s.optimizer)
    scaler = torch.amp.GradScaler(device.type) if s.amp == 'fp16' else None
    start = StartState(model, optimizer, scaler)
    if verbose:
        for path in remove_stray_temporaries(run.output_dir, s.snapshot_prefix):
            logger.info(f'Removed {path}, left by a snapshot write that was interrupted')
    found = None if run.fresh else find_resume_snapshot(run.output_dir, s.snapshot_prefix, device, verbose)
    if found is not None:
        _resume(start, *found, run, s.ims_per_batch * info.world_size, verbose)
    elif run.finetune is not None:
        if verbose:
            logger.info(f'Fine-tuning from the detector {run.finetune.path}')
        report = load_finetune_weights(model, run.finetune, list(run.classes))
        start.how = 'finetune'
        if verbose:
            logger.info(report)
    elif run.imagenet_weights:
        if verbose:
            logger.info(f'Loading initial model weights from {run.imagenet_weights}')
        load_imagenet_weights(model, run.imagenet_weights)
        start.how = 'imagenet'
    else:
        check_scratch_start(run.net, run.from_scratch)
        if verbose:
            logger.info('No pretrained weights: training from scratch')
    return start


def first_batch(batches: Iterator[dict], start: StartState) -> dict:
    """Draw the loader's first batch, then put a resumed run's RNG states back (see the module docstring)."""
    batch = next(batches)
    if start.rng_states is not None:
        set_rng_states(start.rng_states)
    return batch
