"""The ResNet-101 of bottom-up-attention (BUTD, Anderson et al. 2018): Caffe's MSRA layout with a dilated res5.

What differs from ``nets.resnet.ResNet`` (module names and weights are the same, so a state_dict fits both):

- ``pool1`` is Caffe's max-pool: kernel 3, stride 2, no padding, output size rounded up (ceil mode);
- the stride-2 convolutions of layer2 and layer3 are their first 1x1 (RESNET.LAYOUT 'caffe', always);
- the tail (res5, ``layer4``) runs on 14x14 RoIPool features at stride 1 with every 3x3 dilated by 2 (padding 2),
  so its receptive field matches the stride-2 res5 it was first trained as; its spatial mean is the 2048-d
  region feature.

Every BatchNorm is frozen and folded into its convolution (BUTD trains none of them).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet as TorchvisionResNet
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.errors import ConfigError

from .backbone import Backbone, freeze
from .folded_norm import fold_frozen_norms
from .resnet import _set_stride, apply_layout

# Bottleneck units per stage of ResNet-101 (res2, res3, res4, res5).
RES101_UNITS = (3, 4, 23, 3)


def dilate_tail(layer4: nn.Sequential, dilation: int = 2) -> None:
    """Run res5 at stride 1 with every 3x3 convolution dilated by ``dilation`` (padding likewise)."""
    _set_stride(layer4[0], conv1=1, conv2=1)
    for unit in layer4:
        unit.conv2.dilation = (dilation, dilation)
        unit.conv2.padding = (dilation, dilation)


class ResNetButd(Backbone):
    """BUTD's ResNet: head = conv1..res4 (stride 16, 1024 channels), tail = dilated res5 + spatial mean (2048).

    Args:
        fixed_blocks: RESNET.FIXED_BLOCKS, 0..3: layer1..layer<fixed_blocks> are frozen with the root (BUTD: 2,
            conv1..res3).
        units: bottleneck units per stage; ResNet-101's by default (fewer only to build small test networks).
        width: channels of the first stage's bottleneck (64: ResNet-101; others only for small test networks;
            the stage outputs stay 256, 512, 1024, 2048).
    """

    head_channels = 1024
    tail_channels = 2048
    crop_max_pool = False
    imagenet_unused_prefixes = ('fc.',)

    def __init__(self, *, fixed_blocks: int = 2, units: tuple[int, int, int, int] = RES101_UNITS,
                 width: int = 64) -> None:
        super().__init__()
        if not 0 <= fixed_blocks <= 3:
            raise ConfigError(f'config key RESNET.FIXED_BLOCKS must be in 0..3 (layer4 is the tail), '
                              f'got {fixed_blocks}')
        self.imagenet_name = 'res101' if tuple(units) == RES101_UNITS and width == 64 else None
        self.layout = 'caffe'
        tv = TorchvisionResNet(Bottleneck, list(units), width_per_group=width, norm_layer=FrozenBatchNorm2d)
        self.conv1, self.bn1, self.relu = tv.conv1, tv.bn1, tv.relu
        # Caffe's pool1: no padding, the output size rounded up.
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.layer1, self.layer2, self.layer3, self.layer4 = tv.layer1, tv.layer2, tv.layer3, tv.layer4
        apply_layout((self.layer1, self.layer2, self.layer3), 'caffe')
        dilate_tail(self.layer4)
        for m in (self.conv1, self.bn1):
            freeze(m)
        for layer in (self.layer1, self.layer2, self.layer3)[:fixed_blocks]:
            freeze(layer)
        fold_frozen_norms(self, extra_parents=(ResNetButd,))
        self.train()

    def head(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1024, ceil(H/16), ceil(W/16)) (ceil rounding at conv1, pool1, res3a, res4a)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer3(self.layer2(self.layer1(x)))

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        """(R, 1024, 14, 14) RoIPool features -> (R, 2048): dilated res5, then the mean over the 14x14 map."""
        return self.layer4(pooled).mean(dim=(2, 3))
