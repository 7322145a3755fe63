"""The state_dict names of ruotianluo/pytorch-faster-rcnn ("rtl") models and ours, one entry per model tensor.

rtl saved a bare ``state_dict``; its layers are PyTorch's, so no tensor changes layout, only names:

    vgg.features.28.weight                        backbone.features.28.weight
    resnet.layer3.22.bn2.running_var              backbone.layer3.22.bn2.running_var
    mobilenet.Conv2d_5.depthwise.1.weight         backbone.features.5.depthwise.1.weight
    rpn_net / rpn_cls_score_net / rpn_bbox_pred_net / cls_score_net / bbox_pred_net
                                                  rpn_conv / rpn_cls_score / rpn_bbox_pred / cls_score / bbox_pred

BatchNorm's ``num_batches_tracked`` counters (PyTorch >= 0.4.1) carry nothing for frozen norms and are
skipped by rule; any other name the table lacks is an error.
"""
from __future__ import annotations

from ..nets.registry import networks_where
from .layouts import COPY
from .tf_names import MOBILENET_LAYERS, RESNET_UNITS

Entry = tuple[str, str, str]

NETS = networks_where('rtl')
_VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_BN = ('weight', 'bias', 'running_mean', 'running_var')


def _layer(rtl: str, ours: str, params: tuple[str, ...] = ('weight',)) -> list[Entry]:
    return [(f'{rtl}.{p}', f'{ours}.{p}', COPY) for p in params]


def _predictors() -> list[Entry]:
    out: list[Entry] = []
    for rtl, ours in (('rpn_net', 'rpn_conv'), ('rpn_cls_score_net', 'rpn_cls_score'),
                      ('rpn_bbox_pred_net', 'rpn_bbox_pred'), ('cls_score_net', 'cls_score'),
                      ('bbox_pred_net', 'bbox_pred')):
        out += _layer(rtl, ours, ('weight', 'bias'))
    return out


def _vgg16() -> list[Entry]:
    out: list[Entry] = []
    for i in _VGG_CONV_INDICES:
        out += _layer(f'vgg.features.{i}', f'backbone.features.{i}', ('weight', 'bias'))
    for i in (0, 3):
        out += _layer(f'vgg.classifier.{i}', f'backbone.classifier.{i}', ('weight', 'bias'))
    return out


def _resnet(units: tuple[int, ...]) -> list[Entry]:
    out = _layer('resnet.conv1', 'backbone.conv1') + _layer('resnet.bn1', 'backbone.bn1', _BN)
    for b, count in enumerate(units, start=1):
        for u in range(count):
            rtl, ours = f'resnet.layer{b}.{u}', f'backbone.layer{b}.{u}'
            for k in (1, 2, 3):
                out += _layer(f'{rtl}.conv{k}', f'{ours}.conv{k}') + _layer(f'{rtl}.bn{k}', f'{ours}.bn{k}', _BN)
            if u == 0:
                out += _layer(f'{rtl}.downsample.0', f'{ours}.downsample.0')
                out += _layer(f'{rtl}.downsample.1', f'{ours}.downsample.1', _BN)
    return out


def _mobilenet_v1() -> list[Entry]:
    out = _layer('mobilenet.Conv2d_0.0', 'backbone.features.0.0')
    out += _layer('mobilenet.Conv2d_0.1', 'backbone.features.0.1', _BN)
    for i in range(1, MOBILENET_LAYERS):
        for part in ('depthwise', 'pointwise'):
            rtl, ours = f'mobilenet.Conv2d_{i}.{part}', f'backbone.features.{i}.{part}'
            out += _layer(f'{rtl}.0', f'{ours}.0') + _layer(f'{rtl}.1', f'{ours}.1', _BN)
    return out


def rtl_table(net: str) -> list[Entry]:
    """Every model tensor of an rtl ``net`` state_dict: (rtl name, our key, transform)."""
    if net == 'vgg16':
        body = _vgg16()
    elif net in RESNET_UNITS:
        body = _resnet(RESNET_UNITS[net])
    elif net == 'mobile':
        body = _mobilenet_v1()
    else:
        raise ValueError(f'no pytorch-faster-rcnn network {net!r}: expected one of {list(NETS)}')
    return body + _predictors()


def skipped_by_rule(name: str) -> str | None:
    """Why state_dict entry ``name`` is not a model weight, or None if it must be mapped."""
    if name.endswith('.num_batches_tracked'):
        return "a BatchNorm's update counter"
    return None
