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


def bf16_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """Cast ``model.backbone``'s weights to bf16 in place, once, and return ``model``.

    Under bf16 autocast every convolution and linear layer casts its fp32 weights to bf16 at each call; a backbone
    already in bf16 skips that (the same rounding, done once). The RPN, the predictors and the constant buffers stay
    fp32 (their casts are small), so boxes and NMS are unchanged. Run the model under bf16 autocast afterwards.
    """
    model.backbone.to(torch.bfloat16)
    return model
