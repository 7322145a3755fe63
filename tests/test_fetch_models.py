"""data/scripts/fetch_faster_rcnn_models.py as a user runs it, against a local mirror in the hosts' layout
(synthetic archives of the published form: a .tgz holding <train imdb>/<net>_faster_rcnn_iter_<N>.ckpt.*), and
then test_faster_rcnn.sh and demo.py on the model it converted. Nothing leaves this machine: the HTTP case
serves the mirror on 127.0.0.1.
"""
from __future__ import annotations

import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtl_seeded import read_key_list, rtl_state_dict
from tensorbundle_writer import write_bundle
from tf_seeded import read_variable_list, tf_variables

# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / 'tests' / 'data'
FETCH = 'data/scripts/fetch_faster_rcnn_models.py'


def _tf_archive(path: Path, net: str, ds: str, train_imdb: str, iters: int) -> None:
    """A .tgz laid out as tf-faster-rcnn's published archives, holding seeded weights."""
    values = tf_variables(read_variable_list(DATA / f'tf_{net}_{ds}_variables.txt'), 2024)
    stage = path.parent / f'stage_{net}_{ds}' / train_imdb
    stage.mkdir(parents=True)
    prefix = stage / f'{net}_faster_rcnn_iter_{iters}.ckpt'
    write_bundle(str(prefix), values)
    (stage / f'{net}_faster_rcnn_iter_{iters}.ckpt.meta').write_bytes(b'graph, not needed')
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w:gz', compresslevel=1) as tar:
        tar.add(stage, arcname=train_imdb)


@pytest.fixture(scope='module')
def mirror(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('mirror')
    _tf_archive(root / 'res101' / 'voc_0712_80k-110k.tgz', 'res101', 'voc', 'voc_2007_trainval+voc_2012_trainval', 110000)
    _tf_archive(root / 'res50' / 'coco_900-1190k.tgz', 'res50', 'coco', 'coco_2014_train+coco_2014_valminusminival',
                1190000)
    return root


def _env(root: Path) -> dict:
    return {**os.environ, 'PYTHONPATH': str(REPO / 'lib'), 'FRCNN_ROOT_DIR': str(root),
            'FRCNN_DATA_DIR': str(root / 'data'), 'OMP_NUM_THREADS': '2'}


def _run(args: list[str], root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=_env(root), capture_output=True, text=True, timeout=timeout)


def _fetch(root: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, FETCH, *args], root)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    return lines[0]


