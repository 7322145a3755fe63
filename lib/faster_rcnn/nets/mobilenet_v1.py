"""MobileNetV1 backbone as tf-faster-rcnn and pytorch-faster-rcnn built it (MOBILENET.VERSION 1).

Fourteen layers: a 3x3 convolution, then thirteen depthwise-separable ones (3x3 depthwise + 1x1 pointwise),
each convolution followed by a frozen BatchNorm (epsilon 1e-3, slim's) and ReLU6. Layers 0, 2, 4 and 6 have
stride 2; the 13th (index 12), stride 2 in the ImageNet network, runs at stride 1 here as in tf-faster-rcnn.
Head = layers 0..11 (stride 16, 512 channels), tail = layers 12..13 on the pooled RoI features (1024 channels),
then the spatial mean. Every stride-2 convolution pads one pixel on each side (slim's ``conv2d_same`` and
tf-faster-rcnn's ``separable_conv2d_same``), which is PyTorch's ``padding=1``.

State_dict names: ``features.0.0`` (conv) / ``features.0.1`` (norm) for layer 0, then
``features.<i>.depthwise.{0,1}`` and ``features.<i>.pointwise.{0,1}``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.errors import ConfigError

from .backbone import Backbone, freeze
from .folded_norm import fold_frozen_norms

# (kind, stride, channels) of the fourteen layers, tf-faster-rcnn's _CONV_DEFS.
_LAYERS = (('conv', 2, 32), ('sep', 1, 64), ('sep', 2, 128), ('sep', 1, 128), ('sep', 2, 256), ('sep', 1, 256),
           ('sep', 2, 512), ('sep', 1, 512), ('sep', 1, 512), ('sep', 1, 512), ('sep', 1, 512), ('sep', 1, 512),
           ('sep', 1, 1024), ('sep', 1, 1024))
_SPLIT = 12
BN_EPS = 1e-3


def _conv_norm(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    # He initialisation keeps the activations' scale through the 27 convolutions when training from scratch
    # with identity norms (tf-faster-rcnn's std 0.09 shrinks them by 1e-10); a detector's weights replace it.
    nn.init.kaiming_normal_(conv.weight, mode='fan_in', nonlinearity='relu')
    return nn.Sequential(conv, FrozenBatchNorm2d(c_out, eps=BN_EPS), nn.ReLU6(inplace=True))


def _separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([('depthwise', _conv_norm(c_in, c_in, 3, stride, groups=c_in)),
                                      ('pointwise', _conv_norm(c_in, c_out, 1, 1))]))


class MobileNetV1(Backbone):
    """Args:
        fixed_layers: MOBILENET.FIXED_LAYERS, 0..12: features[:fixed_layers] are frozen.
        depth_multiplier: MOBILENET.DEPTH_MULTIPLIER: every width times this (at least 8 channels).
    """

    crop_max_pool = True
    imagenet_name = None  # no maintained ImageNet weights: start from a detector or from scratch

    def __init__(self, *, fixed_layers: int = 5, depth_multiplier: float = 1.0) -> None:
        super().__init__()
        if not 0 <= fixed_layers <= _SPLIT:
            raise ConfigError(f'config key MOBILENET.FIXED_LAYERS must be in 0..{_SPLIT} for MobileNetV1 (the head has '
                             f'{_SPLIT} layers), got {fixed_layers}')
        if depth_multiplier <= 0:
            raise ConfigError(f'config key MOBILENET.DEPTH_MULTIPLIER must be positive, got {depth_multiplier}')
        layers, c_in = [], 3
        for kind, stride, depth in _LAYERS:
            c_out = max(int(depth * depth_multiplier), 8)
            layers.append(_conv_norm(c_in, c_out, 3, stride) if kind == 'conv' else _separable(c_in, c_out, stride))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head_channels = max(int(512 * depth_multiplier), 8)
        self.tail_channels = c_in
        freeze(self.features[:fixed_layers])
        # Frozen norms (docs/design.md §2.7), applied inside their convolutions.
        fold_frozen_norms(self)
        self.train()

    def head(self, images: torch.Tensor) -> torch.Tensor:
        return self.features[:_SPLIT](images)

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.features[_SPLIT:](pooled).mean(dim=(2, 3))
