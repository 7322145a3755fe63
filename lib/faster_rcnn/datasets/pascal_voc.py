"""PASCAL VOC and any folder in its layout (JPEGImages/, Annotations/, ImageSets/Main/<split>.txt).

``pascal_voc(image_set, year)`` is tf-faster-rcnn's dataset under ``<DATA_DIR>/VOCdevkit<year>/VOC<year>``;
``VocDataset`` is the same reader over any folder, with the class names given or read from the data.
"""
from __future__ import annotations

import glob
import logging
import os
import os.path as osp
from collections.abc import Sequence
from typing import cast

import numpy as np
from PIL import Image

from ..errors import AnnotationError, DataError, MissingFileError
from ..paths import default_data_dir
from .cache import cached_entries, files_signature
from .evaluation import EvalResult, save_pr_curves
from .imdb import imdb, make_roidb_entry
from .registry import register
from .validation import check_box
from .voc_eval import voc_eval
from .voc_xml import parse_voc_annotation

logger = logging.getLogger(__name__)

VOC_CLASSES = ('__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
               'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
               'sofa', 'train', 'tvmonitor')

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.JPG', '.JPEG', '.PNG')


def classes_from_voc_folder(root: str) -> tuple[str, ...]:
    """'__background__' + the class names of ``root/classes.txt`` (one a line) if present, else every
    object name found in ``root/Annotations/*.xml``, sorted (so train and test splits agree)."""
    listed = osp.join(root, 'classes.txt')
    if osp.exists(listed):
        with open(listed, encoding='utf-8') as f:
            names = [x.strip().lower() for x in f if x.strip()]
        names = [n for n in names if n != '__background__']
    else:
        xmls = sorted(glob.glob(osp.join(root, 'Annotations', '*.xml')))
        if not xmls:
            raise MissingFileError(f'{root}: no Annotations/*.xml and no classes.txt to take class names from')
        names = sorted({o.name for p in xmls for o in parse_voc_annotation(p).objects})
    if len(set(names)) != len(names):
        raise AnnotationError(f'{listed}: a class name appears twice')
    return ('__background__',) + tuple(names)


MAX_ATTRIBUTES_PER_BOX = 16  # attributes kept per object (BUTD's gt_attributes width)

