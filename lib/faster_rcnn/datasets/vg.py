"""Visual Genome with objects and attributes: ``vg_1600-400-20_{train,val,test,minitrain,minival}``.

The splits and vocabularies are bottom-up-attention's (``data/genome/{train,val,test}.txt``, whose lines read
``VG_100K_2/2415417.jpg xml/2415417.xml``, and ``data/genome/1600-400-20/{objects,attributes}_vocab.txt``);
minitrain / minival are the first 1000 / 100 lines of train / val. The annotations are Visual Genome's own
``objects.json`` and ``attributes.json``, read directly (no XML step) with BUTD's cleaning rules (vg_vocab.py).
Layout under ``<DATA_DIR>/vg`` (what data/scripts/fetch_vg.py writes)::

    objects.json  attributes.json  image_data.json  VG_100K/*.jpg  VG_100K_2/*.jpg
    genome/{train,val,test}.txt  genome/1600-400-20/{objects,attributes,relations}_vocab.txt

Boxes: VG's (x, y, w, h) -> x1 = x, y1 = y, x2 = x + w, y2 = y + h (BUTD's conversion), clipped to
[0, W-1] x [0, H-1] with W, H read from the image file. Objects whose name is not in the vocabulary are dropped,
and so are images left without an object. Corrections of BUTD's rules (docs/differences.md): a box that lies
wholly outside its image is dropped (BUTD made it the whole image, with y2 = W - 1); boxes are float32, not uint16;
an object's attributes keep their first-seen order and appear once each.

Evaluation: ``evaluate_detections`` (vg_eval.py: AP at IoU 0.5 per class). The attribute mAP scores
``vg_eval.attribute_ground_truth(roidb, image_index, len(attributes))`` with ``vg_eval.class_ap`` per attribute.

A roidb entry carries, besides the usual fields (imdb.py), ``gt_attributes``: int32 (G, 16), attribute indices
1..400 padded with 0 (BUTD's layout; beyond 16 attributes the rest are dropped); it has no ``gt_overlaps``
(1601 columns per box: ``max_classes`` / ``max_overlaps`` carry the same).
"""
from __future__ import annotations

import json
import logging
import math
import os.path as osp
from collections.abc import Callable
from typing import Any, TypeGuard

import numpy as np
from PIL import Image

from ..errors import AnnotationError, DataError, MissingFileError
from ..paths import default_data_dir
from .cache import cached_entries, files_signature
from .evaluation import EvalResult
from .imdb import imdb, make_roidb_entry
from .registry import register
from .vg_eval import class_ap, detections_of, mean_aps, object_ground_truth
from .vg_vocab import Vocabulary, read_vocabulary, split_attribute, split_object_name

logger = logging.getLogger(__name__)

VG_VERSION = '1600-400-20'
VG_SPLITS = ('train', 'val', 'test', 'minitrain', 'minival')
# The short splits: (split file they are cut from, number of its first lines).
_MINI_SPLITS = {'minitrain': ('train', 1000), 'minival': ('val', 100)}
# Attributes kept per object (BUTD's gt_attributes width).
MAX_ATTRIBUTES = 16
_FETCH_HINT = 'run data/scripts/fetch_vg.py (see data/README.md)'


def vg_root(data_dir: str | None = None) -> str:
    """``<DATA_DIR>/vg``."""
    return osp.join(data_dir or default_data_dir(), 'vg')


def vocabulary_paths(root: str, version: str = VG_VERSION) -> tuple[str, str]:
    """(objects_vocab.txt, attributes_vocab.txt) of ``version`` under ``root``."""
    folder = osp.join(root, 'genome', version)
    return osp.join(folder, 'objects_vocab.txt'), osp.join(folder, 'attributes_vocab.txt')


def vg_classes(root: str, version: str = VG_VERSION) -> tuple[str, ...]:
    """'__background__' + the object vocabulary's display names (no annotation is read)."""
    return read_vocabulary(vocabulary_paths(root, version)[0], '__background__').names


