"""Anchor coverage (faster_rcnn.analysis.anchor_coverage): the grid shortcut equals the brute force over every
anchor of the map bit for bit, the inside rule and the map size are the anchor-target layer's and the heads',
the boxes are the training loader's, and the suggestion finds anchors for a small-object set."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn.analysis import anchor_coverage as ac
from faster_rcnn.analysis.anchor_coverage import (AnchorCandidate, best_anchor_iou, feature_map_size,
                                                  needs_suggestion, recommend, suggest_anchors)
from faster_rcnn.analysis.dataset_stats import scaled_size, training_boxes
from faster_rcnn.boxes import bbox_overlaps
from faster_rcnn.data.blob import image_scale
from faster_rcnn.data.dataset import RoidbDataset
from faster_rcnn.layers.anchor_target import anchor_target_layer
from faster_rcnn.layers.anchors import anchors_for
from faster_rcnn.settings import BackboneSettings, InputSettings


def random_boxes(rng: np.random.Generator, n: int, min_side: int = 20, max_side: int = 1100):
    """``n`` gt boxes (float32, as the loader's: integer boxes times a scale) in images of random sizes, a
    mix of tiny (1-4 px), huge (most of the image), ordinary, and boxes touching the left / top / right /
    bottom border. Returns boxes (n, 4) float32 and image sizes (n, 2) (H, W)."""
    boxes, sizes = [], []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(min_side, max_side, 2))
        kind = rng.integers(4)
        if kind == 0:
            bw, bh = rng.uniform(1, 4, 2)
        elif kind == 1:
            bw, bh = w * rng.uniform(0.8, 1.0), h * rng.uniform(0.8, 1.0)
        else:
            bw, bh = rng.uniform(1, w), rng.uniform(1, h)
        x1 = [0.0, w - bw, rng.uniform(0, w - bw)][rng.integers(3)]
        y1 = [0.0, h - bh, rng.uniform(0, h - bh)][rng.integers(3)]
        box = np.array([x1, y1, x1 + bw - 1, y1 + bh - 1], np.float32)
        box = np.clip(np.round(box), 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
        box = box * float(rng.choice([1.0, 1.6, 0.771]))  # a loader-like float32 rescale of integer boxes
        boxes.append(np.minimum(box, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32))
        sizes.append((h, w))
    return np.stack(boxes).astype(np.float32), np.array(sizes, np.int64)


def inside_mask(anchors: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The anchor-target layer's test at allowed_border 0, on the float32 anchors."""
    return (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < w) & (anchors[:, 3] < h)


def brute_force(boxes, sizes, scales, ratios, ceil=True):
    """Per box: every anchor of its image's map (``anchors_for``), IoU by ``bbox_overlaps`` in float64 (the
    layer's precision), outside anchors at 0; (best (B,), per-box IoU rows, or None without inside anchors)."""
    best, rows = np.zeros(len(boxes)), []
    for i, (box, (h, w)) in enumerate(zip(boxes, sizes)):
        fh, fw = feature_map_size(int(h), int(w), ceil=ceil)
        anchors = anchors_for(fh, fw, 'cpu', scales, ratios)
        inside = inside_mask(anchors, int(h), int(w))
        if not bool(inside.any()):
            rows.append(None)
            continue
        iou = bbox_overlaps(anchors.double(), torch.from_numpy(box[None]).double())[:, 0] * inside
        best[i] = float(iou.max())
        rows.append(iou)
    return best, rows


ANCHOR_SETS = [
    pytest.param((8, 16, 32), (0.5, 1, 2), True, id='default'),
    pytest.param((1, 2, 4, 8), (0.5, 1, 2), True, id='shapes'),
    pytest.param((0.25, 0.5, 1), (0.33, 1, 3), True, id='sub-stride'),
    pytest.param((0.5, 1, 2, 4, 8, 16, 32), (0.25, 0.5, 1, 2, 4), False, id='wide-floor-map'),
    # Scales whose shifted coordinates round in float32: the every-shift path.
    pytest.param((0.3, 1.7, 5.1), (0.5, 1, 2.5), True, id='inexact-scales'),
]


@pytest.mark.parametrize('scales, ratios, ceil', ANCHOR_SETS)
def test_best_anchor_iou_equals_brute_force(scales, ratios, ceil):
    rng = np.random.default_rng(len(scales) * 10 + len(ratios))
    boxes, sizes = random_boxes(rng, 160)
    # A few images smaller than any anchor: no anchor is inside them.
    boxes[:3] = [[0, 0, 5, 5], [2, 1, 9, 12], [0, 0, 19, 19]]
    sizes[:3] = [[20, 20], [24, 31], [20, 20]]
    got = best_anchor_iou(boxes, sizes, scales, ratios, ceil=ceil)
    want, rows = brute_force(boxes, sizes, scales, ratios, ceil)
    np.testing.assert_array_equal(got.best_iou, want)  # bit for bit, not approximately
    for i, row in enumerate(rows):
        if row is None:
            assert got.anchor[i] == -1 and got.shape[i] == -1
        else:
            # The anchor it names is inside and reaches the best IoU.
            assert float(row[got.anchor[i]]) == got.best_iou[i]
            assert got.shape[i] == got.anchor[i] % (len(scales) * len(ratios))
    assert (got.best_iou > 0).mean() > 0.5  # the set is not degenerate


def test_the_shortcut_is_what_makes_it_exact_not_luck():
    """Trying only the centre-aligned shift (no neighbours) misses the best anchor of some boxes: the brute
    force comparison above can fail."""
    rng = np.random.default_rng(5)
    boxes, sizes = random_boxes(rng, 200)
    want, _ = brute_force(boxes, sizes, (8, 16, 32), (0.5, 1, 2))
    saved = ac._CANDIDATES
    try:
        ac._CANDIDATES = (0,)
        narrow = best_anchor_iou(boxes, sizes, (8, 16, 32), (0.5, 1, 2)).best_iou
    finally:
        ac._CANDIDATES = saved
    assert (narrow != want).any()
    np.testing.assert_array_equal(best_anchor_iou(boxes, sizes, (8, 16, 32), (0.5, 1, 2)).best_iou, want)


def test_best_anchor_is_what_the_anchor_target_layer_makes_positive():
    """The layer itself, with every inside anchor sampled and only each gt's best anchors positive
    (RPN_POSITIVE_OVERLAP above 1): its non-ignored anchors are the inside ones, and its positives are
    the anchors at our best IoU."""
    rng = np.random.default_rng(11)
    boxes, sizes = random_boxes(rng, 40, min_side=60, max_side=500)
    scales, ratios = (2, 4, 8), (0.5, 1, 2)
    got = best_anchor_iou(boxes, sizes, scales, ratios)
    for i, (box, (h, w)) in enumerate(zip(boxes, sizes)):
        fh, fw = feature_map_size(int(h), int(w))
        anchors = anchors_for(fh, fw, 'cpu', scales, ratios)
        m = anchors.shape[0]
        gt = torch.tensor([[*box.tolist(), 1.0]])
        labels, *_ = anchor_target_layer(anchors, gt, (float(h), float(w), 1.0), seed=torch.tensor([i]),
                                         rpn_positive_overlap=1.5, rpn_negative_overlap=2.0, rpn_batchsize=m,
                                         rpn_fg_fraction=1.0)
        assert torch.equal(labels >= 0, inside_mask(anchors, int(h), int(w)))
        if got.best_iou[i] == 0:
            assert not bool((labels == 1).any())  # the layer's rule: a gt at IoU 0 makes nothing positive
            continue
        positive = (labels == 1).nonzero().squeeze(1)
        iou = bbox_overlaps(anchors[positive].double(), gt[:, :4].double())[:, 0]
        assert bool((iou == got.best_iou[i]).all())
        assert got.anchor[i] in positive.tolist()


@pytest.mark.parametrize('net, settings', [
    ('tiny', BackboneSettings()), ('vgg16', BackboneSettings()), ('vgg16', BackboneSettings(vgg16_ceil_mode=False)),
    ('res50', BackboneSettings()), ('res50', BackboneSettings(resnet_layout='slim')), ('mobile', BackboneSettings()),
])
def test_feature_map_size_is_the_heads(net, settings):
    from faster_rcnn.nets.factory import build_backbone
    with torch.device('meta'):
        backbone = build_backbone(net, settings).eval()
        for h, w in ((224, 224), (375, 500), (601, 803), (17, 33)):
            out = backbone.head(torch.zeros((1, 3, h, w)))
            assert tuple(out.shape[2:]) == feature_map_size(h, w, ceil=settings.vgg16_ceil_mode or net != 'vgg16')


def test_scaled_size_is_what_cv2_resize_gives():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(10, 1300, 2))
        target, max_size = int(rng.choice([224, 500, 600, 800])), int(rng.choice([384, 1000, 1333]))
        scale = image_scale(h, w, target, max_size)
        out = cv2.resize(np.zeros((h, w), np.uint8), None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        assert out.shape == scaled_size(h, w, scale), (h, w, target, max_size)


def test_training_boxes_are_the_loaders(tmp_path):
    """Boxes and image sizes equal what RoidbDataset delivers for every entry, flipped copies included, at
    each scale, with and without the difficult boxes."""
    rng = np.random.default_rng(2)
    roidb = []
    for i, (h, w) in enumerate(((333, 500), (480, 361), (100, 1000))):
        path = str(tmp_path / f'im{i}.png')
        cv2.imwrite(path, np.zeros((h, w, 3), np.uint8))
        x1 = rng.integers(0, w // 2, 3)
        y1 = rng.integers(0, h // 2, 3)
        boxes = np.stack([x1, y1, x1 + rng.integers(1, w // 2, 3), y1 + rng.integers(1, h // 2, 3)], 1)
        entry = dict(image=path, width=w, height=h, boxes=boxes.astype(np.float32), flipped=False,
                     gt_classes=np.array([1, 2, 1], np.int32), gt_ishard=np.array([False, True, False]))
        flipped = dict(entry, flipped=True, boxes=np.stack([w - boxes[:, 2] - 1, boxes[:, 1], w - boxes[:, 0] - 1,
                                                            boxes[:, 3]], 1).astype(np.float32))
        roidb += [entry, flipped]
    for use_all_gt in (True, False):
        for target in (224, 600):
            inputs = InputSettings(scales=(target,), max_size=700)
            tb = training_boxes(roidb, inputs, use_all_gt)
            dataset = RoidbDataset(roidb, 3, inputs, use_all_gt)
            for index in range(len(roidb)):
                item = dataset[(0, index)]
                rows = tb.entry == index
                np.testing.assert_array_equal(tb.boxes[rows], item['gt_boxes'][:, :4])
                assert (tb.image_size[rows] == item['im_info'][:2].astype(np.int64)).all()
                assert (tb.classes[rows] == item['gt_boxes'][:, 4]).all()
    assert len(training_boxes(roidb, InputSettings(scales=(224, 600), max_size=700))) == 2 * 3 * 6


def object_set(lo: float = 24, hi: float = 64, seed: int = 0, n: int = 600):
    """Boxes of ``lo``-``hi`` px (aspect 0.7-1.4) in 600 x 800-ish scaled images. The default 24-64 px: what
    default anchors (128 px and up) miss, but large enough for the stride-16 grid (much below ~24 px no
    anchor set matches a box at 0.5 wherever it lies)."""
    rng = np.random.default_rng(seed)
    h = rng.integers(560, 640, n)
    w = rng.integers(700, 900, n)
    side = rng.uniform(lo, hi, n)
    bw, bh = side * rng.uniform(0.7, 1.4, n), side
    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    boxes = np.stack([x1, y1, x1 + bw - 1, y1 + bh - 1], 1).astype(np.float32)
    return boxes, np.stack([h, w], 1)


def test_suggestion_finds_anchors_for_small_objects():
    boxes, sizes = object_set()
    default = best_anchor_iou(boxes, sizes, (8, 16, 32), (0.5, 1, 2))
    suggest, uncovered = needs_suggestion(default)
    assert suggest and uncovered > 0.9
    candidates = suggest_anchors(boxes, sizes, 0.7, current=((8, 16, 32), (0.5, 1, 2)))
    chosen = recommend(candidates)
    assert chosen.matched >= 0.85 and max(chosen.scales) < 8
    assert chosen.matched >= candidates[0].matched - ac.NEAR_BEST
    assert chosen.num_anchors <= min(c.num_anchors for c in candidates if c.matched >= candidates[0].matched)
    # The table's numbers are those of a direct evaluation of the suggested anchors.
    direct = best_anchor_iou(boxes, sizes, chosen.scales, chosen.ratios).best_iou
    assert chosen.matched == pytest.approx(float((direct >= 0.5).mean()), abs=1e-12)
    assert chosen.positive == pytest.approx(float((direct >= 0.7).mean()), abs=1e-12)
    current = ac.current_candidate(candidates, (8, 16, 32), (0.5, 1, 2))
    assert current is not None and current.matched == pytest.approx(1 - uncovered)
    text = ac.format_suggestions(candidates, chosen, uncovered, 0.7, current)
    assert chosen.set_args() in text and 'smallest set within 1%' in text


def test_covered_set_needs_no_suggestion():
    boxes, sizes = object_set(128, 400)
    covered = best_anchor_iou(boxes, sizes, (8, 16, 32), (0.5, 1, 2))
    assert not needs_suggestion(covered)[0]


def test_recommend_prefers_the_smallest_set_near_the_best():
    cands = [AnchorCandidate((1, 2, 4, 8, 16), (0.5, 1, 2), 0.95, 0.5),
             AnchorCandidate((2, 4, 8), (0.5, 1, 2), 0.945, 0.4),
             AnchorCandidate((2, 4, 8), (1,), 0.93, 0.3)]
    assert recommend(cands) == cands[1]
    assert recommend(cands, near=0.0) == cands[0]
    assert cands[1].set_args() == '--set ANCHOR_SCALES "[2, 4, 8]" ANCHOR_RATIOS "[0.5, 1, 2]"'


@pytest.mark.slow
def test_speed_on_a_voc_sized_set():
    """80k boxes (VOC 07+12 with flipped copies) in well under a minute, suggestion search included (about
    4 s on 2 free CPU cores). CPU time, not wall time: the bound should not depend on what else runs."""
    import time
    rng = np.random.default_rng(0)
    n = 80000
    h, w = rng.integers(500, 700, n), rng.integers(600, 1000, n)
    bw = np.minimum(rng.uniform(5, 500, n), w - 1)
    bh = np.minimum(bw * rng.uniform(0.3, 3, n), h - 1)
    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    boxes = np.stack([x1, y1, x1 + bw - 1, y1 + bh - 1], 1).astype(np.float32)
    start = time.process_time()
    best_anchor_iou(boxes, np.stack([h, w], 1), (8, 16, 32), (0.5, 1, 2))
    suggest_anchors(boxes, np.stack([h, w], 1), 0.7)
    assert time.process_time() - start < 40
