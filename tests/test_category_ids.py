"""Dataset category ids: recorded in every detector file (training, the converters), used by ``to_coco`` and
``demo --json`` by default, so that their COCO results score against a dataset's own annotations as test_net's
do; ``category_ids=`` checked; older files without ids warned about once."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn import Detections, Detector
from faster_rcnn.convert.io import read_category_ids
from faster_rcnn.datasets.coco import COCO_CATEGORY_IDS, COCO_CLASSES
from faster_rcnn.datasets.factory import category_ids_of, classes_of
from faster_rcnn.errors import CheckpointError, UsageError
from faster_rcnn.model_file import detector_payload, full_category_ids, open_detector, save_atomic

from tool_runs import SHAPES_CFG, _dirs, run_tool


def _dets(n_classes: int = 3, ids=None) -> Detections:
    boxes = np.array([[1, 2, 10, 20], [5, 5, 9, 9], [0, 0, 3, 4]], np.float32)
    labels = np.array([1, 2, 3], np.int64)[:min(3, n_classes)]
    return Detections(boxes[:len(labels)], np.array([0.9, 0.8, 0.7], np.float32)[:len(labels)], labels,
                      ('__background__', 'a', 'b', 'c')[:n_classes + 1], category_ids=ids)


# -- the argument and the file field ---------------------------------------------------------------------------
def test_to_coco_maps_labels_with_or_without_the_background_slot():
    d = _dets()
    assert [r['category_id'] for r in d.to_coco(1, category_ids=[11, 22, 33])] == [11, 22, 33]
    assert [r['category_id'] for r in d.to_coco(1, category_ids=[0, 11, 22, 33])] == [11, 22, 33]
    assert [r['category_id'] for r in d.to_coco(1, category_ids=np.array([5, 9, 17]))] == [5, 9, 17]
    # The detections' own ids are the default; an argument overrides them.
    own = _dets(ids=(0, 5, 9, 17))
    assert [r['category_id'] for r in own.to_coco(1)] == [5, 9, 17]
    assert [r['category_id'] for r in own.to_coco(1, category_ids=[7, 8, 9])] == [7, 8, 9]
    assert [r['category_id'] for r in own.above(0.75).to_coco(1)] == [5, 9]


@pytest.mark.parametrize('ids, words', [
    ([11, 22], ['category_ids: 2 category ids for a detector of 3 classes', 'give 3 (one per class', 'or 4']),
    ([1, 2, 3, 4, 5], ['5 category ids', 'give 3']),
    ([1.5, 2, 3], ['whole numbers', '1.5']),
    ([True, 2, 3], ['whole numbers']),
    ([4, 4, 3], ['[4] are given to two classes']),
])
def test_wrong_category_ids_are_one_usage_error_naming_the_argument(ids, words):
    with pytest.raises(UsageError) as e:
        _dets().to_coco(1, category_ids=ids)
    message = str(e.value)
    assert message.startswith('category_ids: ') and '\n' not in message
    assert all(w in message for w in words), message


def test_detections_without_ids_fall_back_with_one_warning(caplog, monkeypatch):
    from faster_rcnn.inference import detections
    monkeypatch.setattr(detections, '_warned_unknown_ids', False)
    with caplog.at_level(logging.WARNING):
        first = _dets().to_coco(1)
        second = _dets().to_coco(2)
    assert [r['category_id'] for r in first + second] == [1, 2, 3, 1, 2, 3]
    warned = [r for r in caplog.records if 'category ids' in r.getMessage()]
    assert len(warned) == 1 and 'category_ids=' in warned[0].getMessage()


def test_the_payload_records_ids_with_the_background_slot(tmp_path):
    classes = ['__background__', 'x', 'y']
    assert detector_payload(net='tiny', classes=classes, state_dict={}, record={})['category_ids'] == [0, 1, 2]
    payload = detector_payload(net='tiny', classes=classes, state_dict={}, record={}, category_ids=[5, 9])
    assert payload['category_ids'] == [0, 5, 9]
    save_atomic(payload, str(tmp_path / 'm.pth'))
    assert open_detector(str(tmp_path / 'm.pth')).category_ids == (0, 5, 9)
    payload['category_ids'] = [5, 9]
    save_atomic(payload, str(tmp_path / 'bad.pth'))
    with pytest.raises(CheckpointError, match=r'bad\.pth: category_ids: expected one id per class with the background'):
        open_detector(str(tmp_path / 'bad.pth')).category_ids
    assert full_category_ids([3, 4], 3, 'x') == (0, 3, 4)


def test_the_published_datasets_know_their_ids_without_files():
    assert category_ids_of('voc_2007_test') == tuple(range(1, 21))
    assert category_ids_of('voc_2007_trainval+voc_2012_trainval') == tuple(range(1, 21))
    assert category_ids_of('shapes_test') == (1, 2, 3)
    ids = category_ids_of('coco_2014_minival')
    assert ids == COCO_CATEGORY_IDS and len(ids) == len(classes_of('coco_2014_minival')) - 1 == 80
    # COCO's annotation files: a few ids past the gaps (12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are unused).
    by_name = dict(zip(COCO_CLASSES[1:], ids))
    assert by_name['person'] == 1 and by_name['fire hydrant'] == 11 and by_name['stop sign'] == 13
    assert by_name['backpack'] == 27 and by_name['umbrella'] == 28 and by_name['handbag'] == 31
    assert by_name['wine glass'] == 46 and by_name['dining table'] == 67 and by_name['toilet'] == 70
    assert by_name['tv'] == 72 and by_name['book'] == 84 and by_name['toothbrush'] == 90
    assert read_category_ids(imdb='coco_2014_minival', classes=list(COCO_CLASSES)) == COCO_CATEGORY_IDS
    assert read_category_ids(imdb=None, classes=['__background__', 'p', 'q']) == (1, 2)


# -- detector files written by training, and older ones -----------------------------------------------------------
def test_a_trained_snapshot_records_its_ids_and_the_detector_uses_them(trained):
    assert torch.load(trained, map_location='cpu', weights_only=True)['category_ids'] == [0, 1, 2, 3]
    det = Detector.load(str(trained))
    assert det.category_ids == (0, 1, 2, 3)


def test_an_older_file_says_so_once_and_numbers_the_classes(root, trained, tmp_path, caplog):
    contents = torch.load(trained, map_location='cpu', weights_only=True)
    del contents['category_ids']
    old = tmp_path / 'old.pth'
    save_atomic(contents, str(old))
    image = cv2.imread(str(sorted((root / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))[0]))
    with caplog.at_level(logging.WARNING):
        det = Detector.load(str(old))
        results = det(image).to_coco(1) + det([image, image])[1].to_coco(2)
    warned = [r.getMessage() for r in caplog.records if 'category ids' in r.getMessage()]
    assert len(warned) == 1 and str(old) in warned[0] and 'category_ids=' in warned[0]
    assert results and {r['category_id'] for r in results} <= {1, 2, 3}


@pytest.mark.slow
def test_an_exported_graph_keeps_the_ids(trained, tmp_path):
    contents = torch.load(trained, map_location='cpu', weights_only=True)
    contents['category_ids'] = [0, 5, 9, 17]
    renumbered = tmp_path / 'm.pth'
    save_atomic(contents, str(renumbered))
    run_tool(['tools/export.py', '--model', str(renumbered), '--format', 'onnx', '--out', str(tmp_path / 'm.onnx')])
    graph = Detector.load(str(tmp_path / 'm.onnx'))
    assert graph.category_ids == (0, 5, 9, 17)
    image = np.full((160, 200, 3), 127, np.uint8)
    cv2.circle(image, (80, 80), 40, (40, 40, 220), -1)
    results = graph(image).to_coco(3)
    assert {r['category_id'] for r in results} <= {5, 9, 17}


# -- end to end: a dataset numbered 5, 9, 17 ----------------------------------------------------------------------
def _renumbered(shapes: Path, split: str, out: Path, ids: dict[int, int], images: int | None = None) -> Path:
    """The shapes set's COCO json of ``split`` with its categories 1, 2, 3 renumbered to ``ids`` (and its first
    ``images`` images only)."""
    data = json.loads((shapes / 'annotations' / f'instances_{split}.json').read_text())
    if images is not None:
        data['images'] = data['images'][:images]
        kept = {im['id'] for im in data['images']}
        data['annotations'] = [a for a in data['annotations'] if a['image_id'] in kept]
    for c in data['categories']:
        c['id'] = ids[c['id']]
    for a in data['annotations']:
        a['category_id'] = ids[a['category_id']]
    path = out / f'{split}.json'
    path.write_text(json.dumps(data))
    return path


def _coco_ap(ann: Path, results: list[dict]) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(str(ann))
    ev = COCOeval(gt, gt.loadRes(results), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


_IDS = {1: 5, 2: 9, 3: 17}


@pytest.mark.slow
def test_training_on_a_coco_json_records_its_ids(root, trained, tmp_path):
    shapes = root / 'data' / 'shapes'  # generated by the ``trained`` fixture's run
    train_json = _renumbered(shapes, 'trainval', tmp_path, _IDS, images=8)
    run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', f'coco_json:{train_json}:{shapes / "JPEGImages"}',
              '--imdbval', '', '--iters', '2', '--tag', 'cat_ids_2', '--cfg', SHAPES_CFG, '--device', 'cpu',
              '--workers', '0', '--set', *_dirs(root), 'TRAIN.SCALES', '[64]', 'TRAIN.IMS_PER_BATCH', '1',
              'TRAIN.USE_FLIPPED', 'False'])
    model = next(p for p in (root / 'output').rglob('tiny_faster_rcnn_iter_*.pth') if p.parent.name == 'cat_ids_2')
    assert torch.load(model, weights_only=True)['category_ids'] == [0, 5, 9, 17]
    assert Detector.load(str(model)).category_ids == (0, 5, 9, 17)


@pytest.mark.slow
def test_demo_json_and_to_coco_score_as_test_net_on_non_contiguous_ids(root, working, tmp_path):
    # The shared working model's weights with the ids a training on the renumbered set records (same classes, same
    # order, same images: test_training_on_a_coco_json_records_its_ids checks that training writes these).
    contents = torch.load(working, map_location='cpu', weights_only=True)
    contents['category_ids'] = [0, 5, 9, 17]
    model = tmp_path / 'tiny_faster_rcnn_iter_300.pth'
    save_atomic(contents, str(model))
    shapes = root / 'data' / 'shapes'
    images = shapes / 'JPEGImages'
    test_json = _renumbered(shapes, 'test', tmp_path, _IDS, images=40)
    test_imdb = f'coco_json:{test_json}:{images}'

    # test_net: the dataset's own results writer and COCOeval.
    run_tool(['tools/test_net.py', '--imdb', test_imdb, '--model', str(model), '--device', 'cpu', '--workers', '0',
              '--tag', 'cat_ids', '--set', *_dirs(root)])
    summary = next(p for p in (root / 'output').rglob('eval.json') if 'cat_ids' in p.parts)
    test_net_ap = json.loads(summary.read_text())['mean_ap']

    # The API: to_coco with the ids the model file recorded (no argument).
    data = json.loads(test_json.read_text())
    det = Detector.load(str(model))
    api = []
    for im in data['images']:
        api += det(str(images / im['file_name'])).to_coco(im['id'])
    assert {r['category_id'] for r in api} == {5, 9, 17}
    api_ap = _coco_ap(test_json, api)

    # demo --json at test_net's threshold (TEST.SCORE_THRESH 0): its image_id is the position of the image in
    # --images; the file_name it writes gives the dataset's id.
    demo_in = tmp_path / 'demo_in'
    demo_in.mkdir()
    for im in data['images']:
        (demo_in / im['file_name']).symlink_to(images / im['file_name'])
    out = tmp_path / 'demo.json'
    run_tool(['tools/demo.py', '--model', str(model), '--images', str(demo_in), '--output', str(tmp_path / 'drawn'),
              '--thresh', '0', '--json', str(out), '--device', 'cpu'])
    by_name = {im['file_name']: im['id'] for im in data['images']}
    demo = [{**r, 'image_id': by_name[Path(r['file_name']).name]} for r in json.loads(out.read_text())]
    assert {r['category_id'] for r in demo} == {5, 9, 17}
    demo_ap = _coco_ap(test_json, demo)

    print(f'AP@[.5:.95] on ids 5, 9, 17: test_net {test_net_ap:.4f}, to_coco {api_ap:.4f}, demo --json {demo_ap:.4f}')
    assert test_net_ap > 0.2  # a detector that works (the quick-start recipe, 300 iterations)
    assert api_ap == pytest.approx(test_net_ap, abs=1e-9) and demo_ap == pytest.approx(test_net_ap, abs=1e-9)
    # What these results scored before the ids were recorded: the class indices 1..3 match no category.
    assert _coco_ap(test_json, [{**r, 'category_id': {5: 1, 9: 2, 17: 3}[r['category_id']]} for r in api]) <= 0
