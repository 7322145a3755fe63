"""Checks of gt boxes before they enter the roidb.

The reference stored boxes as uint16, so a VOC ``xmin`` of 0 became 65535 after the 1-based -> 0-based
shift and training later failed far from the cause. Here every box is checked in float32 and a bad one is
reported with its file and object.
"""
from __future__ import annotations

import numpy as np

from ..errors import AnnotationError


def check_box(box: tuple[float, float, float, float], width: int, height: int, where: str,
              one_based_source: bool) -> None:
    """Raise AnnotationError unless ``box`` (0-based inclusive [x1, y1, x2, y2]) lies in a W x H image.

    Args:
        where: "<file>: object <i> (<name>)", put at the head of the message.
        one_based_source: the file stores 1-based coordinates (VOC), so a 0 there hints at a 0-based file.
    """
    x1, y1, x2, y2 = box
    if not all(np.isfinite(v) for v in box):
        raise AnnotationError(f'{where}: box {list(box)} has a non-finite coordinate')
    if x2 < x1 or y2 < y1:
        raise AnnotationError(f'{where}: inverted box (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}); '
                              'the corners must be (xmin, ymin, xmax, ymax)')
    if one_based_source and (x1 == x2 or y1 == y2):
        shown = [v + 1 for v in box]
        raise AnnotationError(f'{where}: zero-size box {shown} (xmin == xmax or ymin == ymax in the file)')
    if one_based_source and (x1 < 0 or y1 < 0) and min(x1, y1) >= -1:
        raise AnnotationError(
            f'{where}: xmin or ymin is 0, but VOC files are 1-based (the first pixel is 1): the file looks '
            '0-based; add 1 to every coordinate of the dataset or use a 0-based (COCO-format) annotation')
    if x1 < 0 or y1 < 0 or x2 > width - 1 or y2 > height - 1:
        off = 1 if one_based_source else 0
        raise AnnotationError(
            f'{where}: box {[x1 + off, y1 + off, x2 + off, y2 + off]} lies outside the {width}x{height} image'
            + (' (valid VOC coordinates are 1..width and 1..height)' if one_based_source else ''))
