"""The training loop: one step function and a short loop that calls hooks around it.

``Trainer.run_step`` is one SGD/AdamW step (forward, backward, AMP loss scaling, gradient clipping) that never
reads a value back to the host: whether a loss went NaN or infinite is tracked on the device (``first_bad``).
``Trainer.train`` calls every hook's ``before_train``, then per iteration ``before_step``, the step and
``after_step``, and ``after_train`` at the end. Logging, TensorBoard, evaluation, snapshots, stop signals and the
NaN check are hooks (``engine.hooks``); a user adds one without editing the loop::

    PERIOD = declare('TRAIN.GRAD_NORM_PERIOD', 10, positive, 'a positive number', interval=True)  # settings

    class GradNorm(HookBase):
        def after_step(self):
            if self.trainer.state.iteration % self.trainer.settings.extra[PERIOD] == 0:
                norms = [p.grad.norm() for p in self.trainer.model.parameters() if p.grad is not None]
                print('grad norm', float(torch.stack(norms).norm()))

    train_net(run, info, extra_hooks=[GradNorm()])   # info: engine.distributed.init_distributed(...)

A hook that needs the loss values reads ``trainer.losses`` (this step's, on the device) or
``trainer.last_log`` (the means of the last logging line).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch

from faster_rcnn.errors import NonFiniteLossError, StoppedBySignal
from faster_rcnn.layers.random_keys import image_seeds
from faster_rcnn.nets.amp import autocast
from faster_rcnn.settings import TrainSettings

from .distributed import DistInfo
from .lr_schedule import apply_lr, lr_factor


@dataclass
class TrainState:
    """What the loop carries between iterations (and a snapshot restores)."""

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


class HookBase:
    """A hook: override what you need. ``self.trainer`` is set when the trainer registers it."""

    trainer: Trainer

    def before_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        """After each step; ``trainer.state.iteration`` counts the steps done, this one included."""

    def after_train(self) -> None:
        """After the last step of a run that finished (not after an error or a stop signal)."""

    def before_stop(self) -> None:
        """When a hook asked the run to stop (``trainer.stop_signal``), after every hook's ``after_step``."""

    def close(self) -> None:
        """Always, last (files to close, handlers to restore)."""


def check_finite(state: TrainState) -> None:
    """NonFiniteLossError if a loss went NaN/inf since the start (reads one value from the device)."""
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
    """NonFiniteLossError if a weight is NaN or infinite (before snapshots and after a failure).

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


def loss_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The names of the losses ``model`` (a FasterRCNN, maybe wrapped in DistributedDataParallel) returns."""
    return cast(tuple[str, ...], getattr(model, 'module', model).loss_names)


def batch_attributes(batch: dict, device: torch.device) -> torch.Tensor | None:
    """The padded gt attributes (N, G, L) int64 of a batch on ``device``, None for a dataset without them."""
    attributes = batch.get('gt_attributes')
    return None if attributes is None else attributes.to(device, non_blocking=True)


def batch_to_device(batch: dict, device: torch.device, seed: int) -> tuple[torch.Tensor, ...]:
    """images (N, 3, H, W), im_info (N, 3), padded gt (N, G, 5), gt_valid (N, G) and the sampling seeds (N,)
    of the images' places in the stream: five copies, none waiting for the device."""
    images = batch['data'].to(device, non_blocking=True)
    im_info = batch['im_info'].to(device, non_blocking=True)
    gt_boxes = batch['gt_padded'].to(device, non_blocking=True)
    gt_valid = batch['gt_valid'].to(device, non_blocking=True)
    seeds = image_seeds(int(seed), batch['positions'].to(device, non_blocking=True))
    return images, im_info, gt_boxes, gt_valid, seeds


