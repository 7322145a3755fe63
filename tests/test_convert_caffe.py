"""tools/convert_from_caffe.py and the caffemodel reader: BUTD's Caffe network computed independently here (plain
torch.nn.functional on the Caffe blobs: BatchNorm with its scale factor, ceil-mode pool1, stride in the 1x1,
Caffe ROIPooling in NumPy loops, dilated res5, cls_prob, the attribute branch) against the converted network."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from caffemodel_writer import blob_bytes, butd_layers, field_bytes, write_caffemodel
from faster_rcnn.convert.caffemodel import read_caffemodel
from faster_rcnn.convert.from_caffe import BUTD_LAYOUT, butd_state_dict, convert_butd, read_vocabulary, unit_name
from faster_rcnn.convert.mapping import layout_config
from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.layers.roi_pool import roi_features
from faster_rcnn.nets.network import FasterRCNN
from faster_rcnn.nets.resnet_butd import ResNetButd
from faster_rcnn.settings import ModelSettings

UNITS = (2, 2, 2, 2)   # res2a-b, res3a + res3b1, res4a + res4b1, res5a-b: both naming schemes
WIDTH = 16
K, A = 6, 5            # classes and attributes, slot 0 included


def _layers(seed: int = 0, **kw) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {name: blobs for name, _, blobs in butd_layers(rng, units=UNITS, width=WIDTH, num_classes=K,
                                                          num_attributes=A, **kw)}


def _write(path, layers: dict[str, list[np.ndarray]], legacy: bool = False) -> None:
    kinds = {'cls_score': 'InnerProduct', 'bbox_pred': 'InnerProduct', 'fc_attr': 'InnerProduct',
             'attr_score': 'InnerProduct', 'cls_embedding': 'Embed'}
    with open(path, 'wb') as f:
        write_caffemodel(f, ((n, kinds.get(n, 'Convolution'), b) for n, b in layers.items()), legacy=legacy)


def _small_model() -> FasterRCNN:
    settings = ModelSettings.from_config(layout_config(BUTD_LAYOUT, ['TEST.RPN_POST_NMS_TOP_N', '6']), 'res101_butd')
    return FasterRCNN(ResNetButd(units=UNITS, width=WIDTH), K, settings).eval()


def _expected(model: FasterRCNN, attributes: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if attributes:
        shapes.update({'attr_head.cls_embedding.weight': (K, 256), 'attr_head.fc_attr.weight': (512, 2048 + 256),
                       'attr_head.fc_attr.bias': (512,), 'attr_head.attr_score.weight': (A, 512),
                       'attr_head.attr_score.bias': (A,)})
    return shapes


# -- the Caffe network, computed from the blobs ----------------------------------------------------------------
def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _conv_bn(x: torch.Tensor, L, conv: str, suffix: str, stride: int = 1, pad: int = 0, dilation: int = 1,
             relu: bool = True) -> torch.Tensor:
    y = F.conv2d(x, _t(L[conv][0]), stride=stride, padding=pad, dilation=dilation)
    mean, var, factor = (_t(b) for b in L[f'bn{suffix}'])
    y = (y - (mean / factor)[:, None, None]) / torch.sqrt(var / factor + 1e-5)[:, None, None]
    gamma, beta = (_t(b) for b in L[f'scale{suffix}'])
    y = y * gamma[:, None, None] + beta[:, None, None]
    return F.relu(y) if relu else y


def _unit(x, L, stage: int, i: int, *, first_stride: int, dilation: int = 1):
    name = unit_name(stage, i)
    s = first_stride if i == 0 else 1
    shortcut = _conv_bn(x, L, f'{name}_branch1', f'{name[3:]}_branch1', stride=s, relu=False) if i == 0 else x
    y = _conv_bn(x, L, f'{name}_branch2a', f'{name[3:]}_branch2a', stride=s)
    y = _conv_bn(y, L, f'{name}_branch2b', f'{name[3:]}_branch2b', pad=dilation, dilation=dilation)
    y = _conv_bn(y, L, f'{name}_branch2c', f'{name[3:]}_branch2c', relu=False)
    return F.relu(y + shortcut)


def caffe_res4(image: torch.Tensor, L) -> torch.Tensor:
    x = _conv_bn(image, L, 'conv1', '_conv1', stride=2, pad=3)
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    for stage, count in zip((2, 3, 4), UNITS):
        for i in range(count):
            x = _unit(x, L, stage, i, first_stride=1 if stage == 2 else 2)
    return x


def caffe_roi_pool(features: np.ndarray, rois: np.ndarray, size: int = 14, scale: float = 1 / 16) -> np.ndarray:
    """Caffe's ROIPoolingLayer (roi_pooling_layer.cpp) over (C, H, W) for rois (R, 4) in input pixels."""
    c, h, w = features.shape
    out = np.zeros((len(rois), c, size, size), features.dtype)
    for r, (x1, y1, x2, y2) in enumerate(rois):
        sw, sh = math.floor(x1 * scale + 0.5), math.floor(y1 * scale + 0.5)  # C++ round, x >= 0
        ew, eh = math.floor(x2 * scale + 0.5), math.floor(y2 * scale + 0.5)
        bin_h = np.float32(max(eh - sh + 1, 1)) / np.float32(size)
        bin_w = np.float32(max(ew - sw + 1, 1)) / np.float32(size)
        for ph in range(size):
            hs = min(max(int(np.floor(np.float32(ph) * bin_h)) + sh, 0), h)
            he = min(max(int(np.ceil(np.float32(ph + 1) * bin_h)) + sh, 0), h)
            for pw in range(size):
                ws = min(max(int(np.floor(np.float32(pw) * bin_w)) + sw, 0), w)
                we = min(max(int(np.ceil(np.float32(pw + 1) * bin_w)) + sw, 0), w)
                if he > hs and we > ws:
                    out[r, :, ph, pw] = features[:, hs:he, ws:we].max(axis=(1, 2))
    return out


