"""Seeded weights for every entry of a ruotianluo/pytorch-faster-rcnn ("rtl") state_dict, numpy only.

The rtl network-equality fixtures (``tests/data/rtl_net_<net>_<ds>_<mode>.npz``) hold what rtl's own code
computed with the weights ``rtl_state_dict(read_key_list('tests/data/rtl_<net>_<ds>_keys.txt'), 2024)``;
a test draws the same weights again (without rtl's code and without torch), writes them as an rtl ``.pth``,
converts it and compares. ``tests/fixtures_src/make_rtl_fixtures.py`` made the fixtures.

Every entry's distribution follows from its name, its shape and the names of its siblings only (the key
list), never from rtl's module classes. All draws are ``seeded_weights.uniform``/``centred`` (one stream per
name), so they are the same on every machine. ``rule(name, shape, keys)`` says which rule an entry gets.

BatchNorm: a ``<module>.weight``/``.bias`` is a BatchNorm parameter when ``<module>.running_mean`` is also a
key. Then
    weight        centred, mean 1, std 0.2          running_mean  centred, mean 0, std 0.1
    bias          centred, mean 0, std 0.1          running_var   uniform in [0.5, 1.5)
    num_batches_tracked   int64 0-d, 0
(an identity-ish affine that still differs from the identity, so that a converter that drops or mixes up
any of the four shows.)

Convolutions (4-d ``.weight`` [O, I, kH, kW], OIHW; a depthwise conv is [C, 1, 3, 3]), fan_in = I*kH*kW:
    rpn_cls_score_net.weight   std = RPN_CLS_GAIN / sqrt(fan_in)
    rpn_bbox_pred_net.weight   std = RPN_BBOX_GAIN / sqrt(fan_in)
    I == 3 (reads the image)   std = sqrt(2 / fan_in) / IMAGE_SCALE   (the input is 0-255 minus the means)
    ``*.conv3.weight``         std = RESIDUAL_GAIN * sqrt(2 / fan_in) (last conv of a bottleneck branch)
    any other                  std = sqrt(2 / fan_in)                 (He: keeps the scale through conv+ReLU)
Fully connected (2-d ``.weight`` [out, in]), fan_in = in:
    cls_score_net.weight       std = CLS_GAIN / sqrt(fan_in)
    bbox_pred_net.weight       std = BBOX_GAIN / sqrt(fan_in)
    any other                  std = sqrt(2 / fan_in)
Biases of convolutions and fully connected layers (1-d ``.bias`` without a ``running_mean`` sibling):
    centred, mean 0, std BIAS_STD.
"centred" is ``seeded_weights.centred`` (uniform with that mean and std); all weights have mean 0. The
constants are IMAGE_SCALE 64, RESIDUAL_GAIN 0.1, RPN_CLS_GAIN 0.5, RPN_BBOX_GAIN 0.2, CLS_GAIN 1, BBOX_GAIN 1,
BIAS_STD 0.1; the first rule that matches applies, and an entry no rule matches is an error (never a silent
default). With seed 2024 (tests/data/rtl_net_*.npz) the backbone stages of vgg16, res50/101/152 and mobile
have std 0.33 to 2.4 (head 0.76 to 1.8), RPN foreground probabilities lie in [0.039, 0.995] with no ties,
and the largest class probability per roi is 0.14 to 0.68 (uniform: 1/21, 1/81).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

try:  # imported as a sibling module by the tests (no package), or from the tests package
    from seeded_weights import centred, uniform
except ImportError:  # pragma: no cover
    from .seeded_weights import centred, uniform

IMAGE_SCALE = 64.0      # about the rms of a mean-subtracted 0-255 BGR image
RESIDUAL_GAIN = 0.1     # last conv of each bottleneck branch: BN in eval mode does not renormalise, so
                        # each residual addition grows the stream; 0.1 keeps res152's 36 + 8 in range
RPN_CLS_GAIN = 0.5
RPN_BBOX_GAIN = 0.2
CLS_GAIN = 1.0
BBOX_GAIN = 1.0
BIAS_STD = 0.1

_LINE = re.compile(r"^(\S+)\s+\[([0-9,\s]*)\]\s*$")


def read_key_list(path: str | Path) -> list[tuple[str, tuple[int, ...]]]:
    """Read a ``name [d0, d1, ...]`` per line key list (``[]`` is a 0-d scalar), in file order."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise ValueError(f"{path}:{lineno}: not 'name [d0, d1, ...]': {line!r}")
        dims = tuple(int(d) for d in m.group(2).replace(',', ' ').split())
        out.append((m.group(1), dims))
    return out


