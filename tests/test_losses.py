import numpy as np
import torch

from faster_rcnn.layers.losses import smooth_l1_loss


def test_rpn_and_rcnn_reference(reference, device):
    d = reference("smooth_l1_loss")
    arr = lambda k: torch.from_numpy(d[k]).to(device)  # noqa: E731
    rpn = smooth_l1_loss(
        arr("in_rpn_bbox_pred"), arr("in_rpn_bbox_targets"), arr("in_rpn_inside_weights"), arr("in_rpn_outside_weights"),
        sigma=float(d["cfg_rpn_sigma"]), dim=tuple(int(v) for v in d["cfg_rpn_dims"]),
    )  # fmt: skip
    assert rpn.dim() == 0
    np.testing.assert_allclose(rpn.item(), float(d["out_rpn_loss_f64"]), rtol=1e-6)
    rcnn = smooth_l1_loss(
        arr("in_rcnn_bbox_pred"), arr("in_rcnn_bbox_targets"), arr("in_rcnn_inside_weights"), arr("in_rcnn_outside_weights"),
        sigma=float(d["cfg_rcnn_sigma"]), dim=tuple(int(v) for v in d["cfg_rcnn_dims"]),
    )  # fmt: skip
    np.testing.assert_allclose(rcnn.item(), float(d["out_rcnn_loss_f64"]), rtol=1e-6)


def test_small_reference_both_sigmas(reference, device):
    d = reference("smooth_l1_loss")
    pred = torch.from_numpy(d["in_small_pred"]).to(device)
    target = torch.from_numpy(d["in_small_targets"]).to(device)
    ones = torch.ones_like(pred)
    for sigma, key in ((3.0, "out_small_loss_sigma3"), (1.0, "out_small_loss_sigma1")):
        loss = smooth_l1_loss(pred, target, ones, ones, sigma=sigma, dim=(1,))
        np.testing.assert_allclose(loss.item(), float(d[key]), rtol=1e-6)


def test_hand_values_and_strict_threshold(device):
    pred = torch.tensor([[1.0, 0.5, 3.0, 0.0]], device=device)
    zeros = torch.zeros_like(pred)
    ones = torch.ones_like(pred)
    # sigma 1: |1.0| is not < 1 -> 1 - 0.5; 0.5 -> 0.125; 3 -> 2.5; 0 -> 0.
    assert torch.isclose(smooth_l1_loss(pred, zeros, ones, ones, 1.0, (1,)), torch.tensor(3.125, device=device))
    # Inside weights scale the difference, outside weights the loss.
    inside = torch.tensor([[0.0, 2.0, 0.0, 0.0]], device=device)
    outside = torch.full_like(pred, 0.5)
    assert torch.isclose(smooth_l1_loss(pred, zeros, inside, outside, 1.0, (1,)), torch.tensor(0.25, device=device))
    # Averaged over the first axis.
    two = torch.cat((pred, zeros))
    assert torch.isclose(smooth_l1_loss(two, torch.zeros_like(two), torch.ones_like(two), torch.ones_like(two)), torch.tensor(3.125 / 2, device=device))
