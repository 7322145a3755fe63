"""pytorch-faster-rcnn (rtl) models -> detector files: the converted network computes what rtl's does.

The fixtures tests/data/rtl_net_<net>_<ds>_<mode>.npz are the outputs of rtl's own code (commit 039fe7d, run
once on CPU, tests/fixtures_src/make_rtl_fixtures.py) on seeded weights (tests/rtl_seeded.py); here the same
weights go through tools/convert_from_pytorch_faster_rcnn.py and our network. rtl's proposals are not
compared: its NMS (torchvision's, without the +1 in widths) is not the reference rule this project follows.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from faster_rcnn.convert.from_rtl import convert_rtl_state_dict, read_rtl_state_dict
from faster_rcnn.datasets.factory import classes_of
from faster_rcnn.model_file import save_atomic
from network_equality import absolute_error, load_converted, our_outputs, relative_error, rpn_from_nhwc
from rtl_seeded import read_key_list, rtl_state_dict

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / 'tests' / 'data'
CASES = [('vgg16', 'voc', 'align'), ('res50', 'voc', 'align'), ('res101', 'voc', 'align'), ('res152', 'voc', 'align'),
         ('mobile', 'voc', 'align'), ('res101', 'coco', 'align'), ('vgg16', 'voc', 'pool'), ('res101', 'voc', 'pool')]


def _rtl_file(tmp_path: Path, net: str, ds: str) -> Path:
    keys = read_key_list(DATA / f'rtl_{net}_{ds}_keys.txt')
    state = {k: torch.from_numpy(v) for k, v in rtl_state_dict(keys, 2024).items()}
    path = tmp_path / f'rtl_{net}_{ds}.pth'
    torch.save(state, path)  # what rtl's snapshot() wrote: a bare state_dict
    return path


def _imdb(ds: str) -> str:
    return 'voc_2007_test' if ds == 'voc' else 'coco_2014_minival'


def _anchors(ds: str) -> tuple[int, ...]:
    return (8, 16, 32) if ds == 'voc' else (4, 8, 16, 32)


@pytest.mark.parametrize('net,ds,mode', CASES)
def test_converted_rtl_model_reproduces_rtl(tmp_path, net, ds, mode):
    fx = np.load(DATA / f'rtl_net_{net}_{ds}_{mode}.npz')
    src = _rtl_file(tmp_path, net, ds)
    payload = convert_rtl_state_dict(str(src), net, classes_of(_imdb(ds)), pooling_mode=mode,
                                     anchor_scales=_anchors(ds))
    save_atomic(payload, str(tmp_path / 'converted.pth'))
    _, model = load_converted(str(tmp_path / 'converted.pth'))
    ours = our_outputs(model, fx['in_image'], fx['in_rois'])
    fg, deltas = rpn_from_nhwc(fx['out_rpn_cls_prob'], fx['out_rpn_bbox_pred'], model.num_anchors)
    assert relative_error(ours['head'], fx['out_head']) < 1e-4
    assert absolute_error(ours['rpn_fg'], fg) < 1e-5
    assert relative_error(ours['rpn_deltas'], deltas) < 1e-4
    assert relative_error(ours['fc7'], fx['out_fc7']) < 1e-4
    assert absolute_error(ours['cls_prob'], fx['out_cls_prob']) < 1e-5
    assert relative_error(ours['bbox_pred'], fx['out_bbox_pred']) < 1e-4


@pytest.mark.slow
def test_cli_records_rtl_layout_with_crop_pooling_by_default(tmp_path):
    src = _rtl_file(tmp_path, 'res50', 'voc')
    out = tmp_path / 'out' / 'res50.pth'
    proc = subprocess.run([sys.executable, 'tools/convert_from_pytorch_faster_rcnn.py', '--net', 'res50', '--pth',
                           str(src), '--imdb', 'voc_2007_test', '--out', str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "275 tensors converted (skipped: 53 a BatchNorm's update counter)" in proc.stdout
    f = torch.load(out, map_location='cpu', weights_only=True)
    assert f['kind'] == 'detector' and f['net'] == 'res50' and len(f['classes']) == 21
    assert f['category_ids'] == list(range(21))
    model_cfg = f['config']['model']
    assert model_cfg['RESNET.LAYOUT'] == 'caffe' and model_cfg['POOLING_MODE'] == 'crop'
    assert model_cfg['CHANNEL_ORDER'] == 'BGR' and model_cfg['PIXEL_STDS'] == [[[1.0, 1.0, 1.0]]]
    assert model_cfg['PIXEL_MEANS'] == [[[102.9801, 115.9465, 122.7717]]]
    assert f['source']['format'] == 'pytorch-faster-rcnn' and f['source']['pooling_mode'] == 'crop'


def test_vgg16_keeps_rtl_floor_pools_and_mobile_its_norm_epsilon(tmp_path):
    payload = convert_rtl_state_dict(str(_rtl_file(tmp_path, 'vgg16', 'voc')), 'vgg16', classes_of('voc_2007_test'))
    assert payload['config']['model']['VGG16.CEIL_MODE'] is False
    src = _rtl_file(tmp_path, 'mobile', 'voc')
    raw = torch.load(src, weights_only=True)
    payload = convert_rtl_state_dict(str(src), 'mobile', classes_of('voc_2007_test'))
    assert payload['config']['model']['MOBILENET.VERSION'] == 1
    # rtl's norms divide by sqrt(var + 1e-5), ours by sqrt(var' + 1e-3): the same when var' = var + 1e-5 - 1e-3.
    ours = payload['model']['backbone.features.3.pointwise.1.running_var']
    theirs = raw['mobilenet.Conv2d_3.pointwise.1.running_var']
    torch.testing.assert_close(ours + 1e-3, theirs + 1e-5, rtol=0, atol=1e-7)


@pytest.mark.parametrize('name', ['rtl_legacy_state_dict.pth', 'rtl_legacy03_state_dict.pth'])
def test_legacy_pytorch_files_load_without_running_code(name):
    """rtl's published files predate PyTorch's zip format (PyTorch 0.2-0.4 pickles): weights_only reads them."""
    state = read_rtl_state_dict(str(DATA / name))
    expected = np.load(DATA / 'rtl_legacy_state_dict.npz')
    assert sorted(state) == sorted(expected.files)
    for k in expected.files:
        np.testing.assert_array_equal(state[k].numpy(), expected[k])


class _Payload:
    def __reduce__(self):
        return (os.system, ('touch PWNED_BY_PICKLE',))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'rpn_net.weight': _Payload()}, f)
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_from_pytorch_faster_rcnn.py'), '--net',
                           'res50', '--pth', str(path), '--imdb', 'voc_2007_test', '--out', str(tmp_path / 'o.pth')],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 5 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: ') and 'evil.pth cannot be read' in proc.stderr
    assert not (tmp_path / 'PWNED_BY_PICKLE').exists() and not (tmp_path / 'o.pth').exists()


@pytest.mark.slow
def test_wrong_net_wrong_classes_and_truncated_files_are_named(tmp_path):
    src = _rtl_file(tmp_path, 'res101', 'voc')

    def convert(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, 'tools/convert_from_pytorch_faster_rcnn.py', '--pth', str(src),
                               '--out', str(tmp_path / 'o.pth'), *extra], cwd=REPO, capture_output=True, text=True)

    wrong_net = convert('--net', 'res50', '--imdb', 'voc_2007_test')
    assert wrong_net.returncode == 5 and 'Traceback' not in wrong_net.stderr
    assert 'holds a res101 network, not res50: pass --net res101' in wrong_net.stderr
    wrong_classes = convert('--net', 'res101', '--imdb', 'coco_2014_minival', '--anchors', '4,8,16,32')
    assert wrong_classes.returncode == 5 and 'detects 20 classes, the given classes are 80' in wrong_classes.stderr
    assert 'voc_2007_test' in wrong_classes.stderr
    coco_anchors = convert('--net', 'res101', '--imdb', 'voc_2007_test', '--anchors', '4,8,16,32')
    assert coco_anchors.returncode == 5 and 'has 9 anchors per position' in coco_anchors.stderr
    src.write_bytes(src.read_bytes()[:100000])
    truncated = convert('--net', 'res101', '--imdb', 'voc_2007_test')
    assert truncated.returncode == 5 and 'cannot be read' in truncated.stderr and str(src) in truncated.stderr
    assert not (tmp_path / 'o.pth').exists()
