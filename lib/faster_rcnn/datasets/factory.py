"""Dataset names -> imdb objects, with tf-faster-rcnn's names.

    voc_<2007|2012>_<train|val|trainval|test>[_diff]     PASCAL VOC (``_diff`` keeps difficult boxes)
    coco_2014_<train|val|minival|valminusminival>, coco_2015_<test|test-dev>, coco_2017_<train|val|test-dev>
    shapes_<trainval|test>, shapes_coco_<trainval|test>  the generated set (VOC and COCO readers)
    shapes_circle_square_<trainval|test>                 the same images with the triangles left unlabelled
    vg_1600-400-20_<train|val|test|minitrain|minival>     Visual Genome, objects and attributes (BUTD's splits)
    shapes_attr_<trainval|test>                          shapes with attributes (colour, fill), for an attribute head
    coco_json:<ann.json>:<image_dir>, voc_dir:<root>:<split>[:diff]   your own data (see custom.py)

Each reader registers its names in its own module (``datasets.registry``); this module imports every module of
the package, so a new reader is a new file in ``datasets/`` and nothing here changes.
"""
from __future__ import annotations

import importlib
import os.path as osp
import pkgutil

from ..errors import UsageError
from .coco import COCO_CATEGORY_IDS
from .custom import get_custom_imdb, is_custom_name
from .imdb import imdb
from .registry import NAME_CLASSES, NAMES, PREFIX_USAGE
from .vg import vg_classes, vg_root

_PACKAGE = __name__.rsplit('.', 1)[0]
for _module in sorted(m.name for m in pkgutil.iter_modules([osp.dirname(__file__)])):
    importlib.import_module(f'{_PACKAGE}.{_module}')

__sets = NAMES  # the old name of the table, for code that adds to it


def get_imdb(name: str, data_dir: str | None = None) -> imdb:
    """The imdb called ``name`` (a UsageError listing the known names when there is none).

    ``data_dir``: where the datasets and caches live (the config's DATA_DIR; default FRCNN_DATA_DIR or the
    checkout's data/)."""
    if is_custom_name(name):
        return get_custom_imdb(name, data_dir)
    if name not in NAMES:
        raise UsageError(f'unknown dataset {name!r}; known: {", ".join(list_imdbs())}, or '
                         f'{" / ".join(PREFIX_USAGE.values())} for your own data')
    return NAMES[name](data_dir)


def list_imdbs() -> list[str]:
    return list(NAMES.keys())


def classes_of(name: str, data_dir: str | None = None) -> tuple[str, ...]:
    """The classes (background first) of the dataset ``name``; the built-in VOC, COCO and shapes sets need no
    files on disk, others (your own data, ``+`` joins) are read."""
    if name in NAME_CLASSES:
        return NAME_CLASSES[name]
    if name.startswith('vg_') and name in NAMES:
        return vg_classes(vg_root(data_dir))  # the vocabulary file alone, without the annotations
    return tuple(get_imdb(name.split('+')[0], data_dir).classes)


def category_ids_of(name: str, data_dir: str | None = None) -> tuple[int, ...]:
    """The dataset category id of classes 1..K-1 of the dataset ``name`` (``classes_of``'s order; a ``+`` join
    takes its first part's): COCO's own ids for the built-in COCO sets, 1..K-1 for VOC and shapes (no files
    needed), read from the files otherwise."""
    first = name.split('+')[0]
    if first.startswith('coco_') and first in NAMES:
        return COCO_CATEGORY_IDS
    if first.startswith(('voc_', 'shapes_')) and first in NAMES:  # shapes_coco_* numbers them 1..K-1 too
        return tuple(range(1, len(classes_of(first, data_dir))))
    return tuple(get_imdb(first, data_dir).category_ids)
