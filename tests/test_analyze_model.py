"""faster_rcnn.analysis.model_cost and tools/analyze_model.py: parameters per part, FLOPs per part, memory.

The FLOP comparison with torchvision (``test_backbone_flops_match_torchvisions_published_ops``), stated:

* torchvision publishes ``Weights.IMAGENET1K_V1.meta['_ops']`` in "GFLOPS" that are multiply-adds: the
  FlopCounterMode count of torchvision's own classifier at 1x3x224x224, divided by 2 (FlopCounterMode counts
  2 FLOPs per multiply-add of convolutions and matrix products, nothing else), is within 1% of ``_ops``
  (this validates the counter and the convention; in fact it is within 0.08%).
* Ours: our backbone's ``head`` on a 224x224 image (a 14x14 map) plus its ``tail`` on one 7x7 RoI of the
  head's channels (the 7x7 map torchvision's classifier reaches at 224) plus what the detection cut leaves
  out of torchvision's network, counted from the layers' shapes:
  - vgg16: head = conv1_1..conv5_3 (the last max-pool, which has no multiply-adds, is cut), tail = fc6, fc7;
    left out: fc8 (4096 x 1000).
  - res50 / res101 / res152 (RESNET.LAYOUT torchvision): head = conv1..layer3, tail = layer4 at stride 1;
    left out: fc (2048 x 1000), and 3/4 of layer4's first 1x1 conv, which torchvision runs on the 14x14 map
    before its stride-2 3x3 while our stride-1 tail runs it on the 7x7 RoI (every other layer4 conv has
    7x7 outputs in both).
  - mobile (MobileNetV2, width 1.0): head = features[0..13], tail = features[14..18] with features[14]'s
    depthwise conv at stride 1; left out: the classifier (1280 x 1000), and 3/4 of features[14]'s
    expanding 1x1 conv, for the same reason as layer4's.
  The sum must be within 1% of ``_ops``, and equals the count over torchvision's model exactly.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from faster_rcnn.analysis.model_cost import (PARAMETER_PARTS, imagenet_check, inference_cost, parameter_parts,
                                             peak_memory, roi_pooling_macs, train_step_cost)
from faster_rcnn.data.test_loader import collate_test, prepare_test_image
from faster_rcnn.errors import ConfigError
from faster_rcnn.nets.backbone import Backbone
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.network import FasterRCNN
from settings_helpers import SHAPES_CFG, settings_for
from tool_runs import _dirs, run_tool

NETS = ('vgg16', 'res50', 'res101', 'res152', 'mobile')


@pytest.mark.parametrize('net', NETS)
def test_backbone_flops_match_torchvisions_published_ops(net):
    c = imagenet_check(net)
    assert abs(c.counted - c.published) / c.published < 0.01  # the counter's convention: MACs = FLOPs / 2
    assert c.relative_error() < 0.01, (c.ours, c.published)
    assert c.ours == pytest.approx(c.counted, rel=1e-12)
    # What the cut leaves out is more than rounding for ResNet-50 (1.9%) and MobileNetV2 (3.1%): without it
    # the comparison would fail there.
    if net in ('res50', 'mobile'):
        assert abs(c.head + c.tail - c.published) / c.published > 0.01


def test_imagenet_check_refuses_layouts_torchvision_does_not_have():
    from faster_rcnn.settings import BackboneSettings
    with pytest.raises(ConfigError, match='RESNET.LAYOUT'):
        imagenet_check('res50', BackboneSettings(resnet_layout='caffe'))
    with pytest.raises(ConfigError, match='no ImageNet classifier'):
        imagenet_check('tiny')


# Where the head's and the tail's parameters live (module names): the probes find them without names.
EXPECTED = {
    'tiny': (r'backbone\.features\.', r'backbone\.fc\.'),
    'res50': (r'backbone\.(conv1|layer[123])\.', r'backbone\.layer4\.'),
    'mobile': (r'backbone\.features\.([0-9]|1[0-3])\.', r'backbone\.features\.1[4-8]\.'),
}


@pytest.mark.parametrize('net', list(EXPECTED))
def test_parameter_parts_add_up_and_are_the_heads_and_tails(net):
    model = build_network(net, 5, settings_for(net, SHAPES_CFG if net == 'tiny' else None))
    p = parameter_parts(model)
    assert sum(p.parts[k][0] for k in PARAMETER_PARTS) == p.total == sum(x.numel() for x in model.parameters())
    assert sum(p.parts[k][1] for k in PARAMETER_PARTS) == p.trainable
    assert p.parts['unused'] == (0, 0)
    head_re, tail_re = EXPECTED[net]
    named = dict(model.named_parameters())
    head = sum(v.numel() for k, v in named.items() if re.match(head_re, k))
    tail = sum(v.numel() for k, v in named.items() if re.match(tail_re, k))
    assert p.parts['head'][0] == head and p.parts['tail'][0] == tail
    rpn = sum(v.numel() for k, v in named.items() if k.startswith('rpn_'))
    assert p.parts['rpn'][0] == rpn
    assert p.parts['predictors'][0] == 5 * (model.backbone.tail_channels + 1) * 5
    if net == 'res50':
        assert p.parts['head'][1] < p.parts['head'][0]  # conv1 and layer1 are frozen (RESNET.FIXED_BLOCKS 1)


@pytest.mark.slow
def test_vgg16_parameter_parts():
    model = build_network('vgg16', 21)
    p = parameter_parts(model)
    named = dict(model.named_parameters())
    assert p.parts['head'][0] == sum(v.numel() for k, v in named.items() if k.startswith('backbone.features.'))
    assert p.parts['tail'][0] == sum(v.numel() for k, v in named.items() if k.startswith('backbone.classifier.'))
    assert sum(p.parts[k][0] for k in PARAMETER_PARTS) == p.total


class _GainBackbone(Backbone):
    """A head that also uses a parameter outside any submodule (a learned gain), and a parameter that no part
    uses: the probe must find the first and report the second as unused."""

    head_channels = 8
    tail_channels = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=16, padding=1)
        self.gain = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.spare = nn.Parameter(torch.zeros(7))
        self.fc = nn.Linear(8 * 7 * 7, 16)

    def head(self, images):
        return self.conv(images) * self.gain

    def tail(self, pooled):
        return self.fc(pooled.flatten(1))


def test_parameter_probe_follows_use_not_modules():
    settings = settings_for('tiny', SHAPES_CFG)
    model = FasterRCNN(_GainBackbone(), 3, settings)
    p = parameter_parts(model)
    assert p.parts['head'][0] == 8 * 3 * 9 + 8 + 8  # conv weight and bias, and the gain
    assert p.parts['tail'][0] == 8 * 49 * 16 + 16
    assert p.parts['unused'][0] == 7


def _tiny_batches(model, sizes):
    out = []
    for h, w in sizes:
        im = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(h)).numpy()
        blob, info = prepare_test_image(im, model.settings.input)
        out.append(collate_test([{'image': blob, 'im_info': info, 'size': im.shape[:2], 'index': 0}]))
    return out


def test_inference_flops_per_part_are_the_layers():
    """The parts add up to FlopCounterMode's total, and each is what its layers cost: the head as counted
    alone, the RPN's three convolutions from their shapes, the tail and predictors per RoI times the RoIs."""
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model = build_network('tiny', 4, settings_for('tiny', SHAPES_CFG)).place('cpu').eval()
    batches = _tiny_batches(model, [(224, 300)])
    cost = inference_cost(model, batches)
    f = cost.flops
    assert sum(f[k] for k in ('head', 'rpn', 'proposals', 'roi_pooling', 'tail', 'predictors', 'postprocess',
                              'other')) == f['total']
    images = batches[0]['data']
    head = FlopCounterMode(display=False)
    with head, torch.no_grad():
        features = model.backbone.head(images)
    assert f['head'] == head.get_total_flops()
    _, c, h, w = features.shape
    a, r = model.num_anchors, model.settings.network.rpn_channels
    assert f['rpn'] == 2 * h * w * (c * r * 9 + r * 2 * a + r * 4 * a)
    tail = FlopCounterMode(display=False)
    with tail, torch.no_grad():
        model.backbone.tail(torch.zeros(1, c, 7, 7))
    assert f['tail'] == cost.rois * tail.get_total_flops()
    k, d = model.num_classes, model.backbone.tail_channels
    assert f['predictors'] == cost.rois * 2 * d * (k + 4 * k)
    assert f['roi_pooling'] == 0 and f['other'] == 0  # no formula for roi_align; the rest is elementwise
    assert cost.roi_pooling_macs > 0 and cost.peak_bytes > features.numel() * 4


