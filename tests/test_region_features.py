"""Region features: bottom-up-attention's selection against a NumPy float64 reference written from its
``generate_tsv.py`` / ``cpu_nms`` procedure, batches equal to single images, given boxes, detections mode and the
one-line refusals of ``Detector.features``."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from faster_rcnn import Detector
from faster_rcnn.bench.features import feature_error
from faster_rcnn.data.test_loader import prepare_test_image
from faster_rcnn.errors import UsageError
from faster_rcnn.inference.butd_select import butd_keep, max_conf_after_nms
from faster_rcnn.nets.amp import bf16_backbone
from faster_rcnn.nets.factory import build_network

from settings_helpers import settings_for

CLASSES = ['__background__', 'a', 'b', 'c', 'd']


def _cpu_nms(dets: np.ndarray, thresh: float) -> list[int]:
    """py-faster-rcnn's ``cpu_nms`` loop: float32 arithmetic, suppression when IoU >= thresh (a double)."""
    x1, y1, x2, y2, scores = (dets[:, k] for k in range(5))
    areas = (x2 - x1 + np.float32(1)) * (y2 - y1 + np.float32(1))
    order = np.argsort(-scores.astype(np.float64), kind='stable')  # no ties in these tests
    suppressed = np.zeros(len(dets), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        for j in order[pos + 1:]:
            if suppressed[j]:
                continue
            w = max(np.float32(0), min(x2[i], x2[j]) - max(x1[i], x1[j]) + np.float32(1))
            h = max(np.float32(0), min(y2[i], y2[j]) - max(y1[i], y1[j]) + np.float32(1))
            inter = np.float32(w * h)
            ovr = np.float32(inter / np.float32(np.float32(areas[i] + areas[j]) - inter))
            if float(ovr) >= thresh:
                suppressed[j] = True
    return keep


def _generate_tsv_keep(boxes: np.ndarray, scores: np.ndarray, conf_thresh: float, min_boxes: int,
                       max_boxes: int) -> np.ndarray:
    """get_detections_from_im's selection: max_conf in float64 over the per-class NMS survivors."""
    max_conf = np.zeros(boxes.shape[0])
    for c in range(1, scores.shape[1]):
        cls_scores = scores[:, c]
        dets = np.hstack((boxes, cls_scores[:, None])).astype(np.float32)
        keep = np.array(_cpu_nms(dets, 0.3), dtype=np.int64)
        max_conf[keep] = np.where(cls_scores[keep] > max_conf[keep], cls_scores[keep], max_conf[keep])
    keep_boxes = np.where(max_conf >= conf_thresh)[0]
    if len(keep_boxes) < min_boxes:
        keep_boxes = np.argsort(-max_conf, kind='stable')[:min_boxes]
    elif len(keep_boxes) > max_boxes:
        keep_boxes = np.argsort(-max_conf, kind='stable')[:max_boxes]
    return keep_boxes


def _case(seed: int, r: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (r, 2))
    wh = rng.uniform(4, 80, (r, 2))
    # Clustered boxes so that NMS has work: a few centres, jittered.
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes[r // 2:] = boxes[: r - r // 2] + rng.normal(0, 3, (r - r // 2, 4)).astype(np.float32)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    logits = rng.normal(0, 2.5, (r, k))
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return boxes, scores.astype(np.float32)


@pytest.mark.parametrize('seed,r,k,thresh,lo,hi', [(0, 60, 6, 0.2, 10, 100), (1, 80, 12, 0.2, 5, 20),
                                                   (2, 40, 3, 0.9, 10, 100), (3, 50, 8, 0.05, 36, 36),
                                                   (4, 200, 4, 0.2, 10, 100)])
def test_butd_selection_equals_the_generate_tsv_reference(seed, r, k, thresh, lo, hi):
    boxes, scores = _case(seed, r, k)
    expected = _generate_tsv_keep(boxes, scores, thresh, lo, hi)
    max_conf = max_conf_after_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.3)
    got = butd_keep(max_conf, thresh, lo, hi).numpy()
    np.testing.assert_array_equal(got, expected)


def test_max_conf_by_hand():
    # Boxes 0 and 1 overlap with IoU 0.5 exactly (+1 widths: 10x10 boxes sharing a 10x5 strip... ) -> compute:
    # box0 (0,0,9,9) area 100, box1 (0,5,9,14) area 100, inter 10x5=50, IoU = 50/150 = 1/3 >= 0.3: suppressed.
    # box2 far away. Class 1 prefers box0, class 2 prefers box1.
    boxes = torch.tensor([[0, 0, 9, 9], [0, 5, 9, 14], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([[0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.8, 0.15, 0.05]])
    # class 1: box0 (0.6) kept, box1 suppressed, box2 kept (0.15); class 2: box1 (0.5) kept, box0 suppressed,
    # box2 kept (0.05). max_conf = [0.6, 0.5, 0.15].
    torch.testing.assert_close(max_conf_after_nms(boxes, scores, 0.3), torch.tensor([0.6, 0.5, 0.15]))
    # IoU 1/3 < 0.34: nothing is suppressed, box 1 keeps its class-1 score too (0.5 is larger anyway).
    torch.testing.assert_close(max_conf_after_nms(boxes, scores, 0.34), torch.tensor([0.6, 0.5, 0.15]))
    assert butd_keep(torch.tensor([0.6, 0.5, 0.15]), 0.2, 1, 10).tolist() == [0, 1]
    assert butd_keep(torch.tensor([0.15, 0.5, 0.6]), 0.2, 3, 10).tolist() == [2, 1, 0]  # too few: by max_conf
    assert butd_keep(torch.tensor([0.3, 0.5, 0.6]), 0.2, 1, 2).tolist() == [2, 1]  # too many: by max_conf


def test_threshold_compared_in_double_precision():
    # cpu_nms compares a float32 IoU with a double threshold: IoU float32(0.7) < 0.7 must not suppress at 0.7.
    iou = np.float32(0.7)
    assert float(iou) < 0.7
    # Boxes with IoU exactly float32(0.7) are hard to build; check the comparison rule on max_conf instead.
    keep = butd_keep(torch.tensor([np.float32(0.7), 0.9]), 0.7, 1, 10)
    assert keep.tolist() == [1]


@pytest.fixture(scope='module')
def detectors():
    torch.manual_seed(0)
    model = build_network('tiny', len(CLASSES), settings_for('tiny', TEST__RPN_POST_NMS_TOP_N=60))
    return (Detector.from_model(model, CLASSES, batch_size=1), Detector.from_model(model, CLASSES, batch_size=2))


@pytest.fixture(scope='module')
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(120, 160), (100, 90), (130, 130)]]


def _same(a, b) -> None:
    for field in ('boxes', 'features', 'objects', 'object_scores', 'cls_prob'):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.image_size == b.image_size


def test_butd_regions_follow_the_reference_and_batches_equal_single_images(detectors, images):
    one, two = detectors
    alone = [one.features(im) for im in images]
    batched = two.features(images)
    assert len(batched) == 3
    for a, b in zip(alone, batched):
        _same(a, b)
    model = one.model
    for im, got in zip(images, alone):
        # The same selection from the raw test outputs, by the NumPy reference.
        blob, info = prepare_test_image(im, model.settings.input)
        with torch.no_grad():
            out = model(torch.from_numpy(blob).permute(2, 0, 1)[None].contiguous(), torch.from_numpy(info)[None])
        proposals = (out.rois[:, 1:5] / float(info[2])).numpy()
        keep = _generate_tsv_keep(proposals, out.cls_prob.numpy(), 0.2, 10, 100)
        np.testing.assert_array_equal(got.boxes, proposals[keep])
        np.testing.assert_array_equal(got.features, out.features.numpy()[keep])
        assert got.features.shape[1] == model.backbone.tail_channels and got.features.dtype == np.float32
        np.testing.assert_array_equal(got.objects, out.cls_prob.numpy()[keep, 1:].argmax(1) + 1)
        assert got.attributes is None and got.image_size == im.shape[:2]


def test_fixed_count_and_thresholds(detectors, images):
    one, _ = detectors
    r = one.features(images[0], min_boxes=36, max_boxes=36)
    assert len(r) == 36
    r = one.features(images[0], conf_thresh=1.0, min_boxes=7, max_boxes=100)
    assert len(r) == 7  # nothing reaches 1.0: the 7 best by max_conf


def test_given_boxes_are_pooled_in_their_order(detectors, images):
    one, two = detectors
    boxes = [np.array([[10, 10, 60, 50], [0, 0, 89, 99], [30, 5, 40, 80.5]], np.float32),
             np.zeros((0, 4), np.float32), np.array([[5, 5, 100, 120]], np.float32)]
    got = two.features(images, boxes=boxes)
    assert [len(g) for g in got] == [3, 0, 1]
    for g, b in zip(got, boxes):
        np.testing.assert_array_equal(g.boxes, b)
    alone = one.features(images[0], boxes=boxes[0][::-1])
    np.testing.assert_array_equal(alone.features, got[0].features[::-1])
    # Pooling the butd boxes again gives the butd features (up to the rounding of box / scale * scale).
    butd = one.features(images[2])
    again = one.features(images[2], boxes=butd.boxes)
    np.testing.assert_allclose(again.features, butd.features, rtol=1e-3, atol=1e-3)


def test_detections_mode_pools_the_detections(detectors, images):
    one, two = detectors
    dets = one(images[1])
    got = one.features(images[1], select='detections')
    np.testing.assert_array_equal(got.boxes, dets.boxes)
    np.testing.assert_array_equal(got.objects, dets.labels)
    np.testing.assert_array_equal(got.object_scores, dets.scores)
    pooled = one.features(images[1], boxes=dets.boxes)
    np.testing.assert_array_equal(got.features, pooled.features)
    _same(two.features(images, select='detections')[1], got)


@pytest.mark.parametrize('kwargs,words', [
    (dict(select='top'), "select='top'"), (dict(min_boxes=20, max_boxes=10), 'min_boxes=20'),
    (dict(conf_thresh=2.0), 'conf_thresh=2.0'), (dict(boxes=np.zeros((3, 5))), 'boxes: expected an (N, 4)'),
    (dict(boxes=np.array([[5, 5, 1, 9.0]])), 'boxes: box 0 has x2 < x1'),
    (dict(boxes=np.array([[np.nan, 5, 1, 9.0]])), 'boxes: holds a NaN')])
def test_refusals_name_the_argument(detectors, images, kwargs, words):
    with pytest.raises(UsageError, match='^' + words.replace('(', r'\(').replace(')', r'\)')):
        detectors[0].features(images[0], **kwargs)
    with pytest.raises(UsageError, match='boxes: expected one'):
        detectors[0].features(images, boxes=[np.zeros((1, 4))])
    with pytest.raises(UsageError, match=r'images\[1\]'):
        detectors[0].features([images[0], np.zeros((4, 4, 3), np.float32)])


def test_a_bf16_backbone_gives_the_features_of_bf16_autocast(images):
    torch.manual_seed(0)
    model = build_network('tiny', len(CLASSES), settings_for('tiny', TEST__RPN_POST_NMS_TOP_N=60)).eval()
    fp32 = Detector.from_model(model, CLASSES).features(images[0])
    auto = Detector.from_model(model, CLASSES, amp='bf16').features(images[0], boxes=fp32.boxes)
    cast = Detector.from_model(bf16_backbone(copy.deepcopy(model)), CLASSES, amp='bf16')
    assert next(cast.model.backbone.parameters()).dtype == torch.bfloat16
    assert cast.model.cls_score.weight.dtype == torch.float32
    once = cast.features(images[0], boxes=fp32.boxes)
    # Autocast rounds the fp32 weights to bf16 at each call; the cast backbone holds that rounding: the same result.
    np.testing.assert_allclose(once.features, auto.features, rtol=1e-2, atol=1e-3)
    assert once.features.dtype == np.float32
    cos = (once.features * fp32.features).sum(1) / (np.linalg.norm(once.features, axis=1)
                                                     * np.linalg.norm(fp32.features, axis=1) + 1e-12)
    assert cos.min() > 0.99


def test_box_features_of_the_proposals_are_the_test_pass_features(detectors, images):
    model = detectors[0].model
    blobs = [prepare_test_image(im, model.settings.input) for im in images[:2]]
    for blob, info in blobs:
        data, im_info = torch.from_numpy(blob).permute(2, 0, 1)[None].contiguous(), torch.from_numpy(info)[None]
        with torch.no_grad():
            out = model(data, im_info)
        again = model.box_features(data, im_info, out.rois)
        assert out.features.dtype == torch.float32 and out.features.shape == (out.rois.shape[0], 256)
        torch.testing.assert_close(again.features, out.features, rtol=0, atol=0)
        torch.testing.assert_close(again.cls_prob, out.cls_prob, rtol=0, atol=0)
        torch.testing.assert_close(again.bbox_pred, out.bbox_pred, rtol=0, atol=0)
        # The feature is the tail's output: the class scores are a linear layer on it.
        torch.testing.assert_close(torch.softmax(model.cls_score(out.features), 1), out.cls_prob)


def test_feature_error_by_hand():
    ref = np.array([[1.0, 0.0], [2.0, 2.0]], np.float32)
    other = np.array([[1.0, 0.1], [2.0, 1.0]], np.float32)
    e = feature_error(ref, other)
    assert e['min_cosine'] == pytest.approx(min(1 / np.sqrt(1.01), 6 / (np.sqrt(8) * np.sqrt(5))))
    assert e['max_relative_error'] == pytest.approx(0.5)  # |2 - 1| / 2 on the second region
