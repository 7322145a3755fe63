"""Region-feature files read back by readers written from each consumer's documented layout (not from our
writers), resuming after a kill, unreadable images, and torchrun writing one output."""
from __future__ import annotations

import argparse
import base64
import csv
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from faster_rcnn import Detector
from faster_rcnn.config import config_record
from faster_rcnn.errors import UsageError
from faster_rcnn.inference.feature_formats import make_writer
from faster_rcnn.inference.region_features import RegionFeatures
from faster_rcnn.model_file import detector_payload, save_atomic
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.registry import model_keys
from faster_rcnn.settings import ModelSettings

from settings_helpers import SHAPES_CFG, config_with
from tool_runs import REPO, _env

CLASSES = ['__background__', 'a', 'b', 'c']


# -- readers written from the consumers' layouts (docs/features.md) ------------------------------------------
def _read_butd_tsv(path: Path) -> dict:
    """bottom-up-attention tools/read_tsv.py: 6 columns, base64 float32 (N, 4) boxes and (N, D) features."""
    csv.field_size_limit(sys.maxsize)
    out = {}
    with open(path, newline='') as f:
        for item in csv.DictReader(f, delimiter='\t', fieldnames=['image_id', 'image_w', 'image_h', 'num_boxes',
                                                                   'boxes', 'features']):
            n = int(item['num_boxes'])
            out[item['image_id']] = dict(
                w=int(item['image_w']), h=int(item['image_h']), n=n,
                boxes=np.frombuffer(base64.b64decode(item['boxes']), np.float32).reshape(n, 4),
                features=np.frombuffer(base64.b64decode(item['features']), np.float32).reshape(n, -1))
    return out


def _read_lxmert_tsv(path: Path) -> dict:
    """airsplay/lxmert src/utils.py load_obj_tsv: 10 columns, h before w, int64 ids."""
    csv.field_size_limit(sys.maxsize)
    names = ['img_id', 'img_h', 'img_w', 'objects_id', 'objects_conf', 'attrs_id', 'attrs_conf', 'num_boxes', 'boxes',
             'features']
    out = {}
    with open(path, newline='') as f:
        for item in csv.DictReader(f, names, delimiter='\t'):
            n = int(item['num_boxes'])
            dec = {}
            for key, shape, dtype in (('objects_id', (n,), np.int64), ('objects_conf', (n,), np.float32),
                                      ('attrs_id', (n,), np.int64), ('attrs_conf', (n,), np.float32),
                                      ('boxes', (n, 4), np.float32), ('features', (n, -1), np.float32)):
                dec[key] = np.frombuffer(base64.b64decode(item[key]), dtype).reshape(shape)
            out[item['img_id']] = dict(h=int(item['img_h']), w=int(item['img_w']), **dec)
    return out


def _regions(seed: int, n: int, d: int = 8, k: int = 4, size=(50, 70)) -> RegionFeatures:
    rng = np.random.default_rng(seed)
    boxes = np.sort(rng.uniform(0, 40, (n, 4)).astype(np.float32).reshape(n, 2, 2), 1).transpose(0, 2, 1)
    boxes = boxes.reshape(n, 4)[:, [0, 1, 2, 3]]
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    prob = rng.dirichlet(np.ones(k), n).astype(np.float32)
    return RegionFeatures(boxes, rng.normal(size=(n, d)).astype(np.float32), prob[:, 1:].argmax(1) + 1,
                          prob[:, 1:].max(1), prob, size)


def test_butd_and_lxmert_tsv_read_back_as_their_consumers_read_them(tmp_path):
    regions = {'1': _regions(0, 3), 'COCO_val2014_000000000042': _regions(1, 5, size=(33, 21))}
    for fmt in ('butd-tsv', 'lxmert-tsv'):
        w = make_writer(fmt, str(tmp_path / f'{fmt}.tsv'), (10, 100))
        assert w.done() == set()
        for image_id, r in regions.items():
            w.append(w.row(image_id, r))
        w.close()
    butd = _read_butd_tsv(tmp_path / 'butd-tsv.tsv')
    lx = _read_lxmert_tsv(tmp_path / 'lxmert-tsv.tsv')
    for image_id, r in regions.items():
        b, x = butd[image_id], lx[image_id]
        assert (b['h'], b['w']) == r.image_size == (x['h'], x['w']) and b['n'] == len(r)
        np.testing.assert_array_equal(b['boxes'], r.boxes)
        np.testing.assert_array_equal(b['features'], r.features)
        np.testing.assert_array_equal(x['features'], r.features)
        np.testing.assert_array_equal(x['objects_id'], r.objects - 1)  # 0-based without the background
        np.testing.assert_array_equal(x['objects_conf'], r.object_scores)
        assert not x['attrs_id'].any() and not x['attrs_conf'].any()  # no attribute head: zeros


