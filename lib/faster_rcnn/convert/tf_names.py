"""The names of tf-faster-rcnn's checkpoint variables and ours, one entry per model tensor.

``tf_table(net)`` lists ``(tf name, our state_dict key, layout transform)`` for every tensor of the network;
a checkpoint must hold exactly these plus what ``skipped_by_rule`` names (the optimizer's Momentum slots and
the learning-rate ``Variable``): anything else is an error, never a silently dropped weight.

    vgg_16/conv1/conv1_1/weights                        backbone.features.0.weight       HWIO -> OIHW
    vgg_16/fc6/weights                                  backbone.classifier.0.weight     (h,w,c) -> (c,h,w)
    resnet_v1_101/block1/unit_3/bottleneck_v1/conv2/BatchNorm/moving_variance
                                                        backbone.layer1.2.bn2.running_var
    MobilenetV1/Conv2d_5_depthwise/depthwise_weights    backbone.features.5.depthwise.0.weight
    <scope>/rpn_conv/3x3/weights                        rpn_conv.weight
"""
from __future__ import annotations

from .layouts import CONV, COPY, DEPTHWISE, FC, FC_FROM_NHWC

Entry = tuple[str, str, str]

SCOPES = {'vgg16': 'vgg_16', 'res50': 'resnet_v1_50', 'res101': 'resnet_v1_101', 'res152': 'resnet_v1_152',
          'mobile': 'MobilenetV1'}
RESNET_UNITS = {'res50': (3, 4, 6, 3), 'res101': (3, 4, 23, 3), 'res152': (3, 8, 36, 3)}
# tf-faster-rcnn's VGG16 conv names -> indices of torchvision's vgg16().features.
_VGG_CONVS = (('conv1/conv1_1', 0), ('conv1/conv1_2', 2), ('conv2/conv2_1', 5), ('conv2/conv2_2', 7),
              ('conv3/conv3_1', 10), ('conv3/conv3_2', 12), ('conv3/conv3_3', 14), ('conv4/conv4_1', 17),
              ('conv4/conv4_2', 19), ('conv4/conv4_3', 21), ('conv5/conv5_1', 24), ('conv5/conv5_2', 26),
              ('conv5/conv5_3', 28))
_BN = (('gamma', 'weight'), ('beta', 'bias'), ('moving_mean', 'running_mean'), ('moving_variance', 'running_var'))
MOBILENET_LAYERS = 14


def _batch_norm(tf_prefix: str, ours: str) -> list[Entry]:
    return [(f'{tf_prefix}/BatchNorm/{a}', f'{ours}.{b}', COPY) for a, b in _BN]


def _predictors(scope: str) -> list[Entry]:
    """The RPN and the R-CNN predictors, the same in every network."""
    out: list[Entry] = []
    for tf_layer, ours, kind in (('rpn_conv/3x3', 'rpn_conv', CONV), ('rpn_cls_score', 'rpn_cls_score', CONV),
                                 ('rpn_bbox_pred', 'rpn_bbox_pred', CONV), ('cls_score', 'cls_score', FC),
                                 ('bbox_pred', 'bbox_pred', FC)):
        out += [(f'{scope}/{tf_layer}/weights', f'{ours}.weight', kind),
                (f'{scope}/{tf_layer}/biases', f'{ours}.bias', COPY)]
    return out


def _vgg16(scope: str) -> list[Entry]:
    out: list[Entry] = []
    for tf_layer, index in _VGG_CONVS:
        out += [(f'{scope}/{tf_layer}/weights', f'backbone.features.{index}.weight', CONV),
                (f'{scope}/{tf_layer}/biases', f'backbone.features.{index}.bias', COPY)]
    out += [(f'{scope}/fc6/weights', 'backbone.classifier.0.weight', FC_FROM_NHWC),
            (f'{scope}/fc6/biases', 'backbone.classifier.0.bias', COPY),
            (f'{scope}/fc7/weights', 'backbone.classifier.3.weight', FC),
            (f'{scope}/fc7/biases', 'backbone.classifier.3.bias', COPY)]
    return out


def _resnet(scope: str, units: tuple[int, ...]) -> list[Entry]:
    out: list[Entry] = [(f'{scope}/conv1/weights', 'backbone.conv1.weight', CONV)]
    out += _batch_norm(f'{scope}/conv1', 'backbone.bn1')
    for b, count in enumerate(units, start=1):
        for u in range(1, count + 1):
            tf_unit = f'{scope}/block{b}/unit_{u}/bottleneck_v1'
            ours = f'backbone.layer{b}.{u - 1}'
            for k in (1, 2, 3):
                out.append((f'{tf_unit}/conv{k}/weights', f'{ours}.conv{k}.weight', CONV))
                out += _batch_norm(f'{tf_unit}/conv{k}', f'{ours}.bn{k}')
            if u == 1:  # the projection shortcut: only the first unit of each block changes the width
                out.append((f'{tf_unit}/shortcut/weights', f'{ours}.downsample.0.weight', CONV))
                out += _batch_norm(f'{tf_unit}/shortcut', f'{ours}.downsample.1')
    return out


def _mobilenet_v1(scope: str) -> list[Entry]:
    out: list[Entry] = [(f'{scope}/Conv2d_0/weights', 'backbone.features.0.0.weight', CONV)]
    out += _batch_norm(f'{scope}/Conv2d_0', 'backbone.features.0.1')
    for i in range(1, MOBILENET_LAYERS):
        dw, pw = f'{scope}/Conv2d_{i}_depthwise', f'{scope}/Conv2d_{i}_pointwise'
        out.append((f'{dw}/depthwise_weights', f'backbone.features.{i}.depthwise.0.weight', DEPTHWISE))
        out += _batch_norm(dw, f'backbone.features.{i}.depthwise.1')
        out.append((f'{pw}/weights', f'backbone.features.{i}.pointwise.0.weight', CONV))
        out += _batch_norm(pw, f'backbone.features.{i}.pointwise.1')
    return out


def tf_table(net: str) -> list[Entry]:
    """Every model tensor of tf-faster-rcnn's ``net`` checkpoint: (tf name, our key, transform)."""
    if net not in SCOPES:
        raise ValueError(f'no tf-faster-rcnn network {net!r}: expected one of {list(SCOPES)}')
    scope = SCOPES[net]
    if net == 'vgg16':
        body = _vgg16(scope)
    elif net == 'mobile':
        body = _mobilenet_v1(scope)
    else:
        body = _resnet(scope, RESNET_UNITS[net])
    return body + _predictors(scope)


def skipped_by_rule(name: str) -> str | None:
    """Why checkpoint tensor ``name`` is not a model weight, or None if it must be mapped."""
    if name.endswith('/Momentum'):
        return 'a Momentum slot of the optimizer'
    if name == 'Variable':
        return 'the learning rate'
    return None
