"""Which device a detector runs on: a name checked against what this machine has, so that ``'tpu'``, or
``'cuda'`` without CUDA, is one UsageError naming the device and the available ones (torch's own errors are
tracebacks deep inside the loading)."""
from __future__ import annotations

import torch

from ..errors import UsageError


def available_devices() -> list[str]:
    """The device names this machine can run on: 'cpu', then 'cuda:0'... and 'mps' when present."""
    names = ['cpu']
    if torch.cuda.is_available():
        names += [f'cuda:{i}' for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, 'mps', None)
    if mps is not None and mps.is_available():
        names.append('mps')
    return names


def checked_device(device: torch.device | str, name: str = 'device') -> torch.device:
    """``device`` as a ``torch.device`` that exists here; ``name`` is the argument the message names (a flag
    such as '--device', or a keyword argument)."""
    available = available_devices()
    hint = f'available on this machine: {", ".join(available)}'
    what = f'{name} {device}' if name.startswith('--') else f'{name}={str(device)!r}'
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f'{what}: not a device name; {hint}') from None
    if parsed.type == 'cpu':
        return parsed
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise UsageError(f'{what}: CUDA is not available on this machine; {hint}')
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f'{what}: this machine has {torch.cuda.device_count()} CUDA device(s); {hint}')
        return parsed
    if parsed.type == 'mps' and 'mps' in available:
        return parsed
    raise UsageError(f'{what}: a {parsed.type} device is not available to this project here; {hint}')
