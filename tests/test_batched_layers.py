"""The batched target and proposal layers give every image exactly what the one-image layers give it, with
the operator count of one call independent of the number of images."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from faster_rcnn.layers.anchor_target import anchor_target_layer, anchor_targets
from faster_rcnn.layers.anchors import anchors_for
from faster_rcnn.layers.gt_batch import pad_gt_boxes
from faster_rcnn.layers.proposal import proposal_layer, proposals
from faster_rcnn.layers.proposal_target import proposal_target_layer, proposal_targets

H, W = 30, 40  # feature map: 480 x 640 images at most
INFO = [[480.0, 640.0, 1.0], [400.0, 600.0, 1.2], [480.0, 500.0, 0.8], [300.0, 640.0, 1.5]]


def _gt(i: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + i)
    count = [5, 0, 2, 9][i]  # image 1 has no gt (a background-only image)
    h, w = INFO[i][0], INFO[i][1]
    x1 = torch.rand(count, generator=g) * (w - 120)
    y1 = torch.rand(count, generator=g) * (h - 120)
    size = 20 + torch.rand(count, 2, generator=g) * 100
    cls = torch.randint(1, 5, (count,), generator=g).float()
    return torch.stack((x1, y1, x1 + size[:, 0], y1 + size[:, 1], cls), 1).to(device)


def _rpn_outputs(n: int, m: int, device):
    g = torch.Generator().manual_seed(n)
    scores = torch.rand(n, m, generator=g)
    scores[:, ::7] = 0.5  # ties, whose order the stable sort decides
    deltas = torch.randn(n, m, 4, generator=g) * 0.2
    return scores.to(device), deltas.to(device)


@pytest.mark.parametrize('n', [1, 2, 3, 4])
def test_batched_layers_equal_the_per_image_layers(device, n):
    anchors = anchors_for(H, W, device)
    info = torch.tensor(INFO[:n], device=device)
    gts = [_gt(i, device) for i in range(n)]
    seeds = torch.tensor([11, 12, 13, 14][:n], device=device)
    gt_boxes, gt_valid = pad_gt_boxes(gts, device)

    # All anchors as candidates, and only those that fit the padded blob (the network's call): the same.
    for extent in (None, (480, 640)):
        batch = anchor_targets(anchors, gt_boxes, gt_valid, info, seeds, extent=extent)
        for i in range(n):
            single = anchor_target_layer(anchors, gts[i], info[i], seed=seeds[i:i + 1])
            assert torch.equal(batch.labels[i], single[0])
            assert torch.equal(batch.targets[i], single[1])
            assert torch.equal(batch.inside_weights[i].expand(-1, 4), single[2])
            assert torch.equal(batch.outside_weights[i].expand(-1, 4), single[3])
        assert bool((batch.labels[1] <= 0).all()) if n > 1 else True  # no gt: negatives only
        assert int((batch.labels[0] == 1).sum()) > 0

    scores, deltas = _rpn_outputs(n, anchors.shape[0], device)
    props = proposals(scores, deltas, anchors, info, pre_nms_top_n=3000, post_nms_top_n=300, nms_thresh=0.7)
    singles = [proposal_layer(scores[i], deltas[i], anchors, info[i], pre_nms_top_n=3000, post_nms_top_n=300,
                              nms_thresh=0.7) for i in range(n)]
    for i, (rois, roi_scores) in enumerate(singles):
        c = props.counts[i]
        assert c == rois.shape[0] and bool(props.valid[i, :c].all()) and not bool(props.valid[i, c:].any())
        assert torch.equal(props.boxes[i, :c], rois[:, 1:]) and torch.equal(props.scores[i, :c], roi_scores)

    for use_gt in (False, True):
        kw = dict(batch_size=64, bg_thresh_lo=0.0, use_gt=use_gt)
        out = proposal_targets(props.boxes, props.scores, props.valid, gt_boxes, gt_valid, seeds, 5, **kw)
        for i, (rois, roi_scores) in enumerate(singles):
            one = proposal_target_layer(rois, roi_scores, gts[i], 5, seed=seeds[i:i + 1], **kw)
            rows = slice(64 * i, 64 * (i + 1))
            assert torch.equal(out.rois[rows, 0], torch.full((64,), float(i), device=device))
            assert torch.equal(out.rois[rows, 1:], one[0][:, 1:])
            for got, want in zip(out[1:], one[1:]):
                assert torch.equal(got[rows], want)
        if n > 1:
            assert bool((out.labels[64:128] == 0).all())  # the image without gt: background only


def test_images_sample_differently_and_seeds_decide(device):
    anchors = anchors_for(H, W, device)
    gt = _gt(0, device)
    info = torch.tensor(INFO[:1] * 2, device=device)
    gt_boxes, gt_valid = pad_gt_boxes([gt, gt], device)
    same = anchor_targets(anchors, gt_boxes, gt_valid, info, torch.tensor([5, 5], device=device))
    other = anchor_targets(anchors, gt_boxes, gt_valid, info, torch.tensor([5, 6], device=device))
    assert torch.equal(same.labels[0], same.labels[1])
    assert not torch.equal(other.labels[0], other.labels[1])
    # The rule's sets are the same; only the sample differs.
    assert int((other.labels[0] >= 0).sum()) == int((other.labels[1] >= 0).sum()) == 256


def _top_level_ops(fn) -> int:
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name.startswith('aten::')
               and (e.cpu_parent is None or not e.cpu_parent.name.startswith('aten::')))


def test_operator_count_does_not_grow_with_the_batch():
    anchors = anchors_for(H, W, 'cpu')
    counts = {}
    for n in (1, 4):
        info = torch.tensor(INFO[:1] * n)
        gt_boxes, gt_valid = pad_gt_boxes([_gt(0, 'cpu')] * n)
        seeds = torch.arange(n)
        scores, deltas = _rpn_outputs(n, anchors.shape[0], 'cpu')
        props = proposals(scores, deltas, anchors, info, pre_nms_top_n=3000, post_nms_top_n=300, nms_thresh=0.7)
        counts[n] = (
            _top_level_ops(lambda: anchor_targets(anchors, gt_boxes, gt_valid, info, seeds, extent=(480, 640))),
            _top_level_ops(lambda: proposals(scores, deltas, anchors, info, pre_nms_top_n=3000, post_nms_top_n=300,
                                             nms_thresh=0.7)),
            _top_level_ops(lambda: proposal_targets(props.boxes, props.scores, props.valid, gt_boxes, gt_valid,
                                                    seeds, 5, batch_size=64)),
        )
    assert counts[4][0] == counts[1][0] and counts[4][2] == counts[1][2], counts
    # Only NMS runs image by image; on CPU its kernel is no operator at all.
    assert counts[4][1] <= counts[1][1] + 4, counts
