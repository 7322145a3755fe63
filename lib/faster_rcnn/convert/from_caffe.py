"""bottom-up-attention's Caffe model (``resnet101_faster_rcnn_final*.caffemodel``) -> a ``res101_butd`` detector.

The layers of BUTD's test network (``models/vg/ResNet-101/faster_rcnn_end2end_final/test.prototxt``) are mapped
by name; the file's training-only layers (relation and heat-map heads) are not read. Layouts carry over
unchanged: Caffe convolutions are (out, in, kh, kw) as PyTorch's, InnerProduct (out, in) as ``nn.Linear``,
Embed (input_dim, num_output) as ``nn.Embedding``; ``rpn_cls_score``'s 24 channels are the 12 background scores
then the 12 foreground scores, and ``rpn_bbox_pred``'s 48 are (anchor, coordinate), both as ``FasterRCNN``'s.

A Caffe BatchNorm holds the running sums and their scale factor (blob 2): the statistics are blob 0 and blob 1
divided by it; its Scale layer holds gamma and beta. The published ``bbox_pred`` is already de-normalised
(BUTD's snapshot multiplied it by the target stds), which the file records as
``TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED: False`` (no de-normalisation at test time).
"""
from __future__ import annotations

import os.path as osp
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.model_file import detector_payload

from .caffemodel import CaffeLayer, read_caffemodel
from .mapping import converted_record, expected_shapes, layout_config

NET = 'res101_butd'
# The network as BUTD ran it (test.prototxt, lib/fast_rcnn/config.py, experiments/cfgs/faster_rcnn_end2end_resnet.yml).
BUTD_LAYOUT = {
    'EXP_DIR': NET,
    'PIXEL_MEANS': [[[102.9801, 115.9465, 122.7717]]],
    'PIXEL_STDS': [[[1.0, 1.0, 1.0]]],
    'CHANNEL_ORDER': 'BGR',
    'ANCHOR_SCALES': [4.0, 8.0, 16.0, 32.0],
    'ANCHOR_RATIOS': [0.5, 1.0, 2.0],
    'RPN_CHANNELS': 512,
    'POOLING_MODE': 'pool',
    'POOLING_SIZE': 14,
    'RESNET.FIXED_BLOCKS': 2,
    'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED': False,  # the deltas are already de-normalised
    'TRAIN.RPN_MIN_SIZE': 16,
    'TEST.RPN_MIN_SIZE': 16,
    'TEST.RPN_PRE_NMS_TOP_N': 6000,
    'TEST.RPN_POST_NMS_TOP_N': 300,
    'TEST.RPN_NMS_THRESH': 0.7,
    'TEST.NMS': 0.3,
}
CAFFE_BN_EPS = 1e-5  # BatchNormParameter.eps default; torchvision's FrozenBatchNorm2d uses the same
RES101_UNITS = (3, 4, 23, 3)

# (our key suffix, Caffe layer, blob index) of the layers outside the backbone.
_HEADS = (('rpn_conv', 'rpn_conv/3x3'), ('rpn_cls_score', 'rpn_cls_score'), ('rpn_bbox_pred', 'rpn_bbox_pred'),
          ('cls_score', 'cls_score'), ('bbox_pred', 'bbox_pred'))
_ATTRIBUTE_HEAD = (('attr_head.fc_attr', 'fc_attr'), ('attr_head.attr_score', 'attr_score'))


def unit_name(stage: int, index: int) -> str:
    """Caffe's name of unit ``index`` (0-based) of stage ``stage`` (2..5) of ResNet-101: letters for res2 and
    res5 (``res2a``, ``res2b``), ``a, b1, b2, ...`` for res3 and res4 (``res4b22``)."""
    if stage in (3, 4):
        return f'res{stage}a' if index == 0 else f'res{stage}b{index}'
    return f'res{stage}{"abcdefghijklmnopqrstuvwxyz"[index]}'


