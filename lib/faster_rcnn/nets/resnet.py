"""ResNet-50/101/152 backbones: head = conv1..layer3 (stride 16), tail = layer4 at stride 1 + spatial mean."""
from __future__ import annotations

import torch
from torchvision.models import resnet50, resnet101, resnet152
from torchvision.ops.misc import FrozenBatchNorm2d

from .backbone import Backbone, freeze
from .folded_norm import fold_frozen_norms

_BUILDERS = {'res50': resnet50, 'res101': resnet101, 'res152': resnet152}
_IMAGENET_NAMES = {'res50': 'res50', 'res101': 'res101', 'res152': 'res152'}


class ResNet(Backbone):
    """torchvision's ResNet (v1.5 bottlenecks) with tf-faster-rcnn's cut and freezing rules.

    Args:
        depth_name: 'res50', 'res101' or 'res152'.
        fixed_blocks: RESNET.FIXED_BLOCKS, 0..3: layer1..layer<fixed_blocks> are frozen with the root.
        max_pool: RESNET.MAX_POOL: in 'crop' mode crop 14x14 then max-pool (else crop 7x7 directly).
    """

    head_channels = 1024
    tail_channels = 2048
    imagenet_unused_prefixes = ('fc.',)

    def __init__(self, depth_name: str, *, fixed_blocks: int = 1, max_pool: bool = False) -> None:
        super().__init__()
        if depth_name not in _BUILDERS:
            raise ValueError(f'unknown ResNet {depth_name!r}: expected one of {sorted(_BUILDERS)}')
        if not 0 <= fixed_blocks <= 3:
            raise ValueError(f'RESNET.FIXED_BLOCKS must be in 0..3 (layer4 is the tail), got {fixed_blocks}')
        self.imagenet_name = _IMAGENET_NAMES[depth_name]
        self.crop_max_pool = bool(max_pool)
        # Every BatchNorm is frozen (DESIGN 2.7): FrozenBatchNorm2d is the same affine map with the ImageNet
        # statistics as buffers. Unlike an eval-mode BatchNorm2d it saves no input for backward, which is
        # most of the activation memory of the ResNet head and a third of its backward time.
        tv = _BUILDERS[depth_name](weights=None, norm_layer=FrozenBatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = tv.conv1, tv.bn1, tv.relu, tv.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = tv.layer1, tv.layer2, tv.layer3, tv.layer4
        # The tail runs at stride 1 so that RoI features stay 7x7 (as tf-faster-rcnn's resnet_v1 does).
        first = self.layer4[0]
        first.conv2.stride = (1, 1)
        first.downsample[0].stride = (1, 1)

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
