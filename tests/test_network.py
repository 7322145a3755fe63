"""The Faster R-CNN module: losses for every backbone and pooling mode, batching, eval outputs, errors."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from faster_rcnn.layers.anchor_target import anchor_target_layer
from faster_rcnn.layers.anchors import anchors_for
from faster_rcnn.layers.losses import smooth_l1_loss
from faster_rcnn.layers.proposal import proposal_layer, proposals
from faster_rcnn.layers.proposal_target import proposal_target_layer
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.postprocess import HeadOutputs

NUM_CLASSES = 4
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
DEVICES = ['cpu', pytest.param('cuda', marks=CUDA)]

from faster_rcnn.settings import ModelSettings
from faster_rcnn.config import new_config

# A private config object, back to the defaults before each test (the global cfg is never touched).
cfg = new_config()


@pytest.fixture(autouse=True)
def _reset():
    cfg.clear()
    cfg.update(new_config())
    yield


def _reset_now():
    cfg.clear()
    cfg.update(new_config())


def _gt(h, w):
    return torch.tensor([[0.1 * w, 0.15 * h, 0.45 * w, 0.7 * h, 1.0],
                         [0.5 * w, 0.3 * h, 0.9 * w, 0.95 * h, 3.0]])


def _finite_step(name, mode, hw, device='cpu'):
    cfg.POOLING_MODE = mode
    torch.manual_seed(0)
    model = build_network(name, NUM_CLASSES, ModelSettings.from_config(cfg, name)).to(device).train()
    if name.startswith('res'):
        # Without ImageNet weights, frozen BN (running stats 0 / 1) lets a random ResNet's activations grow
        # to ~1e4 and saturate every softmax; zero residual branches (torchvision's zero_init_residual)
        # keep them at a trained network's scale.
        with torch.no_grad():
            for m in model.backbone.modules():
                if isinstance(m, torchvision.models.resnet.Bottleneck):
                    m.bn3.weight.zero_()
    x = torch.randn(1, 3, *hw, device=device)
    info = torch.tensor([[hw[0], hw[1], 1.0]], device=device)
    # A box filling most of the image: some proposals of an untrained RPN overlap it by >= 0.5, so the
    # box regressor gets foreground examples.
    gt = torch.cat([_gt(*hw), torch.tensor([[8.0, 8.0, hw[1] - 9.0, hw[0] - 9.0, 2.0]])])
    losses = model(x, info, [gt.to(device)])
    assert set(losses) == {'rpn_cross_entropy', 'rpn_loss_box', 'cross_entropy', 'loss_box', 'total_loss'}
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), (k, v)
    total = losses['rpn_cross_entropy'] + losses['rpn_loss_box'] + losses['cross_entropy'] + losses['loss_box']
    torch.testing.assert_close(losses['total_loss'], total)
    losses['total_loss'].backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert p.grad is None, n
    # The RPN and both predictors are trained.
    for layer in (model.rpn_cls_score, model.rpn_bbox_pred, model.cls_score, model.bbox_pred):
        assert layer.weight.grad.abs().sum() > 0


# Full 600 x 800 for the light backbones; the heavy ones at 192 x 256 to keep the file within a couple
# of minutes on 2 CPU cores (res152 forward + backward at 600 x 800 alone takes tens of seconds there).
@pytest.mark.parametrize('mode', ['crop', 'align', 'pool'])
@pytest.mark.parametrize('name,hw', [('tiny', (600, 800)), ('mobile', (600, 800)), ('vgg16', (192, 256)),
                                     ('res50', (192, 256)), ('res101', (192, 256)), ('res152', (192, 256))])
def test_forward_backward_gives_finite_losses(name, hw, mode):
    cfg.TRAIN.BATCH_SIZE = 16
    _finite_step(name, mode, hw)


@CUDA
@pytest.mark.parametrize('mode', ['crop', 'align', 'pool'])
@pytest.mark.parametrize('name', ['tiny', 'mobile', 'vgg16', 'res50', 'res101', 'res152'])
def test_forward_backward_on_cuda_at_600x800(name, mode):
    cfg.TRAIN.BATCH_SIZE = 128
    _finite_step(name, mode, (600, 800), 'cuda')


def test_unknown_pooling_mode_and_test_mode_are_errors_at_construction():
    cfg.POOLING_MODE = 'roi_warp'
    with pytest.raises(ValueError, match="POOLING_MODE.*'roi_warp'"):
        build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny'))
    _reset_now()
    cfg.TEST.MODE = 'all'
    with pytest.raises(ValueError, match="TEST.MODE.*'all'"):
        build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny'))
    _reset_now()
    cfg.CHANNELS_LAST = 'sometimes'
    with pytest.raises(ValueError, match="CHANNELS_LAST.*'sometimes'"):
        build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny'))


@pytest.mark.parametrize('mode, expect_cl', [('cpu', True), ('always', True), ('never', False)])
def test_place_on_cpu_sets_the_memory_layout_and_keeps_the_outputs(mode, expect_cl):
    torch.manual_seed(0)
    reference = build_network('vgg16', NUM_CLASSES, ModelSettings.from_config(cfg, 'vgg16')).eval()
    cfg.CHANNELS_LAST = mode
    model = build_network('vgg16', NUM_CLASSES, ModelSettings.from_config(cfg, 'vgg16'))
    model.load_state_dict(reference.state_dict())
    assert model.place('cpu') is model
    model.eval()
    conv = model.backbone.features[0].weight
    layout = torch.channels_last if expect_cl else torch.contiguous_format
    assert conv.is_contiguous(memory_format=layout) and conv.is_contiguous() != expect_cl
    x = torch.randn(1, 3, 96, 128)
    info = torch.tensor([[96.0, 128.0, 1.0]])
    with torch.no_grad():
        got, want = model(x, info), reference(x, info)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def _seeded(layer, seed=7):
    """The per-image layer with a fixed sampling seed (the network's ``seeds`` for that image)."""
    def call(*args, **kwargs):
        kwargs['seed'] = torch.tensor([seed], device=args[0].device)
        return layer(*args, **kwargs)
    return call


@pytest.mark.parametrize('device', DEVICES)
def test_batch_losses_are_the_mean_of_single_image_losses(device):
    cfg.TRAIN.BATCH_SIZE = 32
    cfg.TRAIN.RPN_BATCHSIZE = 64
    torch.manual_seed(0)
    # MobileNet: BatchNorm frozen and no dropout, so an image's features do not depend on its batch.
    model = build_network('mobile', NUM_CLASSES, ModelSettings.from_config(cfg, 'mobile')).to(device).train()
    images = torch.randn(2, 3, 160, 224).to(device)
    # The second image is smaller than the padded batch: only its own extent may be used.
    info = torch.tensor([[160.0, 224.0, 1.0], [112.0, 150.0, 1.2]], device=device)
    gts = [_gt(160, 224).to(device), _gt(112, 150)[:1].to(device)]
    # Each image samples by its own seed: alone or in the batch, the same anchors and rois.
    seeds = torch.tensor([7, 8], device=device)
    batch = model(images, info, gts, seeds=seeds)
    singles = [model(images[i:i + 1], info[i:i + 1], [gts[i]], seeds=seeds[i:i + 1]) for i in range(2)]
    for k in batch:
        torch.testing.assert_close(batch[k], (singles[0][k] + singles[1][k]) / 2, rtol=1e-5, atol=1e-6)
    # And the two images do differ, so the mean is not trivially equal to either.
    assert not torch.allclose(singles[0]['rpn_cross_entropy'], singles[1]['rpn_cross_entropy'])


def test_single_image_losses_follow_the_reference_layout():
    """Recompute the N = 1 losses the way tf-faster-rcnn lays its tensors out ((2, A) score channels,
    labels reshaped to (1, A, H, W), scores to (1, 2, A*H, W)) from the module's own RPN maps, with the
    one-image layers."""
    cfg.TRAIN.BATCH_SIZE = 32
    torch.manual_seed(0)
    model = build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny')).eval()  # eval: BN uses running stats in both passes
    h_img, w_img = 160, 224
    image = torch.randn(1, 3, h_img, w_img)
    info = torch.tensor([[float(h_img), float(w_img), 1.0]])
    gt = _gt(h_img, w_img)
    model.training = True  # the training branch, with BN still in eval mode
    losses = model(image, info, [gt], seeds=torch.tensor([7]))

    with torch.no_grad():
        feat = model.backbone.head(image)
        _, _, H, W = feat.shape
        A = model.num_anchors
        rpn = F.relu(model.rpn_conv(feat))
        score = model.rpn_cls_score(rpn)                                     # (1, 2A, H, W)
        score_reshape = score.view(1, 2, A * H, W)                           # caffe-style (1, 2, A*H, W)
        prob = F.softmax(score_reshape, dim=1).view(1, 2 * A, H, W)
        fg = prob[:, A:].permute(0, 2, 3, 1).reshape(-1)                     # (H*W*A,) in (y, x, a) order
        deltas = model.rpn_bbox_pred(rpn).permute(0, 2, 3, 1).reshape(-1, 4)  # (A, 4) channel layout
        anchors = anchors_for(H, W, 'cpu', cfg.ANCHOR_SCALES, cfg.ANCHOR_RATIOS)
        labels, tgt, in_w, out_w = _seeded(anchor_target_layer)(anchors, gt, info[0])
        labels_ahw = labels.view(1, H, W, A).permute(0, 3, 1, 2).reshape(-1)
        logits_ahw = score_reshape.permute(0, 2, 3, 1).reshape(-1, 2)
        keep = labels_ahw != -1
        rpn_ce = F.cross_entropy(logits_ahw[keep], labels_ahw[keep])
        rpn_box = smooth_l1_loss(model.rpn_bbox_pred(rpn).permute(0, 2, 3, 1),
                                 tgt.view(1, H, W, 4 * A), in_w.view(1, H, W, 4 * A), out_w.view(1, H, W, 4 * A),
                                 sigma=3.0, dim=[1, 2, 3])
        rois, roi_scores = proposal_layer(fg, deltas, anchors, info[0], pre_nms_top_n=12000,
                                          post_nms_top_n=2000, nms_thresh=0.7)
        # The network keys each roi's random draw by its anchor (robust to the order of equal scores).
        kept = proposals(fg[None], deltas[None], anchors, info, pre_nms_top_n=12000, post_nms_top_n=2000,
                         nms_thresh=0.7)
        assert torch.equal(kept.boxes[0], rois[:, 1:])
        rois, _, lab, btgt, biw, bow = _seeded(proposal_target_layer)(
            rois, roi_scores, gt, NUM_CLASSES, batch_size=32, fg_fraction=0.25, fg_thresh=0.5,
            bg_thresh_hi=0.5, bg_thresh_lo=0.1, positions=kept.anchors)
        from faster_rcnn.layers.roi_pool import roi_features
        fc = model.backbone.tail(roi_features(feat, rois, mode='crop', max_pool=False))
        ce = F.cross_entropy(model.cls_score(fc), lab)
        box = smooth_l1_loss(model.bbox_pred(fc), btgt, biw, bow, sigma=1.0, dim=[1])
    torch.testing.assert_close(losses['rpn_cross_entropy'], rpn_ce, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(losses['rpn_loss_box'], rpn_box, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(losses['cross_entropy'], ce, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(losses['loss_box'], box, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('device', DEVICES)
def test_eval_outputs_shapes_and_denormalised_deltas(device):
    cfg.TEST.RPN_POST_NMS_TOP_N = 50
    torch.manual_seed(0)
    model = build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny')).to(device).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.bbox_pred.weight, std=0.05)
        torch.nn.init.normal_(model.bbox_pred.bias, std=0.05)
    raw = {}
    model.bbox_pred.register_forward_hook(lambda m, i, o: raw.setdefault('out', o))
    images = torch.randn(2, 3, 128, 192, device=device)
    info = torch.tensor([[128.0, 192.0, 1.0], [100.0, 150.0, 1.0]], device=device)
    with torch.no_grad():
        rois, cls_prob, bbox_pred = model(images, info)[:3]
    rois, cls_prob, bbox_pred = rois.cpu(), cls_prob.cpu(), bbox_pred.cpu()
    raw['out'] = raw['out'].cpu()
    r = rois.shape[0]
    assert rois.shape == (r, 5) and cls_prob.shape == (r, NUM_CLASSES) and bbox_pred.shape == (r, 4 * NUM_CLASSES)
    assert 0 < r <= 100
    torch.testing.assert_close(cls_prob.sum(1), torch.ones(r))
    # Batch index column: image 0's proposals first, then image 1's, each clipped to its own extent.
    idx = rois[:, 0]
    assert set(idx.tolist()) == {0.0, 1.0} and torch.all(idx[1:] >= idx[:-1])
    second = rois[idx == 1]
    assert second[:, 3].max() <= 149 and second[:, 4].max() <= 99
    stds = torch.tensor([0.1, 0.1, 0.2, 0.2]).repeat(NUM_CLASSES)
    torch.testing.assert_close(bbox_pred, raw['out'] * stds)
    assert set(model.summary_tensors) == {'rpn_cls_prob', 'cls_prob', 'rois'}
    assert not any(t.requires_grad for t in model.summary_tensors.values())


def test_eval_top_mode_keeps_rpn_top_n_per_image():
    cfg.TEST.MODE = 'top'
    cfg.TEST.RPN_TOP_N = 40
    model = build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny')).eval()
    with torch.no_grad():
        rois, cls_prob, _ = model(torch.randn(2, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]] * 2))[:3]
    assert rois.shape == (80, 5) and cls_prob.shape == (80, NUM_CLASSES)


def test_eval_without_gt_in_train_mode_returns_detections():
    model = build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny')).train()
    out = model(torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]]))
    assert isinstance(out, HeadOutputs) and out.rois.shape[1] == 5 and out.attr_prob is None
    assert out._fields[:3] == ('rois', 'cls_prob', 'bbox_pred')


@pytest.mark.parametrize('device', DEVICES)
def test_autocast_keeps_losses_fp32_and_finite(device):
    cfg.TRAIN.BATCH_SIZE = 32
    torch.manual_seed(0)
    model = build_network('tiny', NUM_CLASSES, ModelSettings.from_config(cfg, 'tiny')).to(device).train()
    with torch.autocast(device, dtype=torch.bfloat16):
        losses = model(torch.randn(2, 3, 128, 160, device=device),
                       torch.tensor([[128.0, 160.0, 1.0]] * 2, device=device),
                       [_gt(128, 160).to(device), _gt(128, 160).to(device)])
    for k, v in losses.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), k
    losses['total_loss'].backward()