def _norm_pairs(units: tuple[int, ...]) -> Iterator[tuple[str, str, str, str]]:
    """(our conv, our norm, Caffe conv layer, suffix of its Caffe ``bn*`` / ``scale*`` layers) of every
    convolution of the backbone: ``conv1`` + ``bn_conv1`` + ``scale_conv1``, ``res4b22_branch2a`` +
    ``bn4b22_branch2a`` + ``scale4b22_branch2a``, ..."""
    yield 'backbone.conv1', 'backbone.bn1', 'conv1', '_conv1'
    for layer, count in enumerate(units, start=1):
        stage = layer + 1
        for i in range(count):
            name = unit_name(stage, i)
            prefix = f'backbone.layer{layer}.{i}'
            for k, branch in enumerate('abc', start=1):
                yield f'{prefix}.conv{k}', f'{prefix}.bn{k}', f'{name}_branch2{branch}', f'{name[3:]}_branch2{branch}'
            if i == 0:
                yield f'{prefix}.downsample.0', f'{prefix}.downsample.1', f'{name}_branch1', f'{name[3:]}_branch1'


class _Problems:
    """Every problem found, reported at once as one error naming the layers."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def blobs(self, layers: Mapping[str, CaffeLayer], name: str, shapes: list[tuple[int, ...]]
              ) -> list[np.ndarray] | None:
        """The blobs of layer ``name`` as arrays of ``shapes`` (None after recording a problem)."""
        layer = layers.get(name)
        if layer is None:
            self.items.append(f'layer {name} is missing')
            return None
        if len(layer.blobs) != len(shapes):
            self.items.append(f'layer {name} has {len(layer.blobs)} blobs, expected {len(shapes)}')
            return None
        out = []
        for k, (blob, shape) in enumerate(zip(layer.blobs, shapes)):
            if blob.data.size != int(np.prod(shape, dtype=np.int64)) or _squeeze(blob.shape) != _squeeze(shape):
                self.items.append(f'layer {name} blob {k} has shape {list(blob.shape)}, expected {list(shape)}')
                return None
            out.append(blob.data.reshape(shape))
        return out

    def raise_if_any(self) -> None:
        if self.items:
            shown = '; '.join(self.items[:8]) + (f'; and {len(self.items) - 8} more' if len(self.items) > 8 else '')
            raise ModelFileError(f'{self.where} does not fit the BUTD network: {shown}')


def _squeeze(shape: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """A shape without its 1s: Caffe writes a bias (C,) as (C,), old files as (1, 1, 1, C)."""
    return tuple(int(d) for d in shape if int(d) != 1)


def butd_state_dict(layers: Mapping[str, CaffeLayer], expected: Mapping[str, tuple[int, ...]], *, where: str,
                    units: tuple[int, ...] = RES101_UNITS) -> dict[str, torch.Tensor]:
    """Our state_dict (float32 tensors, each a copy) from BUTD's Caffe layers.

    ``expected``: our network's key -> shape (``attr_head.*`` keys present: the attribute branch is mapped too).
    Raises one ModelFileError naming every missing layer and every blob of the wrong count or shape.
    """
    problems = _Problems(where)
    state: dict[str, torch.Tensor] = {}

    def put(key: str, array: np.ndarray) -> None:
        state[key] = torch.tensor(array, dtype=torch.float32)  # a copy: the file's pages are not kept

    # Pages of the mapped file, once copied, are dropped: the file is never held twice (mapped and copied).
    drop = getattr(layers, 'drop_pages', lambda: None)

    for conv, norm, caffe_conv, suffix in _norm_pairs(units):
        weight = expected[f'{conv}.weight']
        c = weight[0]
        got = problems.blobs(layers, caffe_conv, [weight])
        stats = problems.blobs(layers, f'bn{suffix}', [(c,), (c,), (1,)])
        affine = problems.blobs(layers, f'scale{suffix}', [(c,), (c,)])
        if got is None or stats is None or affine is None:
            continue
        put(f'{conv}.weight', got[0])
        factor = float(stats[2].reshape(-1)[0])
        inverse = 0.0 if factor == 0 else 1.0 / factor  # Caffe's rule for an unset factor
        put(f'{norm}.running_mean', stats[0] * np.float32(inverse))
        put(f'{norm}.running_var', stats[1] * np.float32(inverse))
        put(f'{norm}.weight', affine[0])
        put(f'{norm}.bias', affine[1])
        drop()
    heads = _HEADS + (_ATTRIBUTE_HEAD if 'attr_head.fc_attr.weight' in expected else ())
    for ours, caffe in heads:
        got = problems.blobs(layers, caffe, [expected[f'{ours}.weight'], expected[f'{ours}.bias']])
        if got is not None:
            put(f'{ours}.weight', got[0])
            put(f'{ours}.bias', got[1])
        drop()
    if 'attr_head.cls_embedding.weight' in expected:
        got = problems.blobs(layers, 'cls_embedding', [expected['attr_head.cls_embedding.weight']])
        if got is not None:
            put('attr_head.cls_embedding.weight', got[0])
    problems.raise_if_any()
    left = sorted(set(expected) - set(state))
    if left:  # the table does not cover the network: a bug, said plainly
        raise ValueError(f'the BUTD name table leaves {left[:6]} unset')
    return state


def read_vocabulary(path: str, flag: str, first: str) -> list[str]:
    """A BUTD vocabulary file (one entry a line, comma-separated synonyms: the first is the name), with
    ``first`` (the background / no-attribute slot) in front."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f'{flag} {path}: cannot be read ({e.strerror})') from None
    names = [line.split(',')[0].strip() for line in lines if line.strip()]
    if not names:
        raise UsageError(f'{flag} {path}: the file lists no names (one a line)')
    if any(not n for n in names):
        raise UsageError(f'{flag} {path}: a line starts with a comma (no name before its synonyms)')
    return [first] + names


