"""``eval.json``: the numbers of one evaluation, written by tools/test_net.py next to ``detections.pkl`` and read
by tools/compare_runs.py, so that comparing runs needs neither the dataset nor a second evaluation.

Format 1 (plain JSON; a class without gt has AP null)::

    {"format": 1, "imdb": "voc_2007_test", "num_images": 4952, "metric": "VOC07 mAP", "mean_ap": 0.7012,
     "per_class": {"aeroplane": 0.7134, ...}, "coco_stats": null or [COCO's 12 numbers],
     "detections": {"file": "detections.pkl", "sha256": "<hex>"}, "test_config": {"NMS": 0.3, ...}}

A network with an attribute head tested on a dataset with attributes adds ``"attributes": {"at_detections":
{"mean_ap", "weighted_ap", "per_attribute": {...}}, "at_gt_boxes": {...}}`` (``datasets.attribute_eval``).

``test_config`` holds the TEST keys in effect, ``--set`` overrides included (no detector file records those).
The sha256 ties the summary to the detections it was computed from: a later test_net or reval run that rewrote
``detections.pkl`` without the summary makes it stale, and a reader then ignores it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os.path as osp
from collections.abc import Sequence
from typing import Any

from ..errors import DataError
from .json_file import write_json_atomic

EVAL_SUMMARY_FORMAT = 1
EVAL_SUMMARY_FILE = 'eval.json'


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """JSON's values for a config value (tuples as lists, NaN as null)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_eval_summary(folder: str, *, imdb: str, num_images: int, metric: str, mean_ap: float,
                       per_class: dict[str, float], coco_stats: Sequence[float] | None,
                       test_config: dict | None, detections: str = 'detections.pkl',
                       attributes: dict | None = None) -> str:
    """Write ``folder/eval.json`` (module docstring) atomically for ``folder/<detections>``; returns its path."""
    det_file = osp.join(folder, detections)
    summary = {'format': EVAL_SUMMARY_FORMAT, 'imdb': imdb, 'num_images': int(num_images), 'metric': metric,
               'mean_ap': _plain(float(mean_ap)), 'per_class': {k: _plain(float(v)) for k, v in per_class.items()},
               'coco_stats': None if coco_stats is None else [float(v) for v in coco_stats],
               'detections': {'file': detections, 'sha256': file_sha256(det_file)},
               'test_config': None if test_config is None else _plain(dict(test_config))}
    if attributes is not None:  # a network with an attribute head on a dataset with attributes
        summary['attributes'] = _plain(attributes)
    path = osp.join(folder, EVAL_SUMMARY_FILE)
    write_json_atomic(path, summary)
    return path


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _well_formed(data: Any) -> bool:
    return (isinstance(data, dict) and data.get('format') == EVAL_SUMMARY_FORMAT and _is_number(data.get('mean_ap'))
            and isinstance(data.get('metric'), str) and isinstance(data.get('per_class'), dict)
            and all(isinstance(k, str) and (v is None or _is_number(v)) for k, v in data['per_class'].items())
            and (data.get('test_config') is None or isinstance(data['test_config'], dict))
            and (data.get('coco_stats') is None or (isinstance(data['coco_stats'], list)
                                                    and len(data['coco_stats']) == 12
                                                    and all(_is_number(v) for v in data['coco_stats'])))
            and isinstance(data.get('detections'), dict) and isinstance(data['detections'].get('sha256'), str))


def read_eval_summary(folder: str) -> dict | None:
    """``folder/eval.json`` when it exists and belongs to the detections file now in the folder; None when it is
    absent or stale. A malformed one is a DataError naming it (it is this project's file: something damaged it)."""
    path = osp.join(folder, EVAL_SUMMARY_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f'{path}: cannot be read ({e}); delete it (the numbers are then computed again)') from None
    if not _well_formed(data):
        raise DataError(f'{path}: not an evaluation summary of format {EVAL_SUMMARY_FORMAT} (mean_ap, metric, '
                        'per_class, coco_stats, detections.sha256); delete it (the numbers are then computed again)')
    det_file = osp.join(folder, osp.basename(str(data['detections'].get('file', 'detections.pkl'))))
    if not osp.isfile(det_file) or file_sha256(det_file) != data['detections']['sha256']:
        return None
    return data
