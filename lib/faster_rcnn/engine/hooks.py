"""The hooks of a training run: what happens around each step, in the order ``default_hooks`` registers them.

1. ``NonFiniteCheck``: every TRAIN.DISPLAY iterations (and at the last), one read of the device-side NaN flag.
2. ``LogLine``: the mean losses since the last line, lr, speed, ETA (``trainer.last_log``).
3. ``TensorBoard``: those scalars; every TRAIN.SUMMARY_INTERVAL seconds the validation summaries.
4. ``PeriodicEval``: the mAP of ``--imdbval`` every TRAIN.EVAL_INTERVAL iterations and at the end.
5. ``StopSignals``: SIGINT / SIGTERM set ``trainer.stop_signal`` (agreed by every process under torchrun).
6. ``Snapshots``: every TRAIN.SNAPSHOT_ITERS iterations, at the end, and when a stop was asked (by a signal or
   any hook: ``before_stop``), after the NaN checks of losses and weights, pruned to TRAIN.SNAPSHOT_KEPT.

The order is part of the behaviour: a NaN is reported before a line logs it, a stop request is known before
the snapshot that it asks for, and the snapshot comes last, after everything that reads the model.
"""
from __future__ import annotations

import logging
import time

from .distributed import all_reduce_mean, barrier
from .periodic_eval import evaluate_during_training, evaluation_due
from .snapshots import write_snapshot
from .stop_signals import StopSignals as _SignalContext
from .summary import SummaryWriters
from .train_loop import HookBase, TrainState, check_finite, check_weights_finite, loss_names

logger = logging.getLogger(__name__)


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h:d}:{m:02d}:{s:02d}'


def _log_due(trainer) -> bool:
    it = trainer.state.iteration
    return it % trainer.settings.display == 0 or it == trainer.max_iters


class NonFiniteCheck(HookBase):
    """Stop with NonFiniteLossError on a NaN / inf loss, checked every TRAIN.DISPLAY iterations (one sync)."""

    def after_step(self) -> None:
        if _log_due(self.trainer):
            check_finite(self.trainer.state)


class LogLine(HookBase):
    """tf-faster-rcnn's log line every TRAIN.DISPLAY iterations; the values go to ``trainer.last_log``."""

    def after_step(self) -> None:
        if not _log_due(self.trainer):
            return
        t, state = self.trainer, self.trainer.state
        assert state.loss_sums is not None  # the trainer sets it before the first step
        means = all_reduce_mean(state.loss_sums / max(state.loss_count, 1), t.info)
        values = dict(zip(loss_names(t.model), means.tolist()))
        elapsed = time.perf_counter() - state.timer_start
        speed = elapsed / max(state.timer_iters, 1)
        if t.info.is_main:
            logger.info(f'iter: {state.iteration} / {t.max_iters}, total loss: {values["total_loss"]:.6f}\n'
                  f' >>> rpn_loss_cls: {values["rpn_cross_entropy"]:.6f}\n'
                  f' >>> rpn_loss_box: {values["rpn_loss_box"]:.6f}\n'
                  f' >>> loss_cls: {values["cross_entropy"]:.6f}\n'
                  f' >>> loss_box: {values["loss_box"]:.6f}\n'
                  + (f' >>> loss_attr: {values["loss_attr"]:.6f}\n' if 'loss_attr' in values else '') +
                  f' >>> lr: {t.lr:.6g}\n'
                  f'speed: {speed:.3f}s / iter, eta: {_format_eta(speed * (t.max_iters - state.iteration))}')
        values['speed'] = speed
        state.loss_sums.zero_()
        state.loss_count = 0
        state.timer_start = time.perf_counter()
        state.timer_iters = 0
        t.last_log = values
        t.last_log_iteration = state.iteration


class TensorBoard(HookBase):
    """The logged scalars, and every ``summary_interval`` seconds the validation summaries of ``valroidb``."""

    def __init__(self, writers: SummaryWriters, valroidb: list[dict] | None, classes, summary_interval: float):
        self.writers, self.valroidb, self.classes = writers, valroidb, list(classes)
        self.summary_interval = summary_interval
        self._last = time.perf_counter()

    def before_train(self) -> None:
        self._last = time.perf_counter()

    def after_step(self) -> None:
        t = self.trainer
        if getattr(t, 'last_log_iteration', None) == t.state.iteration:
            self.writers.scalars(t.last_log, t.lr, t.state.iteration)
        if t.info.is_main and self.valroidb and time.perf_counter() - self._last > self.summary_interval:
            self.writers.summaries(t.model, self.valroidb, self.classes, t.state.iteration, t.device)
            self._last = time.perf_counter()

    def close(self) -> None:
        self.writers.close()


