"""The network table: every network's name, what it is, the config keys that define it, its ImageNet weights.

This is the one place that lists the networks: ``nets.factory`` builds from it, detector files record its keys
(``model_keys``), the ImageNet loader finds torchvision's files through it, and the tools' help strings are
made from it (``NETWORKS``, ``describe_networks``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from ..settings import BackboneSettings
from .backbone import Backbone

# Keys that define any network or its input (recorded in every detector file).
COMMON_MODEL_KEYS = (
    'PIXEL_MEANS', 'PIXEL_STDS', 'CHANNEL_ORDER',            # input normalisation and channel order
    'ANCHOR_SCALES', 'ANCHOR_RATIOS', 'RPN_CHANNELS',         # the RPN's anchors and width
    'POOLING_MODE', 'POOLING_SIZE',                           # RoI features
    'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED',               # test-time box de-normalisation
    'TRAIN.BBOX_NORMALIZE_MEANS', 'TRAIN.BBOX_NORMALIZE_STDS',
)


def _vgg16(s: BackboneSettings) -> Backbone:
    from .vgg16 import VGG16
    return VGG16(ceil_mode=s.vgg16_ceil_mode)


def _resnet(depth: str) -> Callable[[BackboneSettings], Backbone]:
    def build(s: BackboneSettings) -> Backbone:
        from .resnet import ResNet
        return ResNet(depth, fixed_blocks=s.resnet_fixed_blocks, max_pool=s.resnet_max_pool, layout=s.resnet_layout)
    return build


def _resnet_butd(s: BackboneSettings) -> Backbone:
    from .resnet_butd import ResNetButd
    return ResNetButd(fixed_blocks=s.resnet_fixed_blocks)


def _mobile(s: BackboneSettings) -> Backbone:
    if s.mobilenet_version == 1:
        from .mobilenet_v1 import MobileNetV1
        return MobileNetV1(fixed_layers=s.mobilenet_fixed_layers, depth_multiplier=s.mobilenet_depth_multiplier)
    if s.mobilenet_version != 2:
        raise ConfigError(f'config key MOBILENET.VERSION: expected 1 (MobileNetV1) or 2 (MobileNetV2), got '
                          f'{s.mobilenet_version}')
    from .mobilenet import MobileNetV2
    return MobileNetV2(fixed_layers=s.mobilenet_fixed_layers, depth_multiplier=s.mobilenet_depth_multiplier)


def _tiny(s: BackboneSettings) -> Backbone:
    from .tiny import Tiny
    return Tiny(channels=list(s.tiny_channels), fc_dim=s.tiny_fc_dim, pooling_size=s.pooling_size)


@dataclass(frozen=True)
class NetSpec:
    """One network: ``build`` makes its backbone; ``model_keys`` are its own recorded config keys (besides
    ``COMMON_MODEL_KEYS``); ``imagenet`` names torchvision's weight enum and member (None: trained from scratch
    or from a detector)."""

    name: str
    description: str
    build: Callable[[BackboneSettings], Backbone]
    model_keys: tuple[str, ...]
    imagenet: tuple[str, str] | None


_RESNET_KEYS = ('RESNET.LAYOUT', 'RESNET.MAX_POOL')
# IMAGENET1K_V1 throughout: the classic recipes, the ones torchvision's own detection models start from.
TABLE: dict[str, NetSpec] = {spec.name: spec for spec in (
    NetSpec('vgg16', 'VGG16, conv5_3 head, fc6/fc7 tail', _vgg16, ('VGG16.CEIL_MODE',),
            ('VGG16_Weights', 'IMAGENET1K_V1')),
    NetSpec('res50', 'ResNet-50, layer1-3 head, layer4 tail', _resnet('res50'), _RESNET_KEYS,
            ('ResNet50_Weights', 'IMAGENET1K_V1')),
    NetSpec('res101', 'ResNet-101, layer1-3 head, layer4 tail', _resnet('res101'), _RESNET_KEYS,
            ('ResNet101_Weights', 'IMAGENET1K_V1')),
    NetSpec('res152', 'ResNet-152, layer1-3 head, layer4 tail', _resnet('res152'), _RESNET_KEYS,
            ('ResNet152_Weights', 'IMAGENET1K_V1')),
    NetSpec('res101_butd', "bottom-up-attention's ResNet-101: Caffe layout, RoIPool 14x14, res5 dilated by 2 "
            '(experiments/cfgs/res101_butd.yml)', _resnet_butd, (), ('ResNet101_Weights', 'IMAGENET1K_V1')),
    NetSpec('mobile', 'MobileNetV2 (MOBILENET.VERSION 2) or MobileNetV1 (1), cut at stride 16', _mobile,
            ('MOBILENET.VERSION', 'MOBILENET.DEPTH_MULTIPLIER'), ('MobileNet_V2_Weights', 'IMAGENET1K_V1')),
    NetSpec('tiny', 'a five-stage conv net trained from scratch (the shapes quick start)', _tiny,
            ('TINY.CHANNELS', 'TINY.FC_DIM'), None),
)}
NETWORKS = tuple(TABLE)


def spec(name: str) -> NetSpec:
    """The table entry of ``name``; a ConfigError listing the networks when there is none."""
    if name not in TABLE:
        raise ConfigError(f'--net {name}: unknown network; expected one of {list(NETWORKS)}')
    return TABLE[name]


def model_keys(net: str) -> tuple[str, ...]:
    """The config keys that define network ``net`` and its input (what a detector file records)."""
    return COMMON_MODEL_KEYS + spec(net).model_keys


def describe_networks() -> str:
    """``vgg16, res50, res101, res152, mobile or tiny``: for the tools' help strings."""
    return ', '.join(NETWORKS[:-1]) + f' or {NETWORKS[-1]}'