def read_split_file(path: str, count: int = 0) -> list[tuple[int, str]]:
    """(image id, image path relative to the VG folder) of each line ``<folder>/<id>.jpg xml/<id>.xml``;
    ``count`` > 0 keeps the first ``count`` lines."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = [x.strip() for x in f if x.strip()]
    except FileNotFoundError:
        raise MissingFileError(f'split file {path} does not exist; {_FETCH_HINT}') from None
    if count > 0:
        lines = lines[:count]
    out = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        # BUTD takes the id from the annotation column and the folder from the image column: both must agree.
        stems = {osp.splitext(osp.basename(p))[0] for p in parts}
        stem = osp.splitext(osp.basename(parts[0]))[0]
        if len(parts) != 2 or len(stems) != 1 or not stem.isdigit():
            raise AnnotationError(f'{path}, line {lineno}: expected "<folder>/<image id>.jpg xml/<image id>.xml", '
                                  f'got {line!r}')
        out.append((int(stem), parts[0]))
    if not out:
        raise DataError(f'{path} lists no images; {_FETCH_HINT}')
    return out


class VgReport:
    """Counts of what the reader left out, reported once per build."""

    def __init__(self) -> None:
        self.out_of_vocab = 0
        self.outside: list[str] = []
        self.truncated = 0
        self.empty_images = 0
        self.not_strings = 0


def _load_json_list(path: str) -> list:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MissingFileError(f'annotation file {path} does not exist; {_FETCH_HINT}') from None
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{path}: malformed JSON ({e}); re-download it with data/scripts/fetch_vg.py') from None
    if not isinstance(data, list):
        raise AnnotationError(f'{path}: expected a list of images (Visual Genome\'s format), got {type(data).__name__}')
    return data


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _image_id_of(item: Any, path: str, k: int) -> int:
    """The image id of entry ``k`` of a VG file (``image_id``, or ``id`` in older releases)."""
    image_id = item.get('image_id', item.get('id')) if isinstance(item, dict) else None
    if not _is_int(image_id):
        raise AnnotationError(f'{path}: entry {k} has no integer "image_id"; re-download the file with '
                              'data/scripts/fetch_vg.py')
    return image_id


def _entries_for(path: str, field: str, wanted: set[int]) -> dict[int, list]:
    """image id -> the list ``field`` of each image of ``wanted`` in the VG file ``path``."""
    found: dict[int, list] = {}
    for k, item in enumerate(_load_json_list(path)):
        image_id = _image_id_of(item, path, k)
        if image_id not in wanted:
            continue
        value = item.get(field, [])
        if not isinstance(value, list):
            raise AnnotationError(f'{path}: image {image_id}: "{field}" must be a list, got {type(value).__name__}')
        found.setdefault(image_id, []).extend(value)
    return found


def _object_id_of(obj: Any, where: str) -> int:
    object_id = obj.get('object_id', obj.get('id')) if isinstance(obj, dict) else None
    if not _is_int(object_id):
        raise AnnotationError(f'{where}: an object without an integer "object_id" ({str(obj)[:80]}); fix the entry '
                              'or re-download the file')
    return object_id


def _raw_attributes(path: str, wanted: set[int], report: VgReport) -> dict[int, list[str]]:
    """object id -> its raw attribute strings (every entry of the object in attributes.json, in file order); a
    value that is not a string is skipped and counted (BUTD's reader skipped such entries too)."""
    out: dict[int, list[str]] = {}
    for image_id, objs in _entries_for(path, 'attributes', wanted).items():
        for obj in objs:
            where = f'{path}: image {image_id}'
            object_id = _object_id_of(obj, where)
            attrs = obj.get('attributes') or []
            if not isinstance(attrs, list):
                raise AnnotationError(f'{where}, object {object_id}: "attributes" must be a list of strings, got '
                                      f'{attrs!r}; fix the entry or re-download attributes.json')
            report.not_strings += sum(1 for a in attrs if not isinstance(a, str))
            out.setdefault(object_id, []).extend(a for a in attrs if isinstance(a, str))
    return out


def _object_name(obj: dict, where: str) -> str:
    """The first name of an object (``names`` list, or ``name`` in older releases)."""
    names = obj.get('names', [obj['name']] if 'name' in obj else None)
    if not isinstance(names, list) or not names or not isinstance(names[0], str):
        raise AnnotationError(f'{where}: no name ("names" must be a non-empty list of strings, got {names!r}); '
                              'fix the entry or re-download objects.json')
    return names[0]  # a blank name is simply outside the vocabulary


def _object_box(obj: dict, where: str) -> tuple[float, float, float, float]:
    """VG's (x, y, w, h) of an object, checked to be finite numbers with w, h >= 0."""
    values = []
    for field in ('x', 'y', 'w', 'h'):
        v = obj.get(field)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise AnnotationError(f'{where}: "{field}" must be a finite number, got {v!r}; fix the entry or '
                                  're-download objects.json')
        values.append(float(v))
    x, y, w, h = values
    if w < 0 or h < 0:
        raise AnnotationError(f'{where}: negative width or height (x={x:g}, y={y:g}, w={w:g}, h={h:g}); VG boxes '
                              'are (x, y, width, height)')
    return x, y, w, h


def image_size(path: str, split_file: str) -> tuple[int, int]:
    """(width, height) from the image file's header."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise MissingFileError(f'{path} does not exist (listed in {split_file}); {_FETCH_HINT}') from None
    except OSError as e:
        raise DataError(f'{path}: unreadable image ({e}); re-download it with data/scripts/fetch_vg.py') from None


class vg(imdb):  # noqa: N801 (tf-faster-rcnn's name)
    """``vg_<version>_<image_set>`` under ``<data_dir>/vg`` (or ``root``)."""

    def __init__(self, version: str, image_set: str, data_dir: str | None = None, root: str | None = None):
        if image_set not in VG_SPLITS:
            raise ValueError(f'unknown Visual Genome split {image_set!r}; known: {VG_SPLITS}')
        data_dir = data_dir or default_data_dir()
        self._root = root or vg_root(data_dir)
        self._version = version
        self._image_set = image_set
        objects_vocab, attributes_vocab = vocabulary_paths(self._root, version)
        self._objects: Vocabulary = read_vocabulary(objects_vocab, '__background__')
        self._attributes: Vocabulary = read_vocabulary(attributes_vocab, '__no_attribute__')
        super().__init__(f'vg_{version}_{image_set}', self._objects.names, data_dir)
        # Attribute names, '__no_attribute__' first (index = the values of 'gt_attributes').
        self.attributes = self._attributes.names
        self._vocab_files = [objects_vocab, attributes_vocab]
        split, count = _MINI_SPLITS.get(image_set, (image_set, 0))
        self._split_file = osp.join(self._root, 'genome', f'{split}.txt')
        self._split = read_split_file(self._split_file, count)
        self._objects_json = osp.join(self._root, 'objects.json')
        self._attributes_json = osp.join(self._root, 'attributes.json')
        self.config = {'cleanup': True}
        # The roidb decides which images the set has (those with an object in the vocabulary), so it is read
        # (from its cache when the annotations did not change) as the set is opened.
        self._entries = {e['image_id']: e for e in self._cached_roidb()}
        self._image_index = [i for i, _ in self._split if i in self._entries]
        if not self._image_index:
            raise DataError(f'{self.name}: no image of {self._split_file} has an object of the vocabulary '
                            f'{objects_vocab}; check that the annotations are Visual Genome\'s')

    @property
    def root(self) -> str:
        return self._root

    def image_path_from_index(self, index: int) -> str:
        return self._entries[index]['image']

    def image_path_at(self, i: int) -> str:
        return self.image_path_from_index(self._image_index[i])

    # -- roidb ------------------------------------------------------------------------------------------
    def gt_roidb(self) -> list[dict]:
        return [self._entries[i] for i in self._image_index]

    def _cached_roidb(self) -> list[dict]:
        files = [self._split_file, self._objects_json, self._attributes_json, *self._vocab_files]
        key = files_signature(files, {'image_set': self._image_set, 'root': osp.abspath(self._root),
                                      'max_attributes': MAX_ATTRIBUTES})
        return cached_entries(self.cache_file(self._root), key, self._build_roidb)

    def _build_roidb(self) -> list[dict]:
        wanted = {i for i, _ in self._split}
        objects = _entries_for(self._objects_json, 'objects', wanted)
        report = VgReport()
        raw_attributes = _raw_attributes(self._attributes_json, wanted, report)
        roidb = []
        for image_id, rel_path in self._split:
            entry = self._entry(image_id, rel_path, objects.get(image_id, []), raw_attributes, report)
            if entry is not None:
                roidb.append(entry)
        self._log(report)
        return roidb

    def _entry(self, image_id: int, rel_path: str, objs: list, raw_attributes: dict[int, list[str]],
               report: VgReport) -> dict | None:
        kept = []
        for obj in objs:
            where = f'{self._objects_json}: image {image_id}'
            object_id = _object_id_of(obj, where)
            where = f'{where}, object {object_id}'
            name, name_attributes = split_object_name(_object_name(obj, where))
            cls = self._objects.index.get(name)
            box = _object_box(obj, f'{where} ({name})')
            if cls is None:
                report.out_of_vocab += 1
                continue
            kept.append((object_id, cls, box, name_attributes))
        if not kept:
            report.empty_images += 1
            return None
        # Only images with an object of the vocabulary are opened, as BUTD's reader.
        path = osp.join(self._root, rel_path)
        width, height = image_size(path, self._split_file)
        boxes: list[tuple[float, float, float, float]] = []
        classes: list[int] = []
        attributes = np.zeros((len(kept), MAX_ATTRIBUTES), dtype=np.int32)
        for object_id, cls, (x, y, w, h), name_attributes in kept:
            x1, y1 = max(0.0, x), max(0.0, y)
            x2, y2 = min(width - 1.0, x + w), min(height - 1.0, y + h)
            if x2 < x1 or y2 < y1:
                report.outside.append(f'image {image_id} object {object_id}')
                continue
            found = self._attribute_indices(name_attributes, raw_attributes.get(object_id, []))
            if len(found) > MAX_ATTRIBUTES:
                report.truncated += 1
            found = found[:MAX_ATTRIBUTES]
            attributes[len(boxes), :len(found)] = found
            boxes.append((x1, y1, x2, y2))
            classes.append(cls)
        if not boxes:
            report.empty_images += 1
            return None
        entry = make_roidb_entry(path, width, height, np.array(boxes, np.float32), np.array(classes, np.int32),
                                 self.num_classes, image_id=image_id, gt_attributes=attributes[:len(boxes)])
        # A dense (G, 1601) one-hot per image would take ~12 GB over the train split (BUTD kept it sparse); nothing
        # reads it, and max_classes / max_overlaps say the same.
        del entry['gt_overlaps']
        return entry

    def _attribute_indices(self, name_attributes: list[str], raw: list[str]) -> list[int]:
        """Vocabulary indices of an object's attributes: the adjectives split off its name, then those of
        attributes.json, each cleaned and split; out-of-vocabulary ones dropped; each index once, first-seen order."""
        names = list(name_attributes) + [a for text in raw for a in split_attribute(text)]
        indices = (self._attributes.index.get(n) for n in names)
        return list(dict.fromkeys(i for i in indices if i is not None))

    def _log(self, report: VgReport) -> None:
        if report.out_of_vocab or report.empty_images:
            logger.info('%s: %d objects outside the vocabulary dropped; %d images without an object of the '
                        'vocabulary dropped', self.name, report.out_of_vocab, report.empty_images)
        if report.outside:
            shown = ', '.join(report.outside[:5]) + (' ...' if len(report.outside) > 5 else '')
            logger.warning('%s: %d boxes lying wholly outside their image dropped (%s)', self.name,
                           len(report.outside), shown)
        if report.not_strings:
            logger.warning('%s: %d attribute values of %s are not strings: skipped', self.name, report.not_strings,
                           self._attributes_json)
        if report.truncated:
            logger.info('%s: %d objects have more than %d attributes; the first %d are kept', self.name,
                        report.truncated, MAX_ATTRIBUTES, MAX_ATTRIBUTES)

    # -- evaluation -------------------------------------------------------------------------------------
    def evaluate_detections(self, all_boxes: list[list[np.ndarray]], output_dir: str) -> EvalResult:
        """Per-class AP at IoU 0.5 (area under the precision envelope, as BUTD's vg_eval); logs each class's AP
        and returns the mean over the classes with gt boxes (``stats``: [mean AP, weighted mean AP])."""
        if len(all_boxes) != self.num_classes or any(len(a) != self.num_images for a in all_boxes):
            raise ValueError(f'{self.name}: all_boxes must be [{self.num_classes} classes][{self.num_images} images]')
        gt = object_ground_truth(self.roidb[:self.num_images], self._image_index, self.num_classes)
        dets = detections_of(all_boxes, self._image_index)
        result = EvalResult(0.0, metric='VG mAP@0.5')
        aps = []
        for c in range(1, self.num_classes):
            ap = class_ap(gt[c], dets[c])
            aps.append(ap)
            result.per_class[self.classes[c]] = ap.ap
            if ap.npos:
                logger.info(f'AP for {self.classes[c]} = {ap.ap:.4f} (npos={ap.npos:,})')
        mean_ap, weighted = mean_aps(aps)
        missing = sum(1 for a in aps if a.npos == 0)
        if missing:
            logger.info(f'{missing} classes have no gt box in these {self.num_images} images: left out of the means')
        logger.info(f'Mean AP = {mean_ap:.4f}')
        logger.info(f'Weighted Mean AP = {weighted:.4f}')
        result.mean_ap = mean_ap
        result.stats = [mean_ap, weighted]
        return result


def _builder(image_set: str) -> Callable[[str | None], vg]:
    """data_dir -> ``vg_<VG_VERSION>_<image_set>`` (the registry's builder of one split)."""
    def build(data_dir: str | None) -> vg:
        return vg(VG_VERSION, image_set, data_dir=data_dir)
    return build


for _split in VG_SPLITS:
    register(f'vg_{VG_VERSION}_{_split}', _builder(_split))
