"""VGG16 backbone: head = conv1_1..conv5_3 (stride 16), tail = fc6 / fc7 with dropout."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import vgg16

from .backbone import Backbone, freeze

# Index of the last max-pool in torchvision's vgg16().features; conv5_3's ReLU is just before it.
_LAST_POOL = 30
# conv1_1 .. conv2_2 and their pools: indices 0-9 of features, frozen as in tf-faster-rcnn.
_FROZEN_UNTIL = 10


class VGG16(Backbone):
    """torchvision's VGG16 cut at conv5_3.

    Args:
        ceil_mode: VGG16.CEIL_MODE. True (the default): the four remaining max-pools use ceil mode, so the
            feature map is ceil(H/16) x ceil(W/16), what tf-faster-rcnn's 'SAME'-padded pools give; False:
            torchvision's floor mode, floor(H/16) x floor(W/16), as pytorch-faster-rcnn's VGG16.
    """

    head_channels = 512
    tail_channels = 4096
    crop_max_pool = True
    imagenet_name = 'vgg16'
    imagenet_unused_prefixes = ('classifier.6.',)  # fc8, the 1000-way ImageNet classifier

    def __init__(self, *, ceil_mode: bool = True) -> None:
        super().__init__()
        tv = vgg16(weights=None)
        features = tv.features[:_LAST_POOL]
        for m in features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = bool(ceil_mode)
        self.features = features
        # classifier indices 0..5 = fc6, ReLU, Dropout, fc7, ReLU, Dropout (same keys as torchvision's).
        self.classifier = tv.classifier[:6]
        freeze(self.features[:_FROZEN_UNTIL])

    def head(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled.flatten(1))
