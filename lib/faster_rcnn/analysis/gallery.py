"""Pictures of the images whose errors cost the most AP, each detection labelled with its TIDE error type."""
from __future__ import annotations

import glob
import os
import os.path as osp
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ..errors import DiskError, MissingFileError
from ..utils.visualization import draw_boxes
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

__all__ = ['ERROR_LABELS', 'worst_images', 'draw_errors', 'write_gallery']

ERROR_LABELS = {TRUE_POSITIVE: 'TP', CLS: 'Cls', LOC: 'Loc', BOTH: 'Both', DUPE: 'Dupe', BKG: 'Bkg',
                UNEVALUATED: 'n/e'}
# Palette index (utils.visualization) of each error type's box: one fixed colour per type, so that pictures
# can be compared at a glance.
_ERROR_COLOUR = {TRUE_POSITIVE: 11, CLS: 2, LOC: 4, BOTH: 17, DUPE: 13, BKG: 0, UNEVALUATED: 10}
_GT_BGR = (0, 200, 0)
_MISSED_BGR = (0, 255, 255)
_UNMATCHED_BGR = (255, 255, 255)
_IGNORE_BGR = (160, 160, 160)


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


def draw_errors(im_bgr: np.ndarray, gt: ImageGroundTruth, dets: ImageDetections, errors: ImageErrors,
                classes: Sequence[str], score_thresh: float) -> np.ndarray:
    """A copy of ``im_bgr`` (H, W, 3 uint8) with a header line (AP lost, error counts), the gt boxes (green; TIDE's
    Miss yellow and captioned 'missed'; found by no true positive but charged to a Cls / Loc detection white,
    'unmatched'; ignore boxes grey) and the detections scoring ``>= score_thresh``, captioned
    '<error> <class> <score>' (one colour per error type; '(ign)': left out of the AP on an ignore box)."""
    out = np.ascontiguousarray(im_bgr.copy())
    thickness = max(1, round(min(out.shape[:2]) / 300))
    g_boxes = np.asarray(gt.boxes, dtype=np.float64).reshape(-1, 4)
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
    out = draw_boxes(out, np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)[shown], captions,
                     [_ERROR_COLOUR[int(errors.det_error[d])] for d in shown], scores[shown])
    counts = {}
    for d in shown:
        name = ERROR_LABELS[int(errors.det_error[d])]
        counts[name] = counts.get(name, 0) + 1
    header = f'AP lost {errors.ap_lost:.3f}  ' + '  '.join(f'{k} {v}' for k, v in counts.items()) + \
             f'  missed {int(errors.gt_missed.sum())}'
    strip = np.zeros((22, out.shape[1], 3), dtype=np.uint8)
    (tw, _), _ = cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    scale = 0.45 * min(1.0, (out.shape[1] - 8) / max(tw, 1))  # the whole line fits a narrow image
    cv2.putText(strip, header, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, out], axis=0)


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
