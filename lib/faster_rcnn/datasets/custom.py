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

from ..errors import DataError, UsageError
from .coco import CocoDataset
from .imdb import imdb
from .pascal_voc import VocDataset
from .registry import PREFIXES as _REGISTERED
from .registry import register_prefix

PREFIXES = ('coco_json:', 'voc_dir:')


def is_custom_name(name: str) -> bool:
    """Whether ``name`` has a registered ``prefix:`` (these two or a reader's own)."""
    head, sep, _ = name.partition(':')
    return bool(sep) and head in _REGISTERED


def _coco_json(name: str, rest: str, data_dir: str | None) -> imdb:
    parts = rest.split(':')
    if len(parts) != 2 or not all(parts):
        raise UsageError(f'dataset name {name!r}: expected coco_json:<annotations.json>:<image_dir>')
    ann, image_dir = parts
    if not osp.isdir(image_dir):
        raise DataError(f'dataset {name!r}: image folder {image_dir} does not exist')
    return CocoDataset(name, ann, image_dir, data_dir=data_dir)


def _voc_dir(name: str, rest: str, data_dir: str | None) -> imdb:
    parts = rest.split(':')
    if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and parts[2] != 'diff'):
        raise UsageError(f'dataset name {name!r}: expected voc_dir:<root>:<split> or voc_dir:<root>:<split>:diff')
    root, split = parts[0], parts[1]
    if not osp.isdir(root):
        raise DataError(f'dataset {name!r}: folder {root} does not exist')
    return VocDataset(name, root, split, use_diff=len(parts) == 3, use_07_metric=True, data_dir=data_dir)


def get_custom_imdb(name: str, data_dir: str | None = None) -> imdb:
    """Build the imdb that a ``<prefix>:...`` name describes."""
    head, sep, rest = name.partition(':')
    if not sep or head not in _REGISTERED:
        raise UsageError(f'{name!r} is not a custom dataset name (they start with '
                         f'{" or ".join(p + ":" for p in _REGISTERED)})')
    return _REGISTERED[head](name, rest, data_dir)


register_prefix('coco_json', _coco_json, 'coco_json:<ann.json>:<image_dir>')
register_prefix('voc_dir', _voc_dir, 'voc_dir:<root>:<split>')
