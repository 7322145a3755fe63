"""Bad data gets an error naming the file and the object at fault (docs/design.md §2.9, §5)."""
import json

import cv2
import numpy as np
import pytest

from faster_rcnn.data.dataset import RoidbDataset
from faster_rcnn.settings import InputSettings
from faster_rcnn.datasets.coco import CocoDataset
from faster_rcnn.datasets.pascal_voc import VocDataset
from faster_rcnn.datasets.voc_xml import AnnotationError
from faster_rcnn.errors import DataError

CLASSES = ('__background__', 'dog', 'cat')


pytestmark = pytest.mark.usefixtures('tmp_data_dir')


def voc_with(tmp_path, xml_body, w=60, h=40, image=True):
    root = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / 'Annotations' / 'im1.xml').write_text(
        f'<annotation><size><width>{w}</width><height>{h}</height></size>{xml_body}</annotation>')
    if image:
        cv2.imwrite(str(root / 'JPEGImages' / 'im1.jpg'), np.zeros((h, w, 3), np.uint8))
    (root / 'ImageSets/Main/train.txt').write_text('im1\n')
    return VocDataset('bad', str(root), 'train', classes=CLASSES), root


def obj(name, x1, y1, x2, y2, difficult=0):
    return (f'<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>'
            f'<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>')


@pytest.mark.parametrize('body, message', [
    (obj('dog', 1, 1, 10, 10) + obj('cat', 20, 5, 12, 30), r'object 1 \(cat\): inverted box'),
    (obj('dog', 5, 5, 5, 20), r'object 0 \(dog\): zero-size box'),
    (obj('dog', 1, 1, 61, 10), r'object 0 \(dog\): box .* outside the 60x40 image'),
    (obj('dog', 1, 1, 10, 41), r'outside the 60x40 image'),
    (obj('dog', 0, 3, 10, 10), r'object 0 \(dog\): xmin or ymin is 0, but VOC files are 1-based'),
    (obj('dog', 1, 1, 10, 10) + obj('horse', 2, 2, 9, 9), r"object 1 \(horse\): unknown class 'horse'"),
    (obj('dog', 1, 1, 'ten', 10), r"object 0 \(dog\): <xmax> is not a number"),
    ('<object><name>dog</name></object>', r'object 0 \(dog\) has no <bndbox>'),
])
def test_voc_box_errors_name_file_and_object(tmp_path, body, message):
    db, root = voc_with(tmp_path, body)
    with pytest.raises(AnnotationError, match=message) as e:
        db.roidb
    assert str(root / 'Annotations' / 'im1.xml') in str(e.value)


def test_difficult_boxes_are_checked_too(tmp_path):
    db, _ = voc_with(tmp_path, obj('dog', 1, 1, 10, 10) + obj('cat', 0, 0, 5, 5, difficult=1))
    with pytest.raises(AnnotationError, match=r'object 1 \(cat\)'):
        db.roidb


def test_first_pixel_is_not_wrapped(tmp_path):
    # The reference's uint16 boxes turned xmin 0 (after the -1 shift) into 65535; a valid xmin of 1 gives 0.
    db, _ = voc_with(tmp_path, obj('dog', 1, 1, 60, 40))
    r = db.roidb[0]
    assert r['boxes'].dtype == np.float32
    np.testing.assert_array_equal(r['boxes'], [[0, 0, 59, 39]])


def test_malformed_xml(tmp_path):
    db, root = voc_with(tmp_path, '<object><name>dog</name>')
    with pytest.raises(AnnotationError, match='malformed XML') as e:
        db.roidb
    assert 'im1.xml' in str(e.value)


def test_missing_image_at_roidb_time(tmp_path):
    db, root = voc_with(tmp_path, obj('dog', 1, 1, 10, 10), image=False)
    with pytest.raises(FileNotFoundError, match=r'JPEGImages.im1\.jpg'):
        db.roidb


