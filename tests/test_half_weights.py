"""bf16 inference on weights held in bf16 once (``nets.half_weights``): the same results as autocast on the fp32
network, without casting a weight per call; the fp32 path untouched; bf16 RoI pooling on fp32 boxes."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tool_runs import REPO

from faster_rcnn.config import load_config
from faster_rcnn.data.test_loader import collate_test
from faster_rcnn.inference.detector import Detector
from faster_rcnn.layers.roi_pool import roi_features
from faster_rcnn.nets.amp import autocast
from faster_rcnn.nets.folded_norm import FoldedConv2d
from faster_rcnn.nets.half_weights import held_weight_dtypes, with_half_weights
from faster_rcnn.nets.network import FasterRCNN
from faster_rcnn.nets.resnet_butd import ResNetButd
from faster_rcnn.settings import ModelSettings

CLASSES = [f'c{i}' for i in range(6)]


def _butd() -> FasterRCNN:
    """A small res101_butd (2 units per stage, width 16; RoIPool 14x14, dilated res5, folded norms; 40 rois), seeded."""
    torch.manual_seed(0)
    config = load_config(str(REPO / 'experiments' / 'cfgs' / 'res101_butd.yml'), ['TEST.RPN_POST_NMS_TOP_N', '40'])
    settings = ModelSettings.from_config(config, 'res101_butd').with_test(score_thresh=0.0)
    model = FasterRCNN(ResNetButd(units=(2, 2, 2, 2), width=16), len(CLASSES), settings)
    with torch.no_grad():  # the norms' statistics away from the identity, so that folding them matters
        for m in model.modules():
            if isinstance(m, FoldedConv2d):
                norm = m._norm[0]
                norm.running_var.uniform_(0.5, 2.0)
                norm.running_mean.normal_(0, 0.1)
                norm.weight.uniform_(0.5, 1.5)
    return model.place('cpu').eval()


def _blob() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, 160, 224, generator=g), torch.tensor([[160.0, 224.0, 1.0]])


class _Casts(TorchDispatchMode):
    """Counts the dtype conversions (``aten._to_copy``) dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _outputs(model: FasterRCNN, images: torch.Tensor, im_info: torch.Tensor) -> tuple[object, int]:
    with torch.no_grad(), autocast(images.device, 'bf16'), _Casts() as casts:
        out = model(images, im_info)
    return out, casts.count


def test_the_copy_holds_bf16_weights_once_and_computes_what_autocast_computes():
    model = _butd()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    half = with_half_weights(model, torch.bfloat16)
    assert held_weight_dtypes(half) == {torch.bfloat16}
    assert not any(isinstance(m, FoldedConv2d) for m in half.modules())
    # The original is left as it was: fp32, the same values, still folding at every call.
    assert held_weight_dtypes(model) == {torch.float32}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    images, im_info = _blob()
    ref, ref_casts = _outputs(model, images, im_info)
    out, casts = _outputs(half, images, im_info)
    # Autocast casts each Conv2d / Linear weight and bias (a folded norm's shift included) at every call; the copy
    # casts none of them (the casts left are of activations and boxes).
    layers = (m for m in half.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert ref_casts - casts >= sum(1 + (m.bias is not None) for m in layers)
    assert casts < 10
    # The held weights are the values autocast makes (the fp32 folded product rounded to bf16) and the kernels see
    # the same inputs, so the outputs agree. The proposals and RoIs are fp32 boxes chosen by NMS: any difference
    # would show as a different roi, so they must be equal; the class probabilities and deltas are fp32 results of
    # bf16 layers, allowed one bf16 rounding step (2^-8 relative) in case a kernel sums in another order.
    assert torch.equal(out.rois, ref.rois) and out.rois.dtype == torch.float32
    for name in ('cls_prob', 'bbox_pred'):
        a, b = getattr(out, name), getattr(ref, name)
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2 ** -8, atol=1e-6)


def test_the_bf16_detector_runs_the_copy_and_the_fp32_detector_the_model():
    model = _butd()
    fp32 = Detector.from_model(model, CLASSES)
    bf16 = Detector.from_model(model, CLASSES, amp='bf16')
    assert fp32._backend.runner is model and fp32.model is model
    assert bf16.model is model and held_weight_dtypes(bf16._backend.runner) == {torch.bfloat16}
    image = np.random.default_rng(2).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    d32, d16 = fp32(image), bf16(image)
    assert len(d32.boxes) > 0
    # bf16 detections are those of autocast on the fp32 model (its detect with amp='bf16'): see the test above.
    batch = collate_test([bf16._backend.item(image, 0)])
    ref = model.detect(batch['data'], batch['im_info'], batch['sizes'], amp='bf16')[0]
    assert len(ref.labels) > 0
    np.testing.assert_array_equal(d16.labels, ref.labels.numpy())
    np.testing.assert_allclose(d16.scores, ref.scores.numpy(), rtol=2 ** -8, atol=1e-6)
    np.testing.assert_allclose(d16.boxes, ref.boxes.numpy(), rtol=2 ** -8, atol=1e-3)


def test_roi_pool_of_bf16_features_keeps_the_boxes_fp32():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(1, 8, 70, 70, generator=g).bfloat16()
    # Coordinates near 1000 pixels: bf16 would move 1003 to 1000 and 1108 to 1104, another bin of the map.
    rois = torch.tensor([[0.0, 1003.0, 501.0, 1108.0, 611.0], [0.0, 3.0, 5.0, 60.0, 90.0]])
    for mode in ('pool', 'align'):
        got = roi_features(features, rois, mode=mode, pooling_size=7)
        want = roi_features(features.float(), rois, mode=mode, pooling_size=7)
        assert got.dtype == torch.bfloat16
        # pool: a max of bf16 values is exact; align: fp32 interpolation rounded once to bf16.
        torch.testing.assert_close(got.float(), want.bfloat16().float(), rtol=0, atol=0)
