"""The reference's schedule at any global batch: the linear scaling rule with a gradual warm-up.

A config's schedule (iterations, LR steps, snapshot / display / evaluation intervals, warm-up) was written
for one global batch B0 (TRAIN.REFERENCE_BATCH: 1 image for tf-faster-rcnn's ymls). A run with global batch
B = world size x TRAIN.IMS_PER_BATCH keeps that schedule measured in images: every iteration count is
multiplied by B0 / B and the learning rate by B / B0 (Goyal et al., "Accurate, Large Minibatch SGD", 2017:
with k times the batch, k times the LR gives each image the same weight in the update).

Warm-up: when B > B0 the scaled LR is reached by a linear warm-up that starts from the reference's own LR
(factor B0 / B) over TRAIN.SCALED_WARMUP_ITERS iterations (at most 5% of the run). The rule is an
approximation that fails in the first steps, while the randomly initialised RPN and heads change fastest;
a gradual warm-up from the small-batch LR is what Goyal et al. found to remove that early divergence (their
constant warm-up was worse), and 500 iterations is the length Detectron uses for its 16-image batch. A
warm-up the config already has is scaled like the other counts and kept when longer. When B < B0 the LR only
decreases and no warm-up is added.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from faster_rcnn.settings import TrainSettings


@dataclass(frozen=True)
class Schedule:
    """The numbers a run trains with (after scaling), and the global batches behind them."""

    iters: int
    learning_rate: float
    stepsize: tuple[int, ...]
    warmup_iters: int
    warmup_factor: float
    global_batch: int
    reference_batch: int
    # Every iteration interval of the settings (``TrainSettings.intervals()``: SNAPSHOT_ITERS, DISPLAY,
    # EVAL_INTERVAL, an extension's declared interval), by name; 0 means off and stays 0.
    intervals: dict[str, int] = field(default_factory=dict)

    @property
    def snapshot_iters(self) -> int:
        return self.intervals['SNAPSHOT_ITERS']

    @property
    def display(self) -> int:
        return self.intervals['DISPLAY']

    @property
    def eval_interval(self) -> int:
        return self.intervals['EVAL_INTERVAL']

    @property
    def ratio(self) -> float:
        """B / B0."""
        return self.global_batch / self.reference_batch


def _count(value: int, factor: float, minimum: int = 1) -> int:
    """An iteration count scaled by ``factor`` (B0 / B), rounded to the nearest iteration."""
    return max(int(math.floor(value * factor + 0.5)), minimum)


def given_schedule(train: TrainSettings, iters: int, world_size: int, reference_batch: int) -> Schedule:
    """The settings' numbers as they are, for the run's global batch (world size x TRAIN.IMS_PER_BATCH);
    ``reference_batch``: TRAIN.REFERENCE_BATCH."""
    return Schedule(iters=int(iters), learning_rate=float(train.optimizer.learning_rate),
                    stepsize=tuple(int(s) for s in train.stepsize), intervals=train.intervals(),
                    warmup_iters=int(train.warmup_iters), warmup_factor=float(train.warmup_factor),
                    global_batch=int(world_size) * int(train.ims_per_batch), reference_batch=int(reference_batch))


def scale_schedule(given: Schedule, scaled_warmup_iters: int = 500) -> Schedule:
    """``given`` (written for ``given.reference_batch``) at ``given.global_batch``: the linear scaling rule."""
    if given.reference_batch < 1 or given.global_batch < 1:
        raise ValueError(f'config key TRAIN.REFERENCE_BATCH must be >= 1, got {given.reference_batch}')
    if given.global_batch == given.reference_batch:
        return given
    factor = given.reference_batch / given.global_batch  # B0 / B
    iters = _count(given.iters, factor)
    warmup_iters = _count(given.warmup_iters, factor, 0) if given.warmup_iters > 0 else 0
    warmup_factor = given.warmup_factor if given.warmup_iters > 0 else 1.0
    if given.global_batch > given.reference_batch:
        added = min(int(scaled_warmup_iters), iters // 20)
        if added > warmup_iters:
            warmup_iters = added
        # Start no higher than the reference's own learning rate.
        warmup_factor = min(warmup_factor, factor)
    return replace(given, iters=iters, learning_rate=given.learning_rate / factor,
                   stepsize=tuple(_count(s, factor) for s in given.stepsize),
                   intervals={k: _count(v, factor) if v > 0 else 0 for k, v in given.intervals.items()},
                   warmup_iters=warmup_iters, warmup_factor=warmup_factor if warmup_iters > 0 else given.warmup_factor)


def run_schedule(train: TrainSettings, iters: int, world_size: int, *, reference_batch: int, scale: bool = True,
                 scaled_warmup_iters: int = 500) -> tuple[Schedule, Schedule]:
    """(given, used): the settings' schedule and the one the run uses (scaled unless ``scale`` is off:
    TRAIN.SCALE_SCHEDULE / --keep-schedule)."""
    given = given_schedule(train, iters, world_size, reference_batch)
    if not scale:
        return given, given
    return given, scale_schedule(given, scaled_warmup_iters)


def apply_schedule(train: TrainSettings, used: Schedule) -> TrainSettings:
    """``train`` with the used schedule's numbers (what the trainer reads)."""
    return replace(train.with_intervals(used.intervals),
                   optimizer=replace(train.optimizer, learning_rate=used.learning_rate),
                   stepsize=tuple(used.stepsize), warmup_iters=used.warmup_iters, warmup_factor=used.warmup_factor)


