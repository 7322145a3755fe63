"""COCO and any COCO-format json with an image folder.

Category ids need not be contiguous: classes are the json's categories sorted by id, mapped to 1..K; the
results file written for evaluation carries the original ids. Crowd boxes (``iscrowd`` 1) are left out of the
training roidb (the reference meant to, but its filter was a no-op) and stay ignore regions in COCOeval.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import os.path as osp

import numpy as np

from ..errors import AnnotationError, MissingFileError
from ..paths import default_data_dir
from ..utils.atomic import write_json_atomic
from .cache import cached_entries, files_signature
from .evaluation import EvalResult
from .imdb import imdb, make_roidb_entry
from .registry import register

logger = logging.getLogger(__name__)

# The 80 categories of COCO 2014/2017 in id order (ids 1..90 with gaps), as the annotation files name them: the
# classes of every published COCO detector, known without the files (factory.classes_of).
COCO_CLASSES = ('__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
                'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
                'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
                'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
                'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork',
                'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog',
                'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv',
                'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
                'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')
# Their ids in the annotation files (1..90 less ten never used): the category ids of every published COCO detector.
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))

# tf-faster-rcnn's split names -> (annotation file stem, image folder) for the 2014/2015 sets.
_COCO_SPLITS = {
    ('2014', 'train'): ('instances_train2014', 'train2014'),
    ('2014', 'val'): ('instances_val2014', 'val2014'),
    ('2014', 'minival'): ('instances_minival2014', 'val2014'),
    ('2014', 'valminusminival'): ('instances_valminusminival2014', 'val2014'),
    ('2015', 'test'): ('image_info_test2015', 'test2015'),
    ('2015', 'test-dev'): ('image_info_test-dev2015', 'test2015'),
    ('2017', 'train'): ('instances_train2017', 'train2017'),
    ('2017', 'val'): ('instances_val2017', 'val2017'),
    ('2017', 'test-dev'): ('image_info_test-dev2017', 'test2017'),
}


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MissingFileError(f'annotation file {path} does not exist (see data/README.md for where '
                                'COCO-format files go)') from None
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{path}: malformed JSON ({e}); fix or re-download the file') from None
    if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
            or not isinstance(data.get('categories'), list):
        raise AnnotationError(f'{path}: not a COCO-format file (needs "images" and "categories" lists)')
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _image_entry_name(im: dict, where: str) -> str:
    """``<file>: images[k]`` as a user finds the entry in the file: by its id and file_name (searchable), the list
    position after them; the position alone only when the entry has neither."""
    known = []
    for field in ('id', 'file_name'):
        if field in im:
            text = json.dumps(im[field], default=str)  # as the file writes it, so that it can be searched for
            known.append(f'{field} {text if len(text) <= 60 else text[:57] + "..."}')
    if not known:
        return where
    source, _, position = where.rpartition(': ')
    return f'{source + ": " if source else ""}image {", ".join(known)} ({position})'


def _check_image_entry(im, where: str) -> None:
    """An entry of "images" needs an integer id, a file name and positive integer width and height; errors name
    the entry by its position, id and file_name."""
    if not isinstance(im, dict):
        raise AnnotationError(f'{where}: expected an object with "id", "file_name", "width", "height", got {im!r}')
    where = _image_entry_name(im, where)
    for field in ('id', 'file_name', 'width', 'height'):
        if field not in im:
            raise AnnotationError(f'{where} has no "{field}"; every image needs id, file_name, width and height')
    if not _is_int(im['id']):
        raise AnnotationError(f'{where}: "id" must be an integer, got {im["id"]!r}')
    if not isinstance(im['file_name'], str) or not im['file_name'].strip():
        raise AnnotationError(f'{where}: "file_name" must be a non-empty string, got {im["file_name"]!r}')
    for field in ('width', 'height'):
        if not _is_int(im[field]) or im[field] <= 0:
            raise AnnotationError(f'{where}: "{field}" must be a positive integer, got {im[field]!r}')


class CocoDataset(imdb):
    """A COCO-format json ``ann_file`` whose ``file_name``s are relative to ``image_dir``."""

    def __init__(self, name: str, ann_file: str, image_dir: str, data_dir: str | None = None):
        self._ann_file = ann_file
        self._image_dir = image_dir
        data = _load_json(ann_file)
        for k, c in enumerate(data['categories']):
            if not isinstance(c, dict) or not _is_int(c.get('id')) or not isinstance(c.get('name'), str) \
                    or not c['name'].strip():
                raise AnnotationError(f'{ann_file}: categories[{k}] needs an integer "id" and a non-empty "name", '
                                      f'got {c!r}')
        cats = sorted(data['categories'], key=lambda c: c['id'])
        names = [str(c['name']) for c in cats]
        if len(set(names)) != len(names) or len({c['id'] for c in cats}) != len(cats):
            raise AnnotationError(f'{ann_file}: duplicated category name or id in {names}')
        super().__init__(name, ('__background__',) + tuple(names), data_dir)
        self._cat_ids = [int(c['id']) for c in cats]
        self._cat_id_to_ind = {cid: i + 1 for i, cid in enumerate(self._cat_ids)}
        for k, im in enumerate(data['images']):
            _check_image_entry(im, f'{ann_file}: images[{k}]')
        self._images = {int(im['id']): im for im in data['images']}
        if len(self._images) != len(data['images']):
            raise AnnotationError(f'{ann_file}: two entries of "images" have the same id')
        self._image_index = sorted(self._images)
        self._has_annotations = 'annotations' in data
        self._data: dict | None = data  # dropped once the roidb is built
        self.config = {'cleanup': True, 'use_salt': True}

    @property
    def ann_file(self) -> str:
        return self._ann_file

    @property
    def category_ids(self) -> list[int]:
        """Original category id of class i + 1."""
        return list(self._cat_ids)

    def image_path_from_index(self, index: int) -> str:
        return osp.join(self._image_dir, self._images[index]['file_name'])

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    # -- roidb ------------------------------------------------------------------------------------------
    def gt_roidb(self) -> list[dict]:
        key = files_signature([self._ann_file], {'image_dir': osp.abspath(self._image_dir),
                                                 'classes': self.classes})
        cache_file = self.cache_file(self._ann_file)
        roidb = cached_entries(cache_file, key, self._build_roidb)
        self._data = None
        return roidb

    def _build_roidb(self) -> list[dict]:
        data = self._data if self._data is not None else _load_json(self._ann_file)
        if not self._has_annotations:
            raise AnnotationError(f'{self._ann_file} has no "annotations": it cannot be used for training')
        # Every image of the file (a limited set reads the annotations of its own images only).
        per_image: dict[int, list[dict]] = {i: [] for i in self._images}
        for k, ann in enumerate(data['annotations']):
            if ann.get('image_id') not in per_image:
                raise AnnotationError(f'{self._ann_file}: annotation {ann.get("id", k)} refers to image_id '
                                      f'{ann.get("image_id")!r}, which is not in "images"')
            per_image[ann['image_id']].append(ann)
        dropped: list[object] = []
        roidb = [self._entry(i, per_image[i], dropped) for i in self._image_index]
        if dropped:
            logger.info(f'{self._ann_file}: {len(dropped)} zero-area boxes skipped (annotation ids '
                  f'{dropped[:10]}{" ..." if len(dropped) > 10 else ""})')
        return roidb

    def _entry(self, index: int, anns: list[dict], dropped: list) -> dict:
        im = self._images[index]
        width, height = int(im['width']), int(im['height'])
        boxes, classes, crowd = [], [], 0
        for ann in anns:
            aid = ann.get('id', '?')
            where = f'{self._ann_file}: annotation {aid} (image {im.get("file_name", index)})'
            if ann.get('category_id') not in self._cat_id_to_ind:
                raise AnnotationError(f'{where}: unknown category_id {ann.get("category_id")!r}; the categories '
                                      f'are {self._cat_ids}')
            bbox = ann.get('bbox')
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox) \
                    or not all(math.isfinite(v) for v in bbox):
                raise AnnotationError(f'{where}: "bbox" must be 4 finite numbers [x, y, w, h], got {bbox!r}')
            x, y, w, h = (float(v) for v in bbox)
            if w < 0 or h < 0:
                raise AnnotationError(f'{where}: negative width or height in bbox {bbox} (inverted box; COCO '
                                      'boxes are [x, y, width, height])')
            # COCO boxes are floats on a continuous grid: allow one pixel of rounding past the border.
            if x < -1 or y < -1 or x >= width or y >= height or x + w > width + 1 or y + h > height + 1:
                raise AnnotationError(f'{where}: bbox {bbox} lies outside the {width}x{height} image')
            if ann.get('iscrowd', 0):
                crowd += 1
                continue
            if w == 0 or h == 0 or ann.get('area', 1) <= 0:
                dropped.append(aid)
                continue
            # Same conversion as the reference: inclusive corners clipped to the image.
            x1 = min(width - 1.0, max(0.0, x))
            y1 = min(height - 1.0, max(0.0, y))
            x2 = min(width - 1.0, max(0.0, x1 + max(0.0, w - 1.0)))
            y2 = min(height - 1.0, max(0.0, y1 + max(0.0, h - 1.0)))
            boxes.append((x1, y1, x2, y2))
            classes.append(self._cat_id_to_ind[ann['category_id']])
        return make_roidb_entry(self.image_path_from_index(index), width, height,
                                np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32),
                                self.num_classes, image_id=index, num_crowd=crowd)

    # -- evaluation -------------------------------------------------------------------------------------
    def detections_to_coco(self, all_boxes: list[list[np.ndarray]]) -> list[dict]:
        """all_boxes[cls][img] (n, 5) 0-based corners -> COCO results with [x, y, x2-x1+1, y2-y1+1]."""
        results = []
        for cls_ind in range(1, self.num_classes):
            cat_id = self._cat_ids[cls_ind - 1]
            for im_ind, index in enumerate(self._image_index):
                dets = all_boxes[cls_ind][im_ind]
                if dets is None or len(dets) == 0:
                    continue
                dets = np.asarray(dets, dtype=np.float64)
                for k in range(dets.shape[0]):
                    x1, y1, x2, y2, s = dets[k, :5]
                    results.append({'image_id': int(index), 'category_id': cat_id,
                                    # Unrounded, as the reference: rounded scores would tie and reorder
                                    # detections in COCOeval.
                                    'bbox': [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)],
                                    'score': float(s)})
        return results

    def evaluate_detections(self, all_boxes: list[list[np.ndarray]], output_dir: str) -> EvalResult:
        """Write ``detections_<name>_results.json``; run COCOeval (bbox); print the 12 numbers and the
        per-category AP; return AP@[.5:.95] (nan when the json has no annotations, e.g. test-dev) and each
        category's AP."""
        if len(all_boxes) != self.num_classes or any(len(a) != self.num_images for a in all_boxes):
            raise ValueError(f'{self.name}: all_boxes must be [{self.num_classes} classes][{self.num_images} '
                             'images]')
        os.makedirs(output_dir, exist_ok=True)
        safe = ''.join(ch if ch.isalnum() or ch in '_-.' else '_' for ch in self.name)[-120:]
        res_file = osp.join(output_dir, f'detections_{safe}_results.json')
        results = self.detections_to_coco(all_boxes)
        write_json_atomic(res_file, results, indent=None)
        logger.info(f'Wrote COCO results to {res_file}')
        if not self._has_annotations:
            logger.info(f'{self._ann_file} has no annotations: submit {res_file} to the evaluation server')
            return EvalResult(float('nan'), metric='COCO AP')
        return self._do_detection_eval(res_file, results, output_dir)

    def _do_detection_eval(self, res_file: str, results: list[dict], output_dir: str) -> EvalResult:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(self._ann_file)
        if not results:
            logger.info('No detections: every AP is 0')
            return EvalResult(0.0, {name: 0.0 for name in self.classes[1:]}, metric='COCO AP')
        dt = gt.loadRes(res_file)
        ev = COCOeval(gt, dt, 'bbox')
        ev.params.imgIds = list(self._image_index)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        print_per_category_ap(ev, self.classes[1:])
        stats_file = osp.join(output_dir, 'detection_results.json')
        write_json_atomic(stats_file, {'stats': [float(s) for s in ev.stats]}, indent=None)
        per_class = dict(zip(self.classes[1:], (float(a) for a in per_category_ap(ev, self.num_classes - 1))))
        return EvalResult(float(ev.stats[0]), per_class, metric='COCO AP', stats=[float(s) for s in ev.stats])


