"""What the Faster R-CNN module needs from a backbone: a stride-16 head, a tail on pooled RoI features.

A backbone keeps torchvision's attribute names for the layers it takes from a torchvision classifier, so
that torchvision's ImageNet state_dict keys are its own state_dict keys; ``imagenet_unused_prefixes``
lists the torchvision keys it deliberately leaves out (the classifier's last layer).
"""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class of the backbones.

    Subclasses set:
      head_channels: channels of ``head``'s output (stride 16).
      tail_channels: width of ``tail``'s output vector.
      crop_max_pool: in 'crop' pooling mode, crop 2P x 2P then 2x2 max-pool (True) or crop P x P (False).
      imagenet_name: file stem of the ImageNet weights (``data/imagenet_weights/<name>.pth``), None if none.
      imagenet_unused_prefixes: torchvision state_dict key prefixes that are not part of this backbone.
    """

    head_channels: int
    tail_channels: int
    crop_max_pool: bool = True
    imagenet_name: str | None = None
    imagenet_unused_prefixes: tuple[str, ...] = ()

    def head(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, head_channels, ceil(H/16), ceil(W/16))."""
        raise NotImplementedError

    def tail(self, pooled: torch.Tensor) -> torch.Tensor:
        """(R, head_channels, P, P) -> (R, tail_channels)."""
        raise NotImplementedError


def freeze(module: nn.Module) -> None:
    """Exclude every parameter of ``module`` from training."""
    for p in module.parameters():
        p.requires_grad_(False)
