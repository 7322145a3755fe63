"""Parameter groups of build_optimizer: tf-faster-rcnn's bias rules, frozen layers, MobileNet decay."""
import pytest
import torch

from faster_rcnn.engine.optimizer import build_optimizer
from faster_rcnn.nets.factory import build_network

from faster_rcnn.settings import ModelSettings, OptimizerSettings
from faster_rcnn.config import new_config

# A private config object, back to the defaults before each test (the global cfg is never touched).
cfg = new_config()


@pytest.fixture(autouse=True)
def _reset():
    cfg.clear()
    cfg.update(new_config())
    yield


def _group_of(opt):
    return {id(p): g for g in opt.param_groups for p in g['params']}


def test_vgg16_groups_double_bias_no_bias_decay_and_frozen_left_out():
    cfg.TRAIN.LEARNING_RATE = 0.01
    cfg.TRAIN.WEIGHT_DECAY = 5e-4
    cfg.TRAIN.DOUBLE_BIAS = True
    cfg.TRAIN.BIAS_DECAY = False
    model = build_network('vgg16', 21, ModelSettings.from_config(cfg, 'vgg16'))
    opt = build_optimizer(model, OptimizerSettings.from_config(cfg))
    assert isinstance(opt, torch.optim.SGD)
    groups = _group_of(opt)
    named = dict(model.named_parameters())
    assert set(groups) == {id(p) for p in named.values() if p.requires_grad}
    assert id(named['backbone.features.0.weight']) not in groups  # conv1_1 is frozen
    for n, p in named.items():
        if not p.requires_grad:
            continue
        g = groups[id(p)]
        assert g['momentum'] == 0.9
        if n.endswith('bias'):
            assert (g['lr'], g['lr_mult'], g['weight_decay']) == (0.02, 2.0, 0.0), n
        else:
            assert (g['lr'], g['lr_mult'], g['weight_decay']) == (0.01, 1.0, 5e-4), n


def test_bias_decay_and_single_bias_lr():
    cfg.TRAIN.DOUBLE_BIAS = False
    cfg.TRAIN.BIAS_DECAY = True
    model = build_network('tiny', 4, ModelSettings.from_config(cfg, 'tiny'))
    opt = build_optimizer(model, OptimizerSettings.from_config(cfg))
    assert len(opt.param_groups) == 2
    g = _group_of(opt)[id(model.cls_score.bias)]
    assert g['lr_mult'] == 1.0 and g['weight_decay'] == cfg.TRAIN.WEIGHT_DECAY


def test_mobilenet_backbone_uses_its_own_decay_and_spares_depthwise_kernels():
    model = build_network('mobile', 4, ModelSettings.from_config(cfg, 'mobile'))
    opt = build_optimizer(model, OptimizerSettings.from_config(cfg))
    g = _group_of(opt)
    depthwise = model.backbone.features[10].conv[1][0]      # 3x3 depthwise conv of a trainable block
    pointwise = model.backbone.features[10].conv[2]          # 1x1 projection
    assert depthwise.groups == depthwise.in_channels > 1
    assert g[id(depthwise.weight)]['weight_decay'] == 0.0
    assert g[id(pointwise.weight)]['weight_decay'] == cfg.MOBILENET.WEIGHT_DECAY
    assert g[id(model.rpn_conv.weight)]['weight_decay'] == cfg.TRAIN.WEIGHT_DECAY
    cfg.MOBILENET.REGU_DEPTH = True
    g = _group_of(build_optimizer(model, OptimizerSettings.from_config(cfg)))
    assert g[id(depthwise.weight)]['weight_decay'] == cfg.MOBILENET.WEIGHT_DECAY


def test_adamw_and_unknown_optimizer():
    cfg.TRAIN.OPTIMIZER = 'adamw'
    cfg.TRAIN.LEARNING_RATE = 1e-3
    model = build_network('tiny', 4, ModelSettings.from_config(cfg, 'tiny'))
    opt = build_optimizer(model, OptimizerSettings.from_config(cfg))
    assert isinstance(opt, torch.optim.AdamW)
    assert {g['lr'] for g in opt.param_groups} == {1e-3, 2e-3}
    cfg.TRAIN.OPTIMIZER = 'lamb'
    with pytest.raises(ValueError, match="TRAIN.OPTIMIZER.*'lamb'"):
        build_optimizer(model, OptimizerSettings.from_config(cfg))


def test_optimizer_step_moves_only_trainable_parameters():
    torch.manual_seed(0)
    model = build_network('res50', 4, ModelSettings.from_config(cfg, 'res50'))
    opt = build_optimizer(model, OptimizerSettings.from_config(cfg))
    frozen = model.backbone.conv1.weight.clone()
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)
    before = model.rpn_conv.weight.clone()
    opt.step()
    assert torch.equal(frozen, model.backbone.conv1.weight)
    assert not torch.equal(before, model.rpn_conv.weight)