def test_roi_pooling_estimate():
    rois = torch.tensor([[0, 0, 0, 63, 31], [0, 10, 10, 200, 300]], dtype=torch.float32)
    assert roi_pooling_macs(rois, 8, 'crop', 7, True) == 4 * 2 * 8 * 14 * 14
    assert roi_pooling_macs(rois, 8, 'crop', 7, False) == 4 * 2 * 8 * 7 * 7
    assert roi_pooling_macs(rois, 8, 'pool', 7, True) == 0
    # align: RoIs of 63/16 x 31/16 and 190/16 x 290/16 cells: 1x1 and 2x3 samples per bin.
    assert roi_pooling_macs(rois, 8, 'align', 7, True) == 4 * 8 * 49 * (1 * 1 + 2 * 3)


def test_peak_memory_counts_live_tensor_bytes():
    x = torch.randn(1000, 1000)  # made before: not counted
    with peak_memory(torch.device('cpu')) as m:
        a = x * 2  # 4 MB
        b = a + 1  # 8 MB live
        del a
        c = b @ b  # 8 MB live again: the peak stays 8 MB
        del b, c
    assert m['bytes'] == 2 * 4_000_000
    with peak_memory(torch.device('cpu')) as m:
        views = [x.view(-1)[:10], torch.empty(0)]  # a view and an empty tensor: no new storage
        del views
    assert m['bytes'] == 0


