"""The gt boxes of a training roidb as the training loader delivers them, and their statistics.

``training_boxes`` repeats what ``data.dataset.RoidbDataset`` does to an entry's boxes, without reading a
single image: the entry's ``width`` / ``height`` give the resize factor (``data.blob.image_scale``) at each
TRAIN.SCALES target, the boxes are ``float32(boxes) * scale`` by the very expression the loader evaluates,
difficult boxes are left out when TRAIN.USE_ALL_GT is False, and the scaled image's size is the one
``cv2.resize`` gives for that factor (``scaled_size``). Flipped copies of the roidb are kept: their boxes
mirror the originals, which matters for the anchors at the image border (``analysis.anchor_coverage``).

Statistics (``box_statistics``) count each annotated box once per training scale: flipped copies have the
same sizes and shapes, so they are left out of the counts. Sizes are ``sqrt(w * h)`` and aspect ratios
``h / w`` of the scaled box with the +1 convention of ``boxes.py`` (``w = x2 - x1 + 1``). Size groups are
COCO's on that area: small < 32^2, medium < 96^2, large otherwise.
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.blob import image_scale
from ..settings import InputSettings

# COCO's area limits (pixels^2) of the small / medium / large groups.
SMALL_AREA = 32 ** 2
MEDIUM_AREA = 96 ** 2
SIZE_GROUPS = ('small', 'medium', 'large')


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(H', W') of an image resized by ``scale`` with ``cv2.resize(im, None, fx=scale, fy=scale)``: OpenCV
    rounds ``side * scale`` to the nearest integer, ties to even (cvRound), which is ``np.rint``."""
    return int(np.rint(height * scale)), int(np.rint(width * scale))


