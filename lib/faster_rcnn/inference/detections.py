"""``Detections``: one image's detections as ``faster_rcnn.Detector`` returns them (numpy, on the host)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from ..model_file import full_category_ids
from ..utils.visualization import draw_boxes
from .images import to_bgr

logger = logging.getLogger(__name__)
_warned_unknown_ids = False


def _warn_unknown_ids_once() -> None:
    global _warned_unknown_ids
    if not _warned_unknown_ids:
        _warned_unknown_ids = True
        logger.warning('these detections do not know their dataset category ids: to_coco writes the class indices '
                       '1..K-1 as category_id, which only a dataset numbered 1..K-1 (VOC, the shapes sets) shares; '
                       'pass category_ids=[one id per class]')


@dataclass(frozen=True)
class Detections:
    """One image's detections, by class then by decreasing score.

    boxes: (D, 4) float32 x1, y1, x2, y2 in the input image's pixels (0-based, inclusive: width x2 - x1 + 1).
    scores: (D,) float32. labels: (D,) int64 class indices, 1..K-1 (0, the background, is never returned).
    classes: the detector's class names, background first (``classes[labels[i]]`` names detection i).
    attributes: (D, k) int64 a detector with an attribute head: the k most probable attributes of each box
        (indices into ``attribute_names``, 1..A: "no attribute" is never listed), by decreasing probability; the
        probabilities are those of the roi the box was regressed from. attribute_scores: (D, k) float32 theirs.
        attribute_names: the attribute names, '__no_attribute__' first. All three None without the head.
    category_ids: the dataset's category id of each class, background slot 0 first (K values; from the detector
    file), or None when unknown (``to_coco`` then writes the class indices, with a warning).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    attributes: np.ndarray | None = None
    attribute_scores: np.ndarray | None = None
    attribute_names: tuple[str, ...] | None = None
    category_ids: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def class_names(self) -> list[str]:
        """The class name of each detection."""
        return [self.classes[int(j)] for j in self.labels]

    def above(self, score: float) -> Detections:
        """The detections scoring at least ``score``."""
        keep = self.scores >= score
        return replace(self, boxes=self.boxes[keep], scores=self.scores[keep], labels=self.labels[keep],
                       attributes=None if self.attributes is None else self.attributes[keep],
                       attribute_scores=None if self.attribute_scores is None else self.attribute_scores[keep])

    def attribute_names_of(self, i: int, min_score: float = 0.0) -> list[str]:
        """The names of detection ``i``'s listed attributes scoring above ``min_score`` ([] without the head)."""
        if self.attributes is None or self.attribute_scores is None or self.attribute_names is None:
            return []
        return [self.attribute_names[int(a)] for a, s in zip(self.attributes[i], self.attribute_scores[i])
                if s > min_score]

    def display_names(self, min_attribute_score: float = 0.1) -> list[str]:
        """Each detection's class name with its attributes above ``min_attribute_score`` before it, as BUTD's
        demo shows them (e.g. 'red circle')."""
        return [' '.join(self.attribute_names_of(i, min_attribute_score) + [name])
                for i, name in enumerate(self.class_names)]

    def per_class(self) -> list[np.ndarray]:
        """tf-faster-rcnn's layout: K float32 arrays (n_k, 5) ``[x1, y1, x2, y2, score]``, entry 0 empty."""
        stacked = np.concatenate([self.boxes, self.scores[:, None]], axis=1).astype(np.float32)
        out = [np.zeros((0, 5), dtype=np.float32)]
        for j in range(1, len(self.classes)):
            out.append(stacked[self.labels == j])
        return out

    def to_coco(self, image_id: int | str, category_ids: Sequence[int] | None = None, **extra) -> list[dict]:
        """COCO results ``{image_id, category_id, bbox [x, y, w, h], score}`` (w = x2 - x1 + 1) plus
        ``category_name``; ``extra`` fields (e.g. ``file_name``) are added to every entry.

        ``category_ids``: one dataset category id per class, in the order of ``classes``, without (K - 1 values)
        or with (K, slot 0 first) the background; default: the detector file's (``self.category_ids``).
        """
        if category_ids is not None:
            ids = full_category_ids(category_ids, len(self.classes), 'category_ids', UsageError)
        elif self.category_ids is not None:
            ids = self.category_ids
        else:
            _warn_unknown_ids_once()
            ids = tuple(range(len(self.classes)))
        out = []
        for (x1, y1, x2, y2), s, j in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()):
            out.append({'image_id': image_id, **extra, 'category_id': ids[j], 'category_name': self.classes[j],
                        'bbox': [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)], 'score': float(s)})
        return out

    def draw(self, image: Any, score: float = 0.0, channel_order: str | None = None) -> np.ndarray:
        """A new BGR uint8 array (H, W, 3) (for ``cv2.imwrite``): ``image`` with the detections scoring at least
        ``score`` drawn and labelled (with a detector's attributes above 0.1 before the class name: 'red circle
        0.93'). ``image``: anything ``Detector`` takes (a path, a numpy array (BGR unless ``channel_order='RGB'``),
        a PIL image, a uint8 tensor (RGB unless ``channel_order='BGR'``)), usually the one these detections came
        from."""
        bgr = to_bgr(image, channel_order, 'image')
        shown = self.above(score)
        return draw_boxes(bgr, shown.boxes, shown.display_names(), shown.labels.tolist(), shown.scores.tolist())

    @classmethod
    def empty(cls, classes: Sequence[str], category_ids: Sequence[int] | None = None) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(classes),
                   category_ids=None if category_ids is None else tuple(category_ids))