class Trainer:
    """The step and the loop of one training run.

    Args:
        model: the ``FasterRCNN`` (its weights are what snapshots save); ``train_model``: what runs the step
            (the model, or it wrapped in DistributedDataParallel).
        optimizer / scaler: the optimizer and, for fp16, its GradScaler.
        batches: an endless iterator of loader batches; ``first_batch`` its first (drawn before the RNG states
            of a resume are put back, see ``engine.start``).
        settings: the run's TrainSettings (schedule numbers already scaled); ``max_iters``: where it ends.
    """

    # The iteration ``last_log`` was logged at: set by the LogLine hook when it first logs.
    last_log_iteration: int

    def __init__(self, *, model: torch.nn.Module, train_model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler | None, batches: Iterator[dict], first_batch: dict,
                 settings: TrainSettings, state: TrainState, max_iters: int, info: DistInfo) -> None:
        self.model, self.train_model, self.optimizer, self.scaler = model, train_model, optimizer, scaler
        self.settings, self.state, self.max_iters, self.info = settings, state, max_iters, info
        self.device = info.device
        self._batches, self._batch = batches, first_batch
        self.hooks: list[HookBase] = []
        self.losses: dict[str, torch.Tensor] = {}
        self.last_log: dict[str, float] = {}
        self.lr = 0.0
        # Set by a hook (a signal number): the loop stops after this iteration's hooks and their before_stop.
        self.stop_signal: int | None = None

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        """Add hooks; they run in the order given (after those registered before)."""
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def run_step(self) -> None:
        """One training step on the current batch; the losses stay on the device (``self.losses``)."""
        s, state = self.settings, self.state
        factor = lr_factor(state.iteration, policy=s.lr_policy, max_iters=self.max_iters, stepsize=s.stepsize,
                           gamma=s.gamma, warmup_iters=s.warmup_iters, warmup_factor=s.warmup_factor)
        self.lr = apply_lr(self.optimizer, s.optimizer.learning_rate, factor)
        images, im_info, gt_boxes, gt_valid, seeds = batch_to_device(self._batch, self.device, s.seed)
        gt_attributes = batch_attributes(self._batch, self.device) if self.model.attr_head is not None else None
        try:
            with autocast(self.device, s.amp, 'TRAIN.AMP'):
                losses = self.train_model(images, im_info, gt_boxes, gt_valid, seeds=seeds,
                                          gt_attributes=gt_attributes)
        except Exception:
            # A diverged network can break a layer before its loss is ever read: report that as such.
            check_finite(state)
            check_weights_finite(self.model, state)
            raise
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(losses['total_loss']).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            losses['total_loss'].backward()
        if s.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        stacked = torch.stack([losses[k].detach().float() for k in loss_names(self.model)])
        finite = torch.isfinite(stacked).all()
        assert state.first_bad is not None and state.loss_sums is not None  # the trainer sets both
        state.first_bad = torch.where((state.first_bad < 0) & ~finite,
                                      torch.full_like(state.first_bad, state.iteration), state.first_bad)
        state.loss_sums += stacked
        state.loss_count += 1
        state.timer_iters += 1
        state.iteration += 1
        state.images += state.global_batch
        self.losses = losses

    def train(self) -> None:
        """Run from ``state.iteration`` to ``max_iters`` with the hooks; StoppedBySignal when a hook asked."""
        try:
            for h in self.hooks:
                h.before_train()
            self.train_model.train()
            while self.state.iteration < self.max_iters:
                for h in self.hooks:
                    h.before_step()
                self.run_step()
                for h in self.hooks:
                    h.after_step()
                if self.stop_signal is not None:
                    for h in self.hooks:
                        h.before_stop()
                    raise StoppedBySignal(self._stop_message(), self.stop_signal)
                if self.state.iteration < self.max_iters:
                    self._batch = next(self._batches)
            for h in self.hooks:
                h.after_train()
        finally:
            for h in self.hooks:
                h.close()

    def _stop_message(self) -> str:
        import signal
        assert self.stop_signal is not None  # asked for once a hook set it
        name = signal.Signals(self.stop_signal).name
        return (f'training stopped by {name} at iteration {self.state.iteration} / {self.max_iters}; '
                f'{self.state.last_snapshot} written: run the same command to resume')
