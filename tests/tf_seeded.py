"""Seeded values for every variable of a tf-faster-rcnn checkpoint (numpy only, no TensorFlow).

``tf_variables(read_variable_list(path), seed)`` gives a float32 array for each listed name; the
fixtures ``tests/data/tf_net_*.npz`` hold what tf-faster-rcnn's TensorFlow graphs computed from exactly
these values (seed 2024), so a test can draw them again, write them in the checkpoint format, convert
them and compare. Every array comes from its own stream (``seeded_weights.centred``/``uniform``, keyed by
the variable's name), so the values do not depend on the order of the list.

The distribution of each array is decided by its name (its role in the network); a name that fits no rule
is an error, never silently skipped (``variable_rule``). "centred" is uniform around the mean with the given
std (``seeded_weights.centred``). The scales keep the activations sane for ``seeded_image`` minus the pixel
means (std about 54): head std 1.35 (vgg16), 1.56 / 1.61 / 2.07 (res50/101/152), 0.51 (mobile); per-RoI
max class probability 0.19-0.63, never saturated (see make_tf_fixtures.py --stats):

- convolution ``weights`` HWIO, fan_in = H*W*I: centred, std sqrt(2 / fan_in) (He); a convolution that reads
  the image (I == 3: vgg conv1_1, resnet conv1, mobilenet Conv2d_0) is divided further by ``IMAGE_SCALE``
  (50). ``depthwise_weights`` [H, W, C, 1]: fan_in = H*W, the same rule.
- ``rpn_cls_score`` weights: std ``RPN_CLS_GAIN`` (1) / sqrt(fan_in); ``rpn_bbox_pred`` weights:
  std ``RPN_BBOX_GAIN`` (0.2) / sqrt(fan_in).
- fully connected ``weights`` [in, out]: ``fc6``/``fc7`` std sqrt(2 / in); ``cls_score`` std ``CLS_GAIN`` (1)
  / sqrt(in) / tail scale, ``bbox_pred`` std ``BBOX_GAIN`` (0.2) / sqrt(in) / tail scale; the tail scale
  (``_TAIL_SCALE``, by the name's first component) is 1 but 0.33 for ``MobilenetV1`` (its fc7, a mean of
  ReLU6 outputs, is about 3x smaller).
- ``biases``: centred, std ``BIAS_STD`` (0.05); ``cls_score/biases`` std ``CLS_BIAS_STD`` (0.2).
- ``BatchNorm/gamma`` uniform [0.8, 1.2); for ``bottleneck_v1/conv3/BatchNorm/gamma`` (the residual branch
  that is added to the shortcut) times ``RESIDUAL_GAMMA`` (0.1), so that 36 units of res152's block3 grow
  the stream only about 1.3x; ``beta`` and ``moving_mean`` centred, std 0.1; ``moving_variance`` uniform
  [0.6, 1.4).
- ``<var>/Momentum`` slots: centred, std 1e-3. ``Variable`` (the learning-rate scalar): uniform [1e-4, 1e-3).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from seeded_weights import centred, uniform

IMAGE_SCALE = 50.0
RPN_CLS_GAIN = 1.0
RPN_BBOX_GAIN = 0.2
CLS_GAIN = 1.0
BBOX_GAIN = 0.2
BIAS_STD = 0.05
CLS_BIAS_STD = 0.2
RESIDUAL_GAMMA = 0.1
MOMENTUM_STD = 1e-3

# The magnitude of the vector fed to cls_score / bbox_pred (fc7 of vgg16, the mean over block4 of a
# resnet, over Conv2d_13 of mobilenet) differs per backbone; the fc heads are divided by it.
_TAIL_SCALE = {'vgg_16': 1.0, 'resnet_v1_50': 1.0, 'resnet_v1_101': 1.0, 'resnet_v1_152': 1.0,
               'MobilenetV1': 0.33}

_LINE = re.compile(r'^(\S+) \[([0-9, ]*)\]$')


def read_variable_list(path) -> list[tuple[str, tuple[int, ...]]]:
    """The ``name [d0, d1, ...]`` lines of a variable list (``[]`` is a scalar)."""
    out = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f'{path}: not a variable line: {raw!r}')
        dims = tuple(int(d) for d in m.group(2).split(',') if d.strip())
        out.append((m.group(1), dims))
    return out


def _scope(name: str) -> str:
    return name.split('/', 1)[0]


def _tail_scale(name: str) -> float:
    return _TAIL_SCALE.get(_scope(name), 1.0)


def variable_rule(name: str, shape: Sequence[int]) -> tuple[str, float, float]:
    """``(kind, a, b)`` for the array called ``name``: kind 'centred' (a = std, b = mean) or 'uniform'
    (a = low, b = high). Raises KeyError for a name that fits no rule."""
    shape = tuple(int(s) for s in shape)
    parts = name.split('/')
    leaf = parts[-1]
    if name == 'Variable' and shape == ():
        return 'uniform', 1e-4, 1e-3
    if leaf == 'Momentum':
        return 'centred', MOMENTUM_STD, 0.0
    if len(parts) >= 2 and parts[-2] == 'BatchNorm':
        if leaf == 'gamma':
            g = RESIDUAL_GAMMA if (len(parts) >= 4 and parts[-3] == 'conv3' and parts[-4] == 'bottleneck_v1') else 1.0
            return 'uniform', 0.8 * g, 1.2 * g
        if leaf == 'beta':
            return 'centred', 0.1, 0.0
        if leaf == 'moving_mean':
            return 'centred', 0.1, 0.0
        if leaf == 'moving_variance':
            return 'uniform', 0.6, 1.4
        raise KeyError(name)
    layer = parts[-2] if len(parts) >= 2 else ''
    if leaf == 'biases' and len(shape) == 1:
        return 'centred', (CLS_BIAS_STD if layer == 'cls_score' else BIAS_STD), 0.0
    if leaf == 'depthwise_weights' and len(shape) == 4 and shape[3] == 1:
        fan_in = shape[0] * shape[1]
        return 'centred', math.sqrt(2.0 / fan_in), 0.0
    if leaf == 'weights' and len(shape) == 4:
        fan_in = shape[0] * shape[1] * shape[2]
        if layer == 'rpn_cls_score':
            return 'centred', RPN_CLS_GAIN / math.sqrt(fan_in), 0.0
        if layer == 'rpn_bbox_pred':
            return 'centred', RPN_BBOX_GAIN / math.sqrt(fan_in), 0.0
        std = math.sqrt(2.0 / fan_in)
        if shape[2] == 3:
            std /= IMAGE_SCALE
        return 'centred', std, 0.0
    if leaf == 'weights' and len(shape) == 2:
        fan_in = shape[0]
        if layer == 'cls_score':
            return 'centred', CLS_GAIN / math.sqrt(fan_in) / _tail_scale(name), 0.0
        if layer == 'bbox_pred':
            return 'centred', BBOX_GAIN / math.sqrt(fan_in) / _tail_scale(name), 0.0
        return 'centred', math.sqrt(2.0 / fan_in), 0.0
    raise KeyError(f'no rule for variable {name!r} of shape {list(shape)}')


def tf_variable(name: str, shape: Sequence[int], seed: int) -> np.ndarray:
    """The seeded float32 value of one variable."""
    kind, a, b = variable_rule(name, shape)
    if kind == 'centred':
        arr = centred(name, shape, seed, std=a, mean=b)
    else:
        arr = uniform(name, shape, seed, a, b)
    return np.asarray(arr, dtype=np.float32).reshape(tuple(int(s) for s in shape))


def tf_variables(variables: Iterable[tuple[str, Sequence[int]]], seed: int) -> dict[str, np.ndarray]:
    """A float32 array of the listed shape for every listed ``(name, shape)``."""
    return {name: tf_variable(name, shape, seed) for name, shape in variables}