def test_a_tsv_row_cut_by_a_kill_is_dropped_on_the_next_start(tmp_path):
    path = tmp_path / 'f.tsv'
    w = make_writer('butd-tsv', str(path), (10, 100))
    w.append(w.row('a', _regions(0, 2)))
    w.close()
    whole = path.read_bytes()
    with open(path, 'ab') as f:
        f.write(w.row('b', _regions(1, 2)).encode()[:37])  # half a row
    again = make_writer('butd-tsv', str(path), (10, 100))
    assert again.done() == {'a'}
    assert path.read_bytes() == whole


def test_npz_mmf_and_h5_read_back_as_their_consumers_read_them(tmp_path):
    regions = {'11': _regions(0, 4, size=(50, 70)), '12': _regions(1, 4, size=(40, 30))}
    out = str(tmp_path / 'cocobu')
    npz = make_writer('npz', out, (10, 100))
    mmf = make_writer('mmf', str(tmp_path / 'mmf'), (10, 100))
    h5w = make_writer('h5', str(tmp_path / 'val4.hdf5'), (4, 4))
    for image_id, r in regions.items():
        for w in (npz, mmf, h5w):
            w.write(image_id, r)
    h5w.finish(list(regions), complete=True)
    for w in (npz, mmf):
        assert w.done() == set(regions)
    # bottom-up-attention-vqa dataset.py: h5 datasets and the imgid2idx pickle.
    with h5py.File(tmp_path / 'val4.hdf5', 'r') as f:
        feats, bb, spatial = f['image_features'][:], f['image_bb'][:], f['spatial_features'][:]
    with open(tmp_path / 'val4_imgid2idx.pkl', 'rb') as f:
        index = pickle.load(f)  # the test's own output
    assert index == {11: 0, 12: 1} and feats.shape == (2, 4, 8) and spatial.shape == (2, 4, 6)
    assert not (tmp_path / 'val4.hdf5.parts').exists()
    for image_id, r in regions.items():
        # ImageCaptioning.pytorch: np.load(att)['feat'], fc = mean, box npy.
        att = np.load(f'{out}_att/{image_id}.npz')['feat']
        np.testing.assert_array_equal(att, r.features)
        np.testing.assert_allclose(np.load(f'{out}_fc/{image_id}.npy'), r.features.mean(0), rtol=1e-6)
        np.testing.assert_array_equal(np.load(f'{out}_box/{image_id}.npy'), r.boxes)
        # MMF: <id>.npy features, <id>_info.npy a dict.
        np.testing.assert_array_equal(np.load(tmp_path / 'mmf' / f'{image_id}.npy'), r.features)
        info = np.load(tmp_path / 'mmf' / f'{image_id}_info.npy', allow_pickle=True).item()  # our own output
        assert info['num_boxes'] == 4 and (info['image_height'], info['image_width']) == r.image_size
        np.testing.assert_array_equal(info['bbox'], r.boxes)
        np.testing.assert_array_equal(info['objects'], r.objects)
        np.testing.assert_array_equal(info['cls_prob'], r.cls_prob)
        row = index[int(image_id)]
        np.testing.assert_array_equal(feats[row], r.features)
        np.testing.assert_array_equal(bb[row], r.boxes)
        h, w = r.image_size
        x1, y1, x2, y2 = r.boxes.T.astype(np.float64)
        expected = np.stack([x1 / w, y1 / h, x2 / w, y2 / h, (x2 - x1) / w, (y2 - y1) / h], 1)
        np.testing.assert_allclose(spatial[row], expected, rtol=1e-6)


def test_h5_needs_a_fixed_count():
    with pytest.raises(UsageError, match='^--boxes 10-100: the h5 format holds a fixed number'):
        make_writer('h5', '/nonexistent-dir-unused/x.h5', (10, 100))


