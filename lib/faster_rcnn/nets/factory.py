"""``build_network(name, num_classes, settings)``: a Faster R-CNN from the network table (``nets.registry``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError
from ..model_file import DetectorFile, load_model_weights
from ..settings import BackboneSettings, ModelSettings
from .backbone import Backbone
from .registry import NETWORKS, spec

if TYPE_CHECKING:
    from .network import FasterRCNN

__all__ = ['NETWORKS', 'build_backbone', 'build_network', 'build_from_file']


def build_backbone(name: str, settings: BackboneSettings | None = None) -> Backbone:
    """The backbone ``name`` with ``settings`` (default: the default config's VGG16.*, RESNET.*, MOBILENET.*,
    TINY.* and POOLING_SIZE)."""
    return spec(name).build(settings or BackboneSettings())


def build_network(name: str, num_classes: int, settings: ModelSettings | None = None,
                  num_attributes: int = 0) -> FasterRCNN:
    """A Faster R-CNN with backbone ``name`` for ``num_classes`` classes (background included), with an
    attribute head of ``num_attributes`` outputs ("no attribute" included) when it is not 0.

    ``settings`` default to ``ModelSettings.defaults(name)`` (tf-faster-rcnn's defaults); the module keeps them:
    nothing read later from a config changes it.
    """
    from .network import FasterRCNN  # the layers are only needed for the whole network
    spec(name)
    if settings is None:
        settings = ModelSettings.defaults(name)
    elif settings.net != name:
        raise ValueError(f'settings are for {settings.net!r}, not {name!r}')
    return FasterRCNN(build_backbone(name, settings.backbone), num_classes, settings, num_attributes=num_attributes)


def build_from_file(detector: DetectorFile, settings: ModelSettings, device: torch.device | str = 'cpu',
                    num_classes: int | None = None) -> FasterRCNN:
    """The network of a detector file with its weights (strictly), in eval mode on ``device``.

    ``settings``: the file's (its recorded config, and whatever the caller changed at test time).
    ``num_classes`` defaults to the file's class count; a mismatch with it is an error naming the file.
    A file listing ``attributes`` gets an attribute head with that many outputs.
    """
    if num_classes is None:
        if detector.classes is None:
            raise CheckpointError(f'{detector.path} does not list its classes: pass the dataset (--imdb)')
        num_classes = len(detector.classes)
    elif detector.classes is not None and len(detector.classes) != num_classes:
        raise CheckpointError(f'{detector.path} detects {len(detector.classes) - 1} classes '
                              f'{list(detector.classes[1:])}, but the dataset has {num_classes - 1}: test with the '
                              'dataset it was trained on')
    attributes = detector.attributes
    model = build_network(detector.net, num_classes, settings, num_attributes=len(attributes) if attributes else 0)
    load_model_weights(model, detector.contents, detector.path, net=detector.net)
    model.place(device).eval()
    return model
