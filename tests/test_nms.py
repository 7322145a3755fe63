import numpy as np
import pytest
import torch

from faster_rcnn.ops import cpu_nms, nms
from reference_nms import greedy_reference


def random_boxes(n: int, seed: int, integer: bool = True):
    rng = np.random.RandomState(seed)
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(2, 80, (n, 2))
    boxes = np.hstack((xy, xy + wh))
    if integer:
        boxes = np.round(boxes)
    # Few distinct score values force many ties.
    scores = rng.randint(0, 20, n).astype(np.float32) / 20
    return boxes.astype(np.float32), scores


def test_hand_example(device):
    boxes = torch.tensor([[0, 0, 9, 9], [1, 0, 10, 9], [20, 20, 29, 29]], dtype=torch.float32, device=device)
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.7)
    assert keep.dtype == torch.int64 and keep.device.type == device.type
    assert keep.tolist() == [0, 2]
    # Returned by decreasing score, not by index.
    keep = nms(boxes, torch.tensor([0.1, 0.8, 0.9], device=device), 0.7)
    assert keep.tolist() == [2, 1]


def test_iou_exactly_at_threshold_is_kept(device):
    # IoU = (10 * 5) / (100 + 50 - 50) = 0.5 exactly.
    boxes = torch.tensor([[0, 0, 9, 9], [0, 0, 9, 4]], dtype=torch.float32, device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]


def test_score_ties_keep_lower_index(device):
    boxes = torch.tensor([[0, 0, 9, 9]] * 4 + [[50, 50, 60, 60]], dtype=torch.float32, device=device)
    scores = torch.tensor([0.3, 0.5, 0.5, 0.5, 0.5], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [1, 4]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("thresh", [0.3, 0.7])
def test_matches_python_greedy_reference(device, seed, thresh):
    boxes, scores = random_boxes(400, seed)
    expected = greedy_reference(boxes.astype(np.float64), scores, thresh)
    assert 20 < len(expected) < 400
    keep = nms(torch.from_numpy(boxes).to(device), torch.from_numpy(scores).to(device), thresh)
    assert keep.cpu().tolist() == expected
    dets = np.hstack((boxes, scores[:, None]))
    assert cpu_nms(dets, thresh) == expected


def test_max_keep_is_a_prefix(device):
    boxes, scores = random_boxes(300, 5, integer=False)
    b, s = torch.from_numpy(boxes).to(device), torch.from_numpy(scores).to(device)
    full = nms(b, s, 0.7)
    assert len(full) > 30
    assert nms(b, s, 0.7, max_keep=30).tolist() == full[:30].tolist()
    assert nms(b, s, 0.7, max_keep=10_000).tolist() == full.tolist()
    assert nms(b, s, 0.7, max_keep=0).numel() == 0


def test_empty_and_bad_shapes(device):
    empty = torch.zeros((0, 4), device=device)
    keep = nms(empty, torch.zeros(0, device=device), 0.7)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    assert cpu_nms(np.zeros((0, 5)), 0.5) == []
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros((3, 4), device=device), torch.zeros(2, device=device), 0.5)
    with pytest.raises(ValueError, match="dets"):
        cpu_nms(np.zeros((3, 4)), 0.5)