class PeriodicEval(HookBase):
    """The mAP of ``imdb`` every ``interval`` iterations and at the end (``engine.periodic_eval``)."""

    def __init__(self, imdb, interval: int, output_dir: str, writers: SummaryWriters):
        self.imdb, self.interval, self.output_dir, self.writers = imdb, interval, output_dir, writers

    def after_step(self) -> None:
        t = self.trainer
        if evaluation_due(t.state.iteration, t.max_iters, self.interval):
            evaluate_during_training(t.model, self.imdb, t.state.iteration, self.output_dir, t.info,
                                     t.settings.test, self.writers.val)


class StopSignals(HookBase):
    """SIGINT / SIGTERM finish the iteration; the trainer stops after the snapshot hook has written one."""

    def __init__(self) -> None:
        self._signals = _SignalContext()

    def before_train(self) -> None:
        self._signals.__enter__()

    def after_step(self) -> None:
        t = self.trainer
        if t.state.iteration < t.max_iters:
            signum = self._signals.requested(t.info, t.state.iteration, t.settings.display)
            if signum is not None:
                t.stop_signal = signum

    def close(self) -> None:
        self._signals.__exit__(None, None, None)


class Snapshots(HookBase):
    """Snapshots every TRAIN.SNAPSHOT_ITERS iterations, on a stop request, and the final one (kept apart from
    the TRAIN.SNAPSHOT_KEPT newest), each after the NaN checks; every process waits for rank 0's write."""

    def __init__(self, output_dir: str, *, net: str, classes, record: dict, category_ids=None,
                 attributes=None) -> None:
        self.output_dir, self.net, self.classes, self.record = output_dir, net, list(classes), record
        self.category_ids = None if category_ids is None else list(category_ids)
        self.attributes = list(attributes) if attributes else None

    def _write(self, final: bool) -> None:
        t = self.trainer
        check_finite(t.state)
        check_weights_finite(t.model, t.state)
        if t.info.is_main:
            t.state.last_snapshot = write_snapshot(
                t.model, t.optimizer, t.state, settings=t.settings, net=self.net, classes=self.classes,
                record=self.record, output_dir=self.output_dir, scaler=t.scaler, final=final,
                category_ids=self.category_ids, attributes=self.attributes)
        barrier(t.info)

    def after_step(self) -> None:
        t = self.trainer
        if t.state.iteration % t.settings.snapshot_iters == 0 and t.state.iteration < t.max_iters:
            self._write(final=False)
            self._written = t.state.iteration

    def before_stop(self) -> None:
        if getattr(self, '_written', None) != self.trainer.state.iteration:
            self._write(final=False)

    def after_train(self) -> None:
        self._write(final=True)


def default_hooks(*, writers: SummaryWriters, valroidb, classes, output_dir: str, net: str, record: dict,
                  summary_interval: float, eval_imdb=None, eval_interval: int = 0,
                  category_ids=None, attributes=None) -> list[HookBase]:
    """The hooks of ``trainval_net``, in their order (see the module docstring). ``category_ids``: the dataset's
    id of classes 1..K-1, recorded in the snapshots (default 1..K-1); ``attributes``: the attribute names of a
    network with an attribute head."""
    hooks: list[HookBase] = [NonFiniteCheck(), LogLine(), TensorBoard(writers, valroidb, classes, summary_interval)]
    if eval_imdb is not None:
        hooks.append(PeriodicEval(eval_imdb, eval_interval, output_dir, writers))
    hooks += [StopSignals(), Snapshots(output_dir, net=net, classes=classes, record=record,
                                       category_ids=category_ids, attributes=attributes)]
    return hooks


__all__ = ['HookBase', 'TrainState', 'NonFiniteCheck', 'LogLine', 'TensorBoard', 'PeriodicEval', 'StopSignals',
           'Snapshots', 'default_hooks']
