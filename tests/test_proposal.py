import numpy as np
import pytest
import torch

from faster_rcnn.layers.anchors import anchors_for
from faster_rcnn.layers.proposal import proposal_layer
from faster_rcnn.layers.proposal_top import proposal_top_layer
from reference_nms import greedy_reference


def numpy_proposals(scores, deltas, anchors, im_hw, pre, post, thresh):
    """Straightforward numpy transcription of the pre-NMS top-N path (float64)."""
    w = anchors[:, 2] - anchors[:, 0] + 1
    h = anchors[:, 3] - anchors[:, 1] + 1
    cx, cy = anchors[:, 0] + 0.5 * w, anchors[:, 1] + 0.5 * h
    pcx, pcy = deltas[:, 0] * w + cx, deltas[:, 1] * h + cy
    pw, ph = np.exp(deltas[:, 2]) * w, np.exp(deltas[:, 3]) * h
    boxes = np.stack((pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph), 1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, im_hw[1] - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, im_hw[0] - 1)
    order = np.argsort(-scores, kind="stable")[:pre]
    # Greedy NMS keeps boxes in score order, so stopping at `post` kept boxes is a prefix of the full result.
    keep = order[greedy_reference(boxes[order], scores[order], thresh)[:post]]
    return boxes[keep], scores[keep]


def inputs(device, fh=6, fw=8, seed=0):
    anchors = anchors_for(fh, fw, device)
    gen = torch.Generator().manual_seed(seed)
    n = anchors.shape[0]
    scores = torch.rand(n, generator=gen)
    scores[::7] = scores[3]  # ties
    deltas = torch.randn(n, 4, generator=gen) * 0.2
    return scores.to(device), deltas.to(device), anchors


@pytest.mark.parametrize("pre,post", [(200, 50), (10_000, 10_000), (0, 0)])
def test_matches_numpy_transcription(device, pre, post):
    scores, deltas, anchors = inputs(device)
    im_info = (96.0, 128.0, 1.0)
    rois, roi_scores = proposal_layer(scores, deltas, anchors, im_info, pre_nms_top_n=pre, post_nms_top_n=post, nms_thresh=0.7)
    exp_boxes, exp_scores = numpy_proposals(
        scores.cpu().double().numpy(), deltas.cpu().double().numpy(), anchors.cpu().double().numpy(),
        im_info, pre if pre > 0 else None, post if post > 0 else None, 0.7,
    )  # fmt: skip
    assert rois.shape == (len(exp_boxes), 5) and roi_scores.shape == (len(exp_boxes),)
    assert rois.device.type == device.type
    if post > 0:
        assert len(exp_boxes) <= post
    assert bool((rois[:, 0] == 0).all())
    np.testing.assert_allclose(rois[:, 1:].cpu().numpy(), exp_boxes, atol=1e-3)
    np.testing.assert_array_equal(roi_scores.cpu().numpy(), exp_scores.astype(np.float32))
    # Clipped to the image, by decreasing score.
    assert float(rois[:, 3].max()) <= 127 and float(rois[:, 4].max()) <= 95 and float(rois[:, 1:].min()) >= 0
    assert bool((roi_scores[1:] <= roi_scores[:-1]).all())


def test_im_info_tensor_and_empty(device):
    scores, deltas, anchors = inputs(device, seed=4)
    kw = dict(pre_nms_top_n=300, post_nms_top_n=40, nms_thresh=0.7)
    a = proposal_layer(scores, deltas, anchors, (96.0, 128.0, 1.0), **kw)
    b = proposal_layer(scores, deltas, anchors, torch.tensor([96.0, 128.0, 1.0], device=device), **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    rois, roi_scores = proposal_layer(scores[:0], deltas[:0], anchors[:0], (96, 128, 1.0), **kw)
    assert rois.shape == (0, 5) and roi_scores.shape == (0,)


def test_top_layer_keeps_top_scores_without_nms(device):
    scores, deltas, anchors = inputs(device, seed=2)
    rois, roi_scores = proposal_top_layer(scores, deltas, anchors, (96.0, 128.0, 1.0), rpn_top_n=25)
    assert rois.shape == (25, 5)
    order = np.argsort(-scores.cpu().numpy(), kind="stable")[:25]
    np.testing.assert_array_equal(roi_scores.cpu().numpy(), scores.cpu().numpy()[order])
    exp_boxes, _ = numpy_proposals(
        scores.cpu().double().numpy()[order], deltas.cpu().double().numpy()[order], anchors.cpu().double().numpy()[order],
        (96.0, 128.0), None, None, 2.0,  # threshold > 1: no suppression
    )  # fmt: skip
    np.testing.assert_allclose(rois[:, 1:].cpu().numpy(), exp_boxes, atol=1e-3)
    # Fewer anchors than rpn_top_n: each kept once.
    rois, _ = proposal_top_layer(scores[:10], deltas[:10], anchors[:10], (96.0, 128.0, 1.0), rpn_top_n=25)
    assert rois.shape == (10, 5)