def per_category_ap(ev, num_categories: int) -> np.ndarray:
    """AP@[.5:.95] of each category (all areas, 100 detections) from an accumulated COCOeval; nan when a
    category has no gt."""
    prec = ev.eval['precision']  # (T, R, K, A, M)
    aps = np.full(num_categories, np.nan)
    for k in range(num_categories):
        p = prec[:, :, k, 0, -1]
        p = p[p > -1]
        if p.size:
            aps[k] = float(np.mean(p))
    return aps


def print_per_category_ap(ev, names) -> None:
    aps = per_category_ap(ev, len(names))
    logger.info('~~~~ Per-category AP @ IoU=[0.50,0.95] ~~~~')
    for name, ap in zip(names, aps):
        logger.info(f'{name:>20s}: {100 * ap:.1f}')
    logger.info(f'{"mean":>20s}: {100 * np.nanmean(aps) if np.any(~np.isnan(aps)) else float("nan"):.1f}')


class coco(CocoDataset):  # noqa: N801 (tf-faster-rcnn's name)
    """``coco_<year>_<split>`` under ``<data_dir>/coco/{annotations, images/<folder>}``."""

    def __init__(self, image_set: str, year: str, data_path: str | None = None, data_dir: str | None = None):
        if (year, image_set) not in _COCO_SPLITS:
            raise ValueError(f'unknown COCO split coco_{year}_{image_set}; known: '
                             f'{sorted(f"coco_{y}_{s}" for y, s in _COCO_SPLITS)}')
        stem, folder = _COCO_SPLITS[(year, image_set)]
        data_dir = data_dir or default_data_dir()
        root = data_path or osp.join(data_dir, 'coco')
        super().__init__(f'coco_{year}_{image_set}', osp.join(root, 'annotations', stem + '.json'),
                         osp.join(root, 'images', folder), data_dir=data_dir)


# coco_<year>_<split>: tf-faster-rcnn's names.
def _register_split(year: str, split: str) -> None:
    """The name of one split (a function, so that each builder holds its own ``year`` and ``split``)."""
    register(f'coco_{year}_{split}', lambda d: coco(split, year, data_dir=d), COCO_CLASSES)


for _year, _split in _COCO_SPLITS:
    _register_split(_year, _split)
