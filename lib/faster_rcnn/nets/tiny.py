"""A small backbone trained from scratch (the ``shapes`` quick start on CPU).

Head: five 3x3 conv + BatchNorm + ReLU stages (TINY.CHANNELS); stages 1 to 4 have stride 2 and stage 5
stride 1, so the feature map is ceil(H/16) x ceil(W/16) like the ImageNet backbones'. Striding from the
first stage makes the head ~3.5x cheaper than a full-resolution first stage, which on a 2-core CPU is the
difference between a quick start and a slow one. BatchNorm is trained: with no
pretrained statistics to keep, freezing it (the ImageNet rule) would leave the net un-normalised.
Tail: two fully connected layers of TINY.FC_DIM on the pooled P x P features.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from faster_rcnn.errors import ConfigError

from .backbone import Backbone


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Tiny(Backbone):
    """Args:
        channels: TINY.CHANNELS, the output channels of the five stages.
        fc_dim: TINY.FC_DIM.
        pooling_size: POOLING_SIZE (the tail's input is pooling_size x pooling_size).
    """

    crop_max_pool = False  # crop P x P directly: the 2P crop + max-pool costs more than it gives here
    imagenet_name = None

    def __init__(self, channels: Sequence[int] = (32, 64, 96, 128, 128), fc_dim: int = 256,
                 pooling_size: int = 7) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ConfigError(f'config key TINY.CHANNELS must list 5 stage widths (stride 16), got {list(channels)}')
        stages, c_in = [], 3
        for i, c in enumerate(channels):
            stages.append(_stage(c_in, int(c), 2 if i < 4 else 1))
            c_in = int(c)
        self.features = nn.Sequential(*stages)
        self.head_channels = c_in
        self.tail_channels = int(fc_dim)
        self.fc = nn.Sequential(nn.Linear(c_in * pooling_size * pooling_size, fc_dim), nn.ReLU(inplace=True),
                                nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True))
        for m in self.fc:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def head(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled.flatten(1))
