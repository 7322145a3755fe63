"""Mixed precision: autocast for TRAIN.AMP and TEST.AMP ('' = fp32, 'bf16', 'fp16').

The network keeps what must stay exact in fp32 under autocast: RPN scores and deltas are cast to fp32
before the proposal layer, so box decoding, IoU, NMS and the losses never run in half precision.
"""
from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def autocast(device: torch.device, mode: str, key: str = 'TRAIN.AMP'):
    """An autocast context for ``mode`` on ``device`` (a null context for '')."""
    if not mode:
        return contextlib.nullcontext()
    if mode not in AMP_DTYPES:
        raise ConfigError(f"config key {key}: unknown precision {mode!r}; use '' (fp32), 'bf16' or 'fp16'")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[mode])
