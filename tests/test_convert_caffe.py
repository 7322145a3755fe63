"""tools/convert_from_caffe.py and the caffemodel reader: BUTD's Caffe network computed independently here (plain
torch.nn.functional on the Caffe blobs: BatchNorm with its scale factor, ceil-mode pool1, stride in the 1x1,
Caffe ROIPooling in NumPy loops, dilated res5, cls_prob, the attribute branch) against the converted network."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from caffemodel_writer import blob_bytes, butd_layers, field_bytes, write_caffemodel
from tool_runs import run_tool
from faster_rcnn.convert.caffemodel import read_caffemodel
from faster_rcnn.convert.from_caffe import BUTD_LAYOUT, butd_state_dict, convert_butd, read_vocabulary, unit_name
from faster_rcnn.convert.mapping import layout_config
from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.inference.detector import Detector
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
        ours_attr = F.softmax(F.linear(hidden, attr['attr_head.attr_score.weight'],
                                       attr['attr_head.attr_score.bias']), dim=1)
    errors['pool5_flat'] = _rel(feats, pool5)
    errors['attr_prob'] = _rel(ours_attr, attr_prob)
    print('largest relative errors:', {k: f'{v:.1e}' for k, v in errors.items()})
    for name, err in errors.items():
        assert err < 1e-4, (name, err)


def test_reader_takes_legacy_v1_layers_and_4d_shapes_and_skips_unknown_fields(tmp_path):
    rng = np.random.default_rng(3)
    layers = {'conv1': [rng.standard_normal((4, 3, 7, 7), dtype=np.float32)],
              'cls_score': [rng.standard_normal((6, 8), dtype=np.float32), rng.standard_normal(6, dtype=np.float32)]}
    for legacy in (False, True):
        path = tmp_path / f'{legacy}.caffemodel'
        _write(path, layers, legacy=legacy)
        read = read_caffemodel(str(path))
        assert list(read) == ['conv1', 'cls_score']
        assert read['conv1'].type == 'Convolution' and read['cls_score'].type == 'InnerProduct'
        for name, blobs in layers.items():
            for got, want in zip(read[name].blobs, blobs):
                np.testing.assert_array_equal(got.data.reshape(want.shape), want)
        # Legacy blobs are 4-d (num, channels, height, width): a bias (6,) is (1, 1, 1, 6).
        assert read['cls_score'].blobs[1].shape == ((1, 1, 1, 6) if legacy else (6,))


def test_missing_extra_and_misshapen_blobs_are_one_error_naming_each_layer(tmp_path):
    L = _layers()
    del L['res3b1_branch2b']
    L['conv1'].append(np.zeros(64, np.float32))                  # a bias conv1 does not have
    L['bn4a_branch1'][0] = np.zeros(1000, np.float32)            # a mean of the wrong length
    path = tmp_path / 'bad.caffemodel'
    _write(path, L)
    with pytest.raises(ModelFileError) as info:
        butd_state_dict(read_caffemodel(str(path)), _expected(_small_model()), where=str(path), units=UNITS)
    message = str(info.value)
    assert message.startswith(f'{path} does not fit the BUTD network: ')
    assert 'layer conv1 has 2 blobs, expected 1' in message
    assert 'layer res3b1_branch2b is missing' in message
    assert 'layer bn4a_branch1 blob 0 has shape [1000], expected [1024]' in message


def test_a_truncated_or_foreign_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / 'butd.caffemodel'
    _write(path, _layers())
    data = path.read_bytes()
    cut = tmp_path / 'cut.caffemodel'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match=r'cut.caffemodel cannot be read as a Caffe NetParameter .*truncated'):
        read_caffemodel(str(cut))
    text = tmp_path / 'net.prototxt'
    text.write_text('name: "ResNet-101"\n')
    with pytest.raises(ModelFileError, match='net.prototxt'):
        read_caffemodel(str(text))
    with pytest.raises(ModelFileError, match='does not exist'):
        read_caffemodel(str(tmp_path / 'nothing.caffemodel'))


def test_a_blob_proto_holds_one_float_view_of_the_file(tmp_path):
    # The data of a blob is a view of the memory-mapped file, not a copy.
    path = tmp_path / 'one.caffemodel'
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    path.write_bytes(field_bytes(100, field_bytes(1, b'fc') + field_bytes(2, b'InnerProduct')
                                 + field_bytes(7, blob_bytes(values))))
    blob = read_caffemodel(str(path))['fc'].blobs[0]
    assert blob.shape == (3, 4) and not blob.data.flags.owndata and not blob.data.flags.writeable
    np.testing.assert_array_equal(blob.array(), values)


def test_vocabularies_take_the_first_synonym_and_need_no_final_newline(tmp_path):
    path = tmp_path / 'objects_vocab.txt'
    path.write_text('yolk\nbathroom\nbackground,backdrop\nt-shirt,tshirt,tee shirt')
    assert read_vocabulary(str(path), '--objects-vocab', '__background__') == [
        '__background__', 'yolk', 'bathroom', 'background', 't-shirt']
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    with pytest.raises(UsageError, match='--attributes-vocab .*empty.txt: the file lists no names'):
        read_vocabulary(str(empty), '--attributes-vocab', '__no_attribute__')


def test_a_vocabulary_of_the_wrong_length_is_an_error_naming_the_flag(tmp_path):
    path = tmp_path / 'butd.caffemodel'
    _write(path, _layers())
    objects = ['__background__'] + [f'o{i}' for i in range(K - 1)]
    with pytest.raises(UsageError, match='--attributes-vocab: the vocabulary has 2 names, the model\'s attr_score has '
                                         f'{A - 1} attributes'):
        convert_butd(str(path), objects, ['__no_attribute__', 'red', 'blue'])
    with pytest.raises(UsageError, match=f'--objects-vocab: the vocabulary has {K} names, the model\'s cls_score '
                                         f'has {K - 1} classes'):
        convert_butd(str(path), objects + ['extra'], None)


@pytest.mark.slow
def test_a_full_size_model_converts_and_detects_as_a_res101_butd_file(tmp_path):
    """The tool on a caffemodel of BUTD's real shapes (random weights, 1600 classes, training-only layers too),
    then Detector.load and one image; the file records BUTD's settings."""
    rng = np.random.default_rng(5)
    path = tmp_path / 'resnet101_faster_rcnn_final.caffemodel'
    with open(path, 'wb') as f:
        write_caffemodel(f, butd_layers(rng, num_attributes=0, extra_floats=1000))
    objects = tmp_path / 'objects_vocab.txt'
    objects.write_text('\n'.join(f'thing{i},synonym{i}' for i in range(1600)))
    out = tmp_path / 'res101_butd.pth'
    proc = run_tool(['tools/convert_from_caffe.py', '--caffemodel', str(path), '--objects-vocab', str(objects),
                     '--out', str(out), '--set', 'TEST.RPN_POST_NMS_TOP_N', '8'])
    assert 'res101_butd: 530 tensors from 317 layers (skipped 2 training-only layers), 1600 classes' in proc.stdout
    contents = torch.load(out, map_location='cpu', weights_only=True)
    assert contents['net'] == 'res101_butd' and contents['attributes'] is None
    assert contents['classes'][:2] == ['__background__', 'thing0'] and len(contents['classes']) == 1601
    model_keys, test = contents['config']['model'], contents['config']['test']
    assert model_keys['TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED'] is False and model_keys['POOLING_SIZE'] == 14
    assert model_keys['ANCHOR_SCALES'] == [4.0, 8.0, 16.0, 32.0] and model_keys['CHANNEL_ORDER'] == 'BGR'
    assert test['RPN_MIN_SIZE'] == 16 and test['RPN_POST_NMS_TOP_N'] == 8
    layers = read_caffemodel(str(path))
    mean, _, factor = (b.data for b in layers['bn4b22_branch2c'].blobs)
    torch.testing.assert_close(contents['model']['backbone.layer3.22.bn3.running_mean'],
                               torch.from_numpy(mean / factor[0]))
    detector = Detector.load(str(out))
    assert detector.model.settings.network.denormalize_bbox is False
    image = np.random.default_rng(0).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    found = detector(image)
    assert detector.model.backbone.layer4[0].conv2.dilation == (2, 2)
    assert len(found) > 0 and found.boxes.shape[1] == 4
