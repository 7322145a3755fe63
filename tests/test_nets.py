"""Backbones: torchvision weights loaded through our loader give torchvision's activations; freezing rules."""
import pytest
import torch
import torchvision
from torch import nn

from faster_rcnn.nets.factory import build_backbone
from faster_rcnn.nets.weights import load_imagenet_weights

from faster_rcnn.settings import BackboneSettings, ModelSettings
from faster_rcnn.config import new_config

# A private config object, back to the defaults before each test (the global cfg is never touched).
cfg = new_config()


@pytest.fixture(autouse=True)
def _reset():
    cfg.clear()
    cfg.update(new_config())
    yield


def _torchvision(name):
    torch.manual_seed(1234)
    builders = {'vgg16': torchvision.models.vgg16, 'res50': torchvision.models.resnet50,
                'res101': torchvision.models.resnet101, 'mobile': torchvision.models.mobilenet_v2}
    model = builders[name](weights=None)
    # Non-trivial BN statistics, so that using batch statistics instead of them would show.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _loaded_backbone(name, tmp_path):
    tv = _torchvision(name)
    path = tmp_path / f'{name}.pth'
    torch.save(tv.state_dict(), path)
    torch.manual_seed(99)  # our own init differs from the file's
    backbone = build_backbone(name, BackboneSettings.from_config(cfg))
    load_imagenet_weights(backbone, str(path))
    return tv, backbone


def _tv_head(name, tv):
    if name == 'vgg16':
        return tv.features[:30]           # conv1_1 .. conv5_3 + ReLU, without the last max-pool
    if name.startswith('res'):
        return nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool, tv.layer1, tv.layer2, tv.layer3)
    return tv.features[:14]               # MobileNetV2 up to stride 16


@pytest.mark.parametrize('name', ['vgg16', 'res50', 'res101', 'mobile'])
def test_head_matches_torchvision(name, tmp_path):
    tv, backbone = _loaded_backbone(name, tmp_path)
    backbone.train()  # frozen BN must still use the running statistics
    # 96 x 128 is a multiple of 16, where ceil-mode and floor-mode pools agree.
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ours = backbone.head(x)
        ref = _tv_head(name, tv)(x)
    assert ours.shape == ref.shape == (2, backbone.head_channels, 6, 8)
    # Frozen BN folds its statistics into one scale and shift: float32 rounding differs from BatchNorm2d's
    # by about 1e-6 of the activations' scale per layer, so the tolerance follows that scale.
    scale = ref.abs().max().item()
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * max(scale, 1.0))


