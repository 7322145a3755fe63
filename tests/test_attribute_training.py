"""Training an attribute head end to end on ``shapes_attr``: trainval_net, then test_net's attribute mAP."""
from __future__ import annotations

import json
import re

import pytest
import torch

from tool_runs import SHAPES_CFG, _dirs, run_tool

ITERS = 200
# Chance at the gt boxes (a random ranking) is each attribute's share of the boxes: about 0.2 for the five
# colours and 0.5 for the two fills, a mean near 0.29. This short run clears the bar with a wide margin.
MIN_GT_MAP = 0.6


@pytest.mark.slow
def test_a_short_training_learns_the_attributes(root):
    run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_attr_trainval', '--imdbval', '', '--iters',
              str(ITERS), '--tag', 'attr', '--cfg', SHAPES_CFG, '--device', 'cpu', '--set', *_dirs(root),
              'TRAIN.SCALES', '[160]', 'TEST.SCALES', '[160]', 'TRAIN.WARMUP_ITERS', '50', 'TRAIN.DISPLAY', '50'],
             timeout=3600)
    model = root / 'output' / 'tiny' / 'shapes_attr_trainval' / 'attr' / f'tiny_faster_rcnn_iter_{ITERS}.pth'
    contents = torch.load(model, weights_only=True)
    assert contents['attributes'][0] == '__no_attribute__' and 'attr_head.attr_score.weight' in contents['model']
    out = run_tool(['tools/test_net.py', '--imdb', 'shapes_attr_test', '--model', str(model), '--device', 'cpu',
                    '--tag', 'attr', '--set', *_dirs(root)], timeout=1800).stdout
    printed = re.search(r'Attribute mAP at gt boxes   = (\d\.\d+)', out)
    assert printed and out.index('Mean AP') < out.index('Attribute mAP'), out[-2000:]
    folder = root / 'output' / 'tiny' / 'shapes_attr_test' / 'attr' / model.stem
    summary = json.loads((folder / 'eval.json').read_text())
    at_gt = summary['attributes']['at_gt_boxes']
    assert at_gt['mean_ap'] == pytest.approx(float(printed.group(1)), abs=1e-4)
    assert set(at_gt['per_attribute']) == {'red', 'green', 'blue', 'yellow', 'purple', 'solid', 'outline'}
    print(f"object mAP {summary['mean_ap']:.3f}, attribute mAP at detections "
          f"{summary['attributes']['at_detections']['mean_ap']:.3f}, at gt boxes {at_gt['mean_ap']:.3f}")
    assert at_gt['mean_ap'] > MIN_GT_MAP
    assert summary['attributes']['at_detections']['mean_ap'] > 0.0
