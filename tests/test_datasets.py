"""Dataset names, roidb contents, flips, caches, custom data by name, crowd exclusion."""
import json
import os
import time

import cv2
import numpy as np
import pytest

from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.datasets.factory import get_imdb, list_imdbs
from faster_rcnn.errors import DataError, UsageError
from faster_rcnn.settings import RoidbSettings


pytestmark = pytest.mark.usefixtures('tmp_data_dir')


def write_voc(root, images, splits, classes_txt=None):
    """images: {id: (w, h, [(name, (x1, y1, x2, y2) 1-based, difficult)])}; splits: {name: [ids]}."""
    for sub in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for index, (w, h, objects) in images.items():
        objs = ''.join(
            f'<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin>'
            f'<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>' for n, b, d in objects)
        with open(os.path.join(root, 'Annotations', index + '.xml'), 'w') as f:
            f.write(f'<annotation><size><width>{w}</width><height>{h}</height></size>{objs}</annotation>')
        cv2.imwrite(os.path.join(root, 'JPEGImages', index + '.jpg'), np.zeros((h, w, 3), np.uint8))
    for split, ids in splits.items():
        with open(os.path.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    if classes_txt:
        with open(os.path.join(root, 'classes.txt'), 'w') as f:
            f.write('\n'.join(classes_txt) + '\n')


VOC_IMAGES = {'000001': (60, 40, [('dog', (1, 2, 30, 20), False), ('cat', (31, 5, 60, 40), True)]),
              '000002': (50, 50, [('person', (10, 10, 20, 20), True)]),
              '000003': (40, 30, [('car', (5, 5, 9, 9), False)])}


def make_voc2007():
    root = os.path.join(os.environ['FRCNN_DATA_DIR'], 'VOCdevkit2007', 'VOC2007')
    write_voc(root, VOC_IMAGES, {'trainval': ['000001', '000002'], 'test': ['000003']})
    return root


def test_names():
    names = list_imdbs()
    for n in ('voc_2007_trainval', 'voc_2007_test', 'voc_2012_train_diff', 'coco_2014_minival',
              'coco_2014_valminusminival', 'coco_2015_test-dev', 'coco_2017_val', 'shapes_trainval',
              'shapes_coco_test'):
        assert n in names
    with pytest.raises(UsageError, match="voc_2007_trainval"):
        get_imdb('voc_2007_trianval')


def test_voc_2007_layout_and_difficult_variants():
    make_voc2007()
    db = get_imdb('voc_2007_trainval')
    assert db.name == 'voc_2007_trainval' and db.num_classes == 21 and db.classes[0] == '__background__'
    assert db.image_index == ['000001', '000002']
    assert db.image_path_at(0) == os.path.join(os.environ['FRCNN_DATA_DIR'], 'VOCdevkit2007', 'VOC2007', 'JPEGImages', '000001.jpg')
    r = db.roidb[0]
    # 1-based file -> 0-based boxes; the difficult cat is left out.
    np.testing.assert_array_equal(r['boxes'], [[0, 1, 29, 19]])
    assert r['boxes'].dtype == np.float32 and r['gt_classes'].dtype == np.int32
    assert r['gt_classes'].tolist() == [db.classes.index('dog')]
    assert (r['width'], r['height'], r['flipped']) == (60, 40, False)
    assert r['gt_overlaps'].shape == (1, 21) and r['max_overlaps'].tolist() == [1.0]
    assert r['seg_areas'].tolist() == [30 * 19]
    diff = get_imdb('voc_2007_trainval_diff')
    assert diff.roidb[0]['gt_classes'].tolist() == [db.classes.index('dog'), db.classes.index('cat')]
    assert diff.roidb[0]['gt_ishard'].tolist() == [False, True]


def test_flip_rule():
    make_voc2007()
    db = get_imdb('voc_2007_test')
    db.append_flipped_images()
    assert db.num_images == 2 and db.roidb[1]['flipped']
    # x1' = W - x2 - 1, x2' = W - x1 - 1 with W = 40: [4, 4, 8, 8] -> [31, 4, 35, 8]
    np.testing.assert_array_equal(db.roidb[1]['boxes'], [[31, 4, 35, 8]])
    np.testing.assert_array_equal(db.roidb[0]['boxes'], [[4, 4, 8, 8]])


def test_cache_invalidated_when_annotations_change():
    root = make_voc2007()
    assert get_imdb('voc_2007_test').roidb[0]['boxes'].tolist() == [[4, 4, 8, 8]]
    cache = [f for f in os.listdir(os.path.join(os.environ['FRCNN_DATA_DIR'], 'cache')) if f.startswith('voc_2007_test')]
    assert len(cache) == 1
    xml = os.path.join(root, 'Annotations', '000003.xml')
    text = open(xml).read().replace('<xmax>9</xmax>', '<xmax>19</xmax>')
    time.sleep(0.01)
    with open(xml, 'w') as f:
        f.write(text)
    assert get_imdb('voc_2007_test').roidb[0]['boxes'].tolist() == [[4, 4, 18, 8]]


def test_cache_is_used_when_nothing_changed(monkeypatch):
    make_voc2007()
    get_imdb('voc_2007_test').roidb
    from faster_rcnn.datasets import pascal_voc
    monkeypatch.setattr(pascal_voc, 'parse_voc_annotation', lambda p: pytest.fail('cache not used'))
    assert get_imdb('voc_2007_test').roidb[0]['boxes'].tolist() == [[4, 4, 8, 8]]


def test_voc_dir_by_name_classes_from_data(tmp_path):
    root = str(tmp_path / 'mine')
    write_voc(root, VOC_IMAGES, {'train': ['000001', '000002'], 'val': ['000003']})
    db = get_imdb(f'voc_dir:{root}:train')
    assert db.classes == ('__background__', 'car', 'cat', 'dog', 'person')
    assert get_imdb(f'voc_dir:{root}:val').classes == db.classes
    assert db.roidb[0]['gt_classes'].tolist() == [3]
    assert get_imdb(f'voc_dir:{root}:train:diff').roidb[0]['gt_classes'].tolist() == [3, 2]
    with open(os.path.join(root, 'classes.txt'), 'w') as f:
        f.write('person\ndog\ncat\ncar\nbus\n')
    assert get_imdb(f'voc_dir:{root}:train').classes == ('__background__', 'person', 'dog', 'cat', 'car', 'bus')
    with pytest.raises(UsageError, match="voc_dir:<root>:<split>"):
        get_imdb(f'voc_dir:{root}')


def write_coco(tmp_path, anns, images=None):
    images = images or [{'id': 1, 'file_name': 'a.jpg', 'width': 64, 'height': 48},
                        {'id': 2, 'file_name': 'b.jpg', 'width': 64, 'height': 48}]
    d = tmp_path / 'cocoimg'
    d.mkdir(exist_ok=True)
    for im in images:
        cv2.imwrite(str(d / im['file_name']), np.zeros((im['height'], im['width'], 3), np.uint8))
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps({'images': images, 'annotations': anns,
                               'categories': [{'id': 12, 'name': 'kite'}, {'id': 40, 'name': 'boat'}]}))
    return f'coco_json:{ann}:{d}'


