"""tools/analyze_results.py and faster_rcnn.analysis.{confusion,sizes,gallery,results}: hand-made cases with counts
and APs worked out by hand, the VOC and COCO evaluations as references, the tool end to end and its errors."""
from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from faster_rcnn.analysis.confusion import confusion_matrix, top_confusions
from faster_rcnn.analysis.gallery import write_gallery
from faster_rcnn.analysis.results import detections_per_image, read_coco_results, read_results_folder
from faster_rcnn.analysis.sizes import size_aps
from faster_rcnn.analysis.tide import TRUE_POSITIVE, ImageDetections, ImageGroundTruth, tide
from faster_rcnn.errors import DataError, UsageError
from tool_runs import REPO, _dirs, run_tool

F = np.float64


def gt(boxes, labels, ignore=None) -> ImageGroundTruth:
    boxes = np.array(boxes, F).reshape(-1, 4)
    return ImageGroundTruth(boxes=boxes, labels=np.array(labels, np.int64),
                            ignore=np.zeros(len(boxes), bool) if ignore is None else np.array(ignore, bool))


def dets(boxes, scores, labels) -> ImageDetections:
    return ImageDetections(boxes=np.array(boxes, F).reshape(-1, 4), scores=np.array(scores, F),
                           labels=np.array(labels, np.int64))


# -- confusion matrix ------------------------------------------------------------------------------------
CLASSES = ('__background__', 'a', 'b', 'c')


def test_confusion_matrix_hand_case():
    images_gt = [
        gt([[0, 0, 9, 9], [20, 20, 39, 39], [50, 50, 69, 69]], [1, 2, 1]),
        gt([[0, 0, 19, 19], [40, 40, 59, 59]], [2, 3], ignore=[False, True]),
        gt([[0, 0, 19, 19], [4, 0, 23, 19]], [1, 2]),
    ]
    images_dets = [
        # a on A (correct); a shifted on A (A taken: background); a on B (b confused as a); b far from all
        # (background); c on C below the threshold (not counted, so C is missed).
        dets([[0, 0, 9, 9], [1, 0, 10, 9], [20, 20, 39, 39], [80, 80, 89, 89], [50, 50, 69, 69]],
             [0.9, 0.8, 0.7, 0.6, 0.3], [1, 1, 1, 2, 3]),
        # a (IoU 0.6, the highest score) takes the b box first; b exact comes second (background); c on the ignore
        # box: not counted.
        dets([[0, 0, 19, 11], [0, 0, 19, 19], [40, 40, 59, 59]], [0.99, 0.95, 0.9], [1, 2, 3]),
        # a overlaps the b box more (IoU 0.905) than the a box (0.739): its own class wins; the b box is missed.
        dets([[3, 0, 22, 19]], [0.9], [1]),
    ]
    m = confusion_matrix(images_gt, images_dets, CLASSES, score_thresh=0.5, iou=0.5)
    expected = np.zeros((4, 4), np.int64)
    expected[1, 1] = 2   # image 0 A, image 2 a box
    expected[0, 1] = 1   # image 0 duplicate
    expected[2, 1] = 2   # image 0 B, image 1 b box
    expected[0, 2] = 2   # image 0 far b, image 1 second b
    expected[1, 0] = 1   # image 0 C missed
    expected[2, 0] = 1   # image 2 b box missed
    assert m.counts.tolist() == expected.tolist()
    assert top_confusions(m) == [('b', 'a', 2)]
    # Display order: classes, then background / missed.
    assert m.display()[-1].tolist() == [1, 2, 0, 0] and m.display()[:, -1].tolist() == [1, 1, 0, 0]


def test_confusion_threshold_is_inclusive_and_iou_can_exclude():
    g = [gt([[0, 0, 9, 9]], [1])]
    d = [dets([[0, 0, 9, 4]], [0.5], [1])]  # IoU exactly 0.5, score exactly the threshold
    assert confusion_matrix(g, d, CLASSES[:2], 0.5, 0.5).counts.tolist() == [[0, 0], [0, 1]]
    assert confusion_matrix(g, d, CLASSES[:2], 0.5, 0.51).counts.tolist() == [[0, 1], [1, 0]]
    assert confusion_matrix(g, d, CLASSES[:2], 0.6, 0.5).counts.tolist() == [[0, 0], [1, 0]]


