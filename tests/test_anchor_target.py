import numpy as np
import pytest
import torch

from faster_rcnn.boxes import bbox_overlaps, bbox_transform
from faster_rcnn.layers.anchor_target import anchor_target_layer
from faster_rcnn.layers.anchors import anchors_for

IM_INFO = (600.0, 800.0, 1.6)
GT = [[10, 20, 200, 300, 1], [300, 100, 500, 400, 2], [50, 50, 120, 110, 3], [600, 300, 790, 590, 4], [400, 400, 430, 440, 6]]


def run(device, gt, seed=0, anchors=None, im_info=IM_INFO, **kw):
    anchors = anchors_for(38, 50, device) if anchors is None else anchors
    gen = torch.Generator(device=device).manual_seed(seed)
    gt = torch.as_tensor(gt, dtype=torch.float32, device=device).reshape(-1, 5)
    return anchors, gt, anchor_target_layer(anchors, gt, im_info, generator=gen, **kw)


def inside_mask(anchors):
    return (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < 800) & (anchors[:, 3] < 600)


def test_voc_sized_sampling_and_weights(device):
    anchors, gt, (labels, targets, in_w, out_w) = run(device, GT)
    n = anchors.shape[0]
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert targets.shape == in_w.shape == out_w.shape == (n, 4)
    assert labels.device.type == device.type
    num_fg, num_bg = int((labels == 1).sum()), int((labels == 0).sum())
    assert 0 < num_fg <= 128 and num_fg + num_bg == 256
    inside = inside_mask(anchors)
    assert bool((labels[~inside] == -1).all())
    assert bool((targets[~inside] == 0).all()) and bool((out_w[~inside] == 0).all())
    iou = bbox_overlaps(anchors.double(), gt[:, :4].double())
    max_iou, argmax = iou.max(1)
    assert bool((max_iou[labels == 0] < 0.3).all())
    # Inside weights 1 on positives, outside weights 1 / N_sampled on every sampled anchor.
    assert torch.equal(in_w, (labels == 1)[:, None].float().expand(n, 4))
    expected_out = (labels >= 0).float() / 256
    assert torch.allclose(out_w, expected_out[:, None].expand(n, 4))
    # Targets are encode(anchor, its best gt) on every inside anchor, not normalised.
    expect = bbox_transform(anchors[inside], gt[argmax[inside], :4])
    assert torch.allclose(targets[inside], expect, atol=1e-6)


def test_each_gt_gets_its_best_anchors_including_ties(device):
    anchors, gt, (labels, *_rest) = run(device, GT, rpn_batchsize=100_000, rpn_fg_fraction=1.0)
    inside = inside_mask(anchors)
    iou = bbox_overlaps(anchors.double(), gt[:, :4].double()).masked_fill(~inside[:, None], -1)
    best = iou.max(0).values
    is_best = (iou == best[None, :]).any(1)
    expected_pos = inside & (is_best | (iou.max(1).values >= 0.7))
    # Without subsampling pressure the positives are exactly the rule's set.
    assert torch.equal(labels == 1, expected_pos)
    assert int((iou == best[None, :]).sum()) >= gt.shape[0]


def test_hand_made_tie_and_thresholds(device):
    anchors = torch.tensor(
        [[0, 0, 9, 9], [10, 0, 19, 9], [40, 40, 49, 49], [12, 0, 21, 9], [200, 200, 209, 209]], dtype=torch.float32, device=device
    )
    gt = [[5, 0, 14, 9, 1]]
    _, _, (labels, targets, in_w, out_w) = run(device, gt, anchors=anchors, im_info=(100, 100, 1.0))
    # IoUs: 50/150 = 1/3 for the first two (tied best, so both positive although < 0.7), 0 for the
    # third, 30/170 for the fourth (both negative); the last anchor lies outside the image.
    assert labels.tolist() == [1, 1, 0, 0, -1]
    np.testing.assert_allclose(out_w[:, 0].cpu().numpy(), [0.25, 0.25, 0.25, 0.25, 0])
    np.testing.assert_allclose(targets[0].cpu().numpy(), [0.5, 0, 0, 0], atol=1e-7)


def test_gt_without_overlap_does_not_flood_positives(device):
    # The second gt lies where no inside anchor reaches: its best IoU is 0. The reference would mark
    # every zero-IoU anchor positive; here it adds none.
    anchors = torch.tensor([[0, 0, 9, 9], [20, 0, 29, 9], [40, 0, 49, 9]], dtype=torch.float32, device=device)
    gt = [[0, 0, 9, 9, 1], [80, 80, 90, 90, 2]]
    _, _, (labels, *_rest) = run(device, gt, anchors=anchors, im_info=(100, 100, 1.0))
    assert labels.tolist() == [1, 0, 0]


