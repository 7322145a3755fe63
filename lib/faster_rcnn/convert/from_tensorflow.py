"""tf-faster-rcnn checkpoints -> self-describing detector files of this project.

The converted network computes what tf-faster-rcnn's TensorFlow graph computes, so it records the layout
that graph has (``TF_LAYOUT``): BGR input minus Caffe's means without a std (conv1 was flipped to BGR at
ImageNet initialisation, so no channel is flipped here), crop pooling (14x14 + max-pool for VGG16 and
MobileNet, 7x7 for the ResNets), slim's ResNet strides, 'SAME' (ceil-mode) VGG16 pools and MobileNetV1.
"""
from __future__ import annotations

import os.path as osp
from collections.abc import Sequence

from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.model_file import detector_payload

from ..nets.registry import networks_where
from .mapping import check_classes_and_anchors, converted_record, expected_shapes, layout_config, map_tensors
from .tensorbundle import TensorBundle
from .tf_names import SCOPES, skipped_by_rule, tf_table

# What tf-faster-rcnn's graph is, in our config keys (the anchors come from the caller).
TF_LAYOUT = {
    'PIXEL_MEANS': [[[102.9801, 115.9465, 122.7717]]],
    'PIXEL_STDS': [[[1.0, 1.0, 1.0]]],
    'CHANNEL_ORDER': 'BGR',
    'POOLING_MODE': 'crop',
    'POOLING_SIZE': 7,
    'RPN_CHANNELS': 512,
    'RESNET.LAYOUT': 'slim',
    'RESNET.MAX_POOL': False,
    'VGG16.CEIL_MODE': True,
    'MOBILENET.VERSION': 1,
    'MOBILENET.DEPTH_MULTIPLIER': 1.0,
    'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED': True,
    'TRAIN.BBOX_NORMALIZE_MEANS': [0.0, 0.0, 0.0, 0.0],
    'TRAIN.BBOX_NORMALIZE_STDS': [0.1, 0.1, 0.2, 0.2],
}
NETS = networks_where('tf')


def _check_network(bundle: TensorBundle, net: str) -> None:
    """A checkpoint of another network is named as such, not as hundreds of missing tensors."""
    scopes = {name.split('/')[0] for name in bundle.names()}
    if SCOPES[net] in scopes:
        return
    held = [n for n, scope in SCOPES.items() if scope in scopes]
    what = f'a {held[0]} network (variable scope {SCOPES[held[0]]})' if held else \
        f'no tf-faster-rcnn network (scopes {sorted(scopes)[:5]})'
    hint = f': pass --net {held[0]}' if held else ': is it a tf-faster-rcnn detector checkpoint?'
    raise ModelFileError(f'{bundle.index_path} holds {what}, not {net} (scope {SCOPES[net]}){hint}')


def convert_tf_checkpoint(path: str, net: str, classes: Sequence[str], *,
                          anchor_scales: Sequence[float] = (8, 16, 32),
                          anchor_ratios: Sequence[float] = (0.5, 1, 2),
                          test_set: Sequence[str] = (), category_ids: Sequence[int] | None = None) -> dict:
    """Read the tf-faster-rcnn checkpoint ``path`` (prefix, .index or folder) for ``net`` and ``classes``
    (background first) and return the detector file's contents (``torch.save`` it).

    ``test_set``: --set style pairs of TEST.* keys to record (e.g. an -lg model's TEST.SCALES).
    ``category_ids``: the dataset's id of each class (``io.read_category_ids``; default 1..K-1).
    """
    if net not in SCOPES:
        raise UsageError(f'--net {net}: tf-faster-rcnn published vgg16, res50, res101, res152 and mobile')
    bundle = TensorBundle(path)
    config = layout_config({'EXP_DIR': net, **TF_LAYOUT, 'ANCHOR_SCALES': [float(s) for s in anchor_scales],
                            'ANCHOR_RATIOS': [float(r) for r in anchor_ratios]}, tuple(test_set))
    _check_network(bundle, net)
    cls, rpn = f'{SCOPES[net]}/cls_score/biases', f'{SCOPES[net]}/rpn_cls_score/biases'
    check_classes_and_anchors(bundle.index_path, file_classes=bundle.shape(cls)[0] if cls in bundle else None,
                              file_anchors=bundle.shape(rpn)[0] // 2 if rpn in bundle else None,
                              num_classes=len(classes), num_anchors=len(anchor_scales) * len(anchor_ratios))
    expected = expected_shapes(net, len(classes), config)
    state, skipped = map_tensors(tf_table(net), bundle.shapes(), lambda name: bundle.read(name, scratch=True), expected,
                                 where=bundle.index_path, skip_rule=skipped_by_rule,
                                 nhwc_channels=512 if net == 'vgg16' else None, scratch_views=True)
    source = {'format': 'tf-faster-rcnn', 'file': osp.basename(bundle.prefix), 'tensors': len(state),
              'skipped': skipped}
    return detector_payload(net=net, classes=list(classes), state_dict=state, record=converted_record(config, net),
                            kind='detector', source=source, category_ids=category_ids)
