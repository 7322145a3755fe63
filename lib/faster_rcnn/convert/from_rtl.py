"""ruotianluo/pytorch-faster-rcnn ("rtl") ``.pth`` models -> self-describing detector files of this project.

The converted network computes what rtl's computes (``rtl_layout``): BGR input minus Caffe's means, its
"caffe" ResNet strides (stride 2 in the first 1x1 conv of layer2 and layer3), torchvision's floor-mode VGG16
pools, MobileNetV1, and the pooling mode rtl ran the model with: 'crop' (the default: rtl's published models
were trained and evaluated with crop-and-resize, its default until 2019), or 'align' / 'pool' (its code's
torchvision RoIAlign / RoIPool since then).

rtl's MobileNetV1 norms use PyTorch's epsilon 1e-5, ours slim's 1e-3: adding 1e-5 - 1e-3 to each running
variance keeps ``(x - mean) / sqrt(var + eps)`` the same.
"""
from __future__ import annotations

import os.path as osp
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.model_file import detector_payload, exported_kind, graph_file_error

from .from_tensorflow import TF_LAYOUT
from .mapping import check_classes_and_anchors, converted_record, expected_shapes, layout_config, map_tensors
from .rtl_names import NETS, rtl_table, skipped_by_rule

RTL_POOLING_MODES = ('crop', 'align', 'pool')
RTL_BN_EPS = 1e-5


def rtl_layout(pooling_mode: str) -> dict:
    """rtl's network in our config keys: tf-faster-rcnn's input and heads, its own backbone layouts."""
    if pooling_mode not in RTL_POOLING_MODES:
        raise UsageError(f'--pooling {pooling_mode}: expected one of {list(RTL_POOLING_MODES)}')
    return {**TF_LAYOUT, 'POOLING_MODE': pooling_mode, 'RESNET.LAYOUT': 'caffe', 'VGG16.CEIL_MODE': False}


def read_rtl_state_dict(path: str) -> dict[str, torch.Tensor]:
    """rtl's file (a bare state_dict, any PyTorch format from 0.2 on) read without running code."""
    if not osp.isfile(path):
        raise ModelFileError(f'{path} does not exist: pass the .pth file of the pytorch-faster-rcnn model')
    kind = exported_kind(path, by_contents=True)
    if kind is not None:  # torch.load would call it corrupted or suggest weights_only=False
        raise graph_file_error(path, kind)
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols: the outcome is what we report
            warnings.simplefilter('ignore')
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise ModelFileError(f'{path} cannot be read as a PyTorch state_dict ({type(e).__name__}: {e}); is it '
                             'truncated, or not a pytorch-faster-rcnn .pth file?') from None
    if isinstance(obj, dict) and 'model' in obj and isinstance(obj['model'], dict):
        obj = obj['model']
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(f'{path} holds a {type(obj).__name__}, not a state_dict (names to tensors): is it a '
                             'pytorch-faster-rcnn model file?')
    return obj


def rtl_network_of(keys) -> str | None:
    """Which rtl network a state_dict holds, from its names (None if none of them)."""
    keys = set(keys)
    if any(k.startswith('vgg.') for k in keys):
        return 'vgg16'
    if any(k.startswith('mobilenet.') for k in keys):
        return 'mobile'
    units = {int(k.split('.')[2]) for k in keys if k.startswith('resnet.layer3.')}
    return {6: 'res50', 23: 'res101', 36: 'res152'}.get(max(units) + 1) if units else None


def convert_rtl_state_dict(path: str, net: str, classes: Sequence[str], *, pooling_mode: str = 'crop',
                           anchor_scales: Sequence[float] = (8, 16, 32), anchor_ratios: Sequence[float] = (0.5, 1, 2),
                           test_set: Sequence[str] = (), category_ids: Sequence[int] | None = None) -> dict:
    """Read the rtl model ``path`` for ``net`` and ``classes`` (background first); return the detector file's
    contents. ``category_ids``: the dataset's id of each class (``io.read_category_ids``; default 1..K-1)."""
    if net not in NETS:
        raise UsageError(f'--net {net}: pytorch-faster-rcnn has vgg16, res50, res101, res152 and mobile')
    state = read_rtl_state_dict(path)
    held = rtl_network_of(state)
    if held != net:
        what = f'a {held} network' if held else 'no pytorch-faster-rcnn network (no vgg., resnet. or mobilenet. keys)'
        raise ModelFileError(f'{path} holds {what}, not {net}' + (f': pass --net {held}' if held else ''))
    config = layout_config({'EXP_DIR': net, **rtl_layout(pooling_mode),
                            'ANCHOR_SCALES': [float(s) for s in anchor_scales],
                            'ANCHOR_RATIOS': [float(r) for r in anchor_ratios]}, tuple(test_set))
    cls, rpn = state.get('cls_score_net.bias'), state.get('rpn_cls_score_net.bias')
    check_classes_and_anchors(path, file_classes=None if cls is None else cls.shape[0],
                              file_anchors=None if rpn is None else rpn.shape[0] // 2, num_classes=len(classes),
                              num_anchors=len(anchor_scales) * len(anchor_ratios))
    expected = expected_shapes(net, len(classes), config)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    converted, skipped = map_tensors(rtl_table(net), shapes, lambda k: state[k].float().numpy(), expected,
                                     where=path, skip_rule=skipped_by_rule)
    if net == 'mobile':
        from faster_rcnn.nets.mobilenet_v1 import BN_EPS
        for key, value in converted.items():
            if key.endswith('.running_var'):
                # torch adds a numpy scalar; its stubs do not list one among the operands.
                converted[key] = value + np.float32(RTL_BN_EPS - BN_EPS)  # type: ignore[operator]
    source = {'format': 'pytorch-faster-rcnn', 'file': osp.basename(path), 'tensors': len(converted),
              'skipped': skipped, 'pooling_mode': pooling_mode}
    return detector_payload(net=net, classes=list(classes), state_dict=converted, record=converted_record(config, net),
                            kind='detector', source=source, category_ids=category_ids)
