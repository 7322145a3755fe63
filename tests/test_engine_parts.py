"""Pieces of the engine: LR schedules, snapshots (atomic, pruned, safe), RNG states, test-time selection."""
import math
import os

import numpy as np
import pytest
import torch

from faster_rcnn.engine.lr_schedule import apply_lr, lr_factor
from faster_rcnn.engine.rng import get_rng_states, set_rng_states
from faster_rcnn.errors import CheckpointError
from faster_rcnn.model_file import list_snapshots, load_model_file, prune_snapshots, save_atomic, snapshot_path
from faster_rcnn.nets.postprocess import Detections, select_detections, split_by_class
from faster_rcnn.settings import DetectionSettings


def select(scores, boxes, *, score_thresh, nms_thresh, max_per_image):
    """The per-class layout of one image's selection (the layout the tests below check)."""
    dets = select_detections(scores, boxes, DetectionSettings(score_thresh=score_thresh, nms=nms_thresh,
                                                              max_per_image=max_per_image))
    assert isinstance(dets, Detections) and (dets.labels[1:] >= dets.labels[:-1]).all()  # by class
    return split_by_class(dets, scores.shape[1])


def test_step_schedule_matches_reference():
    kw = dict(policy='step', max_iters=70000, stepsize=[50000], gamma=0.1)
    assert lr_factor(0, **kw) == 1.0
    assert lr_factor(49999, **kw) == 1.0
    assert lr_factor(50000, **kw) == pytest.approx(0.1)
    assert lr_factor(80000, policy='step', max_iters=1, stepsize=[50000, 70000], gamma=0.1) == pytest.approx(0.01)


def test_cosine_and_warmup():
    kw = dict(policy='cosine', max_iters=100, stepsize=[], gamma=0.1)
    assert lr_factor(0, **kw) == 1.0
    assert lr_factor(50, **kw) == pytest.approx(0.5)
    assert lr_factor(100, **kw) == pytest.approx(0.0, abs=1e-12)
    w = lr_factor(5, **kw, warmup_iters=10, warmup_factor=0.0)
    assert w == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    with pytest.raises(ValueError, match='LR_POLICY'):
        lr_factor(0, policy='poly', max_iters=1, stepsize=[], gamma=0.1)


def test_apply_lr_uses_group_multipliers():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{'params': [p1], 'lr_mult': 1.0}, {'params': [p2], 'lr_mult': 2.0}], lr=1.0)
    assert apply_lr(opt, 0.01, 0.1) == pytest.approx(0.001)
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([0.001, 0.002])


def test_snapshots_atomic_listing_and_pruning(tmp_path):
    d = str(tmp_path)
    for it in (5, 10, 15, 20):
        save_atomic({'iter': it, 'w': torch.ones(2) * it}, snapshot_path(d, 'net', it))
    assert not [f for f in os.listdir(d) if f.endswith('.tmp')]
    assert [i for i, _ in list_snapshots(d, 'net')] == [5, 10, 15, 20]
    prune_snapshots(d, 'net', keep=2, protect=20)          # two kept besides the final one
    assert [i for i, _ in list_snapshots(d, 'net')] == [10, 15, 20]
    assert load_model_file(snapshot_path(d, 'net', 15))['w'][0] == 15


def test_truncated_or_malicious_snapshot_is_refused(tmp_path):
    path = tmp_path / 'x_iter_1.pth'
    save_atomic({'iter': 1, 'w': torch.ones(1000)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='x_iter_1.pth'):
        load_model_file(str(path))

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))
    evil = tmp_path / 'evil.pth'
    torch.save({'model': Evil()}, evil)
    with pytest.raises(CheckpointError, match='cannot be read safely'):
        load_model_file(str(evil))


def test_rng_states_roundtrip_through_a_snapshot(tmp_path):
    import random
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    states = get_rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    save_atomic({'rng': states}, str(tmp_path / 's.pth'))
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_states(load_model_file(str(tmp_path / 's.pth'))['rng'])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_select_detections_per_class_nms_and_cap():
    # 3 rois, 3 classes (bg, a, b). Class a: rois 0 and 1 overlap (IoU 81/121 > 0.3) -> roi 1 suppressed.
    boxes = torch.zeros(3, 12)
    boxes[:, 4:8] = _boxes([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    boxes[:, 8:12] = _boxes([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = _boxes([[0.1, 0.6, 0.3], [0.1, 0.5, 0.4], [0.2, 0.0, 0.8]])
    dets = select(scores, boxes, score_thresh=0.0, nms_thresh=0.3, max_per_image=100)
    assert dets[0].shape == (0, 5)
    np.testing.assert_allclose(dets[1], [[0, 0, 10, 10, 0.6]])     # roi 2 has score 0 for a: not > 0
    np.testing.assert_allclose(dets[2], [[50, 50, 60, 60, 0.8], [1, 1, 11, 11, 0.4]])
    # The cap keeps the 2 best over all classes: 0.8 and 0.6.
    capped = select(scores, boxes, score_thresh=0.0, nms_thresh=0.3, max_per_image=2)
    assert len(capped[1]) == 1 and len(capped[2]) == 1 and capped[2][0, 4] == pytest.approx(0.8)


def test_select_detections_cap_keeps_ties():
    boxes = torch.zeros(3, 8)
    boxes[:, 4:] = _boxes([[0, 0, 5, 5], [20, 20, 25, 25], [40, 40, 45, 45]])
    scores = _boxes([[0.5, 0.5], [0.5, 0.5], [0.8, 0.2]])
    dets = select(scores, boxes, score_thresh=0.0, nms_thresh=0.3, max_per_image=1)
    assert len(dets[1]) == 2                      # both 0.5 tie with the 1st-best score
