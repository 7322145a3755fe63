"""Frozen BatchNorms folded into their convolutions: same values, same gradients, same state_dict."""
import copy

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet50
from torchvision.ops.misc import FrozenBatchNorm2d

from faster_rcnn.nets.folded_norm import AppliedNorm, FoldedConv2d, fold_frozen_norms
from faster_rcnn.nets.mobilenet import MobileNetV2
from faster_rcnn.nets.resnet import ResNet


def _random_norm(channels: int, gen: torch.Generator) -> FrozenBatchNorm2d:
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=gen))
    norm.running_mean.copy_(torch.randn(channels, generator=gen))
    norm.running_var.copy_(torch.rand(channels, generator=gen) + 0.1)
    return norm


@pytest.mark.parametrize("bias", [False, True])
def test_folded_pair_matches_conv_then_norm(device, bias):
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=bias)
    reference = nn.Sequential(conv, _random_norm(8, gen)).to(device)
    folded = copy.deepcopy(reference)
    assert fold_frozen_norms(folded) == 1
    assert isinstance(folded[0], FoldedConv2d) and isinstance(folded[1], AppliedNorm)
    assert folded.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(2, 6, 9, 11, generator=gen).to(device)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(2, 8, 5, 6, generator=gen).to(device)
    out_r, out_f = reference(xr), folded(xf)
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)
    out_r.backward(g)
    out_f.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(folded[0].weight.grad, reference[0].weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(folded[0].bias.grad, reference[0].bias.grad, rtol=1e-4, atol=1e-4)


def test_folded_conv_reads_the_norm_after_load_and_move():
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), FrozenBatchNorm2d(4))
    fold_frozen_norms(net)
    source = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), _random_norm(4, gen))
    net.load_state_dict(source.state_dict())
    net = net.to(torch.float64)
    x = torch.randn(1, 3, 5, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(net(x), source.to(torch.float64)(x))


def _norm_types(module: nn.Module) -> set:
    return {type(m) for m in module.modules() if isinstance(m, FrozenBatchNorm2d)}


def test_backbones_fold_every_norm_and_keep_torchvision_keys():
    res = ResNet('res50')
    mob = MobileNetV2()
    assert _norm_types(res) == {AppliedNorm} and _norm_types(mob) == {AppliedNorm}
    # Every norm is applied by exactly one convolution.
    for net in (res, mob):
        norms = [m for m in net.modules() if isinstance(m, AppliedNorm)]
        owners = [m._norm[0] for m in net.modules() if isinstance(m, FoldedConv2d)]
        assert len(owners) == len(norms) and {id(n) for n in owners} == {id(n) for n in norms}
    assert len([m for m in res.modules() if isinstance(m, AppliedNorm)]) == 53  # stem + 16 x 3 + 4 downsamples
    tv_keys = set(resnet50(norm_layer=FrozenBatchNorm2d).state_dict()) - {'fc.weight', 'fc.bias'}
    assert set(res.state_dict()) == tv_keys
    tv_mobile = set(mobilenet_v2(norm_layer=FrozenBatchNorm2d).state_dict())
    assert set(mob.state_dict()) == {k for k in tv_mobile if not k.startswith('classifier.')}


def test_unknown_parents_are_left_alone():
    class Custom(nn.Module):  # a forward that could do anything between the two
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.norm = FrozenBatchNorm2d(2)

    custom = Custom()
    assert fold_frozen_norms(custom) == 0 and type(custom.norm) is FrozenBatchNorm2d
