"""Saved detections of a dataset, analysed without a network: TIDE's error breakdown, the confusion matrix, AP by
object size and a gallery of the worst images (``tools/analyze_results.py``).

Inputs: the output folder of tools/test_net.py (its ``detections.pkl``, ``all_boxes[cls][image]`` (n, 5)
``[x1, y1, x2, y2, score]``, read without running code), or a COCO results json (a list of
``{image_id, category_id, bbox [x, y, w, h], score}``, ``w = x2 - x1 + 1``) with a COCO-format dataset.

Ground truth: the dataset's roidb boxes, plus as ignore boxes what the dataset's own evaluation ignores:

* VOC-layout sets: the 'difficult' objects, which the roidb leaves out; they are read from the annotation files
  through the VOC evaluation's annotation cache. The ``_diff`` sets keep them in the roidb and their evaluation
  counts them as any other object, so there they are ordinary gt.
* COCO-format sets: the crowd regions (``iscrowd`` 1), which the roidb leaves out (it keeps only their
  number, ``num_crowd``); they are read from the annotation json when an image has any.
* other datasets: the roidb's ``gt_ishard`` boxes.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..datasets.coco import CocoDataset
from ..datasets.imdb import imdb as Imdb
from ..datasets.pascal_voc import VocDataset
from ..datasets.voc_eval import load_annotations
from ..errors import DataError, UsageError
from ..utils.detections_file import read_detections
from ..utils.json_file import write_json_atomic
from .confusion import ConfusionMatrix, confusion_matrix, plot_confusion, top_confusions, write_confusion_csv
from .sizes import SizeAP, size_aps
from .tide import MAIN_ERRORS, SPECIAL_ERRORS, ImageDetections, ImageGroundTruth, TideResult, tide

__all__ = ['Analysis', 'dataset_metric', 'ground_truth', 'detections_per_image', 'read_results_folder',
           'read_coco_results', 'read_results', 'read_all_boxes', 'dataset_from_path', 'analyze', 'tide_table',
           'confusion_summary', 'size_table', 'write_analysis']


# -- ground truth -----------------------------------------------------------------------------------------
def dataset_metric(db: Imdb) -> str:
    """The AP the dataset's own evaluation computes: 'coco', 'voc07' (11-point) or 'voc' (area)."""
    if isinstance(db, CocoDataset):
        return 'coco'
    if isinstance(db, VocDataset):
        # The loader keeps the year's choice only in this attribute (pascal_voc: 07 metric before 2010).
        return 'voc07' if getattr(db, '_use_07_metric', True) else 'voc'
    return 'voc07'


