"""PASCAL VOC detection evaluation, with the semantics of the devkit's Python port used by tf-faster-rcnn.

Per class: detections sorted by decreasing score; IoU with +1 widths (inclusive pixel boxes); a detection
matches the max-IoU gt box of its image only when IoU > ``ovthresh`` (strictly); a difficult gt box is
ignored (neither TP nor FP) and not counted in the number of positives; a second match of the same gt box is
a false positive. 2007 uses the 11-point AP over ``np.arange(0.0, 1.1, 0.1)`` (that float sequence, as the
published evaluation); later years the area under the monotone precision envelope.

File formats are the devkit's: ``detpath.format(classname)`` holds lines ``<image_id> <score> x1 y1 x2 y2``
in 1-based coordinates; ``annopath.format(image_id)`` is a VOC XML file; ``imagesetfile`` lists image ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ..utils.atomic import write_json_atomic
from .cache import files_signature
from .voc_xml import parse_voc_objects

# An image id: the devkit's file names (str) or any other hashable key (Visual Genome's int ids).
ImageId = TypeVar('ImageId', bound=Hashable)


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """Average precision from a recall / precision curve.

    Args:
        rec, prec: (D,) cumulative recall and precision after each detection (decreasing score order).
        use_07_metric: the VOC2007 11-point interpolated AP; else the area under the precision envelope.

    Example: rec = [0.5, 1.0], prec = [1.0, 0.5]: the 07 metric averages 1.0 at t in {0, .1, .., .5}
    (6 thresholds) and 0.5 at {.6, .., 1.0} (5 thresholds): (6 + 2.5) / 11 = 0.7727; the area metric gives
    0.5 * 1.0 + 0.5 * 0.5 = 0.75.
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        # The float sequence itself matters: 0.30000000000000004 is a threshold, as in the devkit port.
        for t in np.arange(0.0, 1.1, 0.1):
            above = rec >= t
            p = float(np.max(prec[above])) if np.any(above) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    # Precision envelope: the maximum precision at any recall >= this one.
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding='utf-8') as f:
            return [x.strip() for x in f if x.strip()]
    except OSError as e:
        raise FileNotFoundError(f'cannot read {path}: {e.strerror}') from e


def load_annotations(annopath: str, imagenames: list[str], cachedir: str | None) -> dict[str, list[dict[str, Any]]]:
    """Parse the XML of every image, through a cache keyed on the files' paths, sizes and mtimes.

    The reference cached ``annots.pkl`` forever, so edited annotations were silently ignored; here a
    changed file invalidates the cache.
    """
    paths = [annopath.format(n) for n in imagenames]
    key = files_signature(paths)
    cachefile = None
    if cachedir:
        os.makedirs(cachedir, exist_ok=True)
        cachefile = osp.join(cachedir, f'annots_{hashlib.sha1("|".join(paths).encode()).hexdigest()[:16]}.json')
        if osp.exists(cachefile):
            try:
                with open(cachefile, encoding='utf-8') as f:
                    cached = json.load(f)
                if cached.get('key') == key:
                    return cached['recs']
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt below
    recs = {}
    for name, path in zip(imagenames, paths):
        recs[name] = [dict(name=o.name, difficult=int(o.difficult), bbox=[float(v) for v in o.bbox_1based])
                      for o in parse_voc_objects(path)]
    if cachefile:
        write_json_atomic(cachefile, {'key': key, 'recs': recs}, indent=None)
    return recs