def test_training_step_cost_leaves_the_model_as_it_was():
    model = build_network('tiny', 4, settings_for('tiny', SHAPES_CFG)).place('cpu').eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _tiny_batches(model, [(224, 256)])[0]
    cost = train_step_cost(model, batch['data'], batch['im_info'], [torch.tensor([[20., 30., 120., 150., 1.]])])
    assert cost.flops > 0 and cost.peak_bytes > 0
    assert not model.training and all(p.grad is None for p in model.parameters())
    # Only the BatchNorm statistics of the tiny net move in a training forward; weights do not.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if 'running' not in k
               and 'num_batches' not in k)


# -- the tool ------------------------------------------------------------------------------------------------
def analyze(root, args):
    return run_tool(['tools/analyze_model.py', *args, '--device', 'cpu', '--set', *_dirs(root)], timeout=900)


@pytest.mark.slow
def test_tool_on_the_trained_snapshot(root, trained):
    proc = analyze(root, ['--model', str(trained), '--imdb', 'shapes_test', '--images', '2'])
    out = proc.stdout
    assert f'{trained} (tiny, 3 classes)' in out
    assert re.search(r'parameters: [\d,]+ \([\d,]+ trainable\)', out)
    for part in ('head', 'rpn', 'tail', 'predictors', 'unused', 'proposals', 'roi_pooling', 'postprocess'):
        assert re.search(rf'^  {part} ', out, re.M), part
    assert 'mean over 2 image(s)' in out and 'peak activation memory' in out
    assert 'training step (forward with losses + backward' in out
    assert 'no torchvision comparison' in out
    # Both at the model's own scale (160, max 384 as trained), not the defaults' 600.
    assert 'test scale 160 (max 384)' in out
    train_input = re.search(r'training step \(forward with losses \+ backward, input (\d+)x(\d+)\)', out)
    assert min(int(train_input.group(1)), int(train_input.group(2))) == 160, train_input.group(0)


@pytest.mark.slow
def test_tool_with_net_compares_with_torchvision(root):
    small = ['TEST.SCALES', '[224]', 'TEST.MAX_SIZE', '320', 'TRAIN.SCALES', '[224]', 'TRAIN.MAX_SIZE', '320']
    proc = run_tool(['tools/analyze_model.py', '--net', 'res50', '--images', '1', '--device', 'cpu', '--set',
                     *_dirs(root), *small], timeout=900)
    assert '--net res50 with initial weights, 20 classes' in proc.stdout
    assert 'published _ops 4.0890' in proc.stdout and 'torchvision counted 4.0892' in proc.stdout
