"""ResNet-50/101/152 backbones: head = conv1..layer3 (stride 16), tail = layer4 at stride 1 + spatial mean.

The three ways the published detectors place the stride-2 convolutions (RESNET.LAYOUT), with the same
module names and weights in each, so a state_dict fits all three:

==============  ============================================================  ==========================
layout          where layer1 -> layer2 -> layer3 halve the resolution          used by
==============  ============================================================  ==========================
'torchvision'   3x3 conv2 of the first unit of layer2 and of layer3 (v1.5)     torchvision's ImageNet
'slim'          3x3 conv2 of the LAST unit of layer1 and of layer2; that       tf-faster-rcnn (slim's
                unit's shortcut subsamples (takes every second pixel)          resnet_v1)
'caffe'         1x1 conv1 of the first unit of layer2 and of layer3            pytorch-faster-rcnn
==============  ============================================================  ==========================

All three give a ceil(H/16) x ceil(W/16) head; 'caffe' equals 'slim' up to rounding, 'torchvision' differs.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50, resnet101, resnet152
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.errors import ConfigError

from .backbone import Backbone, freeze
from .folded_norm import fold_frozen_norms

_BUILDERS = {'res50': resnet50, 'res101': resnet101, 'res152': resnet152}
_IMAGENET_NAMES = {'res50': 'res50', 'res101': 'res101', 'res152': 'res152'}
LAYOUTS = ('torchvision', 'slim', 'caffe')


class Subsample(nn.Module):
    """The shortcut of a strided unit whose channel count does not change: every ``stride``-th pixel
    (slim's ``subsample``, a 1x1 max-pool with that stride)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride]


def _set_stride(unit: Bottleneck, *, conv1: int, conv2: int) -> None:
    """Put a unit's stride on conv1 or conv2; a projection shortcut follows the unit's total stride."""
    unit.conv1.stride = (conv1, conv1)
    unit.conv2.stride = (conv2, conv2)
    if unit.downsample is not None:
        unit.downsample[0].stride = (conv1 * conv2, conv1 * conv2)


def apply_layout(layers: tuple[nn.Sequential, nn.Sequential, nn.Sequential], layout: str) -> None:
    """Move the stride-2 convolutions of (layer1, layer2, layer3) of a torchvision ResNet to ``layout``."""
    layer1, layer2, layer3 = layers
    if layout == 'torchvision':
        return
    if layout == 'caffe':
        for layer in (layer2, layer3):
            _set_stride(layer[0], conv1=2, conv2=1)
        return
    if layout == 'slim':
        for layer in (layer2, layer3):
            _set_stride(layer[0], conv1=1, conv2=1)
        for layer in (layer1, layer2):
            last = layer[-1]
            if last.downsample is not None:
                raise ValueError('slim layout: the last unit of a layer is expected to have an identity shortcut')
            _set_stride(last, conv1=1, conv2=2)
            last.downsample = Subsample(2)
        return
    raise ConfigError(f'config key RESNET.LAYOUT: unknown layout {layout!r}, expected one of {list(LAYOUTS)}')


class ResNet(Backbone):
    """torchvision's ResNet bottlenecks with tf-faster-rcnn's cut and freezing rules.

    Args:
        depth_name: 'res50', 'res101' or 'res152'.
        fixed_blocks: RESNET.FIXED_BLOCKS, 0..3: layer1..layer<fixed_blocks> are frozen with the root.
        max_pool: RESNET.MAX_POOL: in 'crop' mode crop 14x14 then max-pool (else crop 7x7 directly).
        layout: RESNET.LAYOUT, where the strides sit (see the module docstring).
    """

    head_channels = 1024
    tail_channels = 2048
    imagenet_unused_prefixes = ('fc.',)

    def __init__(self, depth_name: str, *, fixed_blocks: int = 1, max_pool: bool = False,
                 layout: str = 'torchvision') -> None:
        super().__init__()
        if depth_name not in _BUILDERS:
            raise ValueError(f'unknown ResNet {depth_name!r}: expected one of {sorted(_BUILDERS)}')
        if not 0 <= fixed_blocks <= 3:
            raise ConfigError(f'config key RESNET.FIXED_BLOCKS must be in 0..3 (layer4 is the tail), '
                              f'got {fixed_blocks}')
        self.imagenet_name = _IMAGENET_NAMES[depth_name]
        self.crop_max_pool = bool(max_pool)
        self.layout = layout
        # Every BatchNorm is frozen (docs/design.md §2.7): FrozenBatchNorm2d is the same affine map with the ImageNet
        # statistics as buffers. Unlike an eval-mode BatchNorm2d it saves no input for backward, which is
        # most of the activation memory of the ResNet head and a third of its backward time.
        tv = _BUILDERS[depth_name](weights=None, norm_layer=FrozenBatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = tv.conv1, tv.bn1, tv.relu, tv.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = tv.layer1, tv.layer2, tv.layer3, tv.layer4
        apply_layout((self.layer1, self.layer2, self.layer3), layout)
        # The tail runs at stride 1 so that RoI features stay 7x7 (as tf-faster-rcnn's resnet_v1 does).
        _set_stride(self.layer4[0], conv1=1, conv2=1)

        for m in (self.conv1, self.bn1):
            freeze(m)
        for layer in (self.layer1, self.layer2, self.layer3)[:fixed_blocks]:
            freeze(layer)
        # Each frozen norm is applied inside its convolution: two fewer passes over every activation.
        fold_frozen_norms(self, extra_parents=(ResNet,))
        self.train()

    def head(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer3(self.layer2(self.layer1(x)))

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layer4(pooled).mean(dim=(2, 3))
