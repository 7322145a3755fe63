"""The attribute head (BUTD's): its module, its place in FasterRCNN, its loss, its targets and its files."""
from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn.data.dataset import RoidbDataset, collate_batch
from faster_rcnn.data.test_loader import prepare_test_image
from faster_rcnn.datasets import shapes_attr
from faster_rcnn.datasets.attribute_eval import AttributeImage, attribute_ap_at_detections, attribute_ap_at_gt
from faster_rcnn.datasets.pascal_voc import VocDataset
from faster_rcnn.datasets.shapes import ShapesSpec
from faster_rcnn.engine.finetune import load_finetune_weights
from faster_rcnn.engine.tester import evaluate_attributes
from faster_rcnn.errors import AnnotationError
from faster_rcnn.inference import Detections, Detector
from faster_rcnn.layers.losses import attribute_loss
from faster_rcnn.layers.proposal_target import proposal_targets
from faster_rcnn.model_file import detector_payload, open_detector, save_atomic
from faster_rcnn.nets.attribute_head import AttributeHead
from faster_rcnn.nets.factory import build_from_file, build_network
from faster_rcnn.nets.network import ATTRIBUTE_LOSS_NAMES, LOSS_NAMES
from faster_rcnn.nets.postprocess import select_detections, top_attributes
from faster_rcnn.settings import DetectionSettings, InputSettings
from settings_helpers import SHAPES_CFG, settings_for

NUM_CLASSES = 4
ATTRS = ['__no_attribute__', 'red', 'green', 'solid', 'outline']


def _tiny(num_attributes: int = 0, **keys):
    settings = settings_for('tiny', SHAPES_CFG, **keys)
    torch.manual_seed(0)
    return build_network('tiny', NUM_CLASSES, settings, num_attributes=num_attributes)


def test_head_has_butd_names_and_computes_the_documented_function():
    head = AttributeHead(num_classes=5, feature_dim=6, num_attributes=4, embed_dim=3, hidden=7)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {'cls_embedding.weight': (5, 3), 'fc_attr.weight': (7, 9), 'fc_attr.bias': (7,),
                      'attr_score.weight': (4, 7), 'attr_score.bias': (4,)}
    feats, labels = torch.randn(2, 6), torch.tensor([4, 0])
    x = torch.cat((feats, head.cls_embedding.weight[labels]), 1)
    want = torch.relu(x @ head.fc_attr.weight.T + head.fc_attr.bias) @ head.attr_score.weight.T + head.attr_score.bias
    torch.testing.assert_close(head(feats, labels), want)


def test_a_network_without_the_head_is_unchanged():
    plain, with_head = _tiny(), _tiny(num_attributes=len(ATTRS))
    assert plain.attr_head is None and plain.loss_names == LOSS_NAMES
    extra = set(with_head.state_dict()) - set(plain.state_dict())
    assert extra == {'attr_head.cls_embedding.weight', 'attr_head.fc_attr.weight', 'attr_head.fc_attr.bias',
                     'attr_head.attr_score.weight', 'attr_head.attr_score.bias'}
    # The head is made last: every other initial weight is the one a network without it draws.
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(with_head.state_dict()[k], v, rtol=0, atol=0)


def test_test_outputs_carry_attribute_probabilities_of_the_argmax_class():
    model = _tiny(num_attributes=len(ATTRS)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]]))
        r = out.rois.shape[0]
        assert out.attr_prob.shape == (r, len(ATTRS))
        torch.testing.assert_close(out.attr_prob.sum(1), torch.ones(r))
        plain = _tiny().eval()
        assert plain(torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]])).attr_prob is None


def test_attribute_probabilities_use_the_predicted_class_including_background():
    model = _tiny(num_attributes=len(ATTRS)).eval()
    images, info = torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]])
    with torch.no_grad():
        out = model(images, info)
        features = model.backbone.head(images)
        cls_score, _, fc7 = model._box_head(features, out.rois, with_features=True)
        predicted = cls_score.argmax(1)
        want = torch.softmax(model.attr_head(fc7, predicted), 1)
    torch.testing.assert_close(out.attr_prob, want)
    assert (predicted == 0).any()  # an untrained network: background is among the argmaxes