def _voc_difficult(db: VocDataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, the difficult objects of known classes: (n, 4) 0-based boxes and (n,) class indices."""
    annopath = osp.join(db.root, 'Annotations', '{:s}.xml')
    # The cache folder of VocDataset.evaluate_detections: one parse serves both.
    recs = load_annotations(annopath, list(db.image_index), osp.join(db.cache_path, 'annotations_cache'))
    index = {c: i for i, c in enumerate(db.classes)}
    out = []
    for name in db.image_index:
        objs = [o for o in recs[name] if o['difficult'] and o['name'] in index]
        boxes = np.array([[v - 1.0 for v in o['bbox']] for o in objs], dtype=np.float64).reshape(-1, 4)
        out.append((boxes, np.array([index[o['name']] for o in objs], dtype=np.int64)))
    return out


def _coco_crowd(db: CocoDataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, the crowd regions of known categories: (n, 4) 0-based inclusive boxes (clipped as the loader
    clips its boxes) and (n,) class indices."""
    with open(db.ann_file, encoding='utf-8') as f:
        data = json.load(f)  # the loader has read and checked this file already
    row = {image_id: i for i, image_id in enumerate(db.image_index)}
    cat = {cid: k + 1 for k, cid in enumerate(db.category_ids)}
    sizes = {int(im['id']): (int(im['width']), int(im['height'])) for im in data['images']}
    found: list[list[tuple[tuple[float, float, float, float], int]]] = [[] for _ in db.image_index]
    for ann in data.get('annotations', []):
        if not ann.get('iscrowd', 0) or ann.get('image_id') not in row or ann.get('category_id') not in cat:
            continue
        x, y, w, h = (float(v) for v in ann['bbox'])
        width, height = sizes[ann['image_id']]
        x1 = min(width - 1.0, max(0.0, x))
        y1 = min(height - 1.0, max(0.0, y))
        x2 = min(width - 1.0, max(0.0, x1 + max(0.0, w - 1.0)))
        y2 = min(height - 1.0, max(0.0, y1 + max(0.0, h - 1.0)))
        found[row[ann['image_id']]].append(((x1, y1, x2, y2), cat[ann['category_id']]))
    return [(np.array([b for b, _ in f], dtype=np.float64).reshape(-1, 4), np.array([c for _, c in f], np.int64))
            for f in found]


def ground_truth(db: Imdb) -> list[ImageGroundTruth]:
    """Per image of ``db``: its roidb boxes and the ignore boxes of the module docstring (ignore boxes last)."""
    roidb = db.roidb
    extra: list[tuple[np.ndarray, np.ndarray]] | None = None
    use_roidb_hard = True
    if isinstance(db, VocDataset):
        use_roidb_hard = False  # the _diff sets' evaluation counts their difficult objects
        if not db.config.get('use_diff', False):
            extra = _voc_difficult(db)
    elif isinstance(db, CocoDataset):
        use_roidb_hard = False
        if any(int(e.get('num_crowd', 0)) > 0 for e in roidb):
            extra = _coco_crowd(db)
    out = []
    for i, e in enumerate(roidb):
        boxes = np.asarray(e['boxes'], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(e['gt_classes'], dtype=np.int64).reshape(-1)
        hard = np.asarray(e.get('gt_ishard', np.zeros(labels.size, bool)), dtype=bool).reshape(-1)
        ignore = hard if use_roidb_hard else np.zeros(labels.size, dtype=bool)
        if extra is not None and extra[i][1].size:
            boxes = np.concatenate([boxes, extra[i][0]])
            labels = np.concatenate([labels, extra[i][1]])
            ignore = np.concatenate([ignore, np.ones(extra[i][1].size, dtype=bool)])
        out.append(ImageGroundTruth(boxes=boxes, labels=labels, ignore=ignore))
    return out


# -- detections -------------------------------------------------------------------------------------------
def detections_per_image(all_boxes: Sequence[Sequence[np.ndarray]], num_images: int) -> list[ImageDetections]:
    """``all_boxes[cls][image]`` ((n, 5), class 0 unused) -> one ImageDetections per image (class by class,
    each class's rows in their order), in the arrays' own dtype."""
    parts, images, labels = [], [], []
    for c in range(1, len(all_boxes)):
        lens = np.fromiter((len(a) for a in all_boxes[c]), dtype=np.int64, count=num_images)
        if lens.sum() == 0:
            continue
        parts.append(np.concatenate([np.asarray(a)[:, :5] for a in all_boxes[c] if len(a)]))
        images.append(np.repeat(np.arange(num_images), lens))
        labels.append(np.full(int(lens.sum()), c, dtype=np.int64))
    if not parts:
        return [ImageDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
                for _ in range(num_images)]
    rows, image, label = np.concatenate(parts), np.concatenate(images), np.concatenate(labels)
    order = np.argsort(image, kind='stable')
    rows, label = rows[order], label[order]
    cuts = np.cumsum(np.bincount(image, minlength=num_images))[:-1]
    return [ImageDetections(boxes=r[:, :4], scores=r[:, 4], labels=lab)
            for r, lab in zip(np.split(rows, cuts), np.split(label, cuts))]


def _check_finite(dets: Sequence[ImageDetections], path: str) -> None:
    for i, d in enumerate(dets):
        if not (np.isfinite(d.boxes).all() and np.isfinite(d.scores).all()):
            raise DataError(f'{path}: image {i} has a detection with a NaN or infinite box or score; run '
                            'tools/test_net.py again')


def read_all_boxes(folder: str, db: Imdb) -> tuple[list[list[np.ndarray]], str]:
    """``all_boxes`` of ``folder/detections.pkl`` and that file's path, checked against ``db``'s class and image
    counts (a UsageError for a missing folder or file, a DataError for another dataset's file)."""
    if not osp.isdir(folder):
        raise UsageError(f'{folder}: no such folder; pass the output folder of tools/test_net.py '
                         '(output/<EXP_DIR>/<imdb>/<tag>/<model>/)')
    det_file = osp.join(folder, 'detections.pkl')
    if not osp.isfile(det_file):
        raise UsageError(f'{det_file} does not exist; run tools/test_net.py first (it writes detections.pkl in '
                         'its output folder)')
    all_boxes = read_detections(det_file)
    counts = sorted({len(a) for a in all_boxes})
    if len(all_boxes) != db.num_classes or counts != [db.num_images]:
        images = counts[0] if len(counts) == 1 else f'{counts[0]}..{counts[-1]}' if counts else 0
        raise DataError(f'{det_file}: holds {len(all_boxes)} classes x {images} images, but {db.name} has '
                        f'{db.num_classes} classes x {db.num_images} images (classes with the background); pass '
                        'the --imdb it was tested on')
    return all_boxes, det_file


def read_results_folder(folder: str, db: Imdb) -> list[ImageDetections]:
    """The detections in ``folder/detections.pkl`` (checked as :func:`read_all_boxes`), one entry per image."""
    all_boxes, det_file = read_all_boxes(folder, db)
    dets = detections_per_image(all_boxes, db.num_images)
    _check_finite(dets, det_file)
    return dets


def dataset_from_path(results: str) -> str:
    """The dataset name test_net put in a result path, ``output/<EXP_DIR>/<imdb>/<tag>/<model>/`` (for a file:
    its folder's); a UsageError when the path does not exist or names no known dataset."""
    from ..datasets.factory import list_imdbs
    if not osp.exists(results):
        what = 'file' if results.endswith('.json') else 'folder'
        raise UsageError(f'{results}: no such {what}; pass the output folder of tools/test_net.py '
                         '(output/<EXP_DIR>/<imdb>/<tag>/<model>/)' + (' or a COCO results .json' if what == 'file'
                                                                          else ''))
    folder = osp.abspath(results)
    if osp.isfile(folder):
        folder = osp.dirname(folder)
    name = osp.basename(osp.dirname(osp.dirname(folder)))
    if name not in list_imdbs():
        raise UsageError(f'{results}: cannot tell the dataset from the path ({name!r} is no dataset name); pass '
                         '--imdb')
    return name


def _is_id(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_coco_results(path: str, db: Imdb) -> list[ImageDetections]:
    """A COCO results json (module docstring) as one ImageDetections per image of ``db`` (a COCO-format set):
    image ids through ``db.image_index``, category ids through ``db.category_ids``; corners
    ``x2 = x + w - 1``, the inverse of the project's conversion."""
    if not isinstance(db, CocoDataset):
        raise UsageError(f'{path}: a COCO results file needs a COCO-format --imdb (coco_*, shapes_coco_* or '
                         f'coco_json:<ann.json>:<image_dir>); {db.name} is not one')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except OSError as e:
        raise UsageError(f'{path}: cannot be read ({e.strerror}); pass a COCO results .json or a test_net output '
                         'folder') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f'{path}: malformed JSON ({e}); pass the results file that test_net wrote') from None
    if not isinstance(data, list):
        raise DataError(f'{path}: expected a list of {{"image_id", "category_id", "bbox", "score"}} results, got '
                        f'a {type(data).__name__}')
    row = {image_id: i for i, image_id in enumerate(db.image_index)}
    cat = {cid: k + 1 for k, cid in enumerate(db.category_ids)}
    n = len(data)
    images = np.empty(n, dtype=np.int64)
    labels = np.empty(n, dtype=np.int64)
    values = np.empty((n, 5), dtype=np.float64)
    for k, r in enumerate(data):
        if not isinstance(r, dict):
            raise DataError(f'{path}: result {k} is not an object {{"image_id", "category_id", "bbox", "score"}}')
        image_id, cat_id, bbox, score = r.get('image_id'), r.get('category_id'), r.get('bbox'), r.get('score')
        # Ids are integers in COCO files: anything else (a string, a list) is unknown, and never hashed.
        if not _is_id(image_id) or image_id not in row:
            raise DataError(f'{path}: result {k} has image_id {image_id!r}, which {db.name} does not have; pass the '
                            '--imdb the results were made on')
        if not _is_id(cat_id) or cat_id not in cat:
            raise DataError(f'{path}: result {k} has category_id {cat_id!r}, which {db.name} does not have (its '
                            f'categories are {db.category_ids}); pass the --imdb the results were made on')
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox) or not _number(score):
            raise DataError(f'{path}: result {k}: "bbox" must be 4 finite numbers [x, y, w, h] and "score" a finite '
                            f'number, got bbox {bbox!r}, score {score!r}')
        images[k], labels[k] = row[image_id], cat[cat_id]
        values[k] = (*bbox, score)
    boxes = np.concatenate([values[:, :2], values[:, :2] + values[:, 2:4] - 1.0], axis=1)
    order = np.argsort(images, kind='stable')
    cuts = np.cumsum(np.bincount(images, minlength=db.num_images))[:-1]
    return [ImageDetections(boxes=b, scores=s, labels=lab) for b, s, lab in
            zip(np.split(boxes[order], cuts), np.split(values[order, 4], cuts), np.split(labels[order], cuts))]


def read_results(path: str, db: Imdb) -> tuple[list[ImageDetections], str]:
    """Detections from a test_net output folder or a COCO results ``.json``, and the folder to write into
    (the folder itself, or the json's folder)."""
    if path.endswith('.json') and not osp.isdir(path):
        if not osp.isfile(path):
            raise UsageError(f'{path}: no such file; pass a COCO results .json or a test_net output folder')
        return read_coco_results(path, db), osp.dirname(osp.abspath(path))
    return read_results_folder(path, db), path


# -- analysis ---------------------------------------------------------------------------------------------
@dataclass
class Analysis:
    tide: TideResult
    confusion: ConfusionMatrix
    sizes: SizeAP
    classes: tuple[str, ...]


def analyze(gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections], classes: Sequence[str], metric: str,
            score_thresh: float = 0.5, iou: float = 0.5) -> Analysis:
    """TIDE (its own thresholds, 0.5 / 0.1), the confusion matrix at ``score_thresh`` / ``iou`` and the size APs
    in ``metric`` at ``iou``."""
    classes = tuple(classes)
    return Analysis(tide=tide(gt, dets, len(classes)),
                    confusion=confusion_matrix(gt, dets, classes, score_thresh=score_thresh, iou=iou),
                    sizes=size_aps(gt, dets, classes, metric=metric, iou=iou), classes=classes)


