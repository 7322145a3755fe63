import numpy as np
import pytest
import torch

from faster_rcnn.boxes import bbox_overlaps, bbox_transform
from faster_rcnn.layers.proposal_target import proposal_target_layer

NUM_CLASSES = 5
GT = [[10, 10, 109, 109, 2], [200, 200, 299, 259, 4]]


def make_rois(device, n_fg, n_bg, n_mid=0, seed=0):
    """Rois with known IoU classes: fg (IoU >= 0.5), bg (IoU in [0.1, 0.5)), mid (IoU < 0.1)."""
    rng = np.random.RandomState(seed)
    rois = []
    for _ in range(n_fg):  # small shifts of gt 0: IoU well above 0.5
        dx, dy = rng.randint(-8, 9, 2)
        rois.append([10 + dx, 10 + dy, 109 + dx, 109 + dy])
    for _ in range(n_bg):  # shifted by 45-55 px: IoU between 0.1 and 0.5
        dx = rng.randint(45, 56)
        rois.append([10 + dx, 10, 109 + dx, 109])
    for _ in range(n_mid):  # far away: IoU 0
        rois.append([400, 400, 450, 450])
    rois = np.asarray(rois, dtype=np.float32).reshape(-1, 4)
    rois[:, 0] += np.arange(len(rois)) * 1e-3  # distinct boxes, so picks can be identified
    rois = np.hstack((np.zeros((len(rois), 1), np.float32), rois))
    scores = rng.rand(len(rois)).astype(np.float32)
    return torch.from_numpy(rois).to(device), torch.from_numpy(scores).to(device)


def run(device, rois, scores, gt=GT, seed=0, **kw):
    gen = torch.Generator(device=device).manual_seed(seed)
    gt = torch.as_tensor(gt, dtype=torch.float32, device=device).reshape(-1, 5)
    return proposal_target_layer(rois, scores, gt, NUM_CLASSES, generator=gen, **kw)


def check_targets(rois, labels, targets, inside, outside, gt):
    gt = torch.as_tensor(gt, dtype=torch.float32, device=rois.device)
    iou = bbox_overlaps(rois[:, 1:].double(), gt[:, :4].double())
    assign = iou.argmax(1)
    stds = torch.tensor([0.1, 0.1, 0.2, 0.2], device=rois.device)
    for i in range(rois.shape[0]):
        c = int(labels[i])
        if c > 0:
            expect = bbox_transform(rois[i : i + 1, 1:], gt[assign[i] : assign[i] + 1, :4])[0] / stds
            assert torch.allclose(targets[i, 4 * c : 4 * c + 4], expect, atol=1e-5)
            assert int((inside[i] != 0).sum()) == 4 and bool((inside[i, 4 * c : 4 * c + 4] == 1).all())
        else:
            assert bool((targets[i] == 0).all()) and bool((inside[i] == 0).all())
    assert torch.equal(outside, (inside > 0).float())


def test_fg_and_bg(device):
    rois, scores = make_rois(device, 50, 300, 20)
    out_rois, out_scores, labels, targets, inside, outside = run(device, rois, scores)
    assert out_rois.shape == (128, 5) and out_scores.shape == (128,) and labels.dtype == torch.int64
    assert targets.shape == inside.shape == outside.shape == (128, 4 * NUM_CLASSES)
    # fg quota round(0.25 * 128) = 32 first, without replacement, all of class 2.
    assert labels[:32].tolist() == [2] * 32 and labels[32:].tolist() == [0] * 96
    fg_rows = out_rois[:32, 1:].cpu().numpy()
    iou = bbox_overlaps(out_rois[:, 1:], torch.tensor(GT, device=device)[:, :4].float()).max(1).values
    assert bool((iou[:32] >= 0.5).all()) and bool(((iou[32:] < 0.5) & (iou[32:] >= 0.1)).all())
    # Without replacement: 32 distinct picks out of the 50 fg rois (compare picked indices).
    picked = (out_rois[:, None, 1:] == rois[None, :, 1:]).all(-1).float().argmax(1)
    assert len(set(picked[:32].tolist())) == 32 and len(set(picked[32:].tolist())) == 96
    assert torch.equal(out_scores, scores[picked])
    assert fg_rows.shape == (32, 4)
    check_targets(out_rois, labels, targets, inside, outside, GT)


