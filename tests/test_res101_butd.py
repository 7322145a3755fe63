"""The res101_butd network (experiments/cfgs/res101_butd.yml): BUTD's layout, and a training step with its
proposal minimum size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from faster_rcnn.config import load_config
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.registry import NETWORKS, model_keys
from faster_rcnn.nets.resnet_butd import CaffeMaxPool
from faster_rcnn.settings import ModelSettings

YML = 'experiments/cfgs/res101_butd.yml'


def _settings(*pairs: str) -> ModelSettings:
    return ModelSettings.from_config(load_config(YML, list(pairs)), 'res101_butd')


def test_the_network_has_butds_layout():
    s = _settings()
    keys = model_keys('res101_butd')  # recorded in its files: fine-tuning one keeps the proposal minimum
    assert 'res101_butd' in NETWORKS and {'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED', 'TRAIN.RPN_MIN_SIZE'} <= set(keys)
    assert (s.network.pooling_mode, s.network.pooling_size, s.network.num_anchors) == ('pool', 14, 12)
    assert s.network.train_proposal_kwargs['min_size'] == 16 and s.network.test_proposal_kwargs['min_size'] == 16
    with torch.device('meta'):
        model = build_network('res101_butd', 1601, s)
    b = model.backbone
    pool = b.maxpool
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 0, True)
    for layer in (b.layer2, b.layer3):  # stride in the first 1x1 (and the shortcut)
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
        assert layer[0].downsample[0].stride == (2, 2)
    assert len(b.layer3) == 23 and b.layer4[0].conv1.stride == (1, 1) and b.layer4[0].downsample[0].stride == (1, 1)
    assert all(u.conv2.dilation == (2, 2) and u.conv2.padding == (2, 2) and u.conv2.stride == (1, 1)
               for u in b.layer4)
    assert model.rpn_conv.out_channels == 512 and model.rpn_cls_score.out_channels == 24
    assert model.cls_score.out_features == 1601 and model.bbox_pred.out_features == 6404
    # BUTD trains res4 on (FIXED_BLOCKS 2): conv1, res2 and res3 are frozen, and every norm.
    frozen = {n.split('.')[1] for n, p in model.named_parameters() if n.startswith('backbone') and not p.requires_grad}
    trained = {n.split('.')[1] for n, p in model.named_parameters() if n.startswith('backbone') and p.requires_grad}
    assert frozen == {'conv1', 'layer1', 'layer2'} and trained == {'layer3', 'layer4'}


@pytest.mark.slow
def test_the_head_follows_caffes_sizes():
    # Caffe: conv1 ceil(H / 2); pool1 ceil((h - 3) / 2) + 1; then three more halvings with ceil.
    torch.manual_seed(0)
    model = build_network('res101_butd', 3, _settings()).eval()
    for h, w in ((113, 150), (97, 64)):
        size = []
        for n in (h, w):
            n = (n - 1) // 2 + 1
            n = -(-(n - 3) // 2) + 1
            size.append(-(-n // 4))
        with torch.no_grad():
            assert tuple(model.backbone.head(torch.zeros(1, 3, h, w)).shape) == (1, 1024, *size)


@pytest.mark.slow
def test_a_training_step_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    model = build_network('res101_butd', 5, _settings('TRAIN.BATCH_SIZE', '8', 'TRAIN.RPN_POST_NMS_TOP_N', '200')
                          ).train()
    with torch.no_grad():  # a random ResNet's activations stay at a trained network's scale (zero_init_residual)
        for m in model.backbone.modules():
            if isinstance(m, torchvision.models.resnet.Bottleneck):
                m.bn3.weight.zero_()
    hw = (160, 192)
    gt = torch.tensor([[8.0, 8.0, 180.0, 150.0, 2.0], [20.0, 30.0, 90.0, 100.0, 1.0]])
    losses = model(torch.randn(1, 3, *hw), torch.tensor([[*hw, 1.0]]), [gt])
    assert all(torch.isfinite(v) for v in losses.values())
    losses['total_loss'].backward()
    assert torch.isfinite(model.backbone.layer4[2].conv2.weight.grad).all()
    assert model.backbone.layer3[0].conv1.weight.grad is not None


def test_caffes_pool1_is_a_ceil_mode_pool_of_every_size():
    # The padded floor-mode form (exportable) against PyTorch's ceil-mode pool, odd and even sizes.
    pool = CaffeMaxPool()
    for h, w in ((3, 3), (4, 7), (10, 11), (113, 150)):
        x = torch.randn(2, 3, h, w)
        torch.testing.assert_close(pool(x), F.max_pool2d(x, 3, 2, 0, ceil_mode=True), rtol=0, atol=0)


def test_a_padded_batch_gives_each_image_what_it_gets_alone():
    # A small network of the same layout (Caffe pool1, the proposal minimum, RoIPool 14, dilated res5).
    from faster_rcnn.nets.network import FasterRCNN
    from faster_rcnn.nets.resnet_butd import ResNetButd
    torch.manual_seed(0)
    settings = _settings('TEST.RPN_POST_NMS_TOP_N', '20', 'TEST.RPN_MIN_SIZE', '4')
    model = FasterRCNN(ResNetButd(units=(1, 1, 1, 1), width=8), 4, settings).eval()
    sizes = [(131, 170), (98, 117)]
    images = [torch.rand(1, 3, h, w) * 50 for h, w in sizes]
    batch = torch.zeros(2, 3, *sizes[0])
    for i, (im, (h, w)) in enumerate(zip(images, sizes)):
        batch[i, :, :h, :w] = im[0]
    info = torch.tensor([[h, w, 1.0] for h, w in sizes])
    with torch.no_grad():
        together = model.detect(batch, info, sizes)
        alone = [model.detect(im, info[i:i + 1], sizes[i:i + 1])[0] for i, im in enumerate(images)]
    for a, b in zip(together, alone):
        assert len(b.boxes) > 0
        torch.testing.assert_close(torch.as_tensor(a.boxes), torch.as_tensor(b.boxes), atol=1e-3, rtol=0)
        torch.testing.assert_close(torch.as_tensor(a.scores), torch.as_tensor(b.scores), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_butd_layout_runs_under_onnx_runtime_as_eager(tmp_path):
    """A small network of res101_butd's layout (Caffe pool1 of an odd and an even size, RoIPool 14, dilated res5,
    the proposal minimum) exported to ONNX: ONNX Runtime gives eager's proposals, probabilities and boxes."""
    ort = pytest.importorskip('onnxruntime')
    import numpy as np
    from faster_rcnn.data.test_loader import prepare_test_image
    from faster_rcnn.export.onnx_export import export_onnx
    from faster_rcnn.nets.network import FasterRCNN
    from faster_rcnn.nets.postprocess import decode_boxes
    from faster_rcnn.nets.resnet_butd import ResNetButd
    torch.manual_seed(0)
    settings = _settings('TEST.RPN_POST_NMS_TOP_N', '30', 'TEST.RPN_MIN_SIZE', '8').with_test(scales=100, max_size=140)
    model = FasterRCNN(ResNetButd(units=(1, 1, 1, 1), width=8), 5, settings).eval()
    with torch.no_grad():
        model.cls_score.weight.normal_(0, 0.05)
    path = tmp_path / 'butd.onnx'
    export_onnx(model, [f'c{i}' for i in range(5)], str(path), net='res101_butd', record=None, raw_outputs=True)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for h, w in ((100, 140), (101, 133)):
        im = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)  # BGR
        # The graph takes the model's channel order (the yml's RGB); prepare_test_image takes BGR.
        rgb = np.ascontiguousarray(im[..., ::-1])
        _, _, _, rois, cls_prob, class_boxes = session.run(None, {'image': rgb})
        blob, info = prepare_test_image(im, model.settings.input)
        with torch.no_grad():
            e_rois, e_prob, e_pred = model(torch.from_numpy(blob).permute(2, 0, 1)[None].contiguous(),
                                           torch.from_numpy(info)[None])[:3]
        e_boxes = decode_boxes(e_rois, e_pred, float(info[2]), im.shape[:2], 5, True)
        assert rois.shape == (len(e_rois), 4) and len(rois) > 0
        np.testing.assert_allclose(rois, e_rois[:, 1:].numpy(), atol=0.02)
        np.testing.assert_allclose(cls_prob, e_prob.numpy(), atol=1e-4)
        np.testing.assert_allclose(class_boxes, e_boxes.numpy(), atol=0.02)
