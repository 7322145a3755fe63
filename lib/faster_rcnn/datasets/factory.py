"""Dataset names -> imdb objects, with tf-faster-rcnn's names.

    voc_<2007|2012>_<train|val|trainval|test>[_diff]     PASCAL VOC (``_diff`` keeps difficult boxes)
    coco_2014_<train|val|minival|valminusminival>, coco_2015_<test|test-dev>, coco_2017_<train|val|test-dev>
    shapes_<trainval|test>, shapes_coco_<trainval|test>  the generated set (VOC and COCO readers)
    shapes_circle_square_<trainval|test>                 the same images with the triangles left unlabelled
    vg_1600-400-20_<train|val|test|minitrain|minival>     Visual Genome, objects and attributes (BUTD's splits)
    shapes_attr_<trainval|test>                          shapes with attributes (colour, fill), for an attribute head
    coco_json:<ann.json>:<image_dir>, voc_dir:<root>:<split>[:diff]   your own data (see custom.py)
"""
from __future__ import annotations

from typing import Callable

from .coco import COCO_CATEGORY_IDS, COCO_CLASSES, coco
from .custom import get_custom_imdb, is_custom_name
from ..errors import UsageError
from .imdb import imdb
from .pascal_voc import VOC_CLASSES, pascal_voc
from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import shapes_coco, shapes_subset_voc, shapes_voc
from .vg import VG_SPLITS, VG_VERSION, vg, vg_classes, vg_root
from .shapes_attr import shapes_attr_voc

__sets: dict[str, Callable[[str | None], imdb]] = {}

for _year in ('2007', '2012'):
    for _split in ('train', 'val', 'trainval', 'test'):
        __sets[f'voc_{_year}_{_split}'] = (lambda d, split=_split, year=_year: pascal_voc(split, year, data_dir=d))
        __sets[f'voc_{_year}_{_split}_diff'] = (lambda d, split=_split, year=_year: pascal_voc(split, year, use_diff=True,
                                                                                          data_dir=d))

for _year, _splits in (('2014', ('train', 'val', 'minival', 'valminusminival')), ('2015', ('test', 'test-dev')),
                       ('2017', ('train', 'val', 'test-dev'))):
    for _split in _splits:
        __sets[f'coco_{_year}_{_split}'] = (lambda d, split=_split, year=_year: coco(split, year, data_dir=d))

for _split in ('trainval', 'test'):
    __sets[f'shapes_{_split}'] = (lambda d, split=_split: shapes_voc(split, data_dir=d))
    __sets[f'shapes_coco_{_split}'] = (lambda d, split=_split: shapes_coco(split, data_dir=d))
    __sets[f'shapes_circle_square_{_split}'] = (lambda d, split=_split: shapes_subset_voc(split, ('circle', 'square'),
                                                                                        data_dir=d))
    __sets[f'shapes_attr_{_split}'] = (lambda d, split=_split: shapes_attr_voc(split, data_dir=d))

for _split in VG_SPLITS:
    __sets[f'vg_{VG_VERSION}_{_split}'] = (lambda d, split=_split: vg(VG_VERSION, split, data_dir=d))


def get_imdb(name: str, data_dir: str | None = None) -> imdb:
    """The imdb called ``name`` (a UsageError listing the known names when there is none).

    ``data_dir``: where the datasets and caches live (the config's DATA_DIR; default FRCNN_DATA_DIR or the
    checkout's data/)."""
    if is_custom_name(name):
        return get_custom_imdb(name, data_dir)
    if name not in __sets:
        raise UsageError(f'unknown dataset {name!r}; known: {", ".join(list_imdbs())}, or '
                         'coco_json:<ann.json>:<image_dir> / voc_dir:<root>:<split> for your own data')
    return __sets[name](data_dir)


def list_imdbs() -> list[str]:
    return list(__sets.keys())


def classes_of(name: str, data_dir: str | None = None) -> tuple[str, ...]:
    """The classes (background first) of the dataset ``name``; the built-in VOC, COCO and shapes sets need no
    files on disk, others (your own data, ``+`` joins) are read."""
    if name.startswith('voc_') and name in __sets:
        return VOC_CLASSES
    if name.startswith('coco_') and name in __sets:
        return COCO_CLASSES
    if name.startswith('shapes_circle_square_') and name in __sets:
        return SHAPES_CLASSES[:3]
    if name.startswith('shapes_') and name in __sets:
        return SHAPES_CLASSES
    if name.startswith('vg_') and name in __sets:
        return vg_classes(vg_root(data_dir))  # the vocabulary file alone, without the annotations
    return tuple(get_imdb(name.split('+')[0], data_dir).classes)


def category_ids_of(name: str, data_dir: str | None = None) -> tuple[int, ...]:
    """The dataset category id of classes 1..K-1 of the dataset ``name`` (``classes_of``'s order; a ``+`` join
    takes its first part's): COCO's own ids for the built-in COCO sets, 1..K-1 for VOC and shapes (no files
    needed), read from the files otherwise."""
    first = name.split('+')[0]
    if first.startswith('coco_') and first in __sets:
        return COCO_CATEGORY_IDS
    if first.startswith(('voc_', 'shapes_')) and first in __sets:  # shapes_coco_* numbers them 1..K-1 too
        return tuple(range(1, len(classes_of(first, data_dir))))
    return tuple(get_imdb(first, data_dir).category_ids)
