"""SIGINT (Ctrl-C) and SIGTERM during training: finish the iteration, write a snapshot, stop.

Running the same command again resumes from that snapshot exactly as if nothing had happened. A second
signal stops at once (the newest periodic snapshot is then the one to resume from). Under torchrun the
processes must stop at the same iteration, so they agree on it at the next logging iteration (TRAIN.DISPLAY):
one small all-reduce there, none in the other steps.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from faster_rcnn.engine.distributed import DistInfo

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# What signal.signal returns and accepts as a handler.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class StopSignals:
    """A context that turns SIGINT / SIGTERM into a request the training loop honours between iterations."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, _Handler] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second one: stop now
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum
        logger.info(f'\n{signal.Signals(signum).name} received: finishing this iteration, then writing a snapshot '
              '(send it again to stop at once)')

    def requested(self, info: DistInfo, iteration: int, display: int) -> int | None:
        """The signal to stop on after ``iteration``, or None; every process gets the same answer."""
        if not info.distributed:
            return self.signum
        if iteration % display:
            return None
        flag = torch.tensor([self.signum or 0], dtype=torch.int64,
                            device=info.device if info.device.type == 'cuda' else 'cpu')
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        value = int(flag.item())
        return value or None
