"""TRAIN/TEST.RPN_MIN_SIZE: py-faster-rcnn's proposal filter (BUTD's), on a hand-computed case."""
from __future__ import annotations

import pytest
import torch

from faster_rcnn.config import new_config, set_key
from faster_rcnn.errors import ConfigError
from faster_rcnn.layers.proposal import proposals
from faster_rcnn.settings import NetworkSettings

# Zero deltas: each proposal is its anchor decoded as bbox_transform_inv does, (x1, y1, x2 + 1, y2 + 1), then
# clipped to the image (W = 100, H = 80). Widths and heights below count +1, as the filter does.
ANCHORS = torch.tensor([[0.0, 0.0, 9.0, 9.0],        # A: (0, 0, 10, 10), 11 x 11
                        [0.0, 30.0, 5.0, 50.0],      # B: (0, 30, 6, 51), 7 wide
                        [50.0, 50.0, 56.0, 56.0],    # C: (50, 50, 57, 57), 8 x 8: exactly the threshold at scale 2
                        [95.0, 0.0, 120.0, 20.0]])   # D: (95, 0, 121, 21), 5 wide once clipped to x <= 99
SCORES = torch.tensor([0.3, 0.9, 0.2, 0.8])          # B, D, A, C by score


def _run(scales: list[float], min_size: float, pre: int = 2):
    n = len(scales)
    info = torch.tensor([[80.0, 100.0, s] for s in scales])
    return proposals(SCORES.repeat(n, 1), torch.zeros(n, 4, 4), ANCHORS, info, pre_nms_top_n=pre,
                     post_nms_top_n=10, nms_thresh=0.7, min_size=min_size)


def test_small_boxes_are_dropped_after_clipping_and_before_the_top_n():
    # Scale 2: at least 4 x 2 = 8 px. B (7) and D (5 after clipping) go; they would have been the top 2.
    # Scale 1: at least 4 px: B and D stay and are the top 2. Both images in one padded batch.
    out = _run([2.0, 1.0], min_size=4)
    assert out.counts == [2, 2]
    torch.testing.assert_close(out.boxes[0], torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 57.0, 57.0]]))
    torch.testing.assert_close(out.scores[0], torch.tensor([0.3, 0.2]))
    torch.testing.assert_close(out.boxes[1], torch.tensor([[0.0, 30.0, 6.0, 51.0], [95.0, 0.0, 99.0, 21.0]]))
    assert out.anchors.tolist() == [[0, 2], [1, 3]]


def test_no_filter_at_zero_and_an_image_whose_boxes_are_all_small_has_none():
    out = _run([2.0], min_size=0)
    assert out.counts == [2] and out.anchors.tolist() == [[1, 3]]
    out = _run([2.0, 10.0], min_size=4, pre=0)  # scale 10: at least 40 px, which no box is
    assert out.counts == [2, 0] and out.anchors[0].tolist() == [0, 2]
    assert not out.valid[1].any()


def test_settings_read_the_keys_and_refuse_what_has_no_meaning():
    c = new_config()
    set_key('TRAIN.RPN_MIN_SIZE', 16, c)
    set_key('TEST.RPN_MIN_SIZE', 8, c)
    s = NetworkSettings.from_config(c)
    assert s.train_proposal_kwargs['min_size'] == 16.0 and s.test_proposal_kwargs['min_size'] == 8.0
    set_key('TEST.MODE', 'top', c)
    with pytest.raises(ConfigError, match="TEST.RPN_MIN_SIZE: the minimum-size filter needs TEST.MODE 'nms'"):
        NetworkSettings.from_config(c)
    c = new_config()
    set_key('TRAIN.RPN_MIN_SIZE', -1, c)
    with pytest.raises(ConfigError, match=r'TRAIN.RPN_MIN_SIZE: -1.0 is not valid; expected a number >= 0'):
        NetworkSettings.from_config(c)


def test_the_filter_reads_the_deltas_of_each_call():
    # The same tensors, changed in place between two calls (as a training loop's buffers can be).
    deltas, info = torch.zeros(1, 4, 4), torch.tensor([[80.0, 100.0, 2.0]])
    first = proposals(SCORES[None], deltas, ANCHORS, info, pre_nms_top_n=2, post_nms_top_n=10, nms_thresh=0.7,
                      min_size=4)
    deltas[0, 1, 2] = 0.5  # B: 6 x exp(0.5) = 9.9 px wide around x = 3, 8.9 (+1) once clipped at 0: kept, the best
    second = proposals(SCORES[None], deltas, ANCHORS, info, pre_nms_top_n=2, post_nms_top_n=10, nms_thresh=0.7,
                       min_size=4)
    assert first.anchors.tolist() == [[0, 2]] and second.anchors.tolist() == [[1, 0]]
