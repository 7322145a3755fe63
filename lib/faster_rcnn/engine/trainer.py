"""The training loop: SGD steps, LR schedule, logging, TensorBoard, validation, snapshots, exact resume.

The loop itself is small; what happens around a step lives in plain functions (``log_line``,
``write_snapshot``, ``check_finite``) and in ``SummaryWriters`` (TensorBoard and validation).

Sync points: the step itself never reads a value back to the host. Whether a loss went NaN or infinite is
tracked on the device and read every TRAIN.DISPLAY iterations; before every snapshot the weights are
checked too, so a bad step is reported with its iteration and no snapshot is ever written after it.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.nn.parallel import DistributedDataParallel

from faster_rcnn.config import cfg
from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.engine.amp import autocast
from faster_rcnn.engine.checkpoint import (SNAPSHOT_FORMAT, CheckpointError, list_snapshots, load_model_weights,
                                           load_snapshot, prune_snapshots, remove_stray_temporaries, save_atomic,
                                           snapshot_path)
from faster_rcnn.engine.detector_file import DetectorFile, check_config_matches, detector_payload
from faster_rcnn.engine.finetune import load_finetune_weights
from faster_rcnn.engine.distributed import DistInfo, all_reduce_mean, barrier
from faster_rcnn.engine.lr_schedule import apply_lr, lr_factor
from faster_rcnn.engine.optimizer import build_optimizer
from faster_rcnn.engine.periodic_eval import evaluate_during_training, evaluation_due
from faster_rcnn.engine.rng import get_rng_states, seed_everything, set_rng_states
from faster_rcnn.engine.stop_signals import StopSignals
from faster_rcnn.layers.random_keys import image_seeds
from faster_rcnn.engine.summary import SummaryWriters
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.weights import load_imagenet_weights
from faster_rcnn.utils.errors import DataError, StoppedBySignal

LOSS_NAMES = ('rpn_cross_entropy', 'rpn_loss_box', 'cross_entropy', 'loss_box', 'total_loss')


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite."""


@dataclass
class TrainState:
    """What the loop carries between iterations."""
    iteration: int = 0
    images: int = 0  # training images consumed by the whole run (all processes), for resuming at any batch
    global_batch: int = 1
    # First iteration whose loss was not finite (-1: none), kept on the device to avoid a sync per step.
    first_bad: torch.Tensor | None = None
    last_snapshot: str | None = None
    loss_sums: torch.Tensor | None = None
    loss_count: int = 0
    timer_start: float = field(default_factory=time.perf_counter)
    timer_iters: int = 0


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def autocast_context(device: torch.device):
    """bf16 / fp16 autocast when TRAIN.AMP asks for it; the layers keep boxes, IoU and NMS in fp32."""
    return autocast(device, cfg.TRAIN.AMP, 'TRAIN.AMP')


def batch_to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    """images (N, 3, H, W), im_info (N, 3), padded gt (N, G, 5), gt_valid (N, G) and the sampling seeds (N,)
    of the images' places in the stream: five copies, none waiting for the device."""
    images = batch['data'].to(device, non_blocking=True)
    im_info = batch['im_info'].to(device, non_blocking=True)
    gt_boxes = batch['gt_padded'].to(device, non_blocking=True)
    gt_valid = batch['gt_valid'].to(device, non_blocking=True)
    seeds = image_seeds(int(cfg.RNG_SEED), batch['positions'].to(device, non_blocking=True))
    return images, im_info, gt_boxes, gt_valid, seeds


def check_finite(state: TrainState) -> None:
    """Raise NonFiniteLossError if a loss went NaN/inf since the start (reads one value from the device)."""
    if state.first_bad is None:
        return
    bad = int(state.first_bad)
    if bad >= 0:
        hint = ('lower TRAIN.LEARNING_RATE, add warm-up (TRAIN.WARMUP_ITERS), or clip gradients '
                '(TRAIN.CLIP_GRAD_NORM)')
        raise NonFiniteLossError(f'the training loss became NaN or infinite at iteration {bad + 1}; training '
                                 f'stopped, no snapshot was written after it. Last good snapshot: '
                                 f'{state.last_snapshot or "none"}. Try to {hint}.')


