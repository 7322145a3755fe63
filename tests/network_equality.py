"""Run a converted detector the way the original networks were run for the fixtures, and compare.

The fixtures (tests/data/tf_net_*.npz, rtl_net_*.npz) hold what tf-faster-rcnn's TensorFlow graph or
pytorch-faster-rcnn's module computed on a 100x140 image at scale 1 with seeded weights: the head feature
map, the RPN's foreground probabilities and deltas, and for given RoIs the tail features, class probabilities
and de-normalised box deltas. ``our_outputs`` computes the same from a detector file through this project's
own input pipeline (the file's recorded normalisation), in the original layouts' row orders.
"""
from __future__ import annotations

import numpy as np
import torch

from faster_rcnn.data.test_loader import prepare_test_image
from faster_rcnn.inference import Detector
from faster_rcnn.layers.roi_pool import roi_features
from faster_rcnn.model_file import open_detector


def load_converted(path: str):
    """The detector file in ``path`` and its network built from the recorded config (no --cfg), on the CPU, in
    eval mode."""
    detector = open_detector(path)
    assert detector.record, f'{path} records no config'
    return detector, Detector.load(path, 'cpu').model


@torch.no_grad()
def our_outputs(model, image: np.ndarray, rois: np.ndarray) -> dict[str, np.ndarray]:
    """head (1, C, H, W); rpn_fg (H*W*A,) and rpn_deltas (H*W*A, 4) in (y, x, anchor) order; pool5 (R, C, P, P);
    fc7 (R, D); cls_prob (R, K); bbox_pred (R, 4K) de-normalised; proposals (N, 5) of the eval forward."""
    h, w = image.shape[:2]
    # Scale 1: the fixtures fed the image as it is.
    inputs = model.settings.with_test(scales=min(h, w), max_size=max(h, w)).input
    blob, info = prepare_test_image(image, inputs)
    data = torch.from_numpy(blob).permute(2, 0, 1)[None].contiguous()
    im_info = torch.from_numpy(info)[None]
    assert info[2] == 1.0 and tuple(data.shape[2:]) == (h, w)
    x = data.contiguous(memory_format=model.input_memory_format)
    head = model.backbone.head(x)
    _, fg, deltas = model._rpn(head)
    r = torch.from_numpy(rois)
    s = model.settings.network
    pooled = roi_features(head, r, mode=s.pooling_mode, pooling_size=s.pooling_size,
                          max_pool=model.backbone.crop_max_pool, spatial_scale=1.0 / 16)
    fc7 = model.backbone.tail(pooled)
    cls_score, bbox = model._box_head(head, r)
    proposals, _, _ = model(data, im_info)[:3]
    return {'head': head.numpy(), 'rpn_fg': fg[0].numpy(), 'rpn_deltas': deltas[0].numpy(),
            'pool5': pooled.numpy(), 'fc7': fc7.numpy(), 'cls_prob': torch.softmax(cls_score, 1).numpy(),
            'bbox_pred': (bbox * model._bbox_stds + model._bbox_means).numpy(), 'proposals': proposals.numpy()}


def rpn_from_nhwc(cls_prob: np.ndarray, bbox_pred: np.ndarray, num_anchors: int) -> tuple[np.ndarray, np.ndarray]:
    """The originals' (1, H, W, 2A) probabilities (channel k*A + a, k = bg/fg) and (1, H, W, 4A) deltas ->
    foreground (H*W*A,) and deltas (H*W*A, 4), rows in (y, x, anchor) order."""
    fg = cls_prob[0, :, :, num_anchors:].reshape(-1)
    return fg, bbox_pred.reshape(-1, 4)


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs| (shapes must agree)."""
    assert ours.shape == theirs.shape, f'shapes differ: {ours.shape} vs {theirs.shape}'
    return float(np.abs(ours.astype(np.float64) - theirs).max() / np.abs(theirs).max())


def absolute_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape, f'shapes differ: {ours.shape} vs {theirs.shape}'
    return float(np.abs(ours.astype(np.float64) - theirs).max())
