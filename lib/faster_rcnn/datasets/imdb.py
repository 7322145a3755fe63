"""The image database base class, with tf-faster-rcnn's names (``imdb``, ``roidb``, ``image_index``...).

A roidb entry is a dict (docs/design.md §10; ``make_roidb_entry`` builds one, ``check_roidb_entry`` checks one):
    'image': path, 'width', 'height': ints,
    'boxes': float32 (G, 4) 0-based inclusive [x1, y1, x2, y2],
    'gt_classes': int32 (G,) in 1..num_classes-1, 'gt_ishard': bool (G,) (VOC 'difficult'),
    'gt_overlaps': float32 (G, num_classes) one-hot, 'max_classes', 'max_overlaps': (G,),
    'seg_areas': float32 (G,) box areas, 'flipped': bool, 'image_id': the dataset's own id.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
from collections.abc import Callable, Sequence

import numpy as np

from ..paths import default_data_dir


def make_roidb_entry(image: str, width: int, height: int, boxes: np.ndarray, gt_classes: np.ndarray,
                     num_classes: int, gt_ishard: np.ndarray | None = None, **extra) -> dict:
    """Build one roidb entry from gt boxes (G, 4) 0-based and classes (G,)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    gt_classes = np.asarray(gt_classes, dtype=np.int32).reshape(-1)
    g = boxes.shape[0]
    ishard = np.zeros(g, dtype=bool) if gt_ishard is None else np.asarray(gt_ishard, dtype=bool).reshape(-1)
    overlaps = np.zeros((g, num_classes), dtype=np.float32)
    overlaps[np.arange(g), gt_classes] = 1.0
    entry = dict(image=image, width=int(width), height=int(height), boxes=boxes, gt_classes=gt_classes,
                 gt_ishard=ishard, gt_overlaps=overlaps, flipped=False,
                 seg_areas=((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).astype(np.float32))
    entry.update(extra)
    add_max_fields(entry)
    return entry


def check_roidb_entry(entry: dict, num_classes: int) -> None:
    """Raise ValueError saying what is wrong when ``entry`` does not have the roidb entry format (module docstring):
    what a new reader's test calls on its entries."""
    where = f'roidb entry of {entry.get("image")!r}'
    for key in ('image', 'width', 'height', 'boxes', 'gt_classes', 'gt_ishard', 'gt_overlaps', 'max_classes',
                'max_overlaps', 'seg_areas', 'flipped'):
        if key not in entry:
            raise ValueError(f'{where}: no {key!r}')
    boxes, classes = entry['boxes'], entry['gt_classes']
    g = boxes.shape[0] if isinstance(boxes, np.ndarray) and boxes.ndim == 2 else -1
    if g < 0 or boxes.shape[1] != 4 or boxes.dtype != np.float32:
        raise ValueError(f'{where}: boxes must be float32 (G, 4)')
    w, h = int(entry['width']), int(entry['height'])
    if g and ((boxes[:, 0] < 0).any() or (boxes[:, 1] < 0).any() or (boxes[:, 2] > w - 1).any()
              or (boxes[:, 3] > h - 1).any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
        raise ValueError(f'{where}: boxes must be 0-based inclusive [x1, y1, x2, y2] inside {w} x {h}')
    bad_range = g > 0 and (classes.min() < 1 or classes.max() >= num_classes)
    if classes.dtype != np.int32 or classes.shape != (g,) or bad_range:
        raise ValueError(f'{where}: gt_classes must be int32 (G,) in 1..{num_classes - 1}')
    if entry['gt_ishard'].dtype != np.bool_ or entry['gt_ishard'].shape != (g,):
        raise ValueError(f'{where}: gt_ishard must be bool (G,)')
    if entry['gt_overlaps'].shape != (g, num_classes) or entry['seg_areas'].shape != (g,):
        raise ValueError(f'{where}: gt_overlaps must be (G, {num_classes}) and seg_areas (G,)')


def add_max_fields(entry: dict) -> None:
    """'max_classes' / 'max_overlaps' from 'gt_overlaps', as the reference's prepare_roidb."""
    ov = entry['gt_overlaps']
    entry['max_overlaps'] = ov.max(axis=1) if ov.shape[0] else np.zeros(0, dtype=np.float32)
    entry['max_classes'] = ov.argmax(axis=1).astype(np.int32) if ov.shape[0] else np.zeros(0, dtype=np.int32)


class imdb:  # noqa: N801 (tf-faster-rcnn's name)
    """Base class: a named list of images with their gt boxes and an evaluation."""

    def __init__(self, name: str, classes: Sequence[str] = (), data_dir: str | None = None):
        self._name = name
        # Where the roidb caches go (<data_dir>/cache).
        self.data_dir = osp.abspath(data_dir or default_data_dir())
        self._classes = tuple(classes)
        self._image_index: list = []
        self._roidb: list[dict] | None = None
        self._roidb_handler: Callable[[], list[dict]] = self.gt_roidb
        self.competition = False
        self.config: dict = {}
        # Attribute names, '__no_attribute__' first, of a dataset whose roidb has 'gt_attributes' (G, 16)
        # int32 (values 1..A, 0-padded); None for a dataset without attributes.
        self.attributes: Sequence[str] | None = None
        self._limited = 0  # limit(): the first N images only (0: all)

    # -- names ------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def category_ids(self) -> list[int]:
        """The dataset's own id of classes 1..K-1 (what its results files call them): 1..K-1 here; a COCO json
        has its own."""
        return list(range(1, self.num_classes))

    @property
    def image_index(self) -> list:
        return self._image_index

    @property
    def num_images(self) -> int:
        return len(self._image_index)

    @property
    def cache_path(self) -> str:
        path = osp.join(self.data_dir, 'cache')
        os.makedirs(path, exist_ok=True)
        return path

    def cache_file(self, source: str, kind: str = 'gt_roidb') -> str:
        """``<DATA_DIR>/cache/<name>_<hash of source>_<kind>.json``: the hash keeps apart datasets of one
        name read from different folders (e.g. a test's generated set); a limited set (``limit``) has its own
        file (``..._first<N>_<kind>.json``), so it and the full set never overwrite each other's cache."""
        safe = ''.join(ch if ch.isalnum() or ch in '_-.' else '_' for ch in self.name)[-100:]
        digest = hashlib.sha1(osp.abspath(source).encode()).hexdigest()[:10]
        part = f'_first{self._limited}' if self._limited else ''
        return osp.join(self.cache_path, f'{safe}_{digest}{part}_{kind}.json')

    def image_path_at(self, i: int) -> str:
        raise NotImplementedError

    # -- roidb ------------------------------------------------------------------------------------------
    def gt_roidb(self) -> list[dict]:
        raise NotImplementedError

    def set_proposal_method(self, method: str) -> None:
        if method != 'gt':
            raise ValueError(f'proposal method {method!r}: only "gt" exists (proposals come from the RPN)')
        self._roidb_handler = self.gt_roidb

    @property
    def roidb(self) -> list[dict]:
        if self._roidb is None:
            self._roidb = self._roidb_handler()
        return self._roidb

    @roidb.setter
    def roidb(self, value: list[dict]) -> None:
        self._roidb = value

    def append_flipped_images(self) -> None:
        """Append a horizontally flipped copy of every entry: x1' = W - x2 - 1, x2' = W - x1 - 1."""
        num = self.num_images
        roidb = self.roidb
        for i in range(num):
            src = roidb[i]
            boxes = src['boxes'].copy()
            w = src['width']
            old_x1 = boxes[:, 0].copy()
            boxes[:, 0] = w - boxes[:, 2] - 1
            boxes[:, 2] = w - old_x1 - 1
            assert (boxes[:, 2] >= boxes[:, 0]).all(), f'{src["image"]}: flipped box inverted'
            entry = dict(src)
            entry['boxes'] = boxes
            entry['flipped'] = True
            roidb.append(entry)
        self._image_index = self._image_index * 2

    # -- evaluation -------------------------------------------------------------------------------------
    def evaluate_detections(self, all_boxes: list[list[np.ndarray]], output_dir: str):
        """Score ``all_boxes[cls][img]`` ((n, 5) [x1, y1, x2, y2, score], 0-based); an ``EvalResult``."""
        raise NotImplementedError

    def limit(self, count: int) -> None:
        """Keep the first ``count`` images only (an evaluation on part of the set); 0 keeps all."""
        if count > 0:
            self._image_index = self._image_index[:count]
            self._limited = len(self._image_index)
            self._roidb = None

    def competition_mode(self, on: bool) -> None:
        """Keep the result files (and use no salt in their names) for a submission."""
        self.competition = bool(on)
