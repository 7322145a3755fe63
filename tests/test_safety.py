"""Nothing a tool reads from disk can run code. A payload (an object whose unpickling would run a shell
command that creates a marker file) is planted in every file type the tools read, and each tool is run on
it as a user would: each refuses the file with one line naming it, and the marker never appears.

Files: snapshots and detector files (torch.load with weights_only), ImageNet weights, pytorch-faster-rcnn
models, detections.pkl (an unpickler that only builds arrays and lists), yml (yaml.safe_load), annotation
caches (JSON, checked before use).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tool_runs import REPO, _env


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _pickled(path: Path, obj) -> Path:
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return path


def _torch_saved(path: Path, obj) -> Path:
    torch.save(obj, path)  # the new zip format, with a pickle inside
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**_env(), 'FRCNN_ROOT_DIR': str(cwd), 'FRCNN_DATA_DIR': str(cwd / 'data')}
    return subprocess.run([sys.executable, str(REPO / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize('kind', ['snapshot-zip', 'snapshot-legacy-pickle', 'detector-in-a-snapshot-dict',
                                  'imagenet-weights', 'rtl-model', 'detections', 'yml'])
def test_a_payload_in_any_file_the_tools_read_never_runs(kind, tmp_path):
    marker = tmp_path / 'PWNED'
    payload = Payload(marker)
    if kind == 'snapshot-zip':
        path = _torch_saved(tmp_path / 'model.pth', {'model': {'w': payload}, 'net': 'tiny'})
        args, culprit, code = ['tools/test_net.py', '--model', str(path), '--imdb', 'shapes_test'], path, 5
    elif kind == 'snapshot-legacy-pickle':
        path = _pickled(tmp_path / 'model.pth', {'model': payload})
        args, culprit, code = ['tools/demo.py', '--model', str(path)], path, 5
    elif kind == 'detector-in-a-snapshot-dict':
        path = _torch_saved(tmp_path / 'det.pth', {'format': 2, 'kind': 'detector', 'net': 'tiny', 'config': payload})
        args, culprit, code = ['tools/describe_model.py', str(path)], path, 5
    elif kind == 'imagenet-weights':
        path = _torch_saved(tmp_path / 'mobile.pth', {'features.0.0.weight': payload})
        args = ['tools/trainval_net.py', '--net', 'mobile', '--imdb', 'shapes_trainval', '--imdbval', '', '--iters', '1',
                '--weight', str(path), '--device', 'cpu', '--workers', '0']
        culprit, code = path, 5
    elif kind == 'rtl-model':
        path = _torch_saved(tmp_path / 'rtl.pth', {'rpn_net.weight': payload})
        args = ['tools/convert_from_pytorch_faster_rcnn.py', '--net', 'vgg16', '--pth', str(path), '--imdb',
                'voc_2007_test', '--out', str(tmp_path / 'out.pth')]
        culprit, code = path, 5
    elif kind == 'detections':
        folder = tmp_path / 'results'
        folder.mkdir()
        path = _pickled(folder / 'detections.pkl', [[payload]])
        args, culprit, code = ['tools/reval.py', str(folder), '--imdb', 'shapes_test'], path, 4
    else:
        path = tmp_path / 'evil.yml'
        path.write_text(f'TRAIN: !!python/object/apply:os.system ["touch {marker}"]\n')
        args = ['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_trainval', '--cfg', str(path)]
        culprit, code = path, 2
    proc = _run(args, tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: ') and str(culprit) in lines[0], proc.stderr[-2000:]
    assert not marker.exists(), 'the payload ran'


def test_old_detections_files_still_load_through_the_safe_reader(tmp_path):
    """tf-faster-rcnn's detections.pkl (Python 2 pickles of numpy arrays, protocol 2) keep loading."""
    import numpy as np
    from faster_rcnn.utils.detections_file import read_detections, write_detections
    boxes = [[np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32)],
             [np.array([[1, 2, 30, 40, 0.9]], np.float32), np.zeros((0, 5), np.float32)]]
    for protocol in (2, 4, 5):
        path = tmp_path / f'p{protocol}.pkl'
        with open(path, 'wb') as f:
            pickle.dump(boxes, f, protocol=protocol)
        got = read_detections(str(path))
        assert np.array_equal(got[1][0], boxes[1][0]) and got[0][0].shape == (0, 5)
    write_detections(boxes, str(tmp_path / 'ours.pkl'))
    assert np.array_equal(read_detections(str(tmp_path / 'ours.pkl'))[1][0], boxes[1][0])


def test_a_damaged_or_edited_cache_is_rebuilt_not_trusted(tmp_path, capsys):
    from faster_rcnn.datasets.cache import cached_entries
    import numpy as np
    cache = tmp_path / 'c.json'
    good = [{'image': 'a.jpg', 'width': 10, 'height': 8, 'boxes': np.array([[0, 0, 4, 4]], np.float32),
             'gt_classes': np.array([1], np.int32), 'gt_ishard': np.array([False])}]
    built = []

    def build():
        built.append(1)
        return good

    cached_entries(str(cache), 'k', build)
    assert cached_entries(str(cache), 'k', build)[0]['image'] == 'a.jpg' and len(built) == 1
    data = json.loads(cache.read_text())
    data['entries'][0]['boxes'] = [[0, 0, 'x', 4]]
    cache.write_text(json.dumps(data))
    assert cached_entries(str(cache), 'k', build)[0]['boxes'].tolist() == [[0, 0, 4, 4]] and len(built) == 2
    assert 'damaged cache' in capsys.readouterr().out
    cache.write_text('{"key": "k", "entries": [{"image": 3}]}')
    cached_entries(str(cache), 'k', build)
    assert len(built) == 3