def tide_table(result: TideResult, classes: Sequence[str]) -> str:
    """TIDE's numbers (0-100) overall and per class, one row each."""
    cols = ['ap50', *MAIN_ERRORS, *SPECIAL_ERRORS]
    width = max([len('class')] + [len(c) for c in classes[1:]] + [len('all')])
    lines = ['TIDE (box, IoU 0.5, background IoU 0.1; AP and the dAP of fixing each error, on the 0-100 scale)',
             f'{"class":<{width}}  ' + '  '.join(f'{c:>9}' for c in cols)]

    def row(name: str, b) -> str:
        vals = [b.ap50, *(b.main[k] for k in MAIN_ERRORS), *(b.special[k] for k in SPECIAL_ERRORS)]
        return f'{name:<{width}}  ' + '  '.join(f'{v:9.2f}' for v in vals)

    lines.append(row('all', result))
    for k, b in sorted(result.per_class.items()):
        lines.append(row(classes[k], b))
    lines.append('error counts: ' + ', '.join(f'{k} {v}' for k, v in result.counts.items()))
    return '\n'.join(lines)


def confusion_summary(matrix: ConfusionMatrix, n: int = 5) -> str:
    fp = int(matrix.counts[0].sum())
    missed = int(matrix.counts[:, 0].sum())
    correct = int(np.trace(matrix.counts[1:, 1:]))
    lines = [f'Confusion (score >= {matrix.score_thresh:g}, IoU >= {matrix.iou:g}): {correct} correct, '
             f'{int(matrix.counts[1:, 1:].sum()) - correct} on a gt of another class, {fp} on no gt (background), '
             f'{missed} gt missed']
    pairs = top_confusions(matrix, n)
    if pairs:
        lines.append(f'most confused (gt -> predicted), top {n}:')
        lines += [f'  {g} -> {p}: {c}' for g, p, c in pairs]
    else:
        lines.append('no detection was assigned to a gt of another class')
    return '\n'.join(lines)