def write_key_list(path: str | Path, entries: Iterable[tuple[str, Sequence[int]]]) -> None:
    """Write the format ``read_key_list`` reads."""
    Path(path).write_text(''.join(f"{n} [{', '.join(str(int(d)) for d in s)}]\n" for n, s in entries))


def rule(name: str, shape: Sequence[int], keys: Iterable[str]) -> tuple[str, dict]:
    """(kind, parameters) of the distribution of entry ``name``; ``keys`` are all the entry names."""
    keys = keys if isinstance(keys, (set, frozenset)) else set(keys)
    module, _, leaf = name.rpartition('.')
    shape = tuple(int(s) for s in shape)
    is_bn = f"{module}.running_mean" in keys
    if leaf == 'num_batches_tracked':
        return 'int64_zero', {}
    if leaf == 'running_mean':
        return 'centred', {'std': 0.1, 'mean': 0.0}
    if leaf == 'running_var':
        return 'uniform', {'low': 0.5, 'high': 1.5}
    if is_bn and leaf == 'weight' and len(shape) == 1:
        return 'centred', {'std': 0.2, 'mean': 1.0}
    if is_bn and leaf == 'bias' and len(shape) == 1:
        return 'centred', {'std': 0.1, 'mean': 0.0}
    if leaf == 'bias' and len(shape) == 1:
        return 'centred', {'std': BIAS_STD, 'mean': 0.0}
    if leaf == 'weight' and len(shape) == 4:
        _, cin, kh, kw = shape
        fan_in = cin * kh * kw
        if module == 'rpn_cls_score_net':
            std = RPN_CLS_GAIN / math.sqrt(fan_in)
        elif module == 'rpn_bbox_pred_net':
            std = RPN_BBOX_GAIN / math.sqrt(fan_in)
        elif cin == 3:
            std = math.sqrt(2.0 / fan_in) / IMAGE_SCALE
        elif module.endswith('.conv3'):
            std = RESIDUAL_GAIN * math.sqrt(2.0 / fan_in)
        else:
            std = math.sqrt(2.0 / fan_in)
        return 'centred', {'std': std, 'mean': 0.0}
    if leaf == 'weight' and len(shape) == 2:
        fan_in = shape[1]
        if module == 'cls_score_net':
            std = CLS_GAIN / math.sqrt(fan_in)
        elif module == 'bbox_pred_net':
            std = BBOX_GAIN / math.sqrt(fan_in)
        else:
            std = math.sqrt(2.0 / fan_in)
        return 'centred', {'std': std, 'mean': 0.0}
    raise ValueError(f"no seeded-weight rule for {name} {list(shape)}")


def draw(name: str, shape: Sequence[int], seed: int, kind: str, params: dict) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    if kind == 'int64_zero':
        return np.zeros(shape, dtype=np.int64)
    if kind == 'centred':
        a = centred(name, shape, seed, params['std'], params['mean'])
    elif kind == 'uniform':
        a = uniform(name, shape, seed, params['low'], params['high'])
    else:
        raise ValueError(kind)
    return np.asarray(a, dtype=np.float32).reshape(shape)


def rtl_state_dict(keys: Sequence[tuple[str, Sequence[int]]], seed: int) -> dict[str, np.ndarray]:
    """{name: array} for every (name, shape) of ``keys``, in their order: float32, int64 for
    ``num_batches_tracked``."""
    names = frozenset(n for n, _ in keys)
    if len(names) != len(keys):
        raise ValueError("duplicate names in the key list")
    return {n: draw(n, s, seed, *rule(n, s, names)) for n, s in keys}