def _fake_voc2007_test(root: Path) -> None:
    voc = root / 'data' / 'VOCdevkit2007' / 'VOC2007'
    for d in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (voc / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(2):
        iid = f'{i:06d}'
        ids.append(iid)
        cv2.imwrite(str(voc / 'JPEGImages' / f'{iid}.jpg'), (rng.random((120, 160, 3)) * 255).astype(np.uint8))
        (voc / 'Annotations' / f'{iid}.xml').write_text(
            f'<annotation><filename>{iid}.jpg</filename><size><width>160</width><height>120</height><depth>3</depth>'
            '</size><object><name>person</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>10</ymin>'
            '<xmax>60</xmax><ymax>90</ymax></bndbox></object><object><name>car</name><difficult>0</difficult>'
            '<bndbox><xmin>70</xmin><ymin>30</ymin><xmax>150</xmax><ymax>100</ymax></bndbox></object></annotation>')
    (voc / 'ImageSets' / 'Main' / 'test.txt').write_text('\n'.join(ids) + '\n')


def test_published_checksum_is_enforced(mirror, tmp_path):
    proc = _fetch(tmp_path, '--net', 'res101', '--dataset', 'pascal_voc_0712', '--mirror', str(mirror))
    assert proc.returncode == 7
    line = _one_error_line(proc)
    assert 'voc_0712_80k-110k.tgz: md5 ' in line and 'differs from the published cb32e9df553153d311cc5095b2f8c340' in line
    assert '--skip-checksum' in line
    assert not (tmp_path / 'output').exists()


@pytest.mark.slow
def test_fetch_convert_then_test_script_and_demo_as_tf_users_did(mirror, tmp_path):
    proc = _fetch(tmp_path, '--net', 'res101', '--dataset', 'pascal_voc_0712', '--mirror', str(mirror),
                  '--skip-checksum')
    assert proc.returncode == 0, proc.stderr
    model = tmp_path / 'output' / 'res101' / 'voc_2007_trainval+voc_2012_trainval' / 'default' / \
        'res101_faster_rcnn_iter_110000.pth'
    assert model.is_file()
    f = torch.load(model, map_location='cpu', weights_only=True)
    assert f['config']['model']['RESNET.LAYOUT'] == 'slim' and f['source']['format'] == 'tf-faster-rcnn'
    assert './experiments/scripts/test_faster_rcnn.sh 0 pascal_voc_0712 res101' in proc.stdout
    again = _fetch(tmp_path, '--net', 'res101', '--dataset', 'pascal_voc_0712', '--mirror', str(mirror),
                   '--skip-checksum')
    assert again.returncode == 0 and 'exists already' in again.stdout

    _fake_voc2007_test(tmp_path)
    test = _run(['bash', 'experiments/scripts/test_faster_rcnn.sh', '0', 'pascal_voc_0712', 'res101'], tmp_path)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'Mean AP = ' in test.stdout and "'--cfg'" not in test.stdout  # no --cfg: the file says it all
    images = tmp_path / 'data' / 'VOCdevkit2007' / 'VOC2007' / 'JPEGImages'
    demo = _run([sys.executable, 'tools/demo.py', '--net', 'res101', '--dataset', 'pascal_voc_0712', '--images',
                 str(images / '000000.jpg'), '--thresh', '0.0'], tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / 'output' / 'demo' / '000000_detections.jpg').is_file()
    assert 'res101, 20 classes' in demo.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_over_http_from_a_mirror_coco_names_and_anchors(mirror, tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}'
        proc = _fetch(tmp_path, '--net', 'res50', '--dataset', 'coco', '--mirror', url)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert 'no checksum is published for this archive; sha256' in proc.stdout
    model = tmp_path / 'output' / 'res50' / 'coco_2014_train+coco_2014_valminusminival' / 'default' / \
        'res50_faster_rcnn_iter_1190000.pth'
    f = torch.load(model, map_location='cpu', weights_only=True)
    assert len(f['classes']) == 81 and f['classes'][1] == 'person'
    assert f['config']['model']['ANCHOR_SCALES'] == [4.0, 8.0, 16.0, 32.0]
    assert 'ITERS=1190000 ./experiments/scripts/test_faster_rcnn.sh 0 coco res50' in proc.stdout


def test_unreachable_hosts_and_browser_only_models_print_the_manual_steps(tmp_path):
    closed = _fetch(tmp_path, '--net', 'vgg16', '--dataset', 'pascal_voc_0712', '--mirror', 'http://127.0.0.1:9')
    assert closed.returncode == 7 and 'download it by hand' in _one_error_line(closed)
    assert 'could not download http://127.0.0.1:9/vgg16/voc_0712_80k-110k.tgz' in closed.stdout
    assert 'drive.google.com' in closed.stdout and '--archive' in closed.stdout

    unknown = _fetch(tmp_path, '--net', 'vgg16', '--dataset', 'pascal_voc')
    assert unknown.returncode == 7 and 'is not published in its scripts' in _one_error_line(unknown)
    assert 'xinleic/tf-faster-rcnn/vgg16/' in unknown.stdout

    rtl = _fetch(tmp_path, '--source', 'rtl', '--net', 'res101', '--dataset', 'pascal_voc_0712')
    assert rtl.returncode == 7 and 'Google Drive only' in _one_error_line(rtl)
    assert 'res101_faster_rcnn_iter_110000.pth' in rtl.stdout and '0B7fNdx_jAqhtNE10TDZDbFRuU0E' in rtl.stdout
    assert str(tmp_path / 'data' / 'faster_rcnn_models' / 'res101') in rtl.stdout


def test_a_downloaded_rtl_model_is_converted_in_place(tmp_path):
    keys = read_key_list(DATA / 'rtl_res101_voc_keys.txt')
    pth = tmp_path / 'res101_faster_rcnn_iter_110000.pth'
    torch.save({k: torch.from_numpy(v) for k, v in rtl_state_dict(keys, 2024).items()}, pth)
    proc = _fetch(tmp_path, '--source', 'rtl', '--net', 'res101', '--dataset', 'pascal_voc_0712', '--archive', str(pth))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / 'output' / 'res101' / 'voc_2007_trainval+voc_2012_trainval' / 'default' / pth.name
    f = torch.load(out, map_location='cpu', weights_only=True)
    assert f['config']['model']['RESNET.LAYOUT'] == 'caffe' and f['config']['model']['POOLING_MODE'] == 'crop'


def test_unsafe_or_damaged_archives_are_refused(tmp_path):
    evil = tmp_path / 'evil.tgz'
    with tarfile.open(evil, 'w:gz') as tar:
        data = b'owned'
        info = tarfile.TarInfo('../../escaped.txt')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    proc = _fetch(tmp_path, '--net', 'res101', '--dataset', 'pascal_voc', '--archive', str(evil))
    assert proc.returncode == 5 and 'a path outside its folder (../../escaped.txt)' in _one_error_line(proc)
    assert not any(p.name == 'escaped.txt' for p in tmp_path.parent.rglob('escaped.txt'))

    broken = tmp_path / 'broken.tgz'
    with tarfile.open(broken, 'w:gz') as tar:
        payload = bytes(300_000)
        info = tarfile.TarInfo('x/model.ckpt.index')
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    broken.write_bytes(broken.read_bytes()[:200])
    proc = _fetch(tmp_path, '--net', 'res101', '--dataset', 'pascal_voc', '--archive', str(broken))
    assert proc.returncode == 5 and 'damaged or truncated' in _one_error_line(proc)