def test_empty_gt_samples_only_background(device):
    anchors, _, (labels, targets, in_w, out_w) = run(device, np.zeros((0, 5)))
    assert int((labels == 1).sum()) == 0
    assert int((labels == 0).sum()) == 256
    assert bool((targets == 0).all()) and bool((in_w == 0).all())
    assert torch.allclose(out_w.sum(), torch.tensor(4.0, device=device))


def test_subsampling_is_seeded_and_varies(device):
    _, _, (a, *_r1) = run(device, GT, seed=1)
    _, _, (b, *_r2) = run(device, GT, seed=1)
    _, _, (c, *_r3) = run(device, GT, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_fg_quota_caps_positives(device):
    # A gt covering most of the image makes hundreds of anchors positive: at most 128 are kept.
    anchors, gt, (labels, *_rest) = run(device, [[0, 0, 799, 599, 1], [100, 100, 700, 500, 2]] + GT, rpn_fg_fraction=0.1)
    assert int((labels == 1).sum()) == 25
    assert int((labels == 0).sum()) == 231


def test_positive_weight_and_clobber(device):
    _, _, (labels, _, _, out_w) = run(device, GT, rpn_positive_weight=0.25)
    n_pos, n_neg = (labels == 1).sum(), (labels == 0).sum()
    assert torch.allclose(out_w[labels == 1, 0], 0.25 / n_pos.float())
    assert torch.allclose(out_w[labels == 0, 0], 0.75 / n_neg.float())
    with pytest.raises(ValueError, match="RPN_POSITIVE_WEIGHT"):
        run(device, GT, rpn_positive_weight=1.5)
    # A best-anchor with IoU < 0.3 is positive unless negatives clobber positives.
    anchors = torch.tensor([[0, 0, 9, 9], [40, 0, 49, 9]], dtype=torch.float32, device=device)
    gt = [[0, 0, 29, 29, 1]]
    _, _, (plain, *_r) = run(device, gt, anchors=anchors, im_info=(100, 100, 1.0))
    _, _, (clobber, *_r) = run(device, gt, anchors=anchors, im_info=(100, 100, 1.0), rpn_clobber_positives=True)
    assert plain.tolist() == [1, 0]
    assert clobber.tolist() == [0, 0]


def test_im_info_tensor_equals_tuple(device):
    _, _, (a, ta, _, _) = run(device, GT, seed=3)
    _, _, (b, tb, _, _) = run(device, GT, seed=3, im_info=torch.tensor(IM_INFO, device=device))
    assert torch.equal(a, b) and torch.equal(ta, tb)


def reference_rule(anchors, gt, height, width, negative_overlap=0.3, positive_overlap=0.7):
    """Straightforward float64 numpy version of the assignment rule (docs/design.md §2.3, with the zero-IoU fix):
    labels (-1 / 0 / 1) before subsampling and each anchor's best gt, written as the reference does."""
    anchors = anchors.cpu().numpy().astype(np.float64)
    boxes = gt[:, :4].cpu().numpy().astype(np.float64)
    inside = np.where(
        (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < width) & (anchors[:, 3] < height)
    )[0]
    a = anchors[inside]
    overlaps = np.zeros((len(a), len(boxes)))
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        iw = np.minimum(a[:, 2], x2) - np.maximum(a[:, 0], x1) + 1
        ih = np.minimum(a[:, 3], y2) - np.maximum(a[:, 1], y1) + 1
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        union = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1) + (x2 - x1 + 1) * (y2 - y1 + 1) - inter
        overlaps[:, k] = np.where(inter > 0, inter / np.where(inter > 0, union, 1.0), 0.0)
    argmax = overlaps.argmax(axis=1)
    max_overlaps = overlaps[np.arange(len(a)), argmax]
    gt_max = overlaps.max(axis=0)
    labels_in = np.full(len(a), -1)
    labels_in[max_overlaps < negative_overlap] = 0
    rows, cols = np.where(overlaps == gt_max[None, :])
    labels_in[rows[gt_max[cols] > 0]] = 1
    labels_in[max_overlaps >= positive_overlap] = 1
    labels = np.full(len(anchors), -1)
    labels[inside] = labels_in
    best = np.zeros(len(anchors), dtype=np.int64)
    best[inside] = argmax
    return labels, best, inside


