"""Pictures of the images whose errors cost the most AP, each detection labelled with its TIDE error type.

A picture is the image enlarged to a readable size (its shorter side to at least ``GALLERY_MIN_SIDE`` pixels:
the shapes set's 160-256 px images would otherwise have unreadable captions), a header line (AP lost, error
counts) above it and a legend of the colours and labels below it.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from collections.abc import Callable, Sequence
from typing import cast

import cv2
import numpy as np

from ..errors import DiskError, MissingFileError
from ..utils.visualization import color_for, draw_boxes
from .tide import (
    BKG,
    BOTH,
    CLS,
    DUPE,
    LOC,
    TRUE_POSITIVE,
    UNEVALUATED,
    ImageDetections,
    ImageErrors,
    ImageGroundTruth,
    TideResult,
)

__all__ = ['ERROR_LABELS', 'GALLERY_MIN_SIDE', 'LEGEND', 'worst_images', 'draw_errors', 'draw_legend',
           'write_gallery']

ERROR_LABELS = {TRUE_POSITIVE: 'TP', CLS: 'Cls', LOC: 'Loc', BOTH: 'Both', DUPE: 'Dupe', BKG: 'Bkg',
                UNEVALUATED: 'n/e'}
# Palette index (utils.visualization) of each error type's box: one fixed colour per type, so that pictures
# can be compared at a glance.
_ERROR_COLOUR = {TRUE_POSITIVE: 11, CLS: 2, LOC: 4, BOTH: 17, DUPE: 13, BKG: 0, UNEVALUATED: 10}
_GT_BGR = (0, 200, 0)
_MISSED_BGR = (0, 255, 255)
_UNMATCHED_BGR = (255, 255, 255)
_IGNORE_BGR = (160, 160, 160)
# The shorter side of a gallery picture's image, at least (smaller images are enlarged).
GALLERY_MIN_SIDE = 512
_HEADER_H = 26
_LEGEND_ROW_H = 22
# What each colour and label means (TIDE's definitions, analysis/tide.py), in the legend's order.
LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ('TP: correct', color_for(_ERROR_COLOUR[TRUE_POSITIVE])),
    ('Cls: wrong class (IoU >= 0.5)', color_for(_ERROR_COLOUR[CLS])),
    ('Loc: right class, IoU 0.1-0.5', color_for(_ERROR_COLOUR[LOC])),
    ('Both: wrong class, IoU 0.1-0.5', color_for(_ERROR_COLOUR[BOTH])),
    ('Dupe: gt already found', color_for(_ERROR_COLOUR[DUPE])),
    ('Bkg: IoU < 0.1 with every gt', color_for(_ERROR_COLOUR[BKG])),
    ('n/e: beyond the max detections', color_for(_ERROR_COLOUR[UNEVALUATED])),
    ('gt found', _GT_BGR),
    ('gt missed', _MISSED_BGR),
    ('gt unmatched (charged to a Cls/Loc)', _UNMATCHED_BGR),
    ('ignore region', _IGNORE_BGR),
)


def worst_images(result: TideResult, n: int) -> list[int]:
    """Indices of the ``n`` images with the largest ``ap_lost`` (largest first; equal values in image order)."""
    lost = np.array([im.ap_lost for im in result.images], dtype=np.float64)
    return [int(i) for i in np.argsort(-lost, kind='stable')[:max(n, 0)]]


def _caption(im: np.ndarray, text: str, x: int, y: int, colour) -> None:
    scale = max(0.35, min(im.shape[:2]) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = min(max(y, th + base), im.shape[0] - 1)
    cv2.rectangle(im, (x, y - th - base), (x + tw, y), colour, -1)
    cv2.putText(im, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_legend(width: int) -> np.ndarray:
    """A strip (rows x 22, ``width``, 3 uint8) explaining the colours: a filled swatch and its meaning for each
    entry of ``LEGEND``, as many to a row as fit."""
    font, scale, pad = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 8
    rows: list[list[tuple[int, str, tuple[int, int, int]]]] = [[]]
    x = pad
    for text, colour in LEGEND:
        (tw, _), _ = cv2.getTextSize(text, font, scale, 1)
        item = 14 + 4 + tw + 2 * pad
        if rows[-1] and x + item > width:
            rows.append([])
            x = pad
        rows[-1].append((x, text, colour))
        x += item
    strip = np.full((len(rows) * _LEGEND_ROW_H + 4, width, 3), 32, dtype=np.uint8)
    for r, row in enumerate(rows):
        y = r * _LEGEND_ROW_H + 4
        for x, text, colour in row:
            cv2.rectangle(strip, (x, y + 3), (x + 13, y + 16), colour, -1)
            cv2.putText(strip, text, (x + 18, y + 15), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def draw_errors(im_bgr: np.ndarray, gt: ImageGroundTruth, dets: ImageDetections, errors: ImageErrors,
                classes: Sequence[str], score_thresh: float, min_side: int = GALLERY_MIN_SIDE) -> np.ndarray:
    """``im_bgr`` (H, W, 3 uint8) enlarged by f = max(1, ``min_side`` / min(H, W)), with a header line (AP lost,
    error counts) above, ``draw_legend`` below, the gt boxes (green; TIDE's Miss yellow and captioned 'missed';
    found by no true positive but charged to a Cls / Loc detection white, 'unmatched'; ignore boxes grey) and
    the detections scoring ``>= score_thresh``, captioned '<error> <class> <score>' (one colour per error type;
    '(ign)': left out of the AP on an ignore box). Returns (26 + round(f H) + legend, round(f W), 3) uint8."""
    factor = max(1.0, min_side / max(min(im_bgr.shape[:2]), 1))
    out = np.ascontiguousarray(im_bgr.copy())
    if factor > 1.0:
        size = (int(round(out.shape[1] * factor)), int(round(out.shape[0] * factor)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_LINEAR)
    thickness = max(1, round(min(out.shape[:2]) / 300))
    g_boxes = np.asarray(gt.boxes, dtype=np.float64).reshape(-1, 4) * factor
    g_labels = np.asarray(gt.labels, dtype=np.int64).reshape(-1)
    g_ignore = np.asarray(gt.ignore, dtype=bool).reshape(-1)
    # A gt no true positive found is TIDE's Miss, or else the target of a Cls / Loc error (TIDE charges it to
    # that detection, which may be below the drawing threshold): both are marked, differently.
    found = set(errors.det_gt[(errors.det_error == TRUE_POSITIVE) & (errors.det_gt >= 0)].tolist())
    for j, box in enumerate(g_boxes):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        if g_ignore[j]:
            colour, what = _IGNORE_BGR, 'ignore'
        elif errors.gt_missed[j]:
            colour, what = _MISSED_BGR, 'missed'
        elif j not in found:
            colour, what = _UNMATCHED_BGR, 'unmatched'
        else:
            colour, what = _GT_BGR, ''
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness + (1 if what in ('missed', 'unmatched') else 0))
        if what:
            _caption(out, f'{what} {classes[g_labels[j]]}', x1, y2 + 14, colour)
    scores = np.asarray(dets.scores, dtype=np.float64).reshape(-1)
    shown = np.flatnonzero(scores >= score_thresh)
    shown = shown[np.argsort(scores[shown], kind='stable')]  # highest score drawn last, on top
    labels = np.asarray(dets.labels, dtype=np.int64).reshape(-1)
    captions = [f'{ERROR_LABELS[int(errors.det_error[d])]}{" (ign)" if errors.det_ignored[d] else ""} '
                f'{classes[labels[d]]}' for d in shown]
    out = draw_boxes(out, np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)[shown] * factor, captions,
                     [_ERROR_COLOUR[int(errors.det_error[d])] for d in shown],
                     cast('Sequence[float]', scores[shown]))  # an array is read as the sequence the stubs ask for
    counts: dict[str, int] = {}
    for d in shown:
        name = ERROR_LABELS[int(errors.det_error[d])]
        counts[name] = counts.get(name, 0) + 1
    header = f'AP lost {errors.ap_lost:.3f}  ' + '  '.join(f'{k} {v}' for k, v in counts.items()) + \
             f'  missed {int(errors.gt_missed.sum())}'
    strip = np.zeros((_HEADER_H, out.shape[1], 3), dtype=np.uint8)
    (tw, _), _ = cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    scale = 0.55 * min(1.0, (out.shape[1] - 8) / max(tw, 1))  # the whole line fits a narrow image
    cv2.putText(strip, header, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, out, draw_legend(out.shape[1])], axis=0)


def write_gallery(folder: str, result: TideResult, gt: Sequence[ImageGroundTruth], dets: Sequence[ImageDetections],
                  classes: Sequence[str], image_path: Callable[[int], str], n: int, score_thresh: float) -> list[str]:
    """Draw the ``n`` images of most AP lost (:func:`worst_images`) into ``folder`` as
    ``<rank>_<image file stem>.jpg`` (rank 001 = most lost), replacing the pictures an earlier run left there;
    returns the paths written.

    image_path: image index -> its file. An image that cannot be read is a MissingFileError naming it.
    """
    os.makedirs(folder, exist_ok=True)
    # The pictures of an earlier run (another N, other results) would read as part of this one.
    for old in glob.glob(osp.join(glob.escape(folder), '[0-9][0-9][0-9]_*.jpg')):
        os.unlink(old)
    written = []
    for rank, i in enumerate(worst_images(result, n), 1):
        path = image_path(i)
        im = cv2.imread(path, cv2.IMREAD_COLOR)
        if im is None:
            raise MissingFileError(f'{path}: cannot read the image for the gallery; check that the dataset\'s '
                                   'images are there, or run without --gallery')
        stem = osp.splitext(osp.basename(path))[0]
        out = osp.join(folder, f'{rank:03d}_{stem}.jpg')
        picture = draw_errors(im, gt[i], dets[i], result.images[i], classes, score_thresh)
        if not cv2.imwrite(out, picture):
            raise DiskError(f'{out}: the picture cannot be written; check that {folder} is writable and has space')
        written.append(out)
    return written