def check_weights_finite(model: torch.nn.Module, state: TrainState) -> None:
    """Raise NonFiniteLossError if a weight is NaN or infinite (before snapshots and after a failure).

    One read from the device for the whole model; the offending weight is looked up only when there is one.
    """
    named = list(model.named_parameters())
    finite = torch.stack([torch.isfinite(p).all() for _, p in named])
    if bool(finite.all()):
        return
    name = named[int((~finite).nonzero()[0])][0]
    raise NonFiniteLossError(f'weight {name} became NaN or infinite before iteration {state.iteration + 1}; '
                             f'training stopped, no snapshot was written after it. Last good snapshot: '
                             f'{state.last_snapshot or "none"}. Lower TRAIN.LEARNING_RATE or clip gradients '
                             '(TRAIN.CLIP_GRAD_NORM).')


def log_line(state: TrainState, max_iters: int, lr: float, info: DistInfo) -> dict[str, float]:
    """Print the mean losses since the last line, lr, speed and ETA; returns the values (for TensorBoard)."""
    means = all_reduce_mean(state.loss_sums / max(state.loss_count, 1), info)
    values = dict(zip(LOSS_NAMES, means.tolist()))
    elapsed = time.perf_counter() - state.timer_start
    speed = elapsed / max(state.timer_iters, 1)
    eta = speed * (max_iters - state.iteration)
    if info.is_main:
        print(f'iter: {state.iteration} / {max_iters}, total loss: {values["total_loss"]:.6f}\n'
              f' >>> rpn_loss_cls: {values["rpn_cross_entropy"]:.6f}\n'
              f' >>> rpn_loss_box: {values["rpn_loss_box"]:.6f}\n'
              f' >>> loss_cls: {values["cross_entropy"]:.6f}\n'
              f' >>> loss_box: {values["loss_box"]:.6f}\n'
              f' >>> lr: {lr:.6g}\n'
              f'speed: {speed:.3f}s / iter, eta: {_format_eta(eta)}', flush=True)
    values['speed'] = speed
    state.loss_sums.zero_()
    state.loss_count = 0
    state.timer_start = time.perf_counter()
    state.timer_iters = 0
    return values


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h:d}:{m:02d}:{s:02d}'


def write_snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, *, net: str,
                   classes: list[str], output_dir: str, scaler: torch.amp.GradScaler | None,
                   final: bool = False) -> str:
    """Write ``<prefix>_iter_<N>.pth`` atomically and prune to TRAIN.SNAPSHOT_KEPT (the final one is kept on top
    of those); returns its path."""
    path = snapshot_path(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX, state.iteration)
    payload = detector_payload(net=net, classes=classes, state_dict=unwrap(model).state_dict(), kind='snapshot')
    payload.update({
        'format': SNAPSHOT_FORMAT,
        'iter': state.iteration,
        'optimizer': optimizer.state_dict(),
        'rng': get_rng_states(),
        # The data order is a pure function of (seed, images consumed): one integer restores it, also at
        # another global batch (world size x TRAIN.IMS_PER_BATCH).
        'data': {'images_consumed': state.images, 'global_batch': state.global_batch,
                 'batches_consumed': state.iteration, 'seed': int(cfg.RNG_SEED)},
    })
    if scaler is not None:
        payload['grad_scaler'] = scaler.state_dict()
    save_atomic(payload, path)
    print(f'Wrote snapshot to: {path}', flush=True)
    prune_snapshots(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX, cfg.TRAIN.SNAPSHOT_KEPT,
                    protect=state.iteration if final else None)
    return path


def find_resume_snapshot(output_dir: str, device: torch.device, verbose: bool = True) -> tuple[str, dict] | None:
    """The newest snapshot that reads back whole, with its contents; a damaged newer one (truncated by a
    full disk, a copy cut short) is reported and passed over, and is overwritten when training reaches it."""
    damaged = []
    for _, path in reversed(list_snapshots(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX)):
        try:
            return path, load_snapshot(path, map_location=device)
        except CheckpointError as e:
            damaged.append(path)
            if verbose:
                print(f'warning: {path} cannot be read ({str(e).split("(", 1)[-1][:160]}; passing over it to the '
                      'previous snapshot', flush=True)
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
            print(f'Resuming from {path} at iteration {iteration}', flush=True)
        return iteration, snap['rng'], images
    new_iteration = images // global_batch
    if verbose:
        print(f'Resuming from {path}: written at iteration {iteration} of a global batch of {saved_batch} '
              f'({images} images); with a global batch of {global_batch} that is iteration {new_iteration}'
              + (f' ({images - new_iteration * global_batch} image(s) of a batch are redone)'
                 if images % global_batch else ''), flush=True)
    return new_iteration, snap['rng'], new_iteration * global_batch


