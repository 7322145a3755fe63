"""Fine-tuning from a detector file: every weight copied, class predictors remapped by class name, and a head
start over training from scratch (the README's table comes from experiments/scripts/finetune_shapes.sh)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from faster_rcnn.engine.finetune import class_row_map, load_finetune_weights
from faster_rcnn.errors import CheckpointError
from faster_rcnn.model_file import DetectorFile, detector_payload
from faster_rcnn.nets.factory import build_network
from settings_helpers import settings_for

REPO = Path(__file__).resolve().parents[1]
SHAPES_CFG = str(REPO / 'experiments' / 'cfgs' / 'shapes.yml')


def test_class_row_map_matches_by_name():
    old = ['__background__', 'circle', 'square']
    assert class_row_map(old, ['__background__', 'circle', 'square', 'triangle']) == {0: 0, 1: 1, 2: 2}
    assert class_row_map(old, ['__background__', 'square', 'star']) == {0: 0, 1: 2}
    assert class_row_map(None, ['__background__', 'a']) == {0: 0}


def _tiny(num_classes: int, seed: int, **keys):
    torch.manual_seed(seed)
    return build_network('tiny', num_classes, settings_for('tiny', **keys))


def test_rows_of_known_classes_are_copied_and_the_rest_stays_fresh():
    old_classes = ['__background__', 'circle', 'square']
    new_classes = ['__background__', 'square', 'triangle', 'circle']
    source = _tiny(3, 0)
    detector = DetectorFile('two.pth', detector_payload(net='tiny', classes=old_classes, record={},
                                                         state_dict=source.state_dict()), 'tiny', old_classes)
    target = _tiny(4, 1)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_finetune_weights(target, detector, new_classes)
    assert "rows kept for 3 classes ['__background__', 'square', 'circle']" in report and "['triangle']" in report
    got, src = target.state_dict(), source.state_dict()
    for k in src:
        if not k.startswith(('cls_score', 'bbox_pred')):
            assert torch.equal(got[k], src[k]), k
    # new index -> old index: background 0 -> 0, square 1 -> 2, circle 3 -> 1; triangle (2) keeps its init.
    for new, old in ((0, 0), (1, 2), (3, 1)):
        assert torch.equal(got['cls_score.weight'][new], src['cls_score.weight'][old])
        assert torch.equal(got['bbox_pred.weight'][4 * new:4 * new + 4], src['bbox_pred.weight'][4 * old:4 * old + 4])
        assert torch.equal(got['bbox_pred.bias'][4 * new:4 * new + 4], src['bbox_pred.bias'][4 * old:4 * old + 4])
    assert torch.equal(got['cls_score.weight'][2], fresh['cls_score.weight'][2])
    assert torch.equal(got['bbox_pred.weight'][8:12], fresh['bbox_pred.weight'][8:12])


def test_another_width_is_an_error_naming_the_file():
    source = _tiny(3, 0)
    detector = DetectorFile('two.pth', detector_payload(net='tiny', classes=['__background__', 'a', 'b'], record={},
                                                         state_dict=source.state_dict()), 'tiny', None)
    with pytest.raises(CheckpointError, match=r'two\.pth does not fit this tiny network.*backbone\.fc\.0\.weight'):
        load_finetune_weights(_tiny(4, 1, TINY__FC_DIM=128), detector, ['__background__', 'a', 'b', 'c'])


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {'PYTHONPATH': str(REPO / 'lib'), 'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '2',
           'FRCNN_ROOT_DIR': str(root), 'FRCNN_DATA_DIR': str(root / 'data')}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


FAST = ['TRAIN.DISPLAY', '50', 'TRAIN.SNAPSHOT_ITERS', '1000', 'TRAIN.SCALES', '[160]', 'TEST.SCALES', '[160]',
        'TRAIN.WARMUP_ITERS', '5']


@pytest.mark.slow
def test_fine_tuning_a_two_class_detector_beats_training_from_scratch(tmp_path):
    """A detector of circles and squares (triangles unlabelled), fine-tuned to all three classes for 50
    iterations, against the same 50 iterations from scratch (measured: 0.47 against 0.10 mean AP)."""
    train = ['tools/trainval_net.py', '--imdbval', '', '--cfg', SHAPES_CFG, '--workers', '0']
    _run([*train, '--net', 'tiny', '--imdb', 'shapes_circle_square_trainval', '--iters', '200', '--tag', 'two',
          '--set', *FAST], tmp_path)
    two = tmp_path / 'output' / 'tiny' / 'shapes_circle_square_trainval' / 'two' / 'tiny_faster_rcnn_iter_200.pth'
    ft = _run([*train, '--imdb', 'shapes_trainval', '--iters', '50', '--tag', 'ft', '--finetune', str(two),
               '--set', *FAST], tmp_path).stdout
    assert "rows kept for 3 classes ['__background__', 'circle', 'square'], fresh for 1 ['triangle']" in ft
    assert 'Resuming' not in ft
    _run([*train, '--net', 'tiny', '--imdb', 'shapes_trainval', '--iters', '50', '--tag', 'scratch', '--set', *FAST],
         tmp_path)
    aps = {}
    for tag in ('ft', 'scratch'):
        model = tmp_path / 'output' / 'tiny' / 'shapes_trainval' / tag / 'tiny_faster_rcnn_iter_50.pth'
        out = _run(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--tag', tag], tmp_path).stdout
        aps[tag] = float(re.search(r'Mean AP = (\d+\.\d+)', out).group(1))
    assert aps['ft'] >= 0.3 and aps['ft'] > aps['scratch'] + 0.2, aps


@pytest.mark.slow
def test_finetune_and_weight_together_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/trainval_net.py', '--finetune', 'a.pth', '--weight', 'b.pth'],
                          cwd=REPO, capture_output=True, text=True, env={'PYTHONPATH': str(REPO / 'lib'),
                                                                         'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 2 and 'error: --finetune and --weight both initialise the network' in proc.stderr