def test_attribute_loss_hand_computed():
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    labels = torch.tensor([[1, 2, -1], [0, -1, -1], [-1, -1, -1], [-1, -1, -1]])
    lse0 = math.log(1 + math.e + math.e ** 2)
    lse1 = math.log(math.e + 2)
    # Row 0: labels 1 and 2 -> mean of (lse0 - 1, lse0 - 2); row 1: "no attribute" -> lse1 - 1; rows 2-3 no label.
    want = ((lse0 - 1 + lse0 - 2) / 2 + (lse1 - 1)) / 2
    assert attribute_loss(logits, labels).item() == pytest.approx(want, rel=1e-6)
    none = torch.full((2, 3), -1)
    assert attribute_loss(logits[:2], none).item() == 0.0


def test_proposal_targets_give_fg_rois_their_gt_attributes():
    gt = torch.tensor([[[0.0, 0.0, 49.0, 49.0, 1.0], [60.0, 60.0, 99.0, 99.0, 2.0]]])
    attrs = torch.zeros((1, 2, 16), dtype=torch.int64)
    attrs[0, 0, :2] = torch.tensor([3, 1])  # gt 0: two attributes; gt 1: none
    boxes = torch.tensor([[[1.0, 1.0, 48.0, 48.0], [61.0, 62.0, 98.0, 99.0], [0.0, 30.0, 40.0, 99.0]]])
    out = proposal_targets(boxes, torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), gt,
                           torch.ones(1, 2, dtype=torch.bool), torch.tensor([5]), 3, batch_size=8, fg_fraction=0.5,
                           gt_attributes=attrs)
    plain = proposal_targets(boxes, torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), gt,
                             torch.ones(1, 2, dtype=torch.bool), torch.tensor([5]), 3, batch_size=8, fg_fraction=0.5)
    torch.testing.assert_close(out.rois, plain.rois)  # the attributes do not change the sample
    assert plain.attributes is None and out.attributes.shape == (8, 16)
    for roi, label, row in zip(out.rois, out.labels, out.attributes):
        if label == 1:
            assert row[:2].tolist() == [3, 1] and (row[2:] == -1).all()
        elif label == 2:
            assert row[0] == 0 and (row[1:] == -1).all()
        else:
            assert (row == -1).all()
    assert set(out.labels.tolist()) == {0, 1, 2}


def test_training_adds_the_weighted_attribute_loss():
    model = _tiny(num_attributes=len(ATTRS), TRAIN__ATTRIBUTE_LOSS_WEIGHT=0.5).train()
    gt = torch.tensor([[[10.0, 10.0, 60.0, 50.0, 1.0], [70.0, 20.0, 120.0, 90.0, 3.0]]])
    attrs = torch.tensor([[[1, 3] + [0] * 14, [0] * 16]])
    losses = model(torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]]), gt,
                   torch.ones(1, 2, dtype=torch.bool), seeds=torch.tensor([3]), gt_attributes=attrs)
    assert tuple(losses) == ATTRIBUTE_LOSS_NAMES == model.loss_names
    rest = sum(losses[k] for k in LOSS_NAMES[:-1])
    torch.testing.assert_close(losses['total_loss'], rest + 0.5 * losses['loss_attr'])
    # Untrained: every attribute is about equally likely, so the loss is about log(A + 1).
    assert losses['loss_attr'].item() == pytest.approx(math.log(len(ATTRS)), abs=0.05)
    losses['total_loss'].backward()
    assert model.attr_head.cls_embedding.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='gt_attributes'):
        model(torch.randn(1, 3, 96, 128), torch.tensor([[96.0, 128.0, 1.0]]), gt, torch.ones(1, 2, dtype=torch.bool))


def test_detector_file_with_attributes_builds_the_head(tmp_path):
    model = _tiny(num_attributes=len(ATTRS))
    path = str(tmp_path / 'det.pth')
    save_atomic(detector_payload(net='tiny', classes=['__background__', 'a', 'b', 'c'],
                                 state_dict=model.state_dict(), record={}, attributes=ATTRS), path)
    detector = open_detector(path)
    assert detector.attributes == ATTRS
    loaded = build_from_file(detector, model.settings)
    assert loaded.num_attributes == len(ATTRS)
    torch.testing.assert_close(loaded.attr_head.attr_score.weight, model.attr_head.attr_score.weight)
    plain_path = str(tmp_path / 'plain.pth')
    save_atomic(detector_payload(net='tiny', classes=['__background__', 'a', 'b', 'c'],
                                 state_dict=_tiny().state_dict(), record={}), plain_path)
    assert 'attributes' not in torch.load(plain_path, weights_only=True)
    assert build_from_file(open_detector(plain_path), model.settings).attr_head is None