def _infinite(loader) -> Iterator[dict]:
    while True:
        yield from loader


def train_net(*, net: str, imdb, roidb: list[dict], valroidb: list[dict] | None, output_dir: str, tb_dir: str,
              pretrained_model: str | None, max_iters: int, info: DistInfo, fresh: bool = False,
              num_workers: int | None = None, finetune: DetectorFile | None = None, eval_imdb=None) -> str:
    """Train ``net`` on ``roidb`` for ``max_iters`` iterations; returns the final snapshot's path.

    Starting again in the same ``output_dir`` resumes from its newest snapshot unless ``fresh``. A new run
    starts from ``finetune`` (a detector file: every weight, the class-dependent predictors remapped by class
    name), else from the ImageNet weights ``pretrained_model``, else from scratch. With TRAIN.EVAL_INTERVAL,
    ``eval_imdb`` is tested every that many iterations (``periodic_eval``).
    """
    device = info.device
    seed_everything(cfg.RNG_SEED)
    model = build_network(net, imdb.num_classes, cfg=cfg).place(device)
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type) if cfg.TRAIN.AMP == 'fp16' else None

    if info.is_main:
        for path in remove_stray_temporaries(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX):
            print(f'Removed {path}, left by a snapshot write that was interrupted', flush=True)
    found = None if fresh else find_resume_snapshot(output_dir, device, verbose=info.is_main)
    resume_path = found[0] if found else None
    global_batch = int(cfg.TRAIN.IMS_PER_BATCH) * info.world_size
    start_iter, rng_states, start_images = 0, None, 0
    if found is not None:
        snap = found[1]
        if 'optimizer' not in snap:
            raise CheckpointError(f'{resume_path} is a detector file without training state, so training cannot '
                                  'resume from it: start a new run from it with --finetune in another --tag, or '
                                  'pass --fresh')
        check_config_matches(snap, resume_path, net)
        load_model_weights(model, snap, resume_path, net=net)
        optimizer.load_state_dict(snap['optimizer'])
        if scaler is not None and 'grad_scaler' in snap:
            scaler.load_state_dict(snap['grad_scaler'])
        start_iter, rng_states, start_images = resume_position(snap, global_batch, resume_path, info.is_main)
    elif finetune is not None:
        if info.is_main:
            print(f'Fine-tuning from the detector {finetune.path}', flush=True)
        report = load_finetune_weights(model, finetune, list(imdb.classes))
        if info.is_main:
            print(report, flush=True)
    elif pretrained_model:
        if info.is_main:
            print(f'Loading initial model weights from {pretrained_model}', flush=True)
        load_imagenet_weights(model, pretrained_model)
    elif info.is_main:
        print('No pretrained weights: training from scratch', flush=True)

    if start_iter >= max_iters:
        final = snapshot_path(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX, start_iter)
        if info.is_main:
            print(f'Nothing to do: {final} already reached iteration {start_iter} >= --iters {max_iters}')
        return final

    train_model: torch.nn.Module = model
    if info.distributed:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    needed = cfg.TRAIN.IMS_PER_BATCH * info.world_size
    if len(roidb) < needed:
        raise DataError(f'{imdb.name}: {len(roidb)} training image(s) after dropping those without a usable box, '
                        f'fewer than one batch of {needed} ({cfg.TRAIN.IMS_PER_BATCH} per process x {info.world_size}); '
                        'add images, or lower TRAIN.IMS_PER_BATCH')

    loader = build_train_loader(roidb, ims_per_batch=cfg.TRAIN.IMS_PER_BATCH, seed=cfg.RNG_SEED,
                                start_batch=start_iter, rank=info.rank, world_size=info.world_size,
                                num_workers=cfg.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers,
                                aspect_grouping=cfg.TRAIN.ASPECT_GROUPING)
    data_iter = _infinite(loader)
    # Workers start (and may draw from the global RNG) before the saved RNG states are put back.
    first_batch = next(data_iter)
    if rng_states is not None:
        set_rng_states(rng_states)

    if info.is_main:
        print(f'Training {net} on {device}, world size {info.world_size}, '
              f'{cfg.TRAIN.IMS_PER_BATCH} image(s) per process per iteration', flush=True)
    writers = SummaryWriters(tb_dir, enabled=info.is_main)
    state = TrainState(iteration=start_iter, images=start_images, global_batch=global_batch, first_bad=torch.full((), -1, dtype=torch.long, device=device),
                       last_snapshot=resume_path, loss_sums=torch.zeros(len(LOSS_NAMES), device=device))
    last_summary = time.perf_counter()
    base_lr = cfg.TRAIN.LEARNING_RATE
    train_model.train()
    batch = first_batch
    with StopSignals() as stop:
        try:
            while state.iteration < max_iters:
                factor = lr_factor(state.iteration, policy=cfg.TRAIN.LR_POLICY, max_iters=max_iters,
                                   stepsize=cfg.TRAIN.STEPSIZE, gamma=cfg.TRAIN.GAMMA,
                                   warmup_iters=cfg.TRAIN.WARMUP_ITERS, warmup_factor=cfg.TRAIN.WARMUP_FACTOR)
                lr = apply_lr(optimizer, base_lr, factor)
                images, im_info, gt_boxes, gt_valid, seeds = batch_to_device(batch, device)
                try:
                    with autocast_context(device):
                        losses = train_model(images, im_info, gt_boxes, gt_valid, seeds=seeds)
                except Exception:
                    # A diverged network can break a layer before its loss is ever read: report that as such.
                    check_finite(state)
                    check_weights_finite(model, state)
                    raise
                total = losses['total_loss']
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.unscale_(optimizer)
                else:
                    total.backward()
                if cfg.TRAIN.CLIP_GRAD_NORM > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.TRAIN.CLIP_GRAD_NORM)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()

                stacked = torch.stack([losses[k].detach().float() for k in LOSS_NAMES])
                finite = torch.isfinite(stacked).all()
                state.first_bad = torch.where((state.first_bad < 0) & ~finite,
                                              torch.full_like(state.first_bad, state.iteration), state.first_bad)
                state.loss_sums += stacked
                state.loss_count += 1
                state.timer_iters += 1
                state.iteration += 1
                state.images += state.global_batch

                if state.iteration % cfg.TRAIN.DISPLAY == 0 or state.iteration == max_iters:
                    check_finite(state)
                    values = log_line(state, max_iters, lr, info)
                    writers.scalars(values, lr, state.iteration)
                if info.is_main and valroidb and time.perf_counter() - last_summary > cfg.TRAIN.SUMMARY_INTERVAL:
                    writers.summaries(unwrap(train_model), valroidb, imdb.classes, state.iteration, device)
                    last_summary = time.perf_counter()
                if eval_imdb is not None and evaluation_due(state.iteration, max_iters):
                    evaluate_during_training(unwrap(train_model), eval_imdb, state.iteration, output_dir, info,
                                             writers.val)
                periodic = state.iteration % cfg.TRAIN.SNAPSHOT_ITERS == 0 and state.iteration < max_iters
                signum = stop.requested(info, state.iteration, cfg.TRAIN.DISPLAY) if state.iteration < max_iters else None
                if periodic or signum:
                    check_finite(state)
                    check_weights_finite(model, state)
                    if info.is_main:
                        state.last_snapshot = write_snapshot(model, optimizer, state, net=net,
                                                             classes=list(imdb.classes), output_dir=output_dir,
                                                             scaler=scaler)
                    barrier(info)
                if signum:
                    name = signal.Signals(signum).name
                    raise StoppedBySignal(f'training stopped by {name} at iteration {state.iteration} / {max_iters}; '
                                          f'{snapshot_path(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX, state.iteration)} '
                                          'written: run the same command to resume', signum)
                if state.iteration < max_iters:
                    batch = next(data_iter)
            check_finite(state)
            check_weights_finite(model, state)
            final = snapshot_path(output_dir, cfg.TRAIN.SNAPSHOT_PREFIX, state.iteration)
            if info.is_main:
                write_snapshot(model, optimizer, state, net=net, classes=list(imdb.classes), output_dir=output_dir,
                               scaler=scaler, final=True)
            barrier(info)
            return final
        finally:
            writers.close()