def size_table(sizes: SizeAP, classes: Sequence[str]) -> str:
    names = [r.name for r in sizes.ranges]
    metric = {'voc07': "the VOC07 11-point AP, IoU >", 'voc': 'the VOC area AP, IoU >',
              'coco': "COCO's 101-point AP, IoU >="}[sizes.metric]
    width = max([len('mean AP')] + [len(c) for c in classes[1:]])

    def cell(v: float | None) -> str:
        return f'{"-":>8}' if v is None else f'{v:8.4f}'

    lines = [f'AP by object size ({metric} {sizes.iou:g}; 0-1 as the dataset\'s evaluation; small <= 32², '
             'medium 32²..96², large >= 96² pixels)',
             f'{"":<{width}}  ' + '  '.join(f'{n:>8}' for n in names),
             f'{"mean AP":<{width}}  ' + '  '.join(cell(r.mean_ap) for r in sizes.ranges),
             f'{"gt boxes":<{width}}  ' + '  '.join(f'{r.num_gt:8d}' for r in sizes.ranges)]
    for c in classes[1:]:
        lines.append(f'{c:<{width}}  ' + '  '.join(cell(r.per_class[c]) for r in sizes.ranges))
    return '\n'.join(lines)


def write_analysis(folder: str, analysis: Analysis, normalize: bool = False) -> dict[str, str]:
    """tide.json (TideResult.to_json), confusion.csv / confusion.png and sizes.json into ``folder``; returns
    {what: path}."""
    os.makedirs(folder, exist_ok=True)
    paths = {'tide': osp.join(folder, 'tide.json'), 'confusion_csv': osp.join(folder, 'confusion.csv'),
             'confusion_png': osp.join(folder, 'confusion.png'), 'sizes': osp.join(folder, 'sizes.json')}
    write_json_atomic(paths['tide'], analysis.tide.to_json())
    write_confusion_csv(paths['confusion_csv'], analysis.confusion)
    plot_confusion(paths['confusion_png'], analysis.confusion, normalize=normalize)
    write_json_atomic(paths['sizes'], analysis.sizes.to_json())
    return paths