def random_gt(rng, count, height, width, scale):
    """Boxes as the data pipeline makes them: integer pixel boxes times the image scale (fractional)."""
    x1 = rng.randint(0, int(width / scale) - 20, count)
    y1 = rng.randint(0, int(height / scale) - 20, count)
    x2 = np.minimum(x1 + rng.randint(8, 300, count), int(width / scale) - 1)
    y2 = np.minimum(y1 + rng.randint(8, 300, count), int(height / scale) - 1)
    boxes = np.stack((x1, y1, x2, y2), axis=1).astype(np.float32) * np.float32(scale)
    if count > 1:  # a duplicated gt: its best anchors tie with the original's
        boxes[-1] = boxes[0]
    return np.hstack((boxes, rng.randint(1, 21, (count, 1)).astype(np.float32)))


@pytest.mark.parametrize("seed", range(12))
def test_assignment_matches_a_straightforward_reference(device, seed):
    rng = np.random.RandomState(seed)
    feat_h, feat_w = rng.randint(20, 40), rng.randint(20, 40)
    height, width = float(feat_h * 16 - rng.randint(0, 16)), float(feat_w * 16 - rng.randint(0, 16))
    scale = [1.0, 1.6, 600 / 375][seed % 3]
    gt = torch.from_numpy(random_gt(rng, rng.randint(1, 9), height, width, scale)).to(device)
    anchors = anchors_for(feat_h, feat_w, device)
    im_info = (height, width, scale) if seed % 2 else torch.tensor([height, width, scale], device=device)
    labels, targets, in_w, out_w = anchor_target_layer(
        anchors, gt, im_info, rpn_batchsize=10**6, rpn_fg_fraction=1.0, generator=torch.Generator(device=device).manual_seed(seed)
    )
    ref_labels, best, inside = reference_rule(anchors, gt, height, width)
    # Without subsampling pressure every rule positive and negative is kept: labels are the rule's.
    np.testing.assert_array_equal(labels.cpu().numpy(), ref_labels)
    expect = bbox_transform(anchors[inside], gt[torch.from_numpy(best[inside]).to(device), :4])
    torch.testing.assert_close(targets[inside], expect, rtol=0, atol=1e-6)
    assert bool((targets[torch.from_numpy(np.setdiff1d(np.arange(len(anchors)), inside)).to(device)] == 0).all())
    n_sampled = int((ref_labels >= 0).sum())
    torch.testing.assert_close(out_w, (labels >= 0).float()[:, None].expand(-1, 4) / n_sampled)
    assert torch.equal(in_w, (labels == 1).float()[:, None].expand(-1, 4))


@pytest.mark.parametrize("seed", range(4))
def test_subsampling_keeps_rule_members_up_to_the_quotas(device, seed):
    rng = np.random.RandomState(100 + seed)
    gt = torch.from_numpy(random_gt(rng, 8, 600.0, 800.0, 1.6)).to(device)
    anchors = anchors_for(38, 50, device)
    ref_labels, _, _ = reference_rule(anchors, gt, 600.0, 800.0)
    labels, *_ = anchor_target_layer(anchors, gt, IM_INFO, rpn_fg_fraction=0.1, generator=torch.Generator(device=device).manual_seed(seed))
    labels = labels.cpu().numpy()
    n_pos = min(25, int((ref_labels == 1).sum()))
    assert (labels == 1).sum() == n_pos and (labels == 0).sum() == 256 - n_pos
    assert np.all(ref_labels[labels == 1] == 1) and np.all(ref_labels[labels == 0] == 0)


def test_subsampling_is_uniform(device):
    # Ten positives (every anchor equals the gt), a quota of two: each is kept with probability 1/5.
    anchors = torch.tensor([[0, 0, 9, 9]] * 10 + [[50, 50, 59, 59]] * 10, dtype=torch.float32, device=device)
    gt = torch.tensor([[0, 0, 9, 9, 1]], dtype=torch.float32, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    pos_counts, neg_counts = torch.zeros(20, device=device), torch.zeros(20, device=device)
    trials = 2000
    for _ in range(trials):
        labels, *_ = anchor_target_layer(anchors, gt, (100, 100, 1.0), rpn_batchsize=4, rpn_fg_fraction=0.5, generator=gen)
        pos_counts += labels == 1
        neg_counts += labels == 0
    assert bool((pos_counts[10:] == 0).all()) and bool((neg_counts[:10] == 0).all())
    # Binomial(2000, 0.2): mean 400, sd 17.9; 90 is 5 sd.
    assert bool(((pos_counts[:10] - 400).abs() < 90).all()), pos_counts
    assert bool(((neg_counts[10:] - 400).abs() < 90).all()), neg_counts