class VocDataset(imdb):
    """A VOC-layout folder: ``root/{JPEGImages, Annotations, ImageSets/Main/<image_set>.txt}``.

    ``ignored_classes``: objects of these classes are left out (a dataset restricted to some classes);
    any other name outside ``classes`` is an error. ``attributes`` (names, '__no_attribute__' first): the
    objects' ``<attribute>`` elements become the roidb's ``gt_attributes`` (G, 16) int32 (BUTD's layout).
    """

    def __init__(self, name: str, root: str, image_set: str, classes: Sequence[str] | None = None,
                 use_diff: bool = False, use_07_metric: bool = True, year: str = '',
                 ignored_classes: Sequence[str] = (), data_dir: str | None = None,
                 attributes: Sequence[str] | None = None):
        super().__init__(name, classes if classes is not None else classes_from_voc_folder(root), data_dir)
        if self.classes[0] != '__background__':
            raise ValueError(f'{name}: the first class must be "__background__", got {self.classes[0]!r}')
        self._root = root
        self._image_set = image_set
        self._year = year
        self._use_07_metric = use_07_metric
        self._class_to_ind = {c: i for i, c in enumerate(self.classes)}
        self._ignored = frozenset(ignored_classes)
        if attributes is not None:
            if not attributes or attributes[0] != '__no_attribute__':
                raise ValueError(f'{name}: the first attribute must be "__no_attribute__"')
            self.attributes = list(attributes)
            self._attribute_to_ind = {a: i for i, a in enumerate(attributes)}
        self.config = {'use_diff': use_diff, 'cleanup': True}
        self._image_index = self._load_image_set_index()
        self._image_paths: dict[str, str] = {}

    @property
    def root(self) -> str:
        return self._root

    @property
    def image_set(self) -> str:
        return self._image_set

    def _image_set_file(self) -> str:
        return osp.join(self._root, 'ImageSets', 'Main', self._image_set + '.txt')

    def _load_image_set_index(self) -> list[str]:
        path = self._image_set_file()
        if not osp.exists(path):
            raise MissingFileError(f'{self.name}: image set file {path} does not exist '
                                    f'(expected a VOC folder under {self._root}; see data/README.md)')
        with open(path, encoding='utf-8') as f:
            # Lines may carry a second column (the per-class lists do); the id is the first word.
            ids = [x.split()[0] for x in f if x.strip()]
        if not ids:
            raise DataError(f'{self.name}: image set file {path} lists no images; write one image id per line')
        return ids

    def annotation_path(self, index: str) -> str:
        return osp.join(self._root, 'Annotations', index + '.xml')

    def image_path_from_index(self, index: str) -> str:
        if index in self._image_paths:
            return self._image_paths[index]
        base = osp.join(self._root, 'JPEGImages', index)
        for ext in _IMAGE_EXTS:
            if osp.exists(base + ext):
                self._image_paths[index] = base + ext
                return base + ext
        raise MissingFileError(f'{self.name}: image {base}.jpg (or .png) does not exist, so the run stops; '
                                f'it is listed in {self._image_set_file()}')

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    # -- roidb ------------------------------------------------------------------------------------------
    def gt_roidb(self) -> list[dict]:
        files = [self._image_set_file()] + [self.annotation_path(i) for i in self._image_index]
        settings = {'classes': self.classes, 'use_diff': self.config['use_diff'], 'root': osp.abspath(self._root),
                    'ignored': sorted(self._ignored)}
        if self.attributes is not None:
            settings['attributes'] = self.attributes
        key = files_signature(files, settings)
        cache_file = self.cache_file(self._root)
        return cached_entries(cache_file, key, lambda: [self._load_annotation(i) for i in self._image_index])

    def _load_annotation(self, index: str) -> dict:
        path = self.annotation_path(index)
        ann = parse_voc_annotation(path)
        image = self.image_path_from_index(index)
        width, height = ann.width, ann.height
        if not width or not height:
            try:
                with Image.open(image) as im:
                    width, height = im.size
            except OSError as e:
                raise DataError(f'{image}: cannot read the image size ({e}); {path} has no <size> either') from None
        boxes, classes, hard, attributes = [], [], [], []
        for obj in ann.objects:
            where = f'{path}: object {obj.index} ({obj.name})'
            if obj.name in self._ignored:
                continue
            if obj.name not in self._class_to_ind:
                raise AnnotationError(f'{where}: unknown class {obj.name!r}; the classes of {self.name} are '
                                      f'{list(self.classes[1:])}')
            # 1-based inclusive -> 0-based
            box = cast(tuple[float, float, float, float], tuple(v - 1.0 for v in obj.bbox_1based))
            check_box(box, width, height, where, one_based_source=True)
            if obj.difficult and not self.config['use_diff']:
                continue
            boxes.append(box)
            classes.append(self._class_to_ind[obj.name])
            hard.append(obj.difficult)
            if self.attributes is not None:
                attributes.append(self._attribute_row(obj.attributes, where))
        extra = {} if self.attributes is None else {
            'gt_attributes': np.array(attributes, np.int32).reshape(-1, MAX_ATTRIBUTES_PER_BOX)}
        return make_roidb_entry(image, width, height, np.array(boxes, np.float32).reshape(-1, 4),
                                np.array(classes, np.int32), self.num_classes, np.array(hard, bool),
                                image_id=index, **extra)

    def _attribute_row(self, names: Sequence[str], where: str) -> list[int]:
        """An object's attribute indices, 0-padded to MAX_ATTRIBUTES_PER_BOX (BUTD keeps the first 16)."""
        assert self.attributes is not None  # called for a dataset with attributes only
        row = []
        for a in names[:MAX_ATTRIBUTES_PER_BOX]:
            if a not in self._attribute_to_ind or a == '__no_attribute__':
                raise AnnotationError(f'{where}: unknown attribute {a!r}; the attributes of {self.name} are '
                                      f'{self.attributes[1:]}')
            row.append(self._attribute_to_ind[a])
        return row + [0] * (MAX_ATTRIBUTES_PER_BOX - len(row))

    # -- evaluation -------------------------------------------------------------------------------------
    def _results_dir(self, output_dir: str) -> str:
        path = osp.join(output_dir, 'results', f'VOC{self._year}' if self._year else self.name, 'Main')
        os.makedirs(path, exist_ok=True)  # the reference assumed it existed
        return path

    def results_file_template(self, output_dir: str) -> str:
        """``<output_dir>/results/VOC<year>/Main/comp4_det_<set>_{:s}.txt``."""
        return osp.join(self._results_dir(output_dir), f'comp4_det_{self._image_set}_{{:s}}.txt')

    def write_voc_results_file(self, all_boxes: list[list[np.ndarray]], output_dir: str) -> None:
        """One file per class, lines ``<image_id> <score> x1 y1 x2 y2`` in 1-based coordinates."""
        template = self.results_file_template(output_dir)
        for cls_ind, cls in enumerate(self.classes):
            if cls == '__background__':
                continue
            with open(template.format(cls), 'w', encoding='utf-8') as f:
                for im_ind, index in enumerate(self._image_index):
                    dets = all_boxes[cls_ind][im_ind]
                    if dets is None or len(dets) == 0:
                        continue
                    for k in range(dets.shape[0]):
                        f.write(f'{index} {dets[k, -1]:.3f} {dets[k, 0] + 1:.1f} {dets[k, 1] + 1:.1f} '
                                f'{dets[k, 2] + 1:.1f} {dets[k, 3] + 1:.1f}\n')

    def evaluate_detections(self, all_boxes: list[list[np.ndarray]], output_dir: str) -> EvalResult:
        """Write the comp4 files, run the VOC evaluation (difficult objects counted as any other in the
        ``_diff`` sets, as the reference's use_diff), print the per-class table, write each class's
        precision / recall (``<cls>_pr.pkl``, ``pr_curves.png``); return the mean AP and the curves."""
        self._check_all_boxes(all_boxes)
        self.write_voc_results_file(all_boxes, output_dir)
        template = self.results_file_template(output_dir)
        annopath = osp.join(self._root, 'Annotations', '{:s}.xml')
        cachedir = osp.join(self.cache_path, 'annotations_cache')
        logger.info(f'VOC07 metric? {"Yes" if self._use_07_metric else "No"}')
        aps = []
        result = EvalResult(0.0, metric='VOC07 mAP' if self._use_07_metric else 'VOC mAP')
        for cls in self.classes[1:]:
            rec, prec, ap = voc_eval(template, annopath, self._image_set_file(), cls, cachedir, ovthresh=0.5,
                                     use_07_metric=self._use_07_metric, use_diff=self.config['use_diff'],
                                     imagenames=list(self._image_index))
            aps.append(ap)
            result.per_class[cls] = float(ap)
            result.curves[cls] = (rec, prec)
            logger.info(f'AP for {cls} = {ap:.4f}')
        mean_ap = float(np.mean(aps)) if aps else 0.0
        result.mean_ap = mean_ap
        save_pr_curves(output_dir, result)
        logger.info(f'Mean AP = {mean_ap:.4f}')
        logger.info('~~~~~~~~')
        logger.info('Results:')
        for ap in aps:
            logger.info(f'{ap:.3f}')
        logger.info(f'{mean_ap:.3f}')
        logger.info('~~~~~~~~')
        if self.config['cleanup'] and not self.competition:
            for cls in self.classes[1:]:
                os.remove(template.format(cls))
        return result

    def _check_all_boxes(self, all_boxes: list[list[np.ndarray]]) -> None:
        if len(all_boxes) != self.num_classes:
            raise ValueError(f'{self.name}: all_boxes has {len(all_boxes)} classes, expected {self.num_classes}')
        for c, per_image in enumerate(all_boxes):
            if len(per_image) != self.num_images:
                raise ValueError(f'{self.name}: all_boxes[{c}] has {len(per_image)} images, '
                                 f'expected {self.num_images}')


