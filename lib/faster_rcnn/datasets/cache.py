"""Annotation caches under ``<DATA_DIR>/cache``, invalidated when the annotation files change.

The reference pickled the gt roidb once and reused it forever, so edited annotations were silently
ignored. Here a cache holds a key built from the paths, sizes and modification times of every source file
(plus the loader's options); a different key rebuilds it. Caches are JSON, written atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import os.path as osp
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..utils.atomic import write_json_atomic

logger = logging.getLogger(__name__)

# Bump when the layout of cached entries changes, so old caches are rebuilt.
CACHE_VERSION = 1

# Keys of a roidb entry stored in the cache, with their dtypes.
_ARRAY_KEYS = {'boxes': np.float32, 'gt_classes': np.int32, 'gt_ishard': np.bool_, 'gt_attributes': np.int32}


def files_signature(paths: Iterable[str], options: Any = None) -> str:
    """sha1 over (path, size, mtime) of each file and the loader's options."""
    h = hashlib.sha1(f'v{CACHE_VERSION}|{json.dumps(options, sort_keys=True, default=str)}\n'.encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f'{osp.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n'.encode())
        except OSError:
            h.update(f'{osp.abspath(p)}|missing\n'.encode())
    return h.hexdigest()


def _to_json(entry: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in entry.items()}


def _from_json(entry: dict) -> dict:
    if not isinstance(entry, dict):
        raise ValueError('an entry that is not an object')
    out = dict(entry)
    for k, dt in _ARRAY_KEYS.items():
        if k in out:
            out[k] = np.asarray(out[k], dtype=dt)
    if 'boxes' in out:
        out['boxes'] = out['boxes'].reshape(-1, 4)
        if 'gt_attributes' in out:  # (G, A): one row per box; JSON keeps no width for G = 0 (A = 16 as BUTD's)
            g = out['boxes'].shape[0]
            out['gt_attributes'] = out['gt_attributes'].reshape(g, -1) if g else out['gt_attributes'].reshape(0, 16)
    return out


def _check_entry(e: dict) -> None:
    """Raise ValueError unless ``e`` is a well-formed cached entry (a damaged or edited cache is rebuilt)."""
    if not isinstance(e, dict) or not isinstance(e.get('image'), str):
        raise ValueError('an entry without an image path')
    for field in ('width', 'height'):
        if not isinstance(e.get(field), int) or isinstance(e.get(field), bool) or e[field] <= 0:
            raise ValueError(f'an entry with a bad {field}')
    boxes, classes = e.get('boxes'), e.get('gt_classes')
    if not isinstance(boxes, np.ndarray) or boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise ValueError('an entry with bad boxes')
    if not isinstance(classes, np.ndarray) or classes.shape != (boxes.shape[0],):
        raise ValueError('an entry whose classes do not match its boxes')
    hard = e.get('gt_ishard')
    if hard is not None and (not isinstance(hard, np.ndarray) or hard.shape != classes.shape):
        raise ValueError('an entry whose difficult flags do not match its boxes')
    attributes = e.get('gt_attributes')
    if attributes is not None and (not isinstance(attributes, np.ndarray) or attributes.ndim != 2
                                   or attributes.shape[0] != classes.shape[0]):
        raise ValueError('an entry whose attributes do not match its boxes')


def cached_entries(cache_file: str, key: str, build: Callable[[], list[dict]]) -> list[dict]:
    """Return the entries stored in ``cache_file`` under ``key``, else ``build()`` them and store them.

    A cache is checked before use: one that is not valid JSON or holds a malformed entry is rebuilt.
    """
    if osp.exists(cache_file):
        try:
            with open(cache_file, encoding='utf-8') as f:
                data = json.load(f)
            if not isinstance(data, dict) or not isinstance(data.get('entries'), list):
                raise ValueError('not a cache of this project')
            if data.get('key') == key:
                entries = [_from_json(e) for e in data['entries']]
                for e in entries:
                    _check_entry(e)
                return entries
            logger.info(f'{cache_file}: annotations changed since it was written, rebuilding it')
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.info(f'{cache_file}: unreadable or damaged cache ({e}), rebuilding it')
    entries = build()
    write_json_atomic(cache_file, {'key': key, 'entries': [_to_json(e) for e in entries]}, indent=None)
    return entries