def describe(given: Schedule, used: Schedule, world_size: int, ims_per_batch: int, scaling: bool) -> str:
    """The lines printed at the start of training."""
    head = (f'Schedule: global batch {used.global_batch} ({world_size} process(es) x {ims_per_batch} image(s)); '
            f'the config was written for {given.reference_batch}')
    if used == given:
        why = ('the same batch: numbers as given' if used.global_batch == used.reference_batch
               else 'TRAIN.SCALE_SCHEDULE off (--keep-schedule): numbers as given, the result will differ from the '
                    "reference's")
        shown = ', '.join(f'{k} {v}' for k, v in used.intervals.items() if v > 0)
        return (f'{head}; {why}\n  iterations {used.iters}, LEARNING_RATE {used.learning_rate:g}, STEPSIZE '
                f'{list(used.stepsize)}, {shown}')
    lines = [f'{head}; scaled by the linear rule (x {given.reference_batch}/{used.global_batch} iterations, '
             f'x {used.global_batch}/{given.reference_batch} learning rate; --keep-schedule to keep the numbers):',
             f'  iterations {given.iters} -> {used.iters} ({used.iters * used.global_batch} images)',
             f'  LEARNING_RATE {given.learning_rate:g} -> {used.learning_rate:g}',
             f'  STEPSIZE {list(given.stepsize)} -> {list(used.stepsize)}',
             '  ' + ', '.join(f'{k} {v} -> {used.intervals[k]}' for k, v in given.intervals.items() if v > 0)]
    if used.warmup_iters:
        lines.append(f'  warm-up: linear from {used.learning_rate * used.warmup_factor:g} (factor '
                     f'{used.warmup_factor:g}) to {used.learning_rate:g} over {used.warmup_iters} iterations')
    return '\n'.join(lines)


def notices(given: Schedule, used: Schedule) -> list[str]:
    """One line for each thing about the used schedule a user would not expect from the command: ``--iters``
    changed by the scaling, and a run that ends before its learning-rate warm-up does (never at the full rate)."""
    lines = []
    if used.iters != given.iters:
        lines.append(f'--iters {given.iters} trains {used.iters} iterations: the config\'s schedule is for a global '
                     f'batch of {given.reference_batch} (TRAIN.REFERENCE_BATCH) and this run\'s is '
                     f'{used.global_batch}, so it is scaled to the same number of images; --keep-schedule trains '
                     f'{given.iters}')
    if used.warmup_iters >= used.iters:
        lines.append(f'the run ({used.iters} iterations) is not longer than its learning-rate warm-up '
                     f'({used.warmup_iters} iterations): it never trains at the full LEARNING_RATE; shorten it, e.g. '
                     f'--set TRAIN.WARMUP_ITERS {max(used.iters // 10, 1)}')
    return lines
