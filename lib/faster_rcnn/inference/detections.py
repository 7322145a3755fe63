"""``Detections``: one image's detections as ``faster_rcnn.Detector`` returns them (numpy, on the host)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..utils.visualization import draw_boxes


@dataclass(frozen=True)
class Detections:
    """One image's detections, by class then by decreasing score.

    boxes: (D, 4) float32 x1, y1, x2, y2 in the input image's pixels (0-based, inclusive: width x2 - x1 + 1).
    scores: (D,) float32. labels: (D,) int64 class indices, 1..K-1 (0, the background, is never returned).
    classes: the detector's class names, background first (``classes[labels[i]]`` names detection i).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def class_names(self) -> list[str]:
        """The class name of each detection."""
        return [self.classes[int(j)] for j in self.labels]

    def above(self, score: float) -> Detections:
        """The detections scoring at least ``score``."""
        keep = self.scores >= score
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.classes)

    def per_class(self) -> list[np.ndarray]:
        """tf-faster-rcnn's layout: K float32 arrays (n_k, 5) ``[x1, y1, x2, y2, score]``, entry 0 empty."""
        stacked = np.concatenate([self.boxes, self.scores[:, None]], axis=1).astype(np.float32)
        out = [np.zeros((0, 5), dtype=np.float32)]
        for j in range(1, len(self.classes)):
            out.append(stacked[self.labels == j])
        return out

    def to_coco(self, image_id: int | str, category_ids: Sequence[int] | None = None, **extra) -> list[dict]:
        """COCO results ``{image_id, category_id, bbox [x, y, w, h], score}`` (w = x2 - x1 + 1) plus
        ``category_name``; ``category_ids[j]`` maps label j to a dataset's category id (default: j itself);
        ``extra`` fields (e.g. ``file_name``) are added to every entry."""
        out = []
        for (x1, y1, x2, y2), s, j in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()):
            cat = int(category_ids[j]) if category_ids is not None else int(j)
            out.append({'image_id': image_id, **extra, 'category_id': cat, 'category_name': self.classes[j],
                        'bbox': [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)], 'score': float(s)})
        return out

    def draw(self, image: np.ndarray, score: float = 0.0) -> np.ndarray:
        """A copy of the BGR uint8 ``image`` with the detections scoring at least ``score`` drawn and labelled."""
        shown = self.above(score)
        return draw_boxes(image, shown.boxes, shown.class_names, shown.labels.tolist(), shown.scores.tolist())

    @classmethod
    def empty(cls, classes: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(classes))
