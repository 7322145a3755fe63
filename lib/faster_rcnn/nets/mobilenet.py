"""MobileNetV2 backbone: head = torchvision's features up to stride 16, tail = the rest at stride 1 + mean.

tf-faster-rcnn used MobileNetV1, for which no maintained ImageNet weights exist; torchvision's
MobileNetV2 takes its place.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.errors import ConfigError

from .backbone import Backbone, freeze
from .folded_norm import fold_frozen_norms

# features[14] is the first block at stride 32: it and the rest form the tail.
_SPLIT = 14


class MobileNetV2(Backbone):
    """Args:
        fixed_layers: MOBILENET.FIXED_LAYERS: features[:fixed_layers] are frozen.
        depth_multiplier: MOBILENET.DEPTH_MULTIPLIER (torchvision's width_mult).
    """

    crop_max_pool = True
    imagenet_name = 'mobile'
    imagenet_unused_prefixes = ('classifier.',)

    def __init__(self, *, fixed_layers: int = 5, depth_multiplier: float = 1.0) -> None:
        super().__init__()
        # Every BatchNorm is frozen: FrozenBatchNorm2d (a fixed affine map) rather than an eval-mode BatchNorm2d,
        # which would save its input for backward.
        tv = mobilenet_v2(weights=None, width_mult=depth_multiplier, norm_layer=FrozenBatchNorm2d)
        if not 0 <= fixed_layers <= _SPLIT:
            raise ConfigError(f'config key MOBILENET.FIXED_LAYERS must be in 0..{_SPLIT} (the head has {_SPLIT} '
                              f'layers), got {fixed_layers}')
        self.features = tv.features
        # The first stride-32 block's depthwise conv runs at stride 1 (the tail keeps the 7x7 RoI grid).
        for m in self.features[_SPLIT].modules():
            if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                m.stride = (1, 1)
        self.head_channels = self.features[_SPLIT - 1].out_channels
        self.tail_channels = self.features[-1].out_channels
        freeze(self.features[:fixed_layers])
        # Each frozen norm is applied inside its convolution: two fewer passes over every activation.
        fold_frozen_norms(self)
        self.train()

    def head(self, images: torch.Tensor) -> torch.Tensor:
        return self.features[:_SPLIT](images)

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.features[_SPLIT:](pooled).mean(dim=(2, 3))
