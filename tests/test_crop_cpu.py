"""The Cython CPU crop kernels (float32) against the tensor code path (float64, autograd) they replace."""
import pytest
import torch
import torch.nn.functional as F

from faster_rcnn.layers import roi_pool
from faster_rcnn.layers.roi_pool import crop_and_resize, roi_features
from faster_rcnn.ops.crop_cpu import crop_pool_cpu


def _rois(gen: torch.Generator, n: int, images: int, width: float, height: float) -> torch.Tensor:
    """Random boxes: ordinary, tiny, past the map, reversed, and one exactly on the map's corners."""
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([width, height]) * 1.2 - 20
    wh = torch.rand(n, 2, generator=gen) * 150 - 10  # some negative: reversed boxes
    idx = torch.randint(0, images, (n, 1), generator=gen).float()
    rois = torch.cat([idx, xy, xy + wh], 1)
    corner = torch.tensor([[0, 0, 0, width - 16, height - 16]])  # samples exactly on 0 and H_f - 1
    return torch.cat([rois, corner], 0)


@pytest.fixture
def case():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 24, 9, 13, generator=gen)
    # Integer-valued, mostly repeated features: many exact ties inside the max-pool windows.
    features[1] = torch.randint(0, 3, (24, 9, 13), generator=gen).float()
    rois = _rois(gen, 60, 2, 13 * 16, 9 * 16)
    return features, rois


@pytest.mark.parametrize("max_pool", [True, False])
def test_values_match_the_float64_tensor_path(case, max_pool):
    features, rois = case
    fast = roi_features(features, rois, mode="crop", pooling_size=7, max_pool=max_pool)
    slow = roi_features(features.double(), rois.double(), mode="crop", pooling_size=7, max_pool=max_pool)
    assert fast.dtype == torch.float32 and fast.is_contiguous() and fast.shape == (61, 24, 7, 7)
    torch.testing.assert_close(fast, slow.float(), atol=1e-5, rtol=1e-5)
    assert not fast[:, :, :, :].eq(0).all()


def test_fused_max_pool_is_max_pool_of_the_crop(case):
    features, rois = case
    fused = roi_features(features, rois, mode="crop", pooling_size=7, max_pool=True)
    separate = F.max_pool2d(crop_and_resize(features, rois, 14), 2, 2)
    assert torch.equal(fused, separate)


def _grad(features: torch.Tensor, rois: torch.Tensor, max_pool: bool, grad_out: torch.Tensor) -> torch.Tensor:
    f = features.clone().requires_grad_()
    roi_features(f, rois, mode="crop", pooling_size=7, max_pool=max_pool).backward(grad_out.to(f.dtype))
    return f.grad


@pytest.mark.parametrize("max_pool", [True, False])
def test_gradient_matches_the_float64_tensor_path(case, max_pool):
    features, rois = case
    features, rois = features[:1], rois.clone()
    rois[:, 0] = 0  # the random image only: near-ties would make float32 and float64 pick different maxima
    grad_out = torch.randn(61, 24, 7, 7, generator=torch.Generator().manual_seed(5))
    fast = _grad(features, rois, max_pool, grad_out)
    slow = _grad(features.double(), rois.double(), max_pool, grad_out)
    torch.testing.assert_close(fast, slow.float(), atol=1e-5, rtol=1e-5)
    assert fast.abs().sum() > 0


def test_ties_take_the_first_maximum_like_max_pool2d(case):
    features, rois = case
    grad_out = torch.randn(61, 24, 7, 7, generator=torch.Generator().manual_seed(5))
    fast = _grad(features, rois, True, grad_out)
    # The float32 tensor path (embedding_bag + max_pool2d) blends bit-identically, so ties match exactly.
    f = features.clone().requires_grad_()
    table, rows, weights = roi_pool._neighbours(f, rois, 14, 1.0 / 16)
    roi_pool._blend_tensor(table, rows, weights, 2).backward(grad_out)
    torch.testing.assert_close(fast, f.grad, atol=1e-5, rtol=1e-5)
    assert fast[1].abs().sum() > 0


def test_result_does_not_depend_on_the_thread_count(case):
    features, rois = case
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            f = features.clone().requires_grad_()
            out = roi_features(f, rois, mode="crop", pooling_size=7, max_pool=True)
            out.backward(torch.ones_like(out))
            outs.append((out.detach(), f.grad))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_nan_features_propagate_like_the_tensor_path():
    features = torch.zeros(1, 16, 6, 6)
    features[0, 3, 2, 2] = float("nan")
    rois = torch.tensor([[0, 0, 0, 80, 80], [0, 48, 48, 80, 80]], dtype=torch.float32)
    fast = roi_features(features, rois, mode="crop", pooling_size=2, max_pool=True)
    slow = roi_features(features.double(), rois.double(), mode="crop", pooling_size=2, max_pool=True)
    assert torch.equal(fast.isnan(), slow.isnan()) and fast.isnan().any()


def test_rows_outside_the_table_are_an_error():
    table = torch.zeros(10, 4)
    rows = torch.zeros(1, 2, 2, 4, dtype=torch.int64)
    weights = torch.ones(1, 2, 2, 4)
    rows[0, 1, 1, 3] = 10
    with pytest.raises(ValueError, match=r"10 rows, got \[0, 10\]"):
        crop_pool_cpu(table, rows, weights, 2)
    with pytest.raises(ValueError, match="divisible by k=3"):
        crop_pool_cpu(table, rows.clamp(max=9), weights, 3)
    with pytest.raises(ValueError, match="float32 CPU tensor"):
        crop_pool_cpu(table.double(), rows.clamp(max=9), weights, 2)


def test_second_derivative_is_an_error_not_zero():
    features = torch.randn(1, 16, 6, 6, requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 80, 80]], dtype=torch.float32)
    out = roi_features(features, rois, mode="crop", pooling_size=2, max_pool=True)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), features, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|not implemented"):
        grad.sum().backward()