def test_collate_pads_the_gt_attributes():
    def item(g):
        return {'image': np.zeros((4, 5, 3), np.float32), 'im_info': np.array([4, 5, 1], np.float32),
                'gt_boxes': np.ones((g, 5), np.float32), 'index': 0,
                'gt_attributes': np.arange(1, 1 + 16 * g, dtype=np.int32).reshape(g, 16)}
    batch = collate_batch([item(1), item(3)])
    assert batch['gt_attributes'].shape == (2, 3, 16) and batch['gt_attributes'].dtype == torch.int64
    assert batch['gt_attributes'][0, 0, 0] == 1 and (batch['gt_attributes'][0, 1:] == 0).all()
    assert batch['gt_attributes'][1, 2, 15] == 48
    plain = [{k: v for k, v in item(1).items() if k != 'gt_attributes'}]
    assert 'gt_attributes' not in collate_batch(plain)


def test_a_detection_takes_the_attributes_of_its_roi():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0]] * 3 + [[2.0, 0.0, 11.0, 9.0]] * 3).view(2, 12)
    attr_prob = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.1, 0.4]])
    settings = DetectionSettings(score_thresh=0.0, nms=0.3)
    dets = select_detections(scores, boxes, settings, attr_prob)
    assert dets.labels.tolist() == [1, 2]
    torch.testing.assert_close(dets.attr_prob, attr_prob)  # class 1 from roi 0, class 2 from roi 1
    indices, values = top_attributes(dets.attr_prob, k=3)
    assert indices.tolist() == [[1, 2], [2, 1]]
    torch.testing.assert_close(values, torch.tensor([[0.6, 0.3], [0.4, 0.1]]))


def test_detections_list_and_draw_their_attributes():
    dets = Detections(np.array([[0, 0, 9, 9], [5, 5, 20, 20]], np.float32), np.array([0.9, 0.8], np.float32),
                      np.array([1, 2]), ('__background__', 'circle', 'square'),
                      np.array([[1, 3], [2, 4]]), np.array([[0.93, 0.05], [0.4, 0.3]], np.float32),
                      tuple(ATTRS))
    assert dets.display_names() == ['red circle', 'green outline square']
    assert dets.above(0.85).attribute_names_of(0) == ['red', 'solid'] and len(dets.above(0.85)) == 1
    plain = Detections(dets.boxes, dets.scores, dets.labels, dets.classes)
    assert plain.display_names() == ['circle', 'square'] and plain.attributes is None


