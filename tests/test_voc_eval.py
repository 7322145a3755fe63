"""VOC evaluation on hand-built cases with hand-computed APs (docs/design.md §2.10)."""
import os

import numpy as np
import pytest

from faster_rcnn.datasets.pascal_voc import VocDataset
from faster_rcnn.datasets.voc_eval import voc_ap, voc_eval


def _xml(objects, w=50, h=40):
    objs = ''.join(
        f'<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
        f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>' for n, b, d in objects)
    return f'<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>'


def write_voc(root, images, split='test'):
    """images: {id: [(name, (x1, y1, x2, y2) 1-based, difficult)]}; writes a VOC folder with real JPEGs."""
    import cv2
    for sub in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for index, objects in images.items():
        with open(os.path.join(root, 'Annotations', index + '.xml'), 'w') as f:
            f.write(_xml(objects))
        cv2.imwrite(os.path.join(root, 'JPEGImages', index + '.jpg'), np.full((40, 50, 3), 128, np.uint8))
    with open(os.path.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write('\n'.join(images) + '\n')


# img1: a car and a difficult car; img2: one car; img3: nothing.
IMAGES = {'img1': [('car', (1, 1, 10, 10), False), ('car', (21, 21, 30, 30), True)],
          'img2': [('car', (1, 1, 10, 10), False)],
          'img3': []}
# (image, score, box 1-based): TP, duplicate FP, difficult ignored, FP on an empty image,
# IoU exactly 0.5 (FP: the match needs IoU > 0.5), TP.
DETS = [('img1', 0.9, (1, 1, 10, 10)), ('img1', 0.8, (1, 1, 10, 10)), ('img1', 0.7, (21, 21, 30, 30)),
        ('img3', 0.6, (1, 1, 10, 10)), ('img2', 0.5, (1, 1, 10, 5)), ('img2', 0.4, (1, 1, 10, 10))]


def test_voc_ap_07_eleven_points():
    # 6 thresholds (0 .. 0.5) at precision 1, 5 (0.6 .. 1.0) at 0.5.
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), True) == pytest.approx(8.5 / 11)


def test_voc_ap_07_uses_the_float_thresholds():
    # np.arange gives 0.30000000000000004 > 0.3, so a recall of exactly 0.3 only reaches 3 thresholds.
    assert voc_ap(np.array([0.3]), np.array([1.0]), True) == pytest.approx(3 / 11)
    assert voc_ap(np.array([0.4]), np.array([1.0]), True) == pytest.approx(5 / 11)


def test_voc_ap_area_envelope():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), False) == pytest.approx(0.75)
    # The envelope lifts the dip at recall 0.5 to the later precision 0.8.
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.8]), False) == pytest.approx(0.5 + 0.4)


@pytest.fixture
def voc_case(tmp_path):
    root = tmp_path / 'voc'
    write_voc(str(root), IMAGES)
    det = tmp_path / 'det_car.txt'
    det.write_text(''.join(f'{i} {s} {b[0]} {b[1]} {b[2]} {b[3]}\n' for i, s, b in DETS))
    return root, str(tmp_path / 'det_{}.txt')


@pytest.mark.parametrize('use_07, expected', [(True, (6 + 5 * 0.4) / 11), (False, 0.5 + 0.5 * 0.4)])
def test_voc_eval_hand_built(voc_case, tmp_path, use_07, expected):
    root, detpath = voc_case
    rec, prec, ap = voc_eval(detpath, str(root / 'Annotations' / '{}.xml'), str(root / 'ImageSets/Main/test.txt'),
                             'car', str(tmp_path / 'cache'), 0.5, use_07)
    # npos = 2 (the difficult car is not counted); the ignored detection repeats the previous point.
    np.testing.assert_allclose(rec, [0.5, 0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 0.5, 1 / 3, 0.25, 2 / 5])
    assert ap == pytest.approx(expected)


def test_voc_eval_iou_threshold_is_strict(voc_case, tmp_path):
    root, detpath = voc_case
    args = (detpath, str(root / 'Annotations' / '{}.xml'), str(root / 'ImageSets/Main/test.txt'), 'car', None)
    _, prec_strict, _ = voc_eval(*args, ovthresh=0.5)
    _, prec_lower, _ = voc_eval(*args, ovthresh=0.49)
    # With a threshold below 0.5 the IoU-0.5 detection becomes the second TP.
    assert prec_strict[4] == pytest.approx(0.25)
    assert prec_lower[4] == pytest.approx(2 / 4)


def test_voc_eval_unknown_class_and_missing_file(voc_case, tmp_path):
    root, detpath = voc_case
    rec, prec, ap = voc_eval(detpath, str(root / 'Annotations' / '{}.xml'), str(root / 'ImageSets/Main/test.txt'),
                             'dog', None)
    assert ap == 0.0 and len(rec) == 0


def test_voc_eval_annotation_cache_follows_edits(voc_case, tmp_path):
    root, detpath = voc_case
    args = (detpath, str(root / 'Annotations' / '{}.xml'), str(root / 'ImageSets/Main/test.txt'), 'car',
            str(tmp_path / 'cache'))
    assert voc_eval(*args)[2] == pytest.approx((6 + 5 * 0.4) / 11)
    # img2's car is removed: npos 1, the first detection is the only TP needed -> AP 1 (07: all 11 points).
    (root / 'Annotations' / 'img2.xml').write_text(_xml([]) + '\n')
    assert voc_eval(*args)[2] == pytest.approx(1.0)