def caffe_heads(pooled: torch.Tensor, L):
    x = pooled
    for i in range(UNITS[3]):
        x = _unit(x, L, 5, i, first_stride=1, dilation=2)
    pool5 = x.mean(dim=(2, 3))
    cls_score = pool5 @ _t(L['cls_score'][0]).T + _t(L['cls_score'][1])
    bbox_pred = pool5 @ _t(L['bbox_pred'][0]).T + _t(L['bbox_pred'][1])
    embedding = _t(L['cls_embedding'][0])[cls_score.argmax(dim=1)]  # predicted_cls: background included
    hidden = F.relu(torch.cat((pool5, embedding), 1) @ _t(L['fc_attr'][0]).T + _t(L['fc_attr'][1]))
    attr_prob = F.softmax(hidden @ _t(L['attr_score'][0]).T + _t(L['attr_score'][1]), dim=1)
    return pool5, F.softmax(cls_score, dim=1), bbox_pred, attr_prob


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# -- tests -----------------------------------------------------------------------------------------------------
def test_converted_network_computes_the_caffe_network(tmp_path):
    L = _layers()
    path = tmp_path / 'butd.caffemodel'
    _write(path, L)
    model = _small_model()
    state = butd_state_dict(read_caffemodel(str(path)), _expected(model), where=str(path), units=UNITS)
    attr = {k: state.pop(k) for k in list(state) if k.startswith('attr_head.')}
    model.load_state_dict(state, strict=True)

    image = torch.from_numpy(np.random.default_rng(1).uniform(-120, 130, (1, 3, 224, 240)).astype(np.float32))
    info = torch.tensor([[224.0, 240.0, 1.0]])
    with torch.no_grad():
        ours_res4 = model.backbone.head(image)
        _, fg_prob, deltas = model._rpn(ours_res4)
        out = model(image, info)
    ref_res4 = caffe_res4(image.double(), L)
    errors = {'res4b22': _rel(ours_res4, ref_res4)}

    # RPN: Caffe's (2, 12 * H, W) softmax of rpn_cls_score, fg = the last 12 channels; deltas (12, 4, H, W).
    h, w = ref_res4.shape[2:]
    rpn = F.relu(F.conv2d(ref_res4, _t(L['rpn_conv/3x3'][0]), _t(L['rpn_conv/3x3'][1]), padding=1))
    score = F.conv2d(rpn, _t(L['rpn_cls_score'][0]), _t(L['rpn_cls_score'][1]))
    prob = F.softmax(score.view(1, 2, 12 * h, w), dim=1).view(1, 24, h, w)[0, 12:]
    ref_deltas = F.conv2d(rpn, _t(L['rpn_bbox_pred'][0]), _t(L['rpn_bbox_pred'][1]))[0].view(12, 4, h, w)
    errors['rpn_cls_prob'] = _rel(fg_prob[0], prob.permute(1, 2, 0).reshape(-1))
    errors['rpn_bbox_pred'] = _rel(deltas[0], ref_deltas.permute(2, 3, 0, 1).reshape(-1, 4))

    rois = out.rois[:, 1:].numpy()
    assert len(rois) > 0
    pooled = torch.from_numpy(caffe_roi_pool(ref_res4[0].numpy(), rois.astype(np.float64)))
    pool5, cls_prob, bbox_pred, attr_prob = caffe_heads(pooled, L)
    errors['cls_prob'] = _rel(out.cls_prob, cls_prob)
    errors['bbox_pred'] = _rel(out.bbox_pred, bbox_pred)  # no de-normalisation: the weights already are
    # The attribute branch of the shared contract, on the converted tensors.
    with torch.no_grad():
        feats = model.backbone.tail(roi_features(ours_res4, out.rois, mode='pool', pooling_size=14))
        labels = torch.log(out.cls_prob).argmax(dim=1)
        hidden = F.relu(F.linear(torch.cat((feats, F.embedding(labels, attr['attr_head.cls_embedding.weight'])), 1),
                                 attr['attr_head.fc_attr.weight'], attr['attr_head.fc_attr.bias']))
        ours_attr = F.softmax(F.linear(hidden, attr['attr_head.attr_score.weight'], attr['attr_head.attr_score.bias']), 1)
    errors['pool5_flat'] = _rel(feats, pool5)
    errors['attr_prob'] = _rel(ours_attr, attr_prob)
    print('largest relative errors:', {k: f'{v:.1e}' for k, v in errors.items()})
    for name, err in errors.items():
        assert err < 1e-4, (name, err)