@pytest.mark.parametrize('name', ['vgg16', 'res50', 'mobile', 'tiny'])
@pytest.mark.parametrize('hw', [(600, 800), (97, 130), (65, 33)])
def test_feature_map_is_ceil_of_stride_16(name, hw):
    backbone = build_backbone(name, BackboneSettings.from_config(cfg)).eval()
    with torch.no_grad():
        f = backbone.head(torch.zeros(1, 3, *hw))
    assert f.shape[2:] == (-(-hw[0] // 16), -(-hw[1] // 16))


def test_vgg16_ceil_mode_pools_match_torchvision_on_odd_sizes(tmp_path):
    tv, backbone = _loaded_backbone('vgg16', tmp_path)
    ref_head = _tv_head('vgg16', tv)
    for m in ref_head:
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        torch.testing.assert_close(backbone.head(x), ref_head(x), rtol=1e-4, atol=1e-4)


def test_vgg16_tail_is_fc6_fc7(tmp_path):
    tv, backbone = _loaded_backbone('vgg16', tmp_path)
    backbone.eval()
    pooled = torch.randn(3, 512, 7, 7)
    with torch.no_grad():
        ref = tv.classifier[:6](pooled.flatten(1))
        torch.testing.assert_close(backbone.tail(pooled), ref)


def test_resnet_tail_is_layer4_at_stride_1_then_mean(tmp_path):
    tv, backbone = _loaded_backbone('res50', tmp_path)
    pooled = torch.randn(2, 1024, 7, 7)
    with torch.no_grad():
        out = backbone.tail(pooled)
        # Same weights with stride 1: what torchvision's layer4 gives when its strides are set to 1.
        tv.layer4[0].conv2.stride = (1, 1)
        tv.layer4[0].downsample[0].stride = (1, 1)
        ref = tv.layer4(pooled).mean(dim=(2, 3))
    assert out.shape == (2, 2048)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def _frozen_names(backbone):
    return {n for n, p in backbone.named_parameters() if not p.requires_grad}


def test_vgg16_freezes_conv1_and_conv2_only():
    b = build_backbone('vgg16', BackboneSettings.from_config(cfg))
    frozen = _frozen_names(b)
    # conv1_1, conv1_2, conv2_1, conv2_2 are features 0, 2, 5, 7
    assert frozen == {f'features.{i}.{k}' for i in (0, 2, 5, 7) for k in ('weight', 'bias')}


@pytest.mark.parametrize('fixed', [0, 1, 3])
def test_resnet_freezes_root_fixed_blocks_and_every_bn(fixed):
    cfg.RESNET.FIXED_BLOCKS = fixed
    b = build_backbone('res50', BackboneSettings.from_config(cfg))
    for n, p in b.named_parameters():
        layer = n.split('.')[0]
        is_bn = '.bn' in f'.{n}' or 'downsample.1' in n
        expect_frozen = (layer in ('conv1', 'bn1') or is_bn
                         or (layer.startswith('layer') and int(layer[5]) <= fixed))
        assert p.requires_grad != expect_frozen, n


def test_mobilenet_freezes_fixed_layers_and_every_bn():
    cfg.MOBILENET.FIXED_LAYERS = 5
    b = build_backbone('mobile', BackboneSettings.from_config(cfg))
    for n, p in b.named_parameters():
        idx = int(n.split('.')[1])
        module = b.get_submodule(n.rsplit('.', 1)[0])
        expect_frozen = idx < 5 or isinstance(module, nn.BatchNorm2d)
        assert p.requires_grad != expect_frozen, n


def _train_step(backbone, x):
    opt = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    backbone.train()
    f = backbone.head(x)
    pooled = torch.nn.functional.adaptive_max_pool2d(f, 7)
    # The head term keeps gradients alive where an untrained tail saturates (MobileNet's ReLU6).
    loss = backbone.tail(pooled).square().mean() + f.square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize('name', ['res50', 'mobile', 'vgg16'])
def test_training_step_leaves_frozen_params_and_bn_stats_untouched(name):
    torch.manual_seed(0)
    b = build_backbone(name, BackboneSettings.from_config(cfg))
    before = {k: v.clone() for k, v in b.state_dict().items()}
    _train_step(b, torch.randn(2, 3, 64, 64))
    after = b.state_dict()
    frozen = _frozen_names(b)
    for n, p in b.named_parameters():
        assert (p.grad is None) == (n in frozen), n
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    trainable = {n for n, p in b.named_parameters() if p.requires_grad}
    # Only trainable parameters move: no BN running statistics, no frozen weight.
    assert changed and changed <= trainable
    assert not any('running_' in k or 'num_batches' in k for k in changed)


def test_tiny_trains_its_batchnorm_from_scratch():
    torch.manual_seed(0)
    b = build_backbone('tiny', BackboneSettings.from_config(cfg))
    assert not _frozen_names(b)
    before = b.features[0][1].running_mean.clone()
    _train_step(b, torch.randn(2, 3, 64, 64))
    assert not torch.equal(before, b.features[0][1].running_mean)


def test_tiny_follows_config_widths():
    cfg.TINY.CHANNELS = [8, 8, 16, 16, 24]
    cfg.TINY.FC_DIM = 32
    b = build_backbone('tiny', BackboneSettings.from_config(cfg))
    assert b.head_channels == 24 and b.tail_channels == 32
    assert b.tail(torch.randn(3, 24, 7, 7)).shape == (3, 32)
    cfg.TINY.CHANNELS = [8, 8]
    with pytest.raises(ValueError, match='TINY.CHANNELS'):
        build_backbone('tiny', BackboneSettings.from_config(cfg))


def test_unknown_network_is_an_error():
    with pytest.raises(ValueError, match="--net res34: unknown network"):
        build_backbone('res34', BackboneSettings.from_config(cfg))


@pytest.mark.parametrize('layout', ['torchvision', 'slim', 'caffe'])
@pytest.mark.parametrize('hw', [(600, 800), (97, 130), (65, 33)])
def test_resnet_layouts_keep_the_stride_16_map_and_the_keys(layout, hw):
    cfg.RESNET.LAYOUT = layout
    backbone = build_backbone('res50', BackboneSettings.from_config(cfg)).eval()
    with torch.no_grad():
        f = backbone.head(torch.zeros(1, 3, *hw))
    assert f.shape[2:] == (-(-hw[0] // 16), -(-hw[1] // 16))
    cfg.RESNET.LAYOUT = 'torchvision'
    assert backbone.state_dict().keys() == build_backbone('res50', BackboneSettings.from_config(cfg)).state_dict().keys()


def test_resnet_layouts_put_the_strides_where_each_original_does():
    strides = {}
    for layout in ('torchvision', 'slim', 'caffe'):
        cfg.RESNET.LAYOUT = layout
        b = build_backbone('res50', BackboneSettings.from_config(cfg))
        strides[layout] = [(name, m.stride[0]) for name, m in b.named_modules()
                           if isinstance(m, nn.Conv2d) and m.stride[0] == 2 and name.startswith('layer')]
    assert strides['torchvision'] == [('layer2.0.conv2', 2), ('layer2.0.downsample.0', 2), ('layer3.0.conv2', 2),
                                      ('layer3.0.downsample.0', 2)]
    assert strides['caffe'] == [('layer2.0.conv1', 2), ('layer2.0.downsample.0', 2), ('layer3.0.conv1', 2),
                                ('layer3.0.downsample.0', 2)]
    assert strides['slim'] == [('layer1.2.conv2', 2), ('layer2.3.conv2', 2)]
    cfg.RESNET.LAYOUT = 'slim'
    b = build_backbone('res50', BackboneSettings.from_config(cfg))
    x = torch.randn(1, 256, 9, 11)
    assert torch.equal(b.layer1[2].downsample(x), x[:, :, ::2, ::2])  # slim's subsampling shortcut
    cfg.RESNET.LAYOUT = 'other'
    with pytest.raises(ValueError, match='RESNET.LAYOUT: unknown layout'):
        build_backbone('res50', BackboneSettings.from_config(cfg))


def test_vgg16_floor_mode_pools():
    cfg.VGG16.CEIL_MODE = False
    backbone = build_backbone('vgg16', BackboneSettings.from_config(cfg)).eval()
    with torch.no_grad():
        f = backbone.head(torch.zeros(1, 3, 100, 140))
    assert f.shape[2:] == (6, 8)  # floor(100 / 16), floor(140 / 16): pytorch-faster-rcnn's VGG16


def test_mobilenet_v1_builds_trains_and_freezes_as_tf_faster_rcnn():
    """MOBILENET.VERSION 1: 14 layers, head to stride 16 with 512 channels, tail 1024 at stride 1; ReLU6;
    frozen norms with slim's epsilon; the first FIXED_LAYERS layers frozen; a training step updates the rest."""
    from faster_rcnn.nets.factory import build_network
    from faster_rcnn.nets.folded_norm import AppliedNorm
    cfg.MOBILENET.VERSION = 1
    cfg.MOBILENET.FIXED_LAYERS = 5
    cfg.ANCHOR_SCALES = [2.0, 4.0]
    cfg.TRAIN.RPN_PRE_NMS_TOP_N = 300
    cfg.TRAIN.RPN_POST_NMS_TOP_N = 50
    cfg.TRAIN.BATCH_SIZE = 16
    torch.manual_seed(0)
    model = build_network('mobile', 3, ModelSettings.from_config(cfg, 'mobile'))
    backbone = model.backbone
    assert len(backbone.features) == 14 and backbone.head_channels == 512 and backbone.tail_channels == 1024
    assert sum(isinstance(m, nn.ReLU6) for m in backbone.modules()) == 27
    assert all(m.eps == 1e-3 for m in backbone.modules() if isinstance(m, AppliedNorm))
    frozen = {n.split('.')[1] for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {'0', '1', '2', '3', '4'}
    assert 'features.5.depthwise.0.weight' in backbone.state_dict()
    with torch.no_grad():
        assert backbone.head(torch.zeros(1, 3, 97, 130)).shape == (1, 512, 7, 9)
    model.train()
    images = torch.randn(1, 3, 96, 128)
    im_info = torch.tensor([[96.0, 128.0, 1.0]])
    gt = [torch.tensor([[10.0, 10.0, 60.0, 70.0, 1.0], [50.0, 20.0, 120.0, 90.0, 2.0]])]
    before = backbone.features[6].pointwise[0].weight.detach().clone()
    losses = model(images, im_info, gt)
    assert torch.isfinite(losses['total_loss'])
    losses['total_loss'].backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert not torch.equal(backbone.features[6].pointwise[0].weight, before)
    assert backbone.features[0][0].weight.grad is None
