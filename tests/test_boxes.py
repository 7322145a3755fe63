import numpy as np
import torch

from faster_rcnn.boxes import bbox_overlaps, bbox_transform, bbox_transform_inv, clip_boxes
from faster_rcnn.ops import bbox_overlaps_np


def t(a, device, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def test_bbox_transform_reference(reference, device):
    d = reference("bbox_transform")
    out32 = bbox_transform(t(d["in_ex_rois"], device), t(d["in_gt_rois"], device))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.cpu().numpy(), d["out_targets_f32"], atol=1e-4, rtol=0)
    out64 = bbox_transform(t(d["in_ex_rois"], device, torch.float64), t(d["in_gt_rois"], device, torch.float64))
    np.testing.assert_allclose(out64.cpu().numpy(), d["out_targets_f64"], atol=1e-10, rtol=0)


def test_bbox_transform_inv_reference(reference, device):
    d = reference("bbox_transform")
    pred = bbox_transform_inv(t(d["in_inv_boxes"], device), t(d["in_inv_deltas"], device))
    assert pred.dtype == torch.float32
    # No clamp of dw/dh: some widths are huge, so compare relatively as well; x1 / x2 subtract half
    # a width from the centre, so an ulp of a large exp() shows as up to ~3e-4 on a small coordinate.
    np.testing.assert_allclose(pred.cpu().numpy(), d["out_inv_pred_f32"], atol=5e-4, rtol=1e-6)
    pred64 = bbox_transform_inv(t(d["in_inv_boxes"], device, torch.float64), t(d["in_inv_deltas_f64"], device, torch.float64))
    np.testing.assert_allclose(pred64.cpu().numpy(), d["out_inv_pred_f64"], atol=1e-4, rtol=1e-9)
    mixed = bbox_transform_inv(t(d["in_inv_boxes"], device, torch.float64), t(d["in_inv_deltas"], device))
    assert mixed.dtype == torch.float32
    np.testing.assert_allclose(mixed.cpu().numpy(), d["out_inv_pred_boxes64_deltas32"], atol=5e-4, rtol=1e-6)
    multi = bbox_transform_inv(t(d["in_inv_boxes_multi"], device), t(d["in_inv_deltas_multi"], device))
    assert multi.shape == (200, 84)
    np.testing.assert_allclose(multi.cpu().numpy(), d["out_inv_pred_multi"], atol=1e-4, rtol=1e-6)


def test_encode_decode_hand_values(device):
    ex = t([[0, 0, 9, 9]], device)
    gt = t([[5, 0, 14, 9]], device)
    np.testing.assert_allclose(bbox_transform(ex, gt).cpu().numpy(), [[0.5, 0, 0, 0]], atol=1e-7)
    # decode(encode(b)) is one pixel wider than b (x2 = ctr + 0.5 * w, no -1), as the reference.
    np.testing.assert_allclose(bbox_transform_inv(ex, bbox_transform(ex, gt)).cpu().numpy(), [[5, 0, 15, 10]], atol=1e-5)
    assert bbox_transform_inv(ex[:0], ex[:0]).shape == (0, 4)


def test_clip_boxes_reference(reference, device):
    d = reference("bbox_transform")
    shape = tuple(float(v) for v in d["in_clip_im_shape"])
    clipped = clip_boxes(t(d["in_clip_boxes"], device), shape)
    np.testing.assert_array_equal(clipped.cpu().numpy(), d["out_clip_boxes"])
    multi = clip_boxes(t(d["in_clip_boxes_multi"], device), t(d["in_clip_im_shape"], device))
    np.testing.assert_array_equal(multi.cpu().numpy(), d["out_clip_boxes_multi"])


def test_clip_boxes_hand_values(device):
    boxes = t([[-5, -3, 900, 700, 10, 20, 30, 40]], device)
    expected = [[0, 0, 799, 599, 10, 20, 30, 40]]
    np.testing.assert_array_equal(clip_boxes(boxes, (600, 800)).cpu().numpy(), expected)
    np.testing.assert_array_equal(clip_boxes(boxes, t([600, 800, 1.6], device)).cpu().numpy(), expected)


def test_bbox_overlaps_hand_values(device):
    boxes = t([[0, 0, 9, 9], [3, 3, 3, 3], [5, 5, 2, 2]], device)
    query = t([[5, 0, 14, 9], [3, 3, 3, 3], [0, 0, 9, 9]], device)
    iou = bbox_overlaps(boxes, query).cpu().numpy()
    # 5x10 overlap of two 10x10 boxes: 50 / 150; a single-pixel box (x2 == x1) has area 1.
    np.testing.assert_allclose(iou[0], [1 / 3, 1 / 100, 1.0], atol=1e-7)
    np.testing.assert_allclose(iou[1], [0, 1.0, 1 / 100], atol=1e-7)
    # An inverted box overlaps nothing, not even itself.
    np.testing.assert_array_equal(iou[2], [0, 0, 0])
    assert bbox_overlaps(boxes[:0], query).shape == (0, 3)
    assert bbox_overlaps(boxes, query[:0]).shape == (3, 0)


def test_bbox_overlaps_matches_cython_kernel(device):
    rng = np.random.RandomState(3)
    xy = rng.uniform(0, 100, (60, 2))
    boxes = np.hstack((xy, xy + rng.uniform(-5, 50, (60, 2))))
    xy = rng.uniform(0, 100, (25, 2))
    query = np.hstack((xy, xy + rng.uniform(-5, 50, (25, 2))))
    expected = bbox_overlaps_np(boxes, query)
    assert expected.dtype == np.float64 and expected.shape == (60, 25)
    assert (expected > 0).sum() > 50
    got = bbox_overlaps(t(boxes, device, torch.float64), t(query, device, torch.float64)).cpu().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