def test_few_fg_and_few_bg_sample_bg_with_replacement(device):
    rois, scores = make_rois(device, 5, 7)
    out_rois, _, labels, targets, inside, outside = run(device, rois, scores)
    assert out_rois.shape == (128, 5)
    assert int((labels > 0).sum()) == 5
    picked = (out_rois[:, None, 1:] == rois[None, :, 1:]).all(-1).float().argmax(1)
    assert sorted(picked[:5].tolist()) == [0, 1, 2, 3, 4]
    assert set(picked[5:].tolist()) <= set(range(5, 12))
    check_targets(out_rois, labels, targets, inside, outside, GT)


def test_only_fg(device):
    rois, scores = make_rois(device, 40, 0)
    _, _, labels, targets, inside, outside = run(device, rois, scores)
    assert labels.tolist() == [2] * 128  # all fg, with replacement (only 40 fg rois)
    rois, scores = make_rois(device, 200, 0)
    out_rois, _, labels, *_ = run(device, rois, scores)
    picked = (out_rois[:, None, 1:] == rois[None, :, 1:]).all(-1).float().argmax(1)
    assert labels.tolist() == [2] * 128 and len(set(picked.tolist())) == 128  # without replacement


def test_only_bg_and_neither(device):
    rois, scores = make_rois(device, 0, 30)
    _, _, labels, targets, inside, _ = run(device, rois, scores)
    assert labels.tolist() == [0] * 128 and bool((targets == 0).all()) and bool((inside == 0).all())
    # Neither fg nor bg (all IoU < bg_thresh_lo): random rois as background, no debugger.
    rois, scores = make_rois(device, 0, 0, n_mid=3)
    out_rois, _, labels, *_ = run(device, rois, scores)
    assert out_rois.shape == (128, 5) and labels.tolist() == [0] * 128
    # With bg_thresh_lo 0 (the ymls) the same rois are ordinary background.
    out_rois, _, labels, *_ = run(device, rois, scores, bg_thresh_lo=0.0)
    assert labels.tolist() == [0] * 128


def test_empty_gt_and_use_gt(device):
    rois, scores = make_rois(device, 10, 10, 5)
    out_rois, _, labels, targets, _, _ = run(device, rois, scores, gt=np.zeros((0, 5)), bg_thresh_lo=0.0)
    assert out_rois.shape == (128, 5) and labels.tolist() == [0] * 128 and bool((targets == 0).all())
    # use_gt appends the gt boxes (IoU 1) to the candidates.
    rois, scores = make_rois(device, 0, 20)
    out_rois, out_scores, labels, targets, inside, outside = run(device, rois, scores, use_gt=True, batch_size=64)
    assert out_rois.shape == (64, 5)
    assert set(labels[labels > 0].tolist()) == {2, 4}
    check_targets(out_rois, labels, targets, inside, outside, GT)
    with pytest.raises(ValueError, match="no rois"):
        run(device, rois[:0], scores[:0])


def test_seeded(device):
    rois, scores = make_rois(device, 50, 300, 20)
    a = run(device, rois, scores, seed=5)[0]
    b = run(device, rois, scores, seed=5)[0]
    c = run(device, rois, scores, seed=6)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_tied_gt_boxes_give_the_first_gt_class(device):
    # Two gt boxes with the same coordinates: every roi's IoU ties; as argmax, the first gt wins.
    rois, scores = make_rois(device, 20, 30)
    gt = [[10, 10, 109, 109, 3], [10, 10, 109, 109, 1]]
    out_rois, _, labels, targets, inside, outside = run(device, rois, scores, gt=gt)
    assert int((labels > 0).sum()) == 20 and set(labels[labels > 0].tolist()) == {3}
    check_targets(out_rois, labels, targets, inside, outside, gt)


def test_fg_sampling_without_replacement_is_uniform(device):
    # Ten fg rois, a quota of round(0.25 * 16) = 4: each is picked with probability 0.4, never twice.
    rois, scores = make_rois(device, 10, 40)
    gen = torch.Generator(device=device).manual_seed(0)
    gt = torch.as_tensor(GT, dtype=torch.float32, device=device)
    counts = torch.zeros(10, device=device)
    trials = 1000
    for _ in range(trials):
        out_rois, _, labels, *_ = proposal_target_layer(rois, scores, gt, NUM_CLASSES, batch_size=16, generator=gen)
        picked = (out_rois[:4, None, 1:] == rois[None, :, 1:]).all(-1).float().argmax(1)
        assert labels[:4].tolist() == [2] * 4 and len(set(picked.tolist())) == 4
        counts += torch.bincount(picked, minlength=rois.shape[0])[:10]
    # Binomial(1000, 0.4): mean 400, sd 15.5; 80 is over 5 sd.
    assert bool(((counts - 400).abs() < 80).all()), counts
