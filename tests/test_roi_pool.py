import numpy as np
import pytest
import torch
import torchvision

from faster_rcnn.layers.roi_pool import crop_and_resize, roi_features


def nchw(array, device, dtype=torch.float32):
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous().to(device=device, dtype=dtype)


def test_crop_and_resize_reference(reference, device):
    d = reference("crop_and_resize")
    features = nchw(d["in_feature_map"], device)
    rois = torch.from_numpy(d["in_rois"]).to(device)
    crops = crop_and_resize(features, rois, int(d["cfg_pre_pool_size"]))
    assert crops.shape == (128, 16, 14, 14) and crops.device.type == device.type
    np.testing.assert_allclose(crops.permute(0, 2, 3, 1).cpu().numpy(), d["out_crops14"], atol=1e-5, rtol=0)
    pooled = roi_features(features, rois, mode="crop", pooling_size=7, max_pool=True)
    np.testing.assert_allclose(pooled.permute(0, 2, 3, 1).cpu().numpy(), d["out_pool5"], atol=1e-5, rtol=0)
    direct = roi_features(features, rois, mode="crop", pooling_size=7, max_pool=False)
    np.testing.assert_allclose(direct.permute(0, 2, 3, 1).cpu().numpy(), d["out_crops7_direct"], atol=1e-5, rtol=0)


def test_edge_rois_from_reference(reference, device):
    d = reference("crop_and_resize")
    features = nchw(d["in_feature_map"], device)
    rois = torch.from_numpy(d["in_rois"]).to(device)
    crops = crop_and_resize(features, rois, 14).permute(0, 2, 3, 1).cpu().numpy()
    # A box past the feature map is all zeros; a reversed box is the flipped crop of its mirror.
    past = [i for i in range(100, 107) if not d["out_crops14"][i].any()]
    assert past, "the reference holds a roi past the map"
    for i in past:
        assert not crops[i].any()
    r = rois.cpu().numpy()
    rev = [i for i in range(100, 107) if r[i, 3] < r[i, 1]]
    for i in rev:
        mirrored = torch.tensor(r[i : i + 1], device=device)
        mirrored[:, [1, 3]] = mirrored[:, [3, 1]]
        flipped = crop_and_resize(features, mirrored, 14).flip(-1).permute(0, 2, 3, 1).cpu().numpy()
        np.testing.assert_allclose(crops[i], flipped[0], atol=1e-5)  # sample positions round differently


def test_hand_values_and_outside_samples(device):
    # Feature value = x + 10 * y, so bilinear samples are exact: value(x, y) = x + 10 y inside.
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    features = (xs + 10 * ys)[None, None].to(device)
    rois = torch.tensor([[0, 0, 0, 64, 48], [0, -16, 8, 48, 8]], dtype=torch.float32, device=device)
    crops = crop_and_resize(features, rois, 3)
    # First roi: samples at x = 0, 2, 4 and y = 0, 1.5, 3 (box edges in feature units).
    expect = torch.tensor([[0, 2, 4], [15, 17, 19], [30, 32, 34]], dtype=torch.float32)
    assert torch.allclose(crops[0, 0].cpu(), expect)
    # Second: x = -1 (outside -> 0), 1, 3; y = 0.5 for all rows.
    assert torch.allclose(crops[1, 0].cpu(), torch.tensor([[0, 6, 8]] * 3, dtype=torch.float32))
    assert crop_and_resize(features, rois[:0], 3).shape == (0, 1, 3, 3)


def test_batch_index_selects_image(reference, device):
    d = reference("crop_and_resize")
    features = nchw(d["in_feature_map"], device)
    batch = torch.cat((torch.randn_like(features), features, torch.randn_like(features)))
    rois = torch.from_numpy(d["in_rois"]).to(device)
    rois[:, 0] = 1
    crops = crop_and_resize(batch, rois, 14)
    np.testing.assert_allclose(crops.permute(0, 2, 3, 1).cpu().numpy(), d["out_crops14"], atol=1e-5, rtol=0)


def test_align_and_pool_are_torchvision(device):
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(1, 8, 12, 15, generator=gen).to(device)
    rois = torch.tensor([[0, 3, 5, 120, 90], [0, -10, -10, 300, 300], [0, 50, 60, 52, 61]], dtype=torch.float32, device=device)
    align = roi_features(features, rois, mode="align", pooling_size=7)
    assert torch.allclose(align, torchvision.ops.roi_align(features, rois, (7, 7), 1 / 16, 0, False))
    pool = roi_features(features, rois, mode="pool", pooling_size=7)
    assert torch.allclose(pool, torchvision.ops.roi_pool(features, rois, (7, 7), 1 / 16))
    assert align.shape == pool.shape == (3, 8, 7, 7)


def test_unknown_mode_is_an_error(device):
    features = torch.zeros(1, 2, 4, 4, device=device)
    rois = torch.zeros(1, 5, device=device)
    with pytest.raises(ValueError, match=r"'bilinear'.*'crop', 'align', 'pool'"):
        roi_features(features, rois, mode="bilinear")


@pytest.mark.parametrize("mode", ["crop", "crop14", "align", "pool"])
def test_gradcheck_wrt_features(device, mode):
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(1, 2, 5, 6, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    rois = torch.tensor([[0, 3, 5, 60, 70], [0, -20, 10, 100, 40], [0, 40, 20, 20, 60]], dtype=torch.float64, device=device)
    if mode == "crop":
        fn = lambda f: crop_and_resize(f, rois, 3)  # noqa: E731
    elif mode == "crop14":
        fn = lambda f: roi_features(f, rois, mode="crop", pooling_size=2, max_pool=True)  # noqa: E731
    else:
        fn = lambda f: roi_features(f, rois, mode=mode, pooling_size=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (features,), eps=1e-6, atol=1e-5)


def test_no_gradient_to_boxes(device):
    features = torch.randn(1, 2, 5, 6, device=device, requires_grad=True)
    rois = torch.tensor([[0, 3.0, 5, 60, 70]], device=device, requires_grad=True)
    crop_and_resize(features, rois, 3).sum().backward()
    assert rois.grad is None and features.grad is not None and bool(features.grad.abs().sum() > 0)