def test_confusion_prefers_gt_over_ignore_box_of_the_same_class():
    # The ignore box overlaps more (IoU 1) than the gt (IoU 0.6): the gt is still taken.
    g = [gt([[0, 0, 19, 19], [0, 0, 19, 11]], [1, 1], ignore=[False, True])]
    d = [dets([[0, 0, 19, 11]], [0.9], [1])]
    assert confusion_matrix(g, d, CLASSES[:2]).counts.tolist() == [[0, 0], [0, 1]]


# -- AP by size --------------------------------------------------------------------------------------------
def _size_case():
    g = [gt([[0, 0, 9, 9], [20, 20, 69, 69], [100, 100, 199, 199],  # a: small, medium, large
             [300, 0, 309, 9], [400, 0, 439, 39]],                  # b: small difficult, medium
            [1, 1, 1, 2, 2], ignore=[False, False, False, True, False])]
    d = [dets([[100, 100, 199, 199], [300, 300, 339, 339], [0, 0, 9, 9], [300, 0, 309, 9], [400, 0, 439, 39]],
              [0.9, 0.8, 0.7, 0.95, 0.6], [1, 1, 1, 2, 2])]
    return g, d


def test_size_ap_hand_case_voc07_and_area():
    g, d = _size_case()
    names = ('__background__', 'a', 'b')
    r07 = size_aps(g, d, names, metric='voc07')
    # a over all sizes: TP, FP, TP of 3 gt -> recall 1/3, 1/3, 2/3, precision 1, 1/2, 2/3: 11-point AP (4 x 1 +
    # 3 x 2/3) / 11; area AP 1/3 x 1 + 1/3 x 2/3 = 5/9. b: its detection on the difficult box is left out: AP 1.
    assert r07.range('all').per_class == pytest.approx({'a': 6 / 11, 'b': 1.0})
    assert r07.range('all').mean_ap == pytest.approx((6 / 11 + 1) / 2)
    # small: only a's small gt counts; the large TP and the medium-sized FP are left out -> 1. b has no gt.
    assert r07.range('small').per_class == {'a': pytest.approx(1.0), 'b': None}
    assert r07.range('small').mean_ap == pytest.approx(1.0)
    # medium: a's medium gt is missed and the medium-sized FP counts -> 0; b's medium gt found -> 1.
    assert r07.range('medium').per_class == {'a': 0.0, 'b': pytest.approx(1.0)}
    assert r07.range('medium').mean_ap == pytest.approx(0.5)
    assert r07.range('large').per_class == {'a': pytest.approx(1.0), 'b': None}
    assert [r07.range(n).num_gt for n in ('all', 'small', 'medium', 'large')] == [4, 1, 2, 1]
    area = size_aps(g, d, names, metric='voc')
    assert area.range('all').per_class == pytest.approx({'a': 5 / 9, 'b': 1.0})


def test_size_ranges_share_their_bounds_as_cocoeval():
    g = [gt([[0, 0, 31, 31], [100, 0, 195, 95]], [1, 1])]  # 32 x 32 and 96 x 96
    d = [dets([[0, 0, 31, 31], [100, 0, 195, 95]], [0.9, 0.8], [1, 1])]
    r = size_aps(g, d, CLASSES[:2], metric='voc07')
    assert [r.range(n).num_gt for n in ('all', 'small', 'medium', 'large')] == [2, 1, 2, 1]
    assert all(r.range(n).mean_ap == pytest.approx(1.0) for n in ('small', 'medium', 'large'))