def test_evaluate_detections_writes_1_based_files(tmp_path, capsys):
    root = tmp_path / 'voc'
    write_voc(str(root), IMAGES)
    db = VocDataset('mini', str(root), 'test', classes=('__background__', 'car', 'dog'), data_dir=str(tmp_path / 'data'))
    empty = np.zeros((0, 5), np.float32)
    all_boxes = [[empty] * 3,
                 [np.array([[0, 0, 9, 9, 0.9]], np.float32), np.array([[0, 0, 9, 9, 0.8]], np.float32), empty],
                 [empty] * 3]
    db.competition_mode(True)
    out = tmp_path / 'out'
    result = db.evaluate_detections(all_boxes, str(out))
    mean_ap = result.mean_ap
    printed = capsys.readouterr().out
    # car: both non-difficult cars found first -> 1.0; dog: no gt, no detection -> 0.0.
    assert mean_ap == pytest.approx(0.5)
    assert 'AP for car = 1.0000' in printed and 'Mean AP = 0.5000' in printed
    lines = (out / 'results' / 'mini' / 'Main' / 'comp4_det_test_car.txt').read_text().splitlines()
    assert lines == ['img1 0.900 1.0 1.0 10.0 10.0', 'img2 0.800 1.0 1.0 10.0 10.0']


def test_voc_eval_image_set_with_a_second_column(voc_case, tmp_path):
    # VocDataset takes the first word of each image-set line; evaluation must read the same ids.
    root, detpath = voc_case
    listed = tmp_path / 'two_columns.txt'
    listed.write_text('img1  1\nimg2  1\nimg3 -1\n')
    _, _, ap = voc_eval(detpath, str(root / 'Annotations' / '{}.xml'), str(listed), 'car', None)
    assert ap == pytest.approx((6 + 5 * 0.4) / 11)


def test_use_diff_counts_difficult_objects_as_the_reference(voc_case):
    """The ``_diff`` sets: the difficult car becomes a regular gt. Ranked: TP, FP (dup), TP (the difficult
    car), FP, FP (IoU 0.5), TP; npos 3 -> precisions at recalls 1/3, 2/3, 1: 1, 2/3, 1/2."""
    root, detpath = voc_case
    args = (detpath, str(root / 'Annotations' / '{}.xml'), str(root / 'ImageSets' / 'Main' / 'test.txt'), 'car', None)
    rec, prec, ap = voc_eval(*args, use_diff=True)
    np.testing.assert_allclose(rec, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 2 / 3, 0.5, 0.4, 0.5])
    # 11-point: t = 0..0.3 -> 1, t = 0.4..0.6 -> 2/3, t = 0.7..1.0 -> 0.5.
    assert ap == pytest.approx((4 * 1.0 + 3 * (2 / 3) + 4 * 0.5) / 11)
    # Without it the difficult car is neither TP nor FP and not in npos (2): the same AP here, other curves.
    np.testing.assert_allclose(voc_eval(*args)[0], [0.5, 0.5, 0.5, 0.5, 0.5, 1.0])


def test_diff_dataset_evaluates_with_use_diff_and_writes_pr_curves(tmp_path):
    root = tmp_path / 'voc'
    write_voc(str(root), IMAGES)
    all_boxes = [[np.zeros((0, 5), np.float32)] * 3,
                 [np.array([[0, 0, 9, 9, 0.9], [20, 20, 29, 29, 0.8]], np.float32),
                  np.array([[0, 0, 9, 9, 0.7]], np.float32), np.zeros((0, 5), np.float32)]]
    data = str(tmp_path / 'data')
    plain = VocDataset('mini', str(root), 'test', classes=('__background__', 'car'), data_dir=data)
    diff = VocDataset('mini_diff', str(root), 'test', classes=('__background__', 'car'), use_diff=True, data_dir=data)
    r_plain = plain.evaluate_detections(all_boxes, str(tmp_path / 'plain'))
    r_diff = diff.evaluate_detections(all_boxes, str(tmp_path / 'diff'))
    # Without use_diff the detection on the difficult car is ignored: recall 1/2 then 1 -> AP 1.
    assert r_plain.mean_ap == pytest.approx(1.0)
    np.testing.assert_allclose(r_diff.curves['car'][0], [1 / 3, 2 / 3, 1.0])
    assert r_diff.mean_ap == pytest.approx(1.0) and r_diff.per_class == {'car': pytest.approx(1.0)}
    import pickle
    with open(tmp_path / 'diff' / 'car_pr.pkl', 'rb') as f:  # written for the user, in the reference's layout
        pr = pickle.load(f)
    np.testing.assert_allclose(pr['rec'], [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(pr['prec'], [1.0, 1.0, 1.0])
    assert pr['ap'] == pytest.approx(1.0)
    import cv2
    png = cv2.imread(str(tmp_path / 'diff' / 'pr_curves.png'))
    assert png is not None and png.shape[0] > 100 and png.std() > 0
