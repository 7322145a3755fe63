"""Anchor coverage: how well the anchors the RPN trains with can match each gt box.

For a gt box in a scaled training image of H x W pixels, the anchors are those of the image's feature map
(``feature_map_size``: ceil(H/16) x ceil(W/16) for every backbone's head, floor for VGG16 with
VGG16.CEIL_MODE False), laid as ``layers.anchors.shift_anchors`` lays them (ANCHOR_SCALES x ANCHOR_RATIOS
shapes, stride 16, float64 sums rounded once to float32). The anchor-target layer (allowed_border 0)
only assigns anchors fully inside the image: ``x1 >= 0, y1 >= 0, x2 < W, y2 < H`` on the float32 anchors;
every other anchor is ignored, so it cannot match. In a padded batch the map is the blob's, but with the
ceil map every anchor past the image's own map has ``x2 >= 16 ceil(W/16) + 7.5 > W`` (or likewise in y), so
the image's own map is the whole story. (With the floor map a padded batch can add one column or row of
small anchors to a smaller image; the analysis uses the image's own map, as TRAIN.IMS_PER_BATCH 1.) A box's
*best anchor IoU* is the largest IoU (+1 convention, float64 from the float32 anchors and boxes, the
arithmetic of ``boxes.iou_of_signed`` that the layer and ``bbox_overlaps`` use) over those anchors, 0 when
no anchor is inside.

Why it is fast and still exact: for one anchor shape, the x-extent of the intersection depends on the
column shift only and the y-extent on the row shift only, the valid shifts are a product of two ranges,
and the computed IoU is non-decreasing in each extent. So the best anchor of a shape is the column with the
largest x-extent times the row with the largest y-extent. When a shape's shifted coordinates are exact in
float32 (every power-of-two scale), the computed extent is a non-decreasing function of the real overlap
length, which is concave in the shift and largest where the centres align: only the clamped shifts next to
the aligned one can be best (``_CANDIDATES``). For other shapes every shift of the axis is tried. Either way
the result equals the brute force over every anchor bit for bit (tests/test_anchor_coverage.py).

The suggestion (``suggest_anchors``) uses that a box's best IoU over a set of anchors is the maximum over
the set's shapes, each shape independent of the others (``generate_anchors`` rounds each ratio alone): the
best IoU per shape is computed once for a table of shapes, and every candidate set is a maximum over
columns of that table.
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor

from ..boxes import iou_of_signed, signed_corners
from ..layers.anchors import generate_anchors
from ..nets.network import FEAT_STRIDE
from .dataset_stats import SIZE_GROUPS, TrainingBoxes

# The shifts tried per axis around the one whose anchor centre is nearest the box centre: the real
# maximiser lies in [floor(c), ceil(c)]; one more on each side absorbs rounding in c itself.
_CANDIDATES = (-1, 0, 1, 2)
# Boxes per chunk: bounds the (chunk, shapes, shifts) temporaries.
_CHUNK = 4096
# Thresholds of the report besides TRAIN.RPN_POSITIVE_OVERLAP.
MATCH_IOU = 0.5
WEAK_IOU = 0.3


def feature_map_size(height: int, width: int, stride: int = FEAT_STRIDE, ceil: bool = True) -> tuple[int, int]:
    """The head's (H_f, W_f) for an input of height x width: ceil(H/16) x ceil(W/16), or floor (VGG16 with
    VGG16.CEIL_MODE False)."""
    if ceil:
        return -(-int(height) // stride), -(-int(width) // stride)
    return int(height) // stride, int(width) // stride


def anchor_shapes(scales: Sequence[float], ratios: Sequence[float], stride: int = FEAT_STRIDE) -> np.ndarray:
    """(A, 4) float64 anchors at shift (0, 0) in the reference order (ratio-major, scale-minor)."""
    return generate_anchors(stride, ratios, scales)


@dataclass(frozen=True)
class BestAnchors:
    """Per box and anchor shape: the best IoU (B, A) float64 (0 where no anchor of the shape is inside the
    image) and the column / row shift of one anchor reaching it (B, A) int64, -1 where none is inside."""

    iou: Tensor
    x: Tensor
    y: Tensor


def _f32(values: Tensor) -> Tensor:
    """float64 values rounded to float32 and back: what ``shift_anchors`` stores."""
    return values.to(torch.float32).to(torch.float64)


def _exact_shapes(shapes: Tensor, stride: int, cells: int) -> Tensor:
    """(A,) bool: shapes whose coordinates plus any shift up to ``cells`` strides are exact in float32."""
    shifts = torch.arange(max(cells, 1), dtype=torch.float64) * stride
    coords = shapes[:, :, None] + shifts  # (A, 4, K)
    return (_f32(coords) == coords).flatten(1).all(1)


def _shift_range(lo_a: Tensor, hi_a: Tensor, extent: Tensor, cells: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """The shifts k (B, A) int64 with the anchor inside on one axis: ``f32(lo_a + s k) >= 0``,
    ``f32(hi_a + s k) < extent`` and ``0 <= k < cells``, as [first, last] (first > last: none).

    ``lo_a``, ``hi_a`` (A,) float64 anchor edges at shift 0; ``extent`` (B,) the image side; ``cells`` (B,)
    the map side. The closed forms are checked on the float32 coordinates one step either way: both tests
    are monotone in k, so the first passing / last passing shift is exact.
    """
    lo_a, hi_a = lo_a[None, :], hi_a[None, :]
    # The first shift depends on the shape alone (1, A); the last also on the image.
    first = torch.ceil(-lo_a / stride)
    first = torch.where(_f32(lo_a + stride * (first - 1)) >= 0, first - 1, first)
    first = torch.where(_f32(lo_a + stride * first) >= 0, first, first + 1).expand(extent.shape[0], -1)
    last = torch.ceil((extent[:, None] - hi_a) / stride) - 1
    last = torch.where(_f32(hi_a + stride * (last + 1)) < extent[:, None], last + 1, last)
    last = torch.where(_f32(hi_a + stride * last) < extent[:, None], last, last - 1)
    first = first.clamp(min=0)
    last = torch.minimum(last, (cells[:, None] - 1).to(last.dtype))
    return first.to(torch.int64), last.to(torch.int64)


def _best_extent(g_lo: Tensor, g_hi: Tensor, lo_a: Tensor, hi_a: Tensor, first: Tensor, last: Tensor,
                 shifts: Tensor, stride: int) -> Tensor:
    """The shift (B, A) int64 among ``shifts`` (B, A, K), clamped into [first, last], whose anchor has the
    largest intersection extent with the box on this axis, computed as ``iou_of_signed`` does:
    ``min(a_hi, g_hi) + min(-a_lo, -g_lo) + 1``, clamped at 0. Ties go to the first of ``shifts``."""
    k = torch.maximum(torch.minimum(shifts, last[..., None]), first[..., None])
    offset = stride * k.to(torch.float64)
    a_lo = _f32(lo_a[None, :, None] + offset)
    a_hi = _f32(hi_a[None, :, None] + offset)
    extent = (torch.minimum(a_hi, g_hi[:, None, None]) + torch.minimum(-a_lo, -g_lo[:, None, None])).add_(1)
    extent.clamp_(min=0)
    return k.gather(2, extent.argmax(2, keepdim=True)).squeeze(2)


def _axis_shifts(g_lo: Tensor, g_hi: Tensor, lo_a: Tensor, hi_a: Tensor, exact: Tensor, cells: int,
                 stride: int) -> Tensor:
    """Shifts to try (B, A, K): the few around the centre-aligned one for exact shapes; every shift of the
    axis (``cells`` of them) for the others (``exact`` is all True or all False)."""
    if bool(exact.all()):
        centre = ((g_lo + g_hi)[:, None] * 0.5 - (lo_a + hi_a)[None, :] * 0.5) / stride
        return torch.floor(centre).to(torch.int64)[..., None] + torch.tensor(_CANDIDATES, dtype=torch.int64)
    return torch.arange(max(cells, 1), dtype=torch.int64).expand(g_lo.shape[0], lo_a.shape[0], -1)


def _map_sides(size: Tensor, stride: int, ceil: bool) -> tuple[Tensor, Tensor]:
    """(H_f, W_f) (B,) int64 of images (B, 2) (H, W): ``feature_map_size`` for many images."""
    if ceil:
        size = size + (stride - 1)
    sides = torch.div(size, stride, rounding_mode='floor')
    return sides[:, 0], sides[:, 1]


def _best_per_shape_chunk(g: Tensor, size: Tensor, shapes: Tensor, exact: Tensor, stride: int,
                          ceil: bool) -> BestAnchors:
    """``best_iou_per_shape`` of a chunk: g (B, 4) float64, size (B, 2) int64, shapes (A, 4) float64 whose
    ``exact`` flags (A,) are all True or all False."""
    h, w = size[:, 0].to(torch.float64), size[:, 1].to(torch.float64)
    fh, fw = _map_sides(size, stride, ceil)
    max_cells = max(int(fh.max()), int(fw.max()), 1)
    x_first, x_last = _shift_range(shapes[:, 0], shapes[:, 2], w, fw, stride)
    y_first, y_last = _shift_range(shapes[:, 1], shapes[:, 3], h, fh, stride)
    kx = _best_extent(g[:, 0], g[:, 2], shapes[:, 0], shapes[:, 2], x_first, x_last,
                      _axis_shifts(g[:, 0], g[:, 2], shapes[:, 0], shapes[:, 2], exact, max_cells, stride),
                      stride)
    ky = _best_extent(g[:, 1], g[:, 3], shapes[:, 1], shapes[:, 3], y_first, y_last,
                      _axis_shifts(g[:, 1], g[:, 3], shapes[:, 1], shapes[:, 3], exact, max_cells, stride),
                      stride)
    # The chosen anchor of every shape (B, A, 4), then its IoU by the layer's own function.
    ox, oy = stride * kx.to(torch.float64), stride * ky.to(torch.float64)
    anchors = _f32(torch.stack((shapes[None, :, 0] + ox, shapes[None, :, 1] + oy,
                                shapes[None, :, 2] + ox, shapes[None, :, 3] + oy), dim=2))
    rows, areas = signed_corners(anchors)  # (B, A, 4), (B, A)
    query, query_areas = signed_corners(g)  # (B, 4), (B,)
    # As iou_of_signed's per-image rows (B, 1, 4, A) against one query per image (B, 1, 4).
    iou = iou_of_signed(rows.transpose(1, 2)[:, None], areas[:, None], query[:, None, :],
                        query_areas[:, None]).squeeze(1)
    valid = (x_first <= x_last) & (y_first <= y_last)
    return BestAnchors(iou.masked_fill(~valid, 0.0), kx.masked_fill(~valid, -1), ky.masked_fill(~valid, -1))


def best_iou_per_shape(boxes: Tensor | np.ndarray, image_size: Tensor | np.ndarray, shapes: np.ndarray,
                       stride: int = FEAT_STRIDE, ceil: bool = True) -> BestAnchors:
    """Each box's best IoU with the inside anchors of each shape.

    Args:
        boxes: (B, 4) float32 gt boxes in scaled-image pixels (the loader's 'gt_boxes' columns 0-3).
        image_size: (B, 2) int (H, W) of each box's scaled image.
        shapes: (A, 4) anchors at shift 0 (``anchor_shapes``).
        ceil: the feature map is ceil(H/16) x ceil(W/16) (False: floor).
    """
    g_all = torch.as_tensor(np.asarray(boxes, np.float32) if not isinstance(boxes, Tensor) else boxes)
    g_all = g_all.to(torch.float32).to(torch.float64).reshape(-1, 4)
    size_all = torch.as_tensor(np.asarray(image_size) if not isinstance(image_size, Tensor) else image_size)
    size_all = size_all.to(torch.int64).reshape(-1, 2)
    base = torch.as_tensor(np.asarray(shapes, np.float64)).reshape(-1, 4)
    b, a = g_all.shape[0], base.shape[0]
    if b == 0 or a == 0:
        empty = torch.zeros((b, a), dtype=torch.float64)
        return BestAnchors(empty, empty.to(torch.int64) - 1, empty.to(torch.int64) - 1)
    cells = int((size_all.max() + stride - 1) // stride) + 1
    exact = _exact_shapes(base, stride, cells)
    parts = []
    for start in range(0, b, _CHUNK):
        sl = slice(start, start + _CHUNK)
        # Exact shapes and the others go separately: only the others need every shift of the axis.
        out_iou = torch.zeros((min(_CHUNK, b - start), a), dtype=torch.float64)
        out_x = torch.full(out_iou.shape, -1, dtype=torch.int64)
        out_y = torch.full(out_iou.shape, -1, dtype=torch.int64)
        for group in (exact, ~exact):
            if not bool(group.any()):
                continue
            idx = group.nonzero().squeeze(1)
            part = _best_per_shape_chunk(g_all[sl], size_all[sl], base[idx], exact[idx], stride, ceil)
            out_iou[:, idx], out_x[:, idx], out_y[:, idx] = part.iou, part.x, part.y
        parts.append(BestAnchors(out_iou, out_x, out_y))
    return BestAnchors(torch.cat([p.iou for p in parts]), torch.cat([p.x for p in parts]),
                       torch.cat([p.y for p in parts]))


@dataclass(frozen=True)
class Coverage:
    """Per box: best IoU (B,) float64 over every inside anchor; ``anchor`` (B,) int64 the row of one anchor
    reaching it in the order of ``shift_anchors`` ((y * W_f + x) * A + a), -1 when no anchor is inside;
    ``shape`` (B,) int64 its shape index a (ratio-major), -1 likewise."""

    best_iou: np.ndarray
    anchor: np.ndarray
    shape: np.ndarray


def best_anchor_iou(boxes: Tensor | np.ndarray, image_size: Tensor | np.ndarray, scales: Sequence[float],
                    ratios: Sequence[float], stride: int = FEAT_STRIDE, ceil: bool = True) -> Coverage:
    """Each box's best IoU over the anchors of ANCHOR_SCALES x ANCHOR_RATIOS that the anchor-target layer
    would consider (see the module docstring); ``boxes`` (B, 4), ``image_size`` (B, 2) (H, W)."""
    shapes = anchor_shapes(scales, ratios, stride)
    per = best_iou_per_shape(boxes, image_size, shapes, stride, ceil)
    b, a = per.iou.shape
    if b == 0:
        return Coverage(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    best, shape = per.iou.max(dim=1)
    inside = (per.x >= 0).any(1)
    shape = torch.where(inside, shape, torch.full_like(shape, -1))
    # A shape without an inside anchor has IoU 0; where another shape has one, prefer it (same IoU 0).
    zero_inside = inside & (best == 0)
    if bool(zero_inside.any()):
        shape[zero_inside] = (per.x[zero_inside] >= 0).to(torch.int64).argmax(1)
    size = torch.as_tensor(np.asarray(image_size)).to(torch.int64).reshape(-1, 2)
    _, fw = _map_sides(size, stride, ceil)
    s = shape.clamp(min=0)
    x, y = per.x.gather(1, s[:, None]).squeeze(1), per.y.gather(1, s[:, None]).squeeze(1)
    anchor = torch.where(inside, (y * fw + x) * a + s, torch.full_like(s, -1))
    return Coverage(best.numpy(), anchor.numpy(), shape.numpy())


# -- the report --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageRow:
    name: str
    boxes: int
    positive: float  # share with best IoU >= TRAIN.RPN_POSITIVE_OVERLAP
    matched: float  # share >= 0.5
    weak: float  # share < 0.3
    median: float


def coverage_row(name: str, best: np.ndarray, positive: float) -> CoverageRow:
    n = int(best.shape[0])
    if n == 0:
        return CoverageRow(name, 0, float('nan'), float('nan'), float('nan'), float('nan'))
    return CoverageRow(name, n, float((best >= positive).mean()), float((best >= MATCH_IOU).mean()),
                       float((best < WEAK_IOU).mean()), float(np.median(best)))


def coverage_rows(tb: TrainingBoxes, coverage: Coverage, positive: float) -> list[CoverageRow]:
    """Overall, per training scale, per class and per COCO size group of the scaled box."""
    best = coverage.best_iou
    rows = [coverage_row('all boxes', best, positive)]
    if len(tb.targets) > 1:
        rows += [coverage_row(f'scale {t}', best[tb.target == t], positive) for t in tb.targets]
    classes = sorted(set(int(c) for c in tb.classes))
    rows += [coverage_row(tb.class_names[c] if c < len(tb.class_names) else f'class {c}', best[tb.classes == c],
                          positive) for c in classes]
    groups = tb.size_groups()
    rows += [coverage_row(f'{g} (COCO)', best[groups == i], positive) for i, g in enumerate(SIZE_GROUPS)]
    return rows


def format_coverage(rows: Sequence[CoverageRow], positive: float, scales: Sequence[float],
                    ratios: Sequence[float]) -> str:
    width = max([len(r.name) for r in rows] + [10])
    lines = [f'anchor coverage: ANCHOR_SCALES {_list(scales)} ANCHOR_RATIOS {_list(ratios)} '
             f'({len(scales) * len(ratios)} anchors per cell), only anchors fully inside the scaled image',
             f'  {"":<{width}} {"boxes":>8} {">=" + format(positive, "g"):>7} {">=0.5":>7} {"<0.3":>7} '
             f'{"median":>7}']
    for r in rows:
        if r.boxes == 0:
            continue
        lines.append(f'  {r.name:<{width}} {r.boxes:>8d} {100 * r.positive:6.1f}% {100 * r.matched:6.1f}% '
                     f'{100 * r.weak:6.1f}% {r.median:7.3f}')
    lines.append(f'  (a box below {format(positive, "g")} still gets its best anchors as positives, unless its best '
                 'IoU is 0; below 0.3 that is at an IoU the layer would otherwise call background)')
    return '\n'.join(lines)


def plot_best_iou(coverage: Coverage, tb: TrainingBoxes, out_path: str, positive: float) -> str:
    """Histogram of the best anchor IoUs (one curve per COCO size group) written to ``out_path``."""
    import matplotlib
    matplotlib.use('Agg')  # headless
    import matplotlib.pyplot as plt
    os.makedirs(osp.dirname(out_path) or '.', exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    bins = cast('Sequence[float]', np.linspace(0, 1, 41))  # matplotlib takes an array; its stubs ask a sequence
    ax.hist(coverage.best_iou, bins=bins, histtype='stepfilled', alpha=0.3, label='all', color='grey')
    groups = tb.size_groups()
    for i, g in enumerate(SIZE_GROUPS):
        m = groups == i
        if m.any():
            ax.hist(coverage.best_iou[m], bins=bins, histtype='step', linewidth=1.4, label=g)
    for t in (WEAK_IOU, MATCH_IOU, positive):
        ax.axvline(t, color='k', linestyle=':', linewidth=1)
    ax.set_xlabel('best anchor IoU of a gt box')
    ax.set_ylabel('boxes')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


# -- suggesting anchors -------------------------------------------------------------------------------------
# Sets of ratios (h / w) to try, as a user would write them in ANCHOR_RATIOS.
RATIO_SETS: tuple[tuple[float, ...], ...] = (
    (1.0,), (0.5, 1.0), (1.0, 2.0), (0.5, 1.0, 2.0), (0.33, 1.0, 3.0), (0.33, 0.5, 1.0, 2.0, 3.0),
    (0.25, 0.5, 1.0, 2.0, 4.0), (0.25, 0.33, 0.5, 1.0, 2.0, 3.0, 4.0))
# Scale sets: 3 to 5 consecutive powers of two, the smallest from 2^-2 (4 px anchors) up, the largest at
# most 2^6 (1024 px).
SCALE_EXPONENTS = (-2, 6)
SCALE_COUNTS = (3, 4, 5)
COVERAGE_GAP = 0.05  # suggest when more than this share of the boxes has no anchor at >= 0.5
NEAR_BEST = 0.01  # the recommended set is the smallest within this share of the best


def scale_sets(exponents: tuple[int, int] = SCALE_EXPONENTS, counts: Sequence[int] = SCALE_COUNTS
               ) -> list[tuple[float, ...]]:
    lo, hi = exponents
    return [tuple(float(2.0 ** e) for e in range(start, start + n)) for n in counts
            for start in range(lo, hi - n + 2)]


@dataclass(frozen=True)
class AnchorCandidate:
    scales: tuple[float, ...]
    ratios: tuple[float, ...]
    matched: float  # share of boxes with best IoU >= 0.5
    positive: float  # share >= TRAIN.RPN_POSITIVE_OVERLAP

    @property
    def num_anchors(self) -> int:
        return len(self.scales) * len(self.ratios)

    def set_args(self) -> str:
        """The ``--set`` pairs that select these anchors."""
        return f'--set ANCHOR_SCALES "{_list(self.scales)}" ANCHOR_RATIOS "{_list(self.ratios)}"'


def _list(values: Sequence[float]) -> str:
    return '[' + ', '.join(format(float(v), 'g') for v in values) + ']'


def suggest_anchors(boxes: np.ndarray, image_size: np.ndarray, positive: float,
                    current: tuple[Sequence[float], Sequence[float]] | None = None, stride: int = FEAT_STRIDE,
                    ceil: bool = True, scale_candidates: Sequence[Sequence[float]] | None = None,
                    ratio_candidates: Sequence[Sequence[float]] | None = None) -> list[AnchorCandidate]:
    """Every candidate (scale set x ratio set, plus ``current``) with its coverage, best first (share >= 0.5,
    then share >= ``positive``, then fewer anchors). ``boxes`` (B, 4), ``image_size`` (B, 2) as for
    ``best_anchor_iou``."""
    scale_list = [tuple(float(s) for s in c) for c in (scale_candidates or scale_sets())]
    ratio_list = [tuple(float(r) for r in c) for c in (ratio_candidates or RATIO_SETS)]
    pairs = [(s, r) for s in scale_list for r in ratio_list]
    if current is not None:
        cur = (tuple(float(s) for s in current[0]), tuple(float(r) for r in current[1]))
        if cur not in pairs:
            pairs.append(cur)
    all_scales = sorted({s for p in pairs for s in p[0]})
    all_ratios = sorted({r for p in pairs for r in p[1]})
    # One column per (ratio, scale) shape; generate_anchors treats each pair on its own.
    columns = {(r, s): i for i, (r, s) in enumerate((r, s) for r in all_ratios for s in all_scales)}
    table = np.concatenate([anchor_shapes([s], [r], stride) for r in all_ratios for s in all_scales])
    per_shape = best_iou_per_shape(boxes, image_size, table, stride, ceil).iou.numpy()
    out = []
    for scales, ratios in pairs:
        cols = [columns[(r, s)] for r in ratios for s in scales]
        best = per_shape[:, cols].max(1) if per_shape.shape[0] else np.zeros(0)
        n = max(best.shape[0], 1)
        out.append(AnchorCandidate(scales, ratios, float((best >= MATCH_IOU).sum() / n),
                                   float((best >= positive).sum() / n)))
    out.sort(key=lambda c: (-c.matched, -c.positive, c.num_anchors))
    return out


def recommend(candidates: Sequence[AnchorCandidate], near: float = NEAR_BEST) -> AnchorCandidate:
    """The candidate with the fewest anchors whose share >= 0.5 is within ``near`` of the best (more anchors
    cost RPN time: the RPN's 1x1 convolutions and the proposal layer grow with them); ties by coverage."""
    best = max(c.matched for c in candidates)
    close = [c for c in candidates if c.matched >= best - near - 1e-12]
    return min(close, key=lambda c: (c.num_anchors, -c.matched, -c.positive))


def format_suggestions(candidates: Sequence[AnchorCandidate], chosen: AnchorCandidate, uncovered: float,
                       positive: float, current: AnchorCandidate | None = None, top: int = 10) -> str:
    """The search's table (best first), the recommended set and its ``--set`` line."""
    best = candidates[0]
    lines = [f'{100 * uncovered:.1f}% of the boxes have no anchor at IoU >= 0.5 (more than '
             f'{100 * COVERAGE_GAP:g}%): anchors that would cover them, best first',
             f'  {"ANCHOR_SCALES":<32} {"ANCHOR_RATIOS":<34} {"anchors":>7} {">=0.5":>7} '
             f'{">=" + format(positive, "g"):>7}']
    for c in candidates[:top]:
        lines.append(f'  {_list(c.scales):<32} {_list(c.ratios):<34} {c.num_anchors:>7d} {100 * c.matched:6.1f}% '
                     f'{100 * c.positive:6.1f}%')
    if current is not None:
        lines.append(f'current: {_list(current.scales)} x {_list(current.ratios)}, {current.num_anchors} anchors: '
                     f'{100 * current.matched:.1f}% at >= 0.5, {100 * current.positive:.1f}% at >= '
                     f'{format(positive, "g")}')
    lines.append(f'suggested: {chosen.num_anchors} anchors per cell, {100 * chosen.matched:.1f}% of the boxes at '
                 f'>= 0.5 and {100 * chosen.positive:.1f}% at >= {format(positive, "g")}: the smallest set within '
                 f'{100 * NEAR_BEST:g}% of the best coverage ({100 * best.matched:.1f}%), since every '
                 'anchor costs RPN time')
    lines.append(f'  {chosen.set_args()}')
    if 1.0 - best.matched > COVERAGE_GAP:
        lines.append(f'  {100 * (1 - best.matched):.1f}% of the boxes stay below 0.5 with every set tried: anchors '
                     f'sit on a {FEAT_STRIDE}-pixel grid, and a box not much larger than that cannot be matched well '
                     'wherever it lies; a larger TRAIN.SCALES (a larger image) is what helps them')
    lines.append('  (new anchors change the RPN layers: train a new model with them; a detector file records '
                 'its anchors)')
    return '\n'.join(lines)


def current_candidate(candidates: Sequence[AnchorCandidate], scales: Sequence[float], ratios: Sequence[float]
                      ) -> AnchorCandidate | None:
    """The entry of ``candidates`` for the anchors in use."""
    key = (tuple(float(s) for s in scales), tuple(float(r) for r in ratios))
    return next((c for c in candidates if (c.scales, c.ratios) == key), None)


def needs_suggestion(coverage: Coverage) -> tuple[bool, float]:
    """(whether more than COVERAGE_GAP of the boxes have no anchor at >= 0.5, that share)."""
    if coverage.best_iou.shape[0] == 0:
        return False, 0.0
    uncovered = float((coverage.best_iou < MATCH_IOU).mean())
    return uncovered > COVERAGE_GAP, uncovered

