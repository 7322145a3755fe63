"""The generated shapes set: deterministic for a seed, complete or regenerated, VOC and COCO in agreement."""
import filecmp
import json
import os

import numpy as np
import pytest


from faster_rcnn.datasets import shapes
from faster_rcnn.datasets.shapes import CLASSES, ShapesSpec, ensure_shapes, shapes_coco, shapes_voc

SMALL = ShapesSpec(seed=5, num_trainval=24, num_test=6)


pytestmark = pytest.mark.usefixtures('tmp_data_dir')


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = ensure_shapes(str(tmp_path / 'a'), SMALL)
    b = ensure_shapes(str(tmp_path / 'b'), SMALL)
    c = ensure_shapes(str(tmp_path / 'c'), ShapesSpec(seed=6, num_trainval=24, num_test=6))
    files = _files(a)
    assert files == _files(b) and len(files) == 2 * 30 + 2 + 2 + 2
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(a, c, [f for f in files if f.endswith('.jpg')], shallow=False)
    assert mismatch


def test_reused_when_complete_regenerated_when_not(tmp_path):
    root = ensure_shapes(str(tmp_path / 's'), SMALL)
    jpg = os.path.join(root, 'JPEGImages', 'trainval_000003.jpg')
    mtime = os.stat(jpg).st_mtime_ns
    ensure_shapes(root, SMALL)
    assert os.stat(jpg).st_mtime_ns == mtime  # reused, not rewritten
    os.remove(jpg)
    ensure_shapes(root, SMALL)
    assert os.path.exists(jpg)
    # Another spec (more images) replaces the set, without temporary folders left behind.
    ensure_shapes(root, ShapesSpec(seed=5, num_trainval=26, num_test=6))
    assert os.path.exists(os.path.join(root, 'JPEGImages', 'trainval_000025.jpg'))
    assert sorted(os.listdir(tmp_path)) == ['data', 's'] or sorted(os.listdir(tmp_path)) == ['s']


def test_objects_follow_the_spec():
    sizes, counts, tiny = [], [], 0
    for i in range(60):
        im, objs = shapes.make_image(SMALL, 0, i)
        assert SMALL.min_size <= im.shape[0] <= SMALL.max_size and SMALL.min_size <= im.shape[1] <= SMALL.max_size
        normal = [o for o in objs if not o['difficult']]
        counts.append(len(normal))
        for o in objs:
            x1, y1, x2, y2 = o['box']
            assert 0 <= x1 <= x2 < im.shape[1] and 0 <= y1 <= y2 < im.shape[0]
            side = x2 - x1 + 1
            if o['difficult']:
                tiny += 1
                assert side < 16
            else:
                sizes.append(side)
    assert min(sizes) >= 16 and max(sizes) <= 96
    assert 1 <= min(counts) and max(counts) <= 5
    assert 0 < tiny < 60


def test_shapes_are_drawn_in_their_boxes():
    # A shape's colour differs from the muted backgrounds: its pixels lie in its box and fill a good part
    # of it (triangle 1/2, circle pi/4, square 1, less what later shapes cover).
    checked = 0
    for i in range(6):
        im, objs = shapes.make_image(SMALL, 1, i)
        colours = [o['colour'] for o in objs]
        for o in objs:
            if colours.count(o['colour']) > 1 or o['difficult']:
                continue
            x1, y1, x2, y2 = o['box']
            close = np.abs(im.astype(np.float32) - np.array(o['colour'], np.float32)).sum(2) < 40
            ys, xs = np.nonzero(close)
            inside = (xs >= x1 - 1) & (xs <= x2 + 1) & (ys >= y1 - 1) & (ys <= y2 + 1)
            assert inside.mean() > 0.95
            assert inside.sum() > 0.3 * (x2 - x1 + 1) * (y2 - y1 + 1)
            checked += 1
    assert checked >= 6


def test_voc_and_coco_readers_agree(tmp_path):
    root = str(tmp_path / 's')
    voc = shapes_voc('trainval', root, SMALL)
    coco = shapes_coco('trainval', root, SMALL)
    assert voc.classes == coco.classes == CLASSES
    assert voc.num_images == coco.num_images == 24
    for rv, rc in zip(voc.roidb, coco.roidb):
        assert rv['image'] == rc['image']
        # Difficult (tiny) objects: dropped by the VOC reader, crowd regions for the COCO reader.
        np.testing.assert_array_equal(rv['boxes'], rc['boxes'])
        np.testing.assert_array_equal(rv['gt_classes'], rc['gt_classes'])
    ann = json.load(open(os.path.join(root, 'annotations', 'instances_test.json')))
    assert len(ann['images']) == 6 and {c['name'] for c in ann['categories']} == set(CLASSES[1:])


def test_factory_names_generate_under_data_dir(monkeypatch, tmp_path):
    from faster_rcnn.datasets.factory import get_imdb
    monkeypatch.setattr(shapes, 'ShapesSpec', lambda: SMALL)
    db = get_imdb('shapes_test')
    assert db.name == 'shapes_test' and db.num_images == 6
    assert db.image_path_at(0).startswith(os.path.join(os.environ['FRCNN_DATA_DIR'], 'shapes', 'JPEGImages'))
    assert get_imdb('shapes_coco_trainval').num_images == 24
