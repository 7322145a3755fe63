"""torch.distributed set-up for torchrun: one code path, world size 1 when not launched by torchrun.

A process of a distributed run that dies (or hangs) does not leave the others waiting forever: torchrun stops
them when it sees one fail, and every collective gives up after FRCNN_DIST_TIMEOUT seconds (default 1800,
the time a slow evaluation or snapshot on one rank may take), which ends the run with exit code 8.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU).

    ``device`` is 'cpu', 'cuda' or 'cuda:N'. Under torchrun each process takes cuda:LOCAL_RANK.
    """
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = torch.device(device)
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError(f'--device {device} was asked for but CUDA is not available: use --device cpu')
        if world_size > 1:
            dev = torch.device('cuda', local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo', timeout=dist_timeout())
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def dist_timeout() -> datetime.timedelta:
    """How long a collective waits for the other processes (the environment variable FRCNN_DIST_TIMEOUT, seconds)."""
    text = os.environ.get('FRCNN_DIST_TIMEOUT', '1800')
    try:
        seconds = float(text)
    except ValueError:
        from faster_rcnn.errors import UsageError
        raise UsageError(f'FRCNN_DIST_TIMEOUT={text!r}: expected a number of seconds') from None
    return datetime.timedelta(seconds=seconds)


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``values`` over the processes (for logging; a no-op in a single process)."""
    if not info.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo, finished: bool = True) -> None:
    """Leave the process group. After a run that ``finished``, together: a process that tears its connections
    down while another still exchanges the last messages of a collective can make gloo abort that other
    process. After a failure, at once (the others may be in another collective: waiting could hang)."""
    if info.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