def test_missing_empty_truncated_and_unreadable_images_at_load_time(tmp_path):
    db, root = voc_with(tmp_path, obj('dog', 1, 1, 10, 10))
    roidb = db.roidb
    ds = RoidbDataset(roidb, 0, InputSettings())
    path = root / 'JPEGImages' / 'im1.jpg'
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    good = path.read_bytes()
    # OpenCV decodes a JPEG cut short with only a warning (grey rows): it is corrupt all the same.
    path.write_bytes(good[:len(good) * 3 // 4])
    assert cv2.imread(str(path)) is not None
    with pytest.raises(DataError, match=r'im1\.jpg is corrupt: its JPEG data ends before the end-of-image marker .*; '
                                        'training stopped'):
        ds[(0, 0)]
    path.write_bytes(b'not a jpeg at all')
    with pytest.raises(DataError, match=r'im1\.jpg cannot be decoded .*training stopped'):
        ds[(0, 0)]
    path.write_bytes(b'')
    with pytest.raises(DataError, match=r'im1\.jpg is empty \(0 bytes\); training stopped'):
        ds[(0, 0)]
    png = root / 'JPEGImages' / 'im2.png'
    cv2.imwrite(str(png), np.full((40, 60, 3), 90, np.uint8))
    png.write_bytes(png.read_bytes()[:-20])
    from faster_rcnn.data.dataset import read_image
    with pytest.raises(DataError, match=r'im2\.png is corrupt: its PNG data ends before the IEND chunk'):
        read_image(str(png))
    path.unlink()
    with pytest.raises(DataError, match=r'im1\.jpg does not exist .*training stopped'):
        ds[(0, 0)]


def test_image_size_differs_from_annotation(tmp_path):
    db, root = voc_with(tmp_path, obj('dog', 1, 1, 10, 10))
    roidb = db.roidb
    cv2.imwrite(str(root / 'JPEGImages' / 'im1.jpg'), np.zeros((30, 60, 3), np.uint8))
    with pytest.raises(DataError, match='im1.jpg is 60x30 but its annotation says 60x40'):
        RoidbDataset(roidb, 0, InputSettings())[(0, 0)]


def coco_with(tmp_path, anns, text=None):
    ann = tmp_path / 'ann.json'
    if text is not None:
        ann.write_text(text)
    else:
        ann.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'a.jpg', 'width': 60, 'height': 40}],
                                   'annotations': anns, 'categories': [{'id': 5, 'name': 'dog'}]}))
    return str(ann)


def a(aid, bbox, cat=5, image_id=1):
    return {'id': aid, 'image_id': image_id, 'category_id': cat, 'bbox': bbox, 'area': 10, 'iscrowd': 0}


@pytest.mark.parametrize('anns, message', [
    ([a(7, [1, 1, -5, 10])], r'annotation 7 \(image a.jpg\): negative width or height'),
    ([a(7, [50, 1, 20, 10])], r'annotation 7 \(image a.jpg\): bbox .* outside the 60x40 image'),
    ([a(7, [-10, 1, 20, 10])], r'outside the 60x40 image'),
    ([a(7, [1, 1, 5, 5], cat=6)], r'annotation 7 \(image a.jpg\): unknown category_id 6'),
    ([a(7, [1, 1, 5])], r'annotation 7 .*"bbox" must be 4 finite numbers'),
    ([a(7, [1, 1, 5, 5], image_id=9)], r'annotation 7 refers to image_id 9'),
])
def test_coco_errors_name_file_and_annotation(tmp_path, anns, message):
    path = coco_with(tmp_path, anns)
    with pytest.raises(AnnotationError, match=message) as e:
        CocoDataset('bad', path, str(tmp_path)).roidb
    assert path in str(e.value)


def test_coco_zero_size_box_is_reported_not_silent(tmp_path, capsys):
    path = coco_with(tmp_path, [a(7, [1, 1, 0, 5]), a(8, [1, 1, 5, 5])])
    r = CocoDataset('bad', path, str(tmp_path)).roidb
    assert r[0]['boxes'].tolist() == [[1, 1, 5, 5]]
    assert 'zero-area boxes skipped (annotation ids [7])' in capsys.readouterr().out


def test_malformed_json(tmp_path):
    path = coco_with(tmp_path, [], text='{"images": [')
    with pytest.raises(AnnotationError, match='malformed JSON') as e:
        CocoDataset('bad', path, str(tmp_path))
    assert path in str(e.value)
    path = coco_with(tmp_path, [], text='{"annotations": []}')
    with pytest.raises(AnnotationError, match='not a COCO-format file'):
        CocoDataset('bad', path, str(tmp_path))
