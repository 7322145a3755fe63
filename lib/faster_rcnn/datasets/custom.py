"""Datasets named on the command line by their files, with no code to write.

    coco_json:<annotations.json>:<image_dir>     any COCO-format json; file_name relative to image_dir
    voc_dir:<root>:<split>                       any VOC-layout folder (root/JPEGImages, root/Annotations,
                                                 root/ImageSets/Main/<split>.txt); classes from
                                                 root/classes.txt, else every <name> in root/Annotations
    voc_dir:<root>:<split>:diff                  the same, keeping difficult boxes in training

Relative paths are taken from the current directory. Names of several datasets are joined by '+' (as in
``voc_2007_trainval+voc_2012_trainval``), so paths must not contain '+' or ':'.
"""
from __future__ import annotations

import os.path as osp

from .coco import CocoDataset
from .imdb import imdb
from .pascal_voc import VocDataset
from ..errors import DataError, UsageError

PREFIXES = ('coco_json:', 'voc_dir:')


def is_custom_name(name: str) -> bool:
    return name.startswith(PREFIXES)


def get_custom_imdb(name: str, data_dir: str | None = None) -> imdb:
    """Build the imdb that a ``coco_json:...`` or ``voc_dir:...`` name describes."""
    kind, _, rest = name.partition(':')
    parts = rest.split(':')
    if kind == 'coco_json':
        if len(parts) != 2 or not all(parts):
            raise UsageError(f'dataset name {name!r}: expected coco_json:<annotations.json>:<image_dir>')
        ann, image_dir = parts
        if not osp.isdir(image_dir):
            raise DataError(f'dataset {name!r}: image folder {image_dir} does not exist')
        return CocoDataset(name, ann, image_dir, data_dir=data_dir)
    if kind == 'voc_dir':
        if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and parts[2] != 'diff'):
            raise UsageError(f'dataset name {name!r}: expected voc_dir:<root>:<split> or voc_dir:<root>:<split>:diff')
        root, split = parts[0], parts[1]
        if not osp.isdir(root):
            raise DataError(f'dataset {name!r}: folder {root} does not exist')
        return VocDataset(name, root, split, use_diff=len(parts) == 3, use_07_metric=True, data_dir=data_dir)
    raise UsageError(f'{name!r} is not a custom dataset name (they start with {" or ".join(PREFIXES)})')
