"""``build_network(name, num_classes)``: the one place that maps a network name to its backbone."""
from __future__ import annotations

from faster_rcnn.config import ConfigError, cfg as global_cfg

from typing import TYPE_CHECKING

from .backbone import Backbone

if TYPE_CHECKING:
    from .network import FasterRCNN

NETWORKS = ('vgg16', 'res50', 'res101', 'res152', 'mobile', 'tiny')


def build_backbone(name: str, *, cfg=global_cfg) -> Backbone:
    """The backbone ``name`` configured from ``cfg`` (VGG16.*, RESNET.*, MOBILENET.*, TINY.*, POOLING_SIZE)."""
    if name == 'vgg16':
        from .vgg16 import VGG16
        return VGG16(ceil_mode=bool(cfg.VGG16.CEIL_MODE))
    if name in ('res50', 'res101', 'res152'):
        from .resnet import ResNet
        return ResNet(name, fixed_blocks=int(cfg.RESNET.FIXED_BLOCKS), max_pool=bool(cfg.RESNET.MAX_POOL),
                      layout=str(cfg.RESNET.LAYOUT))
    if name == 'mobile':
        version = int(cfg.MOBILENET.VERSION)
        if version == 1:
            from .mobilenet_v1 import MobileNetV1
            return MobileNetV1(fixed_layers=int(cfg.MOBILENET.FIXED_LAYERS),
                               depth_multiplier=float(cfg.MOBILENET.DEPTH_MULTIPLIER))
        if version != 2:
            raise ConfigError(f'config key MOBILENET.VERSION: expected 1 (MobileNetV1) or 2 (MobileNetV2), got {version}')
        from .mobilenet import MobileNetV2
        return MobileNetV2(fixed_layers=int(cfg.MOBILENET.FIXED_LAYERS),
                           depth_multiplier=float(cfg.MOBILENET.DEPTH_MULTIPLIER))
    if name == 'tiny':
        from .tiny import Tiny
        return Tiny(channels=list(cfg.TINY.CHANNELS), fc_dim=int(cfg.TINY.FC_DIM),
                    pooling_size=int(cfg.POOLING_SIZE))
    raise ConfigError(f'--net {name}: unknown network; expected one of {list(NETWORKS)}')


def build_network(name: str, num_classes: int, *, cfg=global_cfg) -> 'FasterRCNN':
    """A Faster R-CNN with backbone ``name`` for ``num_classes`` classes (background included).

    The config is read here, once: later changes of ``cfg`` do not affect the module. POOLING_MODE and
    TEST.MODE are checked before anything is built.
    """
    from .network import FasterRCNN, NetworkSettings  # the layers are only needed for the whole network
    settings = NetworkSettings.from_cfg(cfg)
    return FasterRCNN(build_backbone(name, cfg=cfg), num_classes, settings, net_name=name)