class pascal_voc(VocDataset):  # noqa: N801 (tf-faster-rcnn's name)
    """``voc_<year>_<image_set>`` under ``<data_dir>/VOCdevkit<year>/VOC<year>``."""

    def __init__(self, image_set: str, year: str, use_diff: bool = False, devkit_path: str | None = None,
                 data_dir: str | None = None):
        name = f'voc_{year}_{image_set}' + ('_diff' if use_diff else '')
        data_dir = data_dir or default_data_dir()
        devkit = devkit_path or osp.join(data_dir, f'VOCdevkit{year}')
        super().__init__(name, osp.join(devkit, f'VOC{year}'), image_set, classes=VOC_CLASSES,
                         use_diff=use_diff, use_07_metric=int(year) < 2010, year=year, data_dir=data_dir)
        self._devkit_path = devkit


# voc_<year>_<split>[_diff]: tf-faster-rcnn's names.
def _register_split(year: str, split: str) -> None:
    """The names of one split (a function, so that each builder holds its own ``year`` and ``split``)."""
    register(f'voc_{year}_{split}', lambda d: pascal_voc(split, year, data_dir=d), VOC_CLASSES)
    register(f'voc_{year}_{split}_diff', lambda d: pascal_voc(split, year, use_diff=True, data_dir=d), VOC_CLASSES)


for _year in ('2007', '2012'):
    for _split in ('train', 'val', 'trainval', 'test'):
        _register_split(_year, _split)