@dataclass(frozen=True)
class TrainingBoxes:
    """Every gt box the training loader delivers, once per training scale; row i of each array is one box.

    boxes: (B, 4) float32 ``[x1, y1, x2, y2]`` in scaled-image pixels (what 'gt_boxes' holds).
    classes: (B,) int64 class index (1..K-1). entry: (B,) int64 roidb index. target: (B,) int64 the
    TRAIN.SCALES value. image_size: (B, 2) int64 ``(H', W')`` of the scaled image. flipped: (B,) bool.
    difficult: (B,) bool (always False when TRAIN.USE_ALL_GT is False: those boxes are not delivered).
    class_names: background first. num_entries / num_images: roidb entries (flipped copies included) and
    the entries that are not flipped copies. targets: TRAIN.SCALES in order; max_size: TRAIN.MAX_SIZE.
    """

    boxes: np.ndarray
    classes: np.ndarray
    entry: np.ndarray
    target: np.ndarray
    image_size: np.ndarray
    flipped: np.ndarray
    difficult: np.ndarray
    class_names: tuple[str, ...]
    num_entries: int
    num_images: int
    targets: tuple[int, ...]
    max_size: int

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def widths_heights(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) float64 widths and heights, +1 convention."""
        b = self.boxes.astype(np.float64)
        return b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0

    def sizes(self) -> np.ndarray:
        """(B,) sqrt(area) of each scaled box."""
        w, h = self.widths_heights()
        return np.sqrt(np.clip(w, 0, None) * np.clip(h, 0, None))

    def aspect_ratios(self) -> np.ndarray:
        """(B,) h / w of each scaled box."""
        w, h = self.widths_heights()
        return h / np.maximum(w, 1e-12)

    def size_groups(self) -> np.ndarray:
        """(B,) int 0 small, 1 medium, 2 large (COCO's limits on the scaled box's area)."""
        area = self.sizes() ** 2
        return np.where(area < SMALL_AREA, 0, np.where(area < MEDIUM_AREA, 1, 2))


def training_boxes(roidb: Sequence[dict], inputs: InputSettings, use_all_gt: bool = True,
                   class_names: Sequence[str] = ()) -> TrainingBoxes:
    """The boxes of ``roidb`` (a training roidb: ``data.roidb.combined_roidb`` with RoidbSettings) as the
    training loader delivers them at each of ``inputs.scales`` (the training InputSettings)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ('boxes', 'classes', 'entry', 'target', 'size',
                                                          'flipped', 'difficult')}
    for index, r in enumerate(roidb):
        boxes = np.asarray(r['boxes'], np.float32).reshape(-1, 4)
        classes = np.asarray(r['gt_classes'], np.int64).reshape(-1)
        hard = np.asarray(r.get('gt_ishard', np.zeros(len(classes), bool)), bool).reshape(-1)
        keep = np.ones(len(classes), bool) if use_all_gt else ~hard
        if not keep.any():
            continue
        kept = boxes[keep]
        g = int(keep.sum())
        for target in inputs.scales:
            scale = image_scale(int(r['height']), int(r['width']), int(target), int(inputs.max_size))
            # The loader's own expression (data.dataset): float32 boxes times a Python float.
            parts['boxes'].append(kept * scale)
            parts['classes'].append(classes[keep])
            parts['entry'].append(np.full(g, index, np.int64))
            parts['target'].append(np.full(g, int(target), np.int64))
            parts['size'].append(np.tile(np.array(scaled_size(int(r['height']), int(r['width']), scale),
                                                  np.int64), (g, 1)))
            parts['flipped'].append(np.full(g, bool(r.get('flipped', False))))
            parts['difficult'].append(hard[keep])

    def cat(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.concatenate(parts[name]) if parts[name] else np.zeros(shape, dtype)

    return TrainingBoxes(boxes=cat('boxes', (0, 4), np.float32).astype(np.float32, copy=False),
                         classes=cat('classes', (0,), np.int64), entry=cat('entry', (0,), np.int64),
                         target=cat('target', (0,), np.int64), image_size=cat('size', (0, 2), np.int64),
                         flipped=cat('flipped', (0,), bool), difficult=cat('difficult', (0,), bool),
                         class_names=tuple(class_names), num_entries=len(roidb),
                         num_images=sum(1 for r in roidb if not r.get('flipped', False)),
                         targets=tuple(int(s) for s in inputs.scales), max_size=int(inputs.max_size))


# -- statistics -------------------------------------------------------------------------------------------
_PERCENTILES = (0, 5, 25, 50, 75, 95, 100)


def _class_name(tb: TrainingBoxes, c: int) -> str:
    return tb.class_names[c] if 0 <= c < len(tb.class_names) else f'class {c}'


def box_statistics(tb: TrainingBoxes) -> dict:
    """Counts and distributions of the annotated boxes (flipped copies left out), per training scale.

    Returns {'images', 'entries', 'boxes', 'per_class': {name: count}, 'difficult',
    'per_scale': {target: {'size': percentiles (7,), 'aspect': percentiles (7,), 'groups': {group: count}}}}
    with the percentiles at ``_PERCENTILES``.
    """
    own = ~tb.flipped
    first = own & (tb.target == (tb.targets[0] if tb.targets else 0))
    per_class = {_class_name(tb, c): int((tb.classes[first] == c).sum())
                 for c in range(1, max(len(tb.class_names), int(tb.classes.max(initial=0)) + 1))}
    sizes, aspects, groups = tb.sizes(), tb.aspect_ratios(), tb.size_groups()
    per_scale = {}
    for target in tb.targets:
        m = own & (tb.target == target)
        if not m.any():
            continue
        per_scale[target] = {'size': np.percentile(sizes[m], _PERCENTILES),
                             'aspect': np.percentile(aspects[m], _PERCENTILES),
                             'groups': {name: int((groups[m] == i).sum()) for i, name in enumerate(SIZE_GROUPS)}}
    return {'images': tb.num_images, 'entries': tb.num_entries, 'boxes': int(first.sum()), 'per_class': per_class,
            'difficult': int(tb.difficult[first].sum()), 'per_scale': per_scale}


def format_statistics(stats: dict, name: str, targets: Sequence[int], max_size: int) -> str:
    """The text report of ``box_statistics``."""
    lines = [f'dataset {name}: {stats["images"]} images, {stats["entries"]} training roidb entries '
             f'(flipped copies included), {stats["boxes"]} gt boxes delivered per scale '
             f'({stats["difficult"]} of them difficult)']
    total = max(stats['boxes'], 1)
    lines.append('boxes per class:')
    width = max([len(c) for c in stats['per_class']] + [5])
    for c, n in stats['per_class'].items():
        lines.append(f'  {c:<{width}} {n:>8d}  {100.0 * n / total:5.1f}%')
    head = ' '.join(f'{"p" + str(p) if p not in (0, 100) else ("min" if p == 0 else "max"):>7}' for p in _PERCENTILES)
    for target in targets:
        s = stats['per_scale'].get(target)
        if s is None:
            continue
        lines.append(f'at TRAIN.SCALES {target} (MAX_SIZE {max_size}), scaled boxes:')
        lines.append(f'  {"":<22} {head}')
        lines.append(f'  {"size sqrt(w*h) px":<22} ' + ' '.join(f'{v:7.1f}' for v in s['size']))
        lines.append(f'  {"aspect h/w":<22} ' + ' '.join(f'{v:7.2f}' for v in s['aspect']))
        n = max(sum(s['groups'].values()), 1)
        lines.append('  COCO size groups: ' + ', '.join(f'{g} {k} ({100.0 * k / n:.1f}%)'
                                                        for g, k in s['groups'].items()))
    return '\n'.join(lines)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')  # headless: files only
    import matplotlib.pyplot as plt
    return plt


def plot_box_histograms(tb: TrainingBoxes, out_dir: str) -> list[str]:
    """Write ``box_sizes.png`` and ``aspect_ratios.png`` (one curve per training scale, log-spaced bins);
    returns their paths."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    own = ~tb.flipped
    paths = []
    for values, fname, label, lo_hi in ((tb.sizes(), 'box_sizes.png', 'box size sqrt(w*h), scaled px', (1, 2048)),
                                       (tb.aspect_ratios(), 'aspect_ratios.png', 'aspect ratio h/w', (1 / 16, 16))):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        pos = values[own & (values > 0)]
        lo = max(lo_hi[0], float(pos.min()) * 0.9) if pos.size else lo_hi[0]
        hi = min(lo_hi[1], float(pos.max()) * 1.1) if pos.size else lo_hi[1]
        bins = np.geomspace(lo, max(hi, lo * 1.01), 40)
        for target in tb.targets:
            m = own & (tb.target == target) & (values > 0)
            if m.any():
                ax.hist(values[m], bins=bins, histtype='step', linewidth=1.4, label=f'scale {target}')
        ax.set_xscale('log')
        ax.set_xlabel(label)
        ax.set_ylabel('boxes')
        if fname == 'box_sizes.png':
            for limit in (32, 96):
                ax.axvline(limit, color='grey', linestyle=':', linewidth=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = osp.join(out_dir, fname)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