# -- the tool -------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('feat_model') / 'tiny.pth'
    c = config_with(SHAPES_CFG)
    torch.manual_seed(0)
    model = build_network('tiny', len(CLASSES), ModelSettings.from_config(c, 'tiny'))
    save_atomic(detector_payload(net='tiny', classes=CLASSES, state_dict=model.state_dict(),
                                 record=config_record(c, model_keys('tiny'))), str(path))
    return path


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('feat_images')
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(120, 160), (100, 90), (130, 130), (90, 200), (150, 110), (80, 80)]):
        folder = root / ('sub' if i % 2 else '')
        folder.mkdir(exist_ok=True)
        im = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        im = cv2.GaussianBlur(im, (7, 7), 0)
        cv2.imwrite(str(folder / f'im{i}.png'), im)
    return root


def _extract(model: Path, images: Path, out: Path, *extra: str, launcher: list[str] | None = None,
             wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    args = [*(launcher or [sys.executable]), 'tools/extract_features.py', '--model', str(model), '--images',
            str(images), '--out', str(out), '--device', 'cpu', '--workers', '0', *extra]
    env = {**_env(), 'OMP_NUM_THREADS': '1'}
    if not wait:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_tool_equals_the_api_and_a_killed_run_resumes_to_the_same_file(model_file, image_dir, tmp_path):
    whole = tmp_path / 'whole.tsv'
    proc = _extract(model_file, image_dir, whole, '--format', 'butd-tsv', '--batch-size', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _read_butd_tsv(whole)
    assert list(rows) == ['im0', 'im2', 'im4', 'im1', 'im3', 'im5']  # sorted relative paths
    det = Detector.load(str(model_file))
    for image_id, row in rows.items():
        path = next(image_dir.rglob(f'{image_id}.png'))
        r = det.features(str(path))
        # Another process, other thread counts: the same up to float summation order.
        assert row['features'].shape == r.features.shape and (row['h'], row['w']) == r.image_size
        np.testing.assert_allclose(row['features'], r.features, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row['boxes'], r.boxes, rtol=1e-5, atol=1e-3)
    # Kill a run once it has written two rows, then run the same command: the same file.
    part = tmp_path / 'part.tsv'
    run = _extract(model_file, image_dir, part, '--format', 'butd-tsv', wait=False)
    deadline = time.time() + 600
    while time.time() < deadline and (not part.exists() or part.read_bytes().count(b'\n') < 2):
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert 2 <= part.read_bytes().count(b'\n') < 6
    with open(part, 'ab') as f:
        f.write(b'im9\t12\t3')  # and a row cut short, as a kill in the middle of a write leaves it
    proc = _extract(model_file, image_dir, part, '--format', 'butd-tsv')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert part.read_bytes() == whole.read_bytes()


@pytest.mark.slow
def test_unreadable_images_are_skipped_listed_and_added_on_the_rerun(model_file, image_dir, tmp_path):
    images = tmp_path / 'ims'
    images.mkdir()
    for name in ('im0.png', 'im2.png'):
        (images / name).write_bytes((image_dir / name).read_bytes())
    (images / 'broken.png').write_bytes(b'not an image')
    out = tmp_path / 'cocobu'
    proc = _extract(model_file, images, out, '--format', 'npz')
    assert proc.returncode == 4
    assert 'skipped: image' in proc.stderr and 'broken.png' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: 1 of 3 images could not be used')
    assert sorted(os.listdir(f'{out}_box')) == ['im0.npy', 'im2.npy']
    (images / 'broken.png').write_bytes((image_dir / 'im4.png').read_bytes())
    proc = _extract(model_file, images, out, '--format', 'npz')
    assert proc.returncode == 0 and '1 to extract' in proc.stdout
    assert sorted(os.listdir(f'{out}_att')) == ['broken.npz', 'im0.npz', 'im2.npz']


@pytest.mark.slow
def test_two_processes_write_the_single_process_file(model_file, image_dir, tmp_path):
    one = tmp_path / 'one.tsv'
    two = tmp_path / 'two.tsv'
    assert _extract(model_file, image_dir, one, '--format', 'lxmert-tsv').returncode == 0
    proc = _extract(model_file, image_dir, two, '--format', 'lxmert-tsv', launcher=[
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'on 2 process(es)' in proc.stdout
    assert two.read_bytes() == one.read_bytes()
    assert len(_read_lxmert_tsv(two)) == 6


def _tool():
    spec = importlib.util.spec_from_file_location('extract_features_tool', REPO / 'tools' / 'extract_features.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_boxes_from_a_coco_json_or_a_folder_and_the_boxes_flag(tmp_path):
    tool = _tool()
    assert tool.box_range('10-100') == (10, 100) and tool.box_range('36') == (36, 36)
    with pytest.raises(UsageError, match='^--boxes 5-2'):
        tool.box_range('5-2')
    coco = {'images': [{'id': 7, 'file_name': 'COCO_7.jpg'}, {'id': 8, 'file_name': 'sub/x.jpg'}],
            'annotations': [{'image_id': 7, 'bbox': [10, 20, 30, 40]}, {'image_id': 7, 'bbox': [0, 0, 1, 1]}]}
    (tmp_path / 'c.json').write_text(json.dumps(coco))
    lookup = tool.boxes_from(str(tmp_path / 'c.json'))
    # COCO [x, y, w, h] with w = x2 - x1 + 1 (as Detections.to_coco writes it).
    expected = np.array([[10, 20, 39, 59], [0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(lookup('7'), expected)
    np.testing.assert_array_equal(lookup('COCO_7'), expected)
    assert lookup('x').shape == (0, 4) and lookup('9') is None
    folder = tmp_path / 'npy'
    folder.mkdir()
    np.save(folder / 'a.npy', np.array([[1, 2, 3, 4]], np.float64))
    by_folder = tool.boxes_from(str(folder))
    assert by_folder('a').dtype == np.float32 and by_folder('a').tolist() == [[1, 2, 3, 4]] and by_folder('b') is None
    (tmp_path / 'bad.json').write_text('{"images": 3}')
    with pytest.raises(UsageError, match='^--boxes-from .*bad.json: not a COCO json'):
        tool.boxes_from(str(tmp_path / 'bad.json'))


@pytest.mark.slow
def test_the_tool_pools_given_boxes_into_an_h5_file(model_file, image_dir, tmp_path):
    folder = tmp_path / 'boxes'
    folder.mkdir()
    stems = ['im0', 'im2', 'im4', 'im1', 'im3', 'im5']
    for k, stem in enumerate(stems):
        np.save(folder / f'{stem}.npy', np.array([[0, 0, 40, 30], [5 + k, 6, 60, 70], [10, 10, 20, 20]], np.float32))
    out = tmp_path / 'val3.hdf5'
    proc = _extract(model_file, image_dir, out, '--format', 'h5', '--boxes', '3', '--boxes-from', str(folder),
                    '--batch-size', '3', '--workers', '1')  # decoding in a worker process
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / 'val3_imgid2idx.pkl', 'rb') as f:
        index = pickle.load(f)  # the test's own output
    assert index == {stem: k for k, stem in enumerate(stems)}
    det = Detector.load(str(model_file))
    with h5py.File(out, 'r') as f:
        assert f['image_features'].shape == (6, 3, 256) and f['spatial_features'].shape == (6, 3, 6)
        for k, stem in enumerate(stems):
            boxes = np.load(folder / f'{stem}.npy')
            np.testing.assert_array_equal(f['image_bb'][k], boxes)
            r = det.features(str(next(image_dir.rglob(f'{stem}.png'))), boxes=boxes)
            np.testing.assert_allclose(f['image_features'][k], r.features, rtol=1e-4, atol=1e-6)
    assert not (tmp_path / 'val3.hdf5.parts').exists()


def test_image_lists_order_and_duplicate_ids(tmp_path, image_dir):
    tool = _tool()
    found = tool.images_of(argparse.Namespace(imdb=None, list=None, images=str(image_dir)))
    assert [i for i, _ in found] == ['im0', 'im2', 'im4', 'im1', 'im3', 'im5']  # sorted relative paths
    listing = tmp_path / 'files.txt'
    listing.write_text(f'{image_dir / "sub" / "im3.png"}\n\n{image_dir / "im0.png"}\n')
    assert tool.images_of(argparse.Namespace(imdb=None, list=str(listing), images=None)) == [
        ('im3', str(image_dir / 'sub' / 'im3.png')), ('im0', str(image_dir / 'im0.png'))]
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for d in ('a', 'b'):
        (tmp_path / d / 'x.jpg').write_bytes((image_dir / 'im0.png').read_bytes())
    with pytest.raises(UsageError, match="the same image id 'x'"):
        tool.images_of(argparse.Namespace(imdb=None, list=None, images=str(tmp_path)))