def _random_case(seed: int, num_classes: int = 4, images: int = 30, crowd: float = 0.15):
    rng = np.random.default_rng(seed)
    gts, ds = [], []
    for _ in range(images):
        n = int(rng.integers(0, 7))
        xy = rng.integers(0, 200, (n, 2))
        wh = rng.integers(5, 150, (n, 2))
        boxes = np.c_[xy, xy + wh - 1].astype(np.float32)
        gts.append(ImageGroundTruth(boxes, rng.integers(1, num_classes, n), rng.random(n) < crowd))
        m = int(rng.integers(0, 130 if rng.random() < 0.15 else 15))
        src = boxes[rng.integers(0, max(n, 1), m)] if n else np.zeros((m, 4), np.float32) + 10
        b = (src + rng.normal(0, 6, (m, 4))).astype(np.float32)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        ds.append(ImageDetections(b, rng.random(m).astype(np.float32), rng.integers(1, num_classes, m)))
    return gts, ds


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('use_07', [True, False])
def test_size_ap_all_range_is_the_voc_evaluation(seed, use_07):
    """The 'all' range of the VOC metric is voc_eval on the result files test_net writes (rounded as there)."""
    from faster_rcnn.datasets.voc_eval import voc_eval_from_records
    gts, ds = _random_case(seed)
    names = ('__background__', 'a', 'b', 'c')
    ours = size_aps(gts, ds, names, metric='voc07' if use_07 else 'voc').range('all').per_class
    ids = [f'im{i}' for i in range(len(gts))]
    recs = {ids[i]: [dict(name=names[l], difficult=int(h), bbox=[float(v) + 1 for v in b])
                     for b, l, h in zip(g.boxes, g.labels, g.ignore)] for i, g in enumerate(gts)}
    for k in range(1, 4):
        lines = [(ids[i], float(f'{s:.3f}'), [float(f'{v + 1:.1f}') for v in b])
                 for i, d in enumerate(ds) for b, s, l in zip(d.boxes, d.scores, d.labels) if l == k]
        _, _, ap = voc_eval_from_records(recs, ids, names[k], lines, 0.5, use_07)
        assert ours[names[k]] == pytest.approx(ap, abs=1e-12), names[k]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_size_ap_coco_metric_is_cocoeval_at_one_iou(seed):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gts, ds = _random_case(seed, images=40)
    names = ('__background__', 'a', 'b', 'c')
    images, anns, results = [], [], []
    for i, (g, d) in enumerate(zip(gts, ds)):
        images.append({'id': i + 1, 'file_name': f'{i}.jpg', 'width': 400, 'height': 400})
        for b, l, c in zip(g.boxes.astype(F), g.labels, g.ignore):
            w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
            anns.append({'id': len(anns) + 1, 'image_id': i + 1, 'category_id': int(l), 'bbox': [b[0], b[1], w, h],
                         'area': w * h, 'iscrowd': int(c)})
        for b, s, l in zip(d.boxes.astype(F), d.scores.astype(F), d.labels):
            results.append({'image_id': i + 1, 'category_id': int(l), 'score': float(s),
                            'bbox': [b[0], b[1], b[2] - b[0] + 1, b[3] - b[1] + 1]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {'images': images, 'annotations': anns,
                        'categories': [{'id': k, 'name': names[k]} for k in range(1, 4)]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), 'bbox')
        ev.params.iouThrs = np.array([0.5])
        ev.evaluate()
        ev.accumulate()
    ours = size_aps(gts, ds, names, metric='coco')
    for a, rng_name in enumerate(('all', 'small', 'medium', 'large')):
        for k in range(3):
            p = ev.eval['precision'][0, :, k, a, -1]
            expected = None if (p <= -1).all() else float(np.mean(p))
            got = ours.range(rng_name).per_class[names[k + 1]]
            assert (got is None) == (expected is None) and (got is None or got == pytest.approx(expected, abs=1e-12))


# -- gallery -----------------------------------------------------------------------------------------------
def test_gallery_draws_the_images_that_lost_most(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f'img{i}.jpg'
        cv2.imwrite(str(p), np.full((60, 80, 3), 90, np.uint8))
        paths.append(str(p))
    box = [[10, 10, 39, 39]]
    g = [gt(box, [1]) for _ in range(4)]
    d = [dets(box, [0.9], [1]),                                    # perfect
         dets([[50, 40, 70, 55]], [0.95], [1]),                    # the gt missed, a confident false positive
         dets(box, [0.8], [1]),                                    # perfect
         dets([[10, 10, 39, 39], [50, 40, 70, 55]], [0.7, 0.99], [1, 1])]  # found, after a false positive
    result = tide(g, d, 2)
    assert result.images[0].ap_lost == 0 and result.images[2].ap_lost == 0
    old = tmp_path / 'gallery' / '009_stale.jpg'
    old.parent.mkdir()
    old.write_bytes(b'x')
    written = write_gallery(str(tmp_path / 'gallery'), result, g, d, CLASSES[:2], lambda i: paths[i], 2, 0.5)
    names = sorted(Path(p).name for p in written)
    assert sorted(n.split('_', 1)[1] for n in names) == ['img1.jpg', 'img3.jpg']
    assert sorted(p.name for p in (tmp_path / 'gallery').iterdir()) == names  # the stale picture is gone
    first = written[0]
    assert Path(first).name.startswith('001_')
    worst = 1 if result.images[1].ap_lost >= result.images[3].ap_lost else 3
    assert Path(first).name == f'001_img{worst}.jpg'
    im = cv2.imread(first)
    # The 60x80 image enlarged to a shorter side of 512 (x 512/60), a 26-pixel header above it, a legend below.
    assert im is not None and im.shape[1] == 683 and im.shape[0] > 26 + 512
    # Image 1's gt box is a Miss: drawn yellow (BGR 0, 255, 255) along its top edge (y 10 x 512/60), below the
    # header line.
    pic1 = cv2.imread(str(tmp_path / 'gallery' / next(n for n in names if n.endswith('img1.jpg')))).astype(int)
    f = 512 / 60
    top = pic1[26 + round(10 * f), round(14 * f):round(36 * f)]
    assert (np.abs(top - [0, 255, 255]).max(axis=1) < 80).mean() > 0.8, top
    assert result.images[3].det_error.tolist()[0] == TRUE_POSITIVE


def test_gallery_pictures_are_enlarged_and_carry_a_legend():
    """A 30x40 image is drawn 4x its size at min_side 120 (the 26-pixel header above, the legend below), a large
    one as it is; every colour of the legend is there as a filled swatch, and the legend names every label."""
    from faster_rcnn.analysis.gallery import GALLERY_MIN_SIDE, LEGEND, draw_errors, draw_legend
    assert GALLERY_MIN_SIDE >= 480
    g, d = [gt([[5, 5, 20, 20]], [1])], [dets([[5, 5, 20, 20]], [0.9], [1])]
    errors = tide(g, d, 2).images[0]
    small = draw_errors(np.full((30, 40, 3), 90, np.uint8), g[0], d[0], errors, CLASSES[:2], 0.5, min_side=120)
    legend = draw_legend(160)
    assert small.shape == (26 + 120 + legend.shape[0], 160, 3)
    assert np.array_equal(small[26 + 120:], legend)
    # The true positive's box, at 4x: its left edge in the TP colour at x = 20.
    assert tuple(small[26 + 40, 20]) == LEGEND[0][1]
    large = draw_errors(np.full((600, 800, 3), 90, np.uint8), g[0], d[0], errors, CLASSES[:2], 0.5)
    assert large.shape[1] == 800 and large.shape[0] == 26 + 600 + draw_legend(800).shape[0]
    wide = draw_legend(800)
    assert wide.shape[0] < legend.shape[0]  # the entries flow into fewer rows on a wider picture
    for _, colour in LEGEND:
        assert (wide == np.array(colour, np.uint8)).all(axis=2).sum() >= 13 * 13, colour
    labels = [text.split(':')[0] for text, _ in LEGEND]
    assert {'TP', 'Cls', 'Loc', 'Both', 'Dupe', 'Bkg', 'gt missed'} <= set(labels)


def test_gallery_of_an_unreadable_image_names_it(tmp_path):
    g, d = [gt([[0, 0, 9, 9]], [1])], [dets([[30, 30, 39, 39]], [0.9], [1])]
    with pytest.raises(DataError, match='nothere.jpg'):
        write_gallery(str(tmp_path / 'g'), tide(g, d, 2), g, d, CLASSES[:2], lambda i: str(tmp_path / 'nothere.jpg'),
                      1, 0.5)


# -- a COCO-format dataset of two images, its results and the tool's errors --------------------------------
def make_coco(root: Path) -> str:
    """Two 64x48 images: a dog in image 1; a cat and a crowd of cats in image 2. Returns the dataset name."""
    images = root / 'images'
    images.mkdir(parents=True)
    for i in (1, 2):
        cv2.imwrite(str(images / f'{i}.jpg'), np.full((48, 64, 3), 128, np.uint8))
    data = {'images': [{'id': 1, 'file_name': '1.jpg', 'width': 64, 'height': 48},
                       {'id': 2, 'file_name': '2.jpg', 'width': 64, 'height': 48}],
            'categories': [{'id': 3, 'name': 'dog'}, {'id': 7, 'name': 'cat'}],
            'annotations': [{'id': 10, 'image_id': 1, 'category_id': 3, 'bbox': [4, 4, 20, 20], 'area': 400,
                             'iscrowd': 0},
                            {'id': 11, 'image_id': 2, 'category_id': 7, 'bbox': [10, 8, 30, 30], 'area': 900,
                             'iscrowd': 0},
                            {'id': 12, 'image_id': 2, 'category_id': 7, 'bbox': [42, 30, 20, 15], 'area': 300,
                             'iscrowd': 1}]}
    (root / 'ann.json').write_text(json.dumps(data))
    return f'coco_json:{root / "ann.json"}:{images}'


# The dog found after a confident dog false positive; the cat found; a more confident cat on the crowd region.
RESULTS = [{'image_id': 1, 'category_id': 3, 'bbox': [4, 4, 20, 20], 'score': 0.9},
           {'image_id': 2, 'category_id': 3, 'bbox': [50, 5, 10, 10], 'score': 0.95},
           {'image_id': 2, 'category_id': 7, 'bbox': [10, 8, 30, 30], 'score': 0.8},
           {'image_id': 2, 'category_id': 7, 'bbox': [42, 30, 20, 15], 'score': 0.85}]


@pytest.fixture
def coco_set(tmp_path, monkeypatch):
    """(dataset name, results folder, DATA_DIR) with the results json in the folder; the global cfg's DATA_DIR is
    the test's for in-process runs."""
    from faster_rcnn.config import cfg
    name = make_coco(tmp_path / 'coco')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'results.json').write_text(json.dumps(RESULTS))
    monkeypatch.setattr(cfg, 'DATA_DIR', str(tmp_path / 'data'))
    return name, out, tmp_path / 'data'


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    """The tool's main as run_tool runs it (the one-line error and the exit code), in this process."""
    from faster_rcnn.cli import run_tool as run
    tool = _tool('analyze_results')
    code = run(lambda: tool.main(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_coco_results_end_to_end_through_the_command_line(coco_set, tmp_path):
    name, out, data_dir = coco_set
    proc = run_tool(['tools/analyze_results.py', str(out / 'results.json'), '--imdb', name, '--gallery', '2',
                     '--json', str(tmp_path / 'tide_copy.json'), '--set', 'DATA_DIR', str(data_dir)])
    t = json.loads((out / 'tide.json').read_text())
    # dog: FP then TP -> precision 1/2 at every recall: 50; cat: the crowd detection is left out: 100.
    assert t['ap50'] == pytest.approx(75.0)
    assert {k: v['ap50'] for k, v in t['per_class'].items()} == pytest.approx({'1': 50.0, '2': 100.0})
    assert t['main']['bkg'] == pytest.approx(25.0) and t['special']['false_pos'] == pytest.approx(25.0)
    assert set(t['main']) == {'cls', 'loc', 'both', 'dupe', 'bkg', 'miss'} and set(t['special']) == {'false_pos',
                                                                                                       'false_neg'}
    assert json.loads((tmp_path / 'tide_copy.json').read_text()) == t
    with open(out / 'confusion.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows == [['gt \\ predicted', 'dog', 'cat', 'missed'], ['dog', '1', '0', '0'], ['cat', '0', '1', '0'],
                    ['background', '1', '0', '0']]
    assert cv2.imread(str(out / 'confusion.png')) is not None
    sizes = json.loads((out / 'sizes.json').read_text())
    assert sizes['metric'] == 'coco'
    assert sizes['ranges']['all']['per_class'] == pytest.approx({'dog': 0.5, 'cat': 1.0})
    assert sizes['ranges']['medium']['mean_ap'] is None and sizes['ranges']['small']['mean_ap'] == pytest.approx(0.75)
    assert sorted(p.name for p in (out / 'gallery').iterdir()) == ['001_2.jpg', '002_1.jpg']
    assert re.search(r'^all\s+75\.00', proc.stdout, flags=re.M), proc.stdout


def test_folder_and_json_of_the_same_detections_agree(coco_set):
    from faster_rcnn.datasets.factory import get_imdb
    name, out, data_dir = coco_set
    db = get_imdb(name, str(data_dir))
    from_json = read_coco_results(str(out / 'results.json'), db)
    all_boxes = [[np.zeros((0, 5), np.float32) for _ in range(2)] for _ in range(3)]
    for r in RESULTS:
        x, y, w, h = r['bbox']
        all_boxes[db.category_ids.index(r['category_id']) + 1][r['image_id'] - 1] = np.concatenate(
            [all_boxes[db.category_ids.index(r['category_id']) + 1][r['image_id'] - 1],
             np.array([[x, y, x + w - 1, y + h - 1, r['score']]], np.float32)])
    with open(out / 'detections.pkl', 'wb') as f:  # this test's own file
        pickle.dump(all_boxes, f)
    from_pkl = read_results_folder(str(out), db)
    for a, b in zip(from_json, from_pkl):
        key_a, key_b = np.lexsort((a.scores,)), np.lexsort((b.scores,))
        assert np.allclose(a.boxes[key_a], b.boxes[key_b]) and np.array_equal(a.labels[key_a], b.labels[key_b])


def test_detections_per_image_keeps_each_class_and_image():
    empty = np.zeros((0, 5), np.float32)
    all_boxes = [[empty, empty], [np.array([[0, 0, 5, 5, 0.5]], np.float32), empty],
                 [np.array([[1, 1, 4, 4, 0.7], [2, 2, 6, 6, 0.2]], np.float32),
                  np.array([[0, 0, 1, 1, 0.9]], np.float32)]]
    d = detections_per_image(all_boxes, 2)
    assert d[0].labels.tolist() == [1, 2, 2] and d[0].scores.tolist() == pytest.approx([0.5, 0.7, 0.2])
    assert d[1].labels.tolist() == [2] and d[1].boxes.tolist() == [[0, 0, 1, 1]]


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def test_missing_folder_is_a_usage_error(coco_set, capsys, tmp_path):
    name, _, _ = coco_set
    code, _, err = run_in_process(capsys, str(tmp_path / 'nothere'), '--imdb', name)
    assert code == UsageError.exit_code == 2
    assert 'nothere: no such folder' in _error_line(err)


def test_folder_without_detections_is_a_usage_error(coco_set, capsys, tmp_path):
    name, _, _ = coco_set
    (tmp_path / 'empty').mkdir()
    code, _, err = run_in_process(capsys, str(tmp_path / 'empty'), '--imdb', name)
    assert code == 2 and 'detections.pkl does not exist; run tools/test_net.py' in _error_line(err)


@pytest.mark.parametrize('classes, images, says', [(5, 2, '5 classes x 2 images'), (3, 7, '3 classes x 7 images')])
def test_detections_of_another_dataset_name_both_counts(coco_set, capsys, tmp_path, classes, images, says):
    name, _, _ = coco_set
    folder = tmp_path / 'other'
    folder.mkdir()
    with open(folder / 'detections.pkl', 'wb') as f:  # this test's own file
        pickle.dump([[np.zeros((0, 5), np.float32) for _ in range(images)] for _ in range(classes)], f)
    code, _, err = run_in_process(capsys, str(folder), '--imdb', name)
    line = _error_line(err)
    assert code == DataError.exit_code == 4
    assert says in line and '3 classes x 2 images' in line.split('but', 1)[1] and '--imdb' in line


@pytest.mark.parametrize('field, value', [('image_id', 42), ('category_id', 99)])
def test_results_json_with_an_unknown_id(coco_set, capsys, field, value):
    name, out, _ = coco_set
    bad = [dict(r) for r in RESULTS]
    bad[2][field] = value
    (out / 'bad.json').write_text(json.dumps(bad))
    code, _, err = run_in_process(capsys, str(out / 'bad.json'), '--imdb', name)
    line = _error_line(err)
    assert code == 4 and f'result 2 has {field} {value}' in line and 'bad.json' in line


def test_results_json_needs_a_coco_dataset(tmp_path):
    from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes
    from faster_rcnn.datasets.factory import get_imdb
    root = ensure_shapes(str(tmp_path / 'data' / 'myshapes'), ShapesSpec(seed=3, num_trainval=1, num_test=2))
    db = get_imdb(f'voc_dir:{root}:test', str(tmp_path / 'data'))
    (tmp_path / 'r.json').write_text('[]')
    with pytest.raises(UsageError, match='needs a COCO-format --imdb'):
        read_coco_results(str(tmp_path / 'r.json'), db)


def test_bad_flag_values_are_usage_errors(coco_set, capsys):
    name, out, _ = coco_set
    code, _, err = run_in_process(capsys, str(out / 'results.json'), '--imdb', name, '--iou', '0')
    assert code == 2 and '--iou 0.0: must be in (0, 1]' in _error_line(err)


# -- the tool on the quick-start model's shapes_test results -----------------------------------------------
def _test_net(root: Path, model: Path, tag: str, *extra: str) -> str:
    return run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--device', 'cpu', '--tag',
                     tag, *extra, '--set', *_dirs(root)]).stdout


@pytest.mark.slow
def test_shapes_results_end_to_end(root, trained):
    out = _test_net(root, trained, 'analysis')
    printed = {m.group(1): float(m.group(2)) for m in re.finditer(r'AP for (\w+) = (\d+\.\d+)', out)}
    assert set(printed) == {'circle', 'square', 'triangle'}
    folder = root / 'output' / 'tiny' / 'shapes_test' / 'analysis' / trained.stem
    # No --imdb: the dataset is the one test_net named in the path.
    proc = run_tool(['tools/analyze_results.py', str(folder), '--gallery', '3', '--score-thresh', '0.3',
                     '--set', *_dirs(root)])
    assert 'TIDE' in proc.stdout and 'AP by object size' in proc.stdout
    sizes = json.loads((folder / 'sizes.json').read_text())
    assert sizes['metric'] == 'voc07'
    # The 'all' range is the VOC evaluation test_net ran (difficult objects ignored, the same rounding).
    for name, ap in printed.items():
        assert sizes['ranges']['all']['per_class'][name] == pytest.approx(ap, abs=6e-5), name
    # Every gt box of the test set is in exactly one row of the confusion matrix.
    from faster_rcnn.datasets.factory import get_imdb
    db = get_imdb('shapes_test', str(root / 'data'))
    with open(folder / 'confusion.csv', newline='') as f:
        rows = {r[0]: [int(v) for v in r[1:]] for r in list(csv.reader(f))[1:]}
    for k, name in enumerate(db.classes[1:], 1):
        assert sum(rows[name]) == sum(int((e['gt_classes'] == k).sum()) for e in db.roidb), name
    tide_json = json.loads((folder / 'tide.json').read_text())
    assert 0 <= tide_json['ap50'] <= 100 and set(tide_json['per_class']) <= {'1', '2', '3'}
    assert len(list((folder / 'gallery').glob('*.jpg'))) == 3


def test_analysis_benchmark_times_generated_results(tmp_path):
    """`tools/benchmark.py analysis` (the 5000 x 100 timing of the README) on a small generated set."""
    from faster_rcnn.bench.analysis import main as bench_main
    from faster_rcnn.bench.analysis import synthetic_results
    out = tmp_path / 'analysis.json'
    assert bench_main(['--images', '40', '--dets', '12', '--classes', '4', '--repeats', '2', '--json', str(out)]) == 0
    r = json.loads(out.read_text())
    assert (r['images'], r['dets_per_image'], r['classes']) == (40, 12, 3)
    assert len(r['seconds']['runs']) == 2 and r['seconds']['median'] > 0
    gts, dets_ = synthetic_results(40, 12, 4)
    assert len(gts) == 40 and all(len(d.scores) == 12 and d.labels.min() >= 1 and d.labels.max() <= 3 for d in dets_)