def test_detector_from_a_model_with_the_head_returns_top_attributes():
    model = _tiny(num_attributes=len(ATTRS), TEST__SCORE_THRESH=0.0).eval()
    detector = Detector.from_model(model, ['__background__', 'a', 'b', 'c'], attributes=ATTRS)
    dets = detector(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    assert len(dets) > 0 and dets.attributes.shape == (len(dets), 3) and dets.attribute_names == tuple(ATTRS)
    assert ((dets.attributes >= 1) & (dets.attributes < len(ATTRS))).all()
    assert (np.diff(dets.attribute_scores, axis=1) <= 0).all()
    plain = Detector.from_model(_tiny(TEST__SCORE_THRESH=0.0).eval(), ['__background__', 'a', 'b', 'c'])
    assert plain(np.zeros((96, 128, 3), np.uint8)).attributes is None


def _image(gt_boxes, gt_attrs, det_boxes, det_prob, gt_prob=None, hard=None):
    g = len(gt_boxes)
    return AttributeImage(np.array(gt_boxes, np.float32).reshape(g, 4), np.array(gt_attrs).reshape(g, -1),
                          np.zeros(g, bool) if hard is None else np.array(hard), np.array(det_boxes, np.float32),
                          np.array(det_prob, np.float32), None if gt_prob is None else np.array(gt_prob, np.float32))


def test_attribute_ap_at_detections_hand_computed():
    names = ['__no_attribute__', 'red', 'blue']
    # Image 0: gt A (red) at [0, 0, 9, 9], gt B (red, blue) at [20, 20, 29, 29]. Image 1: gt C (blue).
    im0 = _image([[0, 0, 9, 9], [20, 20, 29, 29]], [[1, 0], [1, 2]],
                 [[0, 0, 9, 9], [20, 20, 29, 29], [0, 0, 9, 9], [50, 50, 59, 59]],
                 [[0, .9, .1], [0, .6, .8], [0, .7, .2], [0, .8, .3]])
    im1 = _image([[0, 0, 9, 9]], [[2, 0]], [[0, 0, 9, 9], [1, 0, 10, 9]], [[0, .5, .4], [0, .2, .9]])
    result = attribute_ap_at_detections([im0, im1], names)
    # red (2 gt): scores .9 TP(A), .8 FP (no gt there), .7 FP (A again), .6 TP(B), .5 FP (no red in im1), .2 FP
    # -> precision 1 at recall .5, 0.5 at recall 1: AP = .5 * 1 + .5 * .5 = .75.
    assert result.per_attribute['red'] == pytest.approx(0.75)
    # blue (2 gt: B, C): .9 TP (C, IoU 0.82), .8 TP (B), .4 FP (C taken), .3, .2, .1 FP -> AP 1.
    assert result.per_attribute['blue'] == pytest.approx(1.0)
    assert result.mean_ap == pytest.approx(0.875) and result.weighted_ap == pytest.approx(0.875)


def test_attribute_ap_at_gt_hand_computed():
    names = ['__no_attribute__', 'red', 'blue', 'green']
    im = _image([[0, 0, 9, 9]] * 4, [[1, 0], [1, 2], [2, 0], [0, 0]], np.zeros((0, 4)), np.zeros((0, 4)),
                gt_prob=[[0, .9, .2, 0], [0, .3, .1, 0], [0, .5, .7, 0], [.9, .1, .3, 0]])
    result = attribute_ap_at_gt([im], names)
    # red: ranking .9 (+), .5 (-), .3 (+), .1 (-): AP = .5 * 1 + .5 * 2/3.
    assert result.per_attribute['red'] == pytest.approx(0.5 + 1 / 3)
    # blue: ranking .7 (+), .3 (-), .2 (-), .1 (+): AP = .5 + .5 * .5 = .75; green has no gt: NaN, left out.
    assert result.per_attribute['blue'] == pytest.approx(0.75) and math.isnan(result.per_attribute['green'])
    assert result.mean_ap == pytest.approx((0.5 + 1 / 3 + 0.75) / 2)
    assert result.weighted_ap == pytest.approx((2 * (0.5 + 1 / 3) + 2 * 0.75) / 4)
    assert result.summary()['per_attribute']['green'] is None


def _small_attr_set(tmp_path, split='trainval'):
    spec = ShapesSpec(num_trainval=4, num_test=2)
    return shapes_attr.shapes_attr_voc(split, root=str(tmp_path / 'shapes_attr'), spec=spec,
                                       data_dir=str(tmp_path)), spec


def test_shapes_attr_roidb_has_the_drawn_attributes(tmp_path):
    db, spec = _small_attr_set(tmp_path)
    assert db.attributes == list(shapes_attr.ATTRIBUTES) and db.classes == shapes_attr.CLASSES
    seen = 0
    for i, entry in enumerate(db.roidb):
        _, objects = shapes_attr.make_image(spec, 0, i)
        kept = [o for o in objects if not o['difficult']]
        assert entry['gt_attributes'].shape == (len(kept), 16) and entry['gt_attributes'].dtype == np.int32
        for o, row, cls in zip(kept, entry['gt_attributes'], entry['gt_classes']):
            assert cls == o['cls']
            assert [db.attributes[a] for a in row[:2]] == list(o['attributes']) and (row[2:] == 0).all()
            seen += 1
    assert seen > 0
    db.append_flipped_images()
    flipped = db.roidb[db.num_images // 2]
    assert flipped['flipped'] and (flipped['gt_attributes'] == db.roidb[0]['gt_attributes']).all()
    item = RoidbDataset(db.roidb, 0, InputSettings(scales=(128,), max_size=256))[(0, db.num_images // 2)]
    assert (item['gt_attributes'] == db.roidb[0]['gt_attributes']).all()


def test_shapes_attr_outline_is_a_band_inside_the_box():
    box = (10, 10, 49, 49)
    solid = shapes_attr._shape_mask(60, 60, 2, box, 'solid')
    outline = shapes_attr._shape_mask(60, 60, 2, box, 'outline')
    ys, xs = np.nonzero(outline)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == box  # still the tight box
    assert solid[30, 30] and not outline[30, 30] and outline[10, 30] and outline[13, 30]
    assert outline.sum() < solid.sum() / 2


def test_an_unknown_attribute_names_the_file(tmp_path):
    db, _ = _small_attr_set(tmp_path)
    path = db.annotation_path(db.image_index[0])
    with open(path, encoding='utf-8') as f:
        text = f.read()
    with open(path, 'w', encoding='utf-8') as f:
        f.write(re.sub(r'<attribute>\w+</attribute>', '<attribute>sparkly</attribute>', text, count=1))
    again = VocDataset('shapes_attr_x', db.root, 'trainval', classes=db.classes, attributes=db.attributes,
                       data_dir=str(tmp_path))
    with pytest.raises(AnnotationError, match=r"trainval_000000\.xml: object 0 .*unknown attribute 'sparkly'"):
        again.roidb


def test_evaluate_attributes_on_a_dataset(tmp_path):
    db, _ = _small_attr_set(tmp_path, 'test')
    model = _tiny(num_attributes=len(shapes_attr.ATTRIBUTES), TEST__SCORE_THRESH=0.0).eval()
    at_dets, at_gt = evaluate_attributes(model, db, progress=False)
    boxes = sum(len(e['boxes']) for e in db.roidb)
    assert boxes > 0 and set(at_gt.per_attribute) == set(shapes_attr.ATTRIBUTES[1:])
    # Every fill is present, so its AP is a number in [0, 1]; an untrained head is no better than chance-ish.
    assert 0.0 <= at_gt.per_attribute['solid'] <= 1.0 and 0.0 <= at_dets.mean_ap <= 1.0
    # At the gt boxes the probabilities are those of the boxes as rois.
    entry = db.roidb[0]
    im = cv2.imread(db.image_path_at(0))
    blob, info = prepare_test_image(im, model.settings.input)
    probs = model.attributes_at(torch.from_numpy(blob).permute(2, 0, 1)[None],
                                torch.from_numpy(entry['boxes'] * info[2]))
    assert probs.shape == (len(entry['boxes']), len(shapes_attr.ATTRIBUTES))


def test_finetuning_a_detector_without_the_head_starts_a_fresh_one(tmp_path):
    classes = ['__background__', 'a', 'b', 'c']
    plain = _tiny()
    path = str(tmp_path / 'plain.pth')
    save_atomic(detector_payload(net='tiny', classes=classes, state_dict=plain.state_dict(), record={}), path)
    torch.manual_seed(1)
    model = build_network('tiny', NUM_CLASSES, plain.settings, num_attributes=len(ATTRS))
    fresh = model.attr_head.fc_attr.weight.clone()
    report = load_finetune_weights(model, open_detector(path), classes)
    assert 'attribute head starts fresh' in report
    torch.testing.assert_close(model.rpn_conv.weight, plain.rpn_conv.weight)
    torch.testing.assert_close(model.attr_head.fc_attr.weight, fresh)
    # And back: the file's head is left out of a network without one; the same head is copied.
    head_path = str(tmp_path / 'head.pth')
    save_atomic(detector_payload(net='tiny', classes=classes, state_dict=model.state_dict(), record={},
                                 attributes=ATTRS), head_path)
    assert 'left out' in load_finetune_weights(_tiny(), open_detector(head_path), classes)
    other = _tiny(num_attributes=len(ATTRS))
    assert 'the attribute head too' in load_finetune_weights(other, open_detector(head_path), classes)
    torch.testing.assert_close(other.attr_head.fc_attr.weight, fresh)
