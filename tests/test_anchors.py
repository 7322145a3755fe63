import numpy as np
import torch

from faster_rcnn.layers.anchors import anchors_for, generate_anchors, shift_anchors

DESIGN_ANCHORS = [
    [-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
    [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
    [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359],
]  # fmt: skip


def test_generate_anchors_exact_values(reference):
    d = reference("generate_anchors")
    anchors = generate_anchors()
    np.testing.assert_array_equal(anchors, DESIGN_ANCHORS)
    np.testing.assert_array_equal(anchors, d["out_anchors_default"])
    coco = generate_anchors(scales=tuple(d["cfg_scales_coco"]))
    assert coco.shape == (12, 4)
    np.testing.assert_array_equal(coco, d["out_anchors_coco"])


def test_shift_anchors_reference(reference, device):
    d = reference("generate_anchors")
    h, w = int(d["cfg_feat_height"]), int(d["cfg_feat_width"])
    shifted = shift_anchors(generate_anchors(), h, w, 16, device=device)
    assert shifted.dtype == torch.float32 and shifted.device.type == device.type
    assert shifted.shape[0] == int(d["out_length_default"])
    np.testing.assert_array_equal(shifted.cpu().numpy(), d["out_shifted_default"])
    coco = anchors_for(h, w, device, scales=(4, 8, 16, 32))
    np.testing.assert_array_equal(coco.cpu().numpy(), d["out_shifted_coco"])


def test_row_order_anchor_fastest_then_x_then_y(device):
    base = generate_anchors()
    shifted = anchors_for(3, 5, device).cpu().numpy()
    y, x, a = 2, 4, 6
    row = (y * 5 + x) * 9 + a
    np.testing.assert_array_equal(shifted[row], base[a] + 16 * np.array([x, y, x, y]))


def test_anchors_are_cached_per_key(device):
    first = anchors_for(4, 6, device)
    assert anchors_for(4, 6, device) is first
    assert anchors_for(4, 6, device, scales=(4, 8, 16, 32)) is not first
    assert anchors_for(4, 7, device).shape == (4 * 7 * 9, 4)