def _rows(layers: Mapping[str, CaffeLayer], name: str) -> int | None:
    layer = layers.get(name)
    return None if layer is None or not layer.blobs else int(layer.blobs[0].shape[0])


def convert_butd(path: str, objects: list[str], attributes: list[str] | None, *, test_set: Sequence[str] = (),
                 objects_flag: str = '--objects-vocab', attributes_flag: str = '--attributes-vocab') -> dict:
    """Read BUTD's caffemodel ``path`` with its class names (``__background__`` first) and attribute names
    (``__no_attribute__`` first; None: the attribute branch is left out); return the detector file's contents.
    ``test_set``: --set style TEST.* pairs recorded as the file's test settings."""
    layers = read_caffemodel(path)
    for names, layer, flag, what in ((objects, 'cls_score', objects_flag, 'classes'),
                                     (attributes, 'attr_score', attributes_flag, 'attributes')):
        rows = _rows(layers, layer)
        if names is not None and rows is not None and rows != len(names):
            raise UsageError(f'{flag}: the vocabulary has {len(names) - 1} names, the model\'s {layer} has {rows - 1} '
                             f'{what} (plus slot 0): pass the vocabulary the model was trained with')
    config = layout_config(BUTD_LAYOUT, list(test_set))
    expected = expected_shapes(NET, len(objects), config)
    if attributes is not None:
        a, fc = len(attributes), expected['cls_score.weight'][1]
        # The attribute head of the shared contract: Embed(K, 256) -> cat with the feature -> 512 -> A.
        expected.update({'attr_head.cls_embedding.weight': (len(objects), 256),
                         'attr_head.fc_attr.weight': (512, fc + 256), 'attr_head.fc_attr.bias': (512,),
                         'attr_head.attr_score.weight': (a, 512), 'attr_head.attr_score.bias': (a,)})
    state = butd_state_dict(layers, expected, where=path)
    used = {name for name in layers if _is_used(name)}
    source = {'format': 'caffe (bottom-up-attention)', 'file': osp.basename(path), 'tensors': len(state),
              'layers': len(used), 'skipped_layers': len(layers) - len(used)}
    payload = detector_payload(net=NET, classes=list(objects), state_dict=state, record=converted_record(config, NET),
                               kind='detector', source=source)
    payload['attributes'] = list(attributes) if attributes is not None else None
    return payload


def _is_used(name: str) -> bool:
    heads = {c for _, c in _HEADS + _ATTRIBUTE_HEAD} | {'cls_embedding', 'conv1', 'bn_conv1', 'scale_conv1'}
    return name in heads or name.startswith(('res', 'bn', 'scale')) and '_branch' in name