def test_coco_json_by_name_and_crowd_exclusion(tmp_path, capsys):
    name = write_coco(tmp_path, [
        {'id': 1, 'image_id': 1, 'category_id': 40, 'bbox': [2, 3, 10, 20], 'area': 200, 'iscrowd': 0},
        {'id': 2, 'image_id': 1, 'category_id': 12, 'bbox': [20, 3, 30, 30], 'area': 900, 'iscrowd': 1},
        {'id': 3, 'image_id': 2, 'category_id': 12, 'bbox': [0, 0, 64, 48], 'area': 3072, 'iscrowd': 1}])
    db, roidb = combined_roidb(name, RoidbSettings(use_flipped=False))
    assert db.classes == ('__background__', 'kite', 'boat')
    # Image 2 holds only a crowd region: no usable box, so it leaves the training roidb.
    assert len(roidb) == 1
    np.testing.assert_array_equal(roidb[0]['boxes'], [[2, 3, 11, 22]])
    assert roidb[0]['gt_classes'].tolist() == [2]
    assert 'Filtered 1 roidb entries' in capsys.readouterr().out


def test_combined_roidb_joins_flips_and_filters(capsys):
    make_voc2007()
    db, roidb = combined_roidb('voc_2007_trainval+voc_2007_test', RoidbSettings())
    assert db.name == 'voc_2007_trainval+voc_2007_test'
    # 3 images x 2 (flipped); 000002 holds only a difficult box (left out): both copies dropped.
    assert len(roidb) == 4
    assert [r['flipped'] for r in roidb] == [False, True, False, True]
    assert 'Filtered 2 roidb entries' in capsys.readouterr().out
    db, roidb = combined_roidb('voc_2007_trainval')
    assert len(roidb) == 2 and not any(r['flipped'] for r in roidb)


def test_combining_different_classes_is_an_error(tmp_path):
    make_voc2007()
    root = str(tmp_path / 'mine')
    write_voc(root, VOC_IMAGES, {'train': ['000001']})
    with pytest.raises(DataError, match='classes differ'):
        combined_roidb(f'voc_2007_trainval+voc_dir:{root}:train', RoidbSettings())


def test_coco_split_layout():
    ann = os.path.join(os.environ['FRCNN_DATA_DIR'], 'coco', 'annotations')
    os.makedirs(ann)
    with open(os.path.join(ann, 'instances_minival2014.json'), 'w') as f:
        json.dump({'images': [{'id': 42, 'file_name': 'COCO_val2014_000000000042.jpg', 'width': 10,
                               'height': 10}], 'annotations': [], 'categories': [{'id': 1, 'name': 'person'}]}, f)
    db = get_imdb('coco_2014_minival')
    assert db.image_path_at(0) == os.path.join(os.environ['FRCNN_DATA_DIR'], 'coco', 'images', 'val2014',
                                               'COCO_val2014_000000000042.jpg')
    with pytest.raises(FileNotFoundError, match='instances_train2017.json'):
        get_imdb('coco_2017_train')
