"""tools/reval.py through its command line, on saved detections of a small generated shapes set."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes

# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = ShapesSpec(seed=2, num_trainval=4, num_test=5)


def run_reval(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'lib'))
    # DATA_DIR points at the test's own folder through --set, as a user would point at their data.
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'reval.py'), *args, '--set', 'DATA_DIR',
           str(tmp_path / 'data')]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def saved(tmp_path):
    # A small generated set, named as a user names their own VOC folder.
    root = ensure_shapes(str(tmp_path / 'data' / 'myshapes'), SPEC)
    from faster_rcnn.datasets.factory import get_imdb
    db = get_imdb(f'voc_dir:{root}:test', str(tmp_path / 'data'))
    # Perfect detections with decreasing scores, each followed in score by a copy shifted by one pixel:
    # without NMS the copies are duplicates (FP) between the true positives; NMS at 0.3 removes them.
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(db.num_images)] for _ in range(db.num_classes)]
    score = 0.9
    for i, r in enumerate(db.roidb):
        for c in range(1, db.num_classes):
            b = r['boxes'][r['gt_classes'] == c]
            good = np.concatenate([b, np.zeros((len(b), 1), np.float32)], 1)
            good[:, 4] = score - 0.01 * np.arange(len(b))
            score -= 0.01 * len(b)
            dup = good.copy()
            dup[:, 0] += 1
            dup[:, 4] -= 0.001
            all_boxes[c][i] = np.concatenate([dup, good])
    out = tmp_path / 'out'
    out.mkdir()
    with open(out / 'detections.pkl', 'wb') as f:
        pickle.dump(all_boxes, f)
    return out, f'voc_dir:{root}:test'


def test_reval_with_and_without_nms(saved, tmp_path):
    out, name = saved
    plain = run_reval(tmp_path, str(out), '--imdb', name)
    assert plain.returncode == 0, plain.stderr
    assert float(plain.stdout.split('Mean AP = ')[1].split()[0]) < 0.9
    nms = run_reval(tmp_path, str(out), '--imdb', name, '--nms', '--comp', '--matlab')
    assert nms.returncode == 0, nms.stderr
    assert 'Applying NMS (0.3)' in nms.stdout and 'MATLAB evaluation is not supported' in nms.stdout
    assert float(nms.stdout.split('Mean AP = ')[1].split()[0]) == pytest.approx(1.0)
    # --comp keeps the result files: after NMS only the exact boxes remain.
    res = [os.path.join(d, f) for d, _, fs in os.walk(out / 'results') for f in fs]
    circle = [p for p in res if p.endswith('comp4_det_test_circle.txt')][0]
    lines = open(circle).read().splitlines()
    assert lines
    from faster_rcnn.datasets.voc_xml import parse_voc_objects
    for line in lines:
        image, _, *coords = line.split()
        xml = tmp_path / 'data' / 'myshapes' / 'Annotations' / f'{image}.xml'
        gts = [list(o.bbox_1based) for o in parse_voc_objects(str(xml)) if o.name == 'circle']
        assert [float(v) for v in coords] in gts


def test_reval_errors(saved, tmp_path):
    out, name = saved
    missing = run_reval(tmp_path, str(tmp_path), '--imdb', name)
    assert missing.returncode == 2 and 'detections.pkl does not exist' in missing.stderr
    wrong = run_reval(tmp_path, str(out), '--imdb', 'voc_dir:' + str(tmp_path / 'data' / 'myshapes') + ':trainval')
    assert wrong.returncode == 4 and 'pass the --imdb it was tested on' in wrong.stderr
