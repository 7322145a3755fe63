"""COCO-format evaluation checked against pycocotools called directly; original category ids kept."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from faster_rcnn.datasets.coco import CocoDataset


pytestmark = pytest.mark.usefixtures('tmp_data_dir')


def make_set(tmp_path):
    """3 images, categories with non-contiguous ids 3 ('cat') and 7 ('dog'), one crowd region."""
    images = [{'id': 10 + i, 'file_name': f'im{i}.jpg', 'width': 100, 'height': 80} for i in range(3)]
    anns = [
        {'id': 1, 'image_id': 10, 'category_id': 3, 'bbox': [10, 10, 30, 20], 'area': 600, 'iscrowd': 0},
        {'id': 2, 'image_id': 10, 'category_id': 7, 'bbox': [50, 30, 40, 40], 'area': 1600, 'iscrowd': 0},
        {'id': 3, 'image_id': 11, 'category_id': 7, 'bbox': [5, 5, 60, 50], 'area': 3000, 'iscrowd': 0},
        {'id': 4, 'image_id': 11, 'category_id': 3, 'bbox': [70, 10, 20, 60], 'area': 1200, 'iscrowd': 1},
        {'id': 5, 'image_id': 12, 'category_id': 3, 'bbox': [0, 0, 99, 79], 'area': 7900, 'iscrowd': 0},
    ]
    cats = [{'id': 7, 'name': 'dog'}, {'id': 3, 'name': 'cat'}]
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(json.dumps({'images': images, 'annotations': anns, 'categories': cats}))
    (tmp_path / 'img').mkdir(exist_ok=True)
    return str(ann_file), str(tmp_path / 'img')


def test_classes_sorted_by_original_id_and_crowd_left_out(tmp_path):
    ann_file, img = make_set(tmp_path)
    db = CocoDataset('mini', ann_file, img)
    assert db.classes == ('__background__', 'cat', 'dog')
    assert db.category_ids == [3, 7]
    r = db.roidb
    # Image 11: the crowd cat is not a training box; only the dog remains, as class 2.
    assert r[1]['gt_classes'].tolist() == [2]
    assert r[1]['num_crowd'] == 1
    # [x, y, w, h] -> inclusive corners.
    np.testing.assert_array_equal(r[0]['boxes'], [[10, 10, 39, 29], [50, 30, 89, 69]])
    np.testing.assert_array_equal(r[2]['boxes'], [[0, 0, 98, 78]])


def test_evaluation_matches_pycocotools(tmp_path, capsys):
    ann_file, img = make_set(tmp_path)
    db = CocoDataset('mini', ann_file, img)
    rng = np.random.default_rng(0)
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(3)] for _ in range(3)]
    # Good, shifted and random detections for both classes (0-based corners).
    all_boxes[1][0] = np.array([[10, 10, 39, 29, 0.9], [12, 8, 40, 30, 0.5]], np.float32)
    all_boxes[2][0] = np.array([[52, 31, 88, 70, 0.8]], np.float32)
    all_boxes[2][1] = np.array([[5, 5, 64, 54, 0.7], [30, 20, 60, 50, 0.3]], np.float32)
    all_boxes[1][1] = np.array([[70, 10, 89, 69, 0.95]], np.float32)  # on the crowd region: ignored
    xy = rng.uniform(0, 50, size=(4, 2))
    all_boxes[1][2] = np.concatenate([xy, xy + 30, rng.uniform(0, 1, (4, 1))], 1).astype(np.float32)
    out = tmp_path / 'out'
    ap = db.evaluate_detections(all_boxes, str(out)).mean_ap

    # The same detections scored by pycocotools directly, converted by hand with the original ids.
    results = []
    for cls, cat_id in ((1, 3), (2, 7)):
        for im, image_id in enumerate((10, 11, 12)):
            for x1, y1, x2, y2, s in all_boxes[cls][im].astype(np.float64):
                results.append({'image_id': image_id, 'category_id': cat_id, 'score': float(s),
                                'bbox': [x1, y1, x2 - x1 + 1, y2 - y1 + 1]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        ev = COCOeval(gt, gt.loadRes(results), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ap == pytest.approx(ev.stats[0], abs=1e-3)
    assert 0.0 < ap < 1.0
    printed = capsys.readouterr().out
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]' in printed
    assert 'Per-category AP' in printed and 'dog' in printed
    written = json.loads((out / 'detections_mini_results.json').read_text())
    assert {d['category_id'] for d in written} == {3, 7}
    first = [d for d in written if d['category_id'] == 3 and d['image_id'] == 10][0]
    assert first['bbox'] == [10.0, 10.0, 30.0, 20.0]
    stats = json.loads((out / 'detection_results.json').read_text())['stats']
    np.testing.assert_allclose(stats, ev.stats, atol=1e-3)


def test_perfect_detections_score_one(tmp_path):
    ann_file, img = make_set(tmp_path)
    db = CocoDataset('mini', ann_file, img)
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(3)] for _ in range(3)]
    for i, r in enumerate(db.roidb):
        for c in (1, 2):
            b = r['boxes'][r['gt_classes'] == c]
            all_boxes[c][i] = np.concatenate([b, np.ones((len(b), 1), np.float32)], 1)
    assert db.evaluate_detections(all_boxes, str(tmp_path / "out")).mean_ap == pytest.approx(1.0)


def test_results_keep_scores_and_boxes_unrounded(tmp_path):
    # As the reference: scores that differ below 1e-5 must not become ties (COCOeval orders by score).
    ann_file, img = make_set(tmp_path)
    db = CocoDataset('mini', ann_file, img)
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(3)] for _ in range(3)]
    all_boxes[1][0] = np.array([[10.125, 10.5, 39.0625, 29.25, 0.5000025], [10, 10, 39, 29, 0.5000012]], np.float32)
    res = db.detections_to_coco(all_boxes)
    dets = all_boxes[1][0].astype(np.float64)
    assert [r['score'] for r in res] == [float(dets[0, 4]), float(dets[1, 4])]
    assert res[0]['score'] > res[1]['score']
    assert res[0]['bbox'] == [10.125, 10.5, 39.0625 - 10.125 + 1, 29.25 - 10.5 + 1]
