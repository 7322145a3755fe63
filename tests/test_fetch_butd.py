"""data/scripts/fetch_butd_model.py as a user runs it, against a local mirror (a folder, and the same folder served
on 127.0.0.1) holding small caffemodels in BUTD's layout and vocabularies in the published form (synonyms after
commas, no final newline). The conversion of a full-size model is in test_convert_caffe.py (slow)."""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from caffemodel_writer import butd_layers, write_caffemodel

# Tools run as a user runs them (subprocesses): the full tier.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FETCH = 'data/scripts/fetch_butd_model.py'
NAMES = {'10-100': 'resnet101_faster_rcnn_final.caffemodel', '36': 'resnet101_faster_rcnn_final_iter_320000.caffemodel'}


@pytest.fixture(scope='module')
def mirror(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('butd_mirror')
    for seed, name in enumerate(NAMES.values()):
        with open(root / name, 'wb') as f:
            write_caffemodel(f, butd_layers(np.random.default_rng(seed), units=(1, 1, 1, 1), width=8, num_classes=4,
                                            num_attributes=3))
    (root / 'objects_vocab.txt').write_text('yolk\nstop sign,stopsign\nbuoy')
    (root / 'attributes_vocab.txt').write_text('red\ngray,grey')
    return root


def _fetch(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(REPO / 'lib'), 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, FETCH, '--out-dir', str(out), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    return lines[0]


def test_both_models_and_the_vocabularies_from_a_mirror_folder(mirror, tmp_path):
    proc = _fetch(tmp_path, '--mirror', str(mirror))
    assert proc.returncode == 0, proc.stderr
    for name in [*NAMES.values(), 'objects_vocab.txt', 'attributes_vocab.txt']:
        assert (tmp_path / name).read_bytes() == (mirror / name).read_bytes()
    assert 'vocabularies: 3 objects, 2 attributes' in proc.stdout
    assert proc.stdout.count('layers with weights, sha256 ') == 2
    again = _fetch(tmp_path, '--mirror', str(mirror), '--model', '36')
    assert again.returncode == 0 and f'{tmp_path / NAMES["36"]} already downloaded' in again.stdout


def test_over_http_and_a_page_that_is_not_a_caffemodel_is_refused(mirror, tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    for name in ('objects_vocab.txt', 'attributes_vocab.txt', NAMES['36']):
        (served / name).write_bytes((mirror / name).read_bytes())
    (served / NAMES['10-100']).write_text('<!DOCTYPE html><html>Sign in to Dropbox</html>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}'
        good = _fetch(tmp_path / 'a', '--mirror', url, '--model', '36')
        bad = _fetch(tmp_path / 'b', '--mirror', url, '--model', '10-100')
    finally:
        server.shutdown()
    assert good.returncode == 0, good.stderr
    assert (tmp_path / 'a' / NAMES['36']).read_bytes() == (mirror / NAMES['36']).read_bytes()
    line = _one_error_line(bad)
    assert bad.returncode == 7 and 'cannot be read as a Caffe NetParameter' in line and '.bad' in line
    assert not (tmp_path / 'b' / NAMES['10-100']).exists() and (tmp_path / 'b' / (NAMES['10-100'] + '.bad')).is_file()


def test_unreachable_hosts_name_the_file_and_what_to_do(tmp_path):
    proc = _fetch(tmp_path, '--mirror', 'http://127.0.0.1:9', '--model', '36')
    line = _one_error_line(proc)
    assert proc.returncode == 7 and 'objects_vocab.txt: no host answered' in line and 'download it by hand' in line