def _iou_one_to_many(bb: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU (inclusive pixels, +1 widths) of one box (4,) with boxes (G, 4) -> (G,)."""
    ixmin = np.maximum(gts[:, 0], bb[0])
    iymin = np.maximum(gts[:, 1], bb[1])
    ixmax = np.minimum(gts[:, 2], bb[2])
    iymax = np.minimum(gts[:, 3], bb[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
           + (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0) - inters)
    return inters / uni


def voc_eval_from_records(recs: Mapping[ImageId, list[dict[str, Any]]], imagenames: Sequence[ImageId],
                          classname: str, detections: Sequence[tuple[ImageId, float, list[float]]],
                          ovthresh: float = 0.5,
                          use_07_metric: bool = True, use_diff: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """The matching and AP of ``voc_eval`` on parsed data.

    Args:
        recs: image id -> objects {'name', 'difficult', 'bbox' [x1, y1, x2, y2]}.
        detections: (image id, score, [x1, y1, x2, y2]) in the same coordinate convention as ``recs``.
        use_diff: count difficult objects as any other (the reference's ``use_diff``, the ``_diff`` sets).
    Returns:
        rec (D,), prec (D,), ap.
    """
    class_recs = {}
    npos = 0
    for name in imagenames:
        objs = [o for o in recs[name] if o['name'] == classname]
        bbox = np.array([o['bbox'] for o in objs], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([bool(o['difficult']) and not use_diff for o in objs], dtype=bool)
        npos += int(np.sum(~difficult))
        class_recs[name] = {'bbox': bbox, 'difficult': difficult, 'det': np.zeros(len(objs), dtype=bool)}

    if not detections:
        return np.zeros(0), np.zeros(0), 0.0
    image_ids = [d[0] for d in detections]
    confidence = np.array([d[1] for d in detections], dtype=np.float64)
    bb_all = np.array([d[2] for d in detections], dtype=np.float64).reshape(-1, 4)
    # A stable sort keeps file order among equal scores, so results do not depend on the sort algorithm.
    order = np.argsort(-confidence, kind='stable')
    nd = len(order)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d, k in enumerate(order):
        if image_ids[k] not in class_recs:
            raise KeyError(f'detection for image {image_ids[k]!r} (class {classname}), which is not in the image set')
        r = class_recs[image_ids[k]]
        ovmax = -np.inf
        if r['bbox'].size > 0:
            overlaps = _iou_one_to_many(bb_all[k], r['bbox'])
            jmax = int(np.argmax(overlaps))
            ovmax = overlaps[jmax]
        if ovmax > ovthresh:
            if r['difficult'][jmax]:
                continue
            if not r['det'][jmax]:
                tp[d] = 1.0
                r['det'][jmax] = True
            else:
                fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    # npos == 0 gives nan recall, as the devkit port does; the caller decides how to report it.
    with np.errstate(divide='ignore', invalid='ignore'):
        rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)


def read_detections(detfile: str) -> list[tuple[str, float, list[float]]]:
    """Lines ``<image_id> <score> x1 y1 x2 y2`` -> [(image_id, score, [x1, y1, x2, y2])]."""
    out = []
    for lineno, line in enumerate(_read_lines(detfile), 1):
        parts = line.split(' ')
        if len(parts) != 6:
            raise ValueError(f'{detfile}, line {lineno}: expected "<image_id> <score> x1 y1 x2 y2", got {line!r}')
        try:
            out.append((parts[0], float(parts[1]), [float(v) for v in parts[2:]]))
        except ValueError:
            raise ValueError(f'{detfile}, line {lineno}: non-numeric score or coordinate in {line!r}') from None
    return out


def voc_eval(detpath: str, annopath: str, imagesetfile: str, classname: str, cachedir: str | None,
             ovthresh: float = 0.5, use_07_metric: bool = True, use_diff: bool = False,
             imagenames: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The VOC devkit's evaluation of one class.

    Args:
        detpath: ``detpath.format(classname)`` is the detection file of the class.
        annopath: ``annopath.format(image_id)`` is the XML annotation of an image.
        imagesetfile: text file with one image id per line.
        classname: the class evaluated.
        cachedir: where parsed annotations are cached (None: no cache).
        ovthresh: a detection is a match when its IoU with a gt box is strictly greater than this.
        use_07_metric: the VOC2007 11-point AP.
        use_diff: difficult objects count as any other (else they are neither TP nor FP, nor in npos).
        imagenames: evaluate these image ids instead of the whole image set (a subset of it).
    Returns:
        rec (D,), prec (D,), ap: cumulative recall and precision after each detection, and the AP.
    """
    # The id is the first word, as the dataset loader reads the same file (lines may carry a second column).
    if imagenames is None:
        imagenames = [x.split()[0] for x in _read_lines(imagesetfile)]
    recs = load_annotations(annopath, imagenames, cachedir)
    detfile = detpath.format(classname)
    detections = read_detections(detfile) if osp.exists(detfile) else []
    return voc_eval_from_records(recs, imagenames, classname, detections, ovthresh, use_07_metric, use_diff)
