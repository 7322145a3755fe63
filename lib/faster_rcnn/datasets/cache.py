"""Annotation caches under ``<DATA_DIR>/cache``, invalidated when the annotation files change.

The reference pickled the gt roidb once and reused it forever, so edited annotations were silently
ignored. Here a cache holds a key built from the paths, sizes and modification times of every source file
(plus the loader's options); a different key rebuilds it. Caches are JSON, written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from typing import Any, Callable, Iterable

import numpy as np

# Bump when the layout of cached entries changes, so old caches are rebuilt.
CACHE_VERSION = 1

# Keys of a roidb entry stored in the cache, with their dtypes.
_ARRAY_KEYS = {'boxes': np.float32, 'gt_classes': np.int32, 'gt_ishard': np.bool_}


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
    out = dict(entry)
    for k, dt in _ARRAY_KEYS.items():
        if k in out:
            out[k] = np.asarray(out[k], dtype=dt)
    if 'boxes' in out:
        out['boxes'] = out['boxes'].reshape(-1, 4)
    return out


def cached_entries(cache_file: str, key: str, build: Callable[[], list[dict]]) -> list[dict]:
    """Return the entries stored in ``cache_file`` under ``key``, else ``build()`` them and store them."""
    if osp.exists(cache_file):
        try:
            with open(cache_file, encoding='utf-8') as f:
                data = json.load(f)
            if data.get('key') == key:
                return [_from_json(e) for e in data['entries']]
            print(f'{cache_file}: annotations changed since it was written, rebuilding it')
        except (OSError, ValueError, KeyError):
            print(f'{cache_file}: unreadable cache, rebuilding it')
    entries = build()
    os.makedirs(osp.dirname(cache_file) or '.', exist_ok=True)
    tmp = f'{cache_file}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump({'key': key, 'entries': [_to_json(e) for e in entries]}, f)
    os.replace(tmp, cache_file)
    return entries
