"""Box encoding, decoding, clipping and IoU with tf-faster-rcnn's inclusive-pixel convention.

Boxes are ``(x1, y1, x2, y2)`` inclusive pixel indices, so a box's width is ``x2 - x1 + 1``.
Every function works on any device and keeps the input dtype (float32 in, float32 out).
"""
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["bbox_transform", "bbox_transform_inv", "clip_boxes", "bbox_overlaps", "bbox_overlaps_by_query",
           "signed_corners", "iou_of_signed", "best_query"]


def _centres_and_sizes(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 4) boxes -> centres (N, 2) ``(cx, cy)`` and sizes (N, 2) ``(w, h)``, +1 convention.

    x and y are handled together as column pairs: half the kernel launches of per-coordinate code.
    """
    sizes = boxes[:, 2:4] - boxes[:, 0:2] + 1.0
    return boxes[:, 0:2] + 0.5 * sizes, sizes


def bbox_transform(ex_rois: Tensor, gt_rois: Tensor) -> Tensor:
    """Regression targets that move ``ex_rois`` onto ``gt_rois``.

    Args:
        ex_rois: (N, 4) source boxes (anchors or rois).
        gt_rois: (N, 4) target boxes, row-aligned with ``ex_rois``.

    Returns:
        (N, 4) deltas ``(dx, dy, dw, dh)``: ``dx = (gx - ex) / ew``, ``dw = log(gw / ew)``.

    Example: ``bbox_transform([[0, 0, 9, 9]], [[5, 0, 14, 9]])`` gives ``[[0.5, 0, 0, 0]]``.
    """
    ex_ctr, ex_size = _centres_and_sizes(ex_rois)
    gt_ctr, gt_size = _centres_and_sizes(gt_rois)
    return torch.cat(((gt_ctr - ex_ctr) / ex_size, torch.log(gt_size / ex_size)), dim=1)


def bbox_transform_inv(boxes: Tensor, deltas: Tensor) -> Tensor:
    """Apply deltas to boxes (the inverse of :func:`bbox_transform`).

    Args:
        boxes: (N, 4) reference boxes.
        deltas: (N, 4k) deltas, one ``(dx, dy, dw, dh)`` group per class.

    Returns:
        (N, 4k) decoded boxes in the dtype of ``deltas``. As in the reference,
        ``x2 = ctr + 0.5 * w`` without the ``- 1``, so decode(encode(b)) is one pixel wider,
        and ``dw`` / ``dh`` are not clamped before ``exp``.
    """
    if deltas.shape[0] == 0:
        return deltas.new_zeros((0, deltas.shape[1]))
    boxes = boxes.to(deltas.dtype)
    ctrs, sizes = _centres_and_sizes(boxes)
    ctr_x, ctr_y, widths, heights = ctrs[:, 0:1], ctrs[:, 1:2], sizes[:, 0:1], sizes[:, 1:2]
    # Column slices (stride 4) rather than (x, y) pairs: on CPU, ops over pairs (an inner dimension
    # of 2) take about twice as long.
    dx, dy, dw, dh = deltas[:, 0::4], deltas[:, 1::4], deltas[:, 2::4], deltas[:, 3::4]
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    pred = torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)
    return pred.reshape(deltas.shape)


def clip_boxes(boxes: Tensor, im_shape: Sequence[float] | Tensor) -> Tensor:
    """Clip every 4-column group of ``boxes`` (N, 4k) to ``[0, W-1] x [0, H-1]``.

    ``im_shape`` is ``(H, W, ...)``: a tuple or a tensor (a tensor stays on the device, so
    clipping to an ``im_info`` tensor costs no host round trip).
    """
    if isinstance(im_shape, Tensor):
        # (W - 1, H - 1) against the boxes viewed as (x, y) pairs: no index list, no host copy.
        upper = (im_shape.reshape(-1)[:2].to(device=boxes.device, dtype=boxes.dtype).flip(0) - 1).clamp_(min=0)
        pairs = boxes.reshape(boxes.shape[0], -1, 2)
        return torch.minimum(pairs, upper).clamp_(min=0).reshape(boxes.shape)
    max_x = max(float(im_shape[1]) - 1.0, 0.0)
    max_y = max(float(im_shape[0]) - 1.0, 0.0)
    grouped = boxes.reshape(boxes.shape[0], boxes.shape[1] // 4, 4)
    out = torch.empty_like(grouped)
    out[..., 0::2] = grouped[..., 0::2].clamp(0.0, max_x)
    out[..., 1::2] = grouped[..., 1::2].clamp(0.0, max_y)
    return out.reshape(boxes.shape)


@lru_cache(maxsize=8)
def _signs(dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=dtype, device=device)


def signed_corners(boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes (..., 4) as ``(-x1, -y1, x2, y2)`` (..., 4) and their +1 areas (...), in the boxes' dtype.

    With the lower corners negated, the intersection's corners of two boxes are one elementwise minimum,
    and ``x2 + (-x1)`` is exactly ``x2 - x1``: the operands of :func:`iou_of_signed`.
    """
    signed = boxes * _signs(boxes.dtype, boxes.device)
    sizes = signed[..., 2:4] + signed[..., 0:2] + 1
    return signed, sizes[..., 0] * sizes[..., 1]


def iou_of_signed(rows: Tensor, areas: Tensor, query: Tensor, query_areas: Tensor) -> Tensor:
    """IoU (..., K, N) of boxes given as signed rows (..., 4, N) with areas (..., N) and query boxes given
    signed (..., K, 4) with areas (..., K) (:func:`signed_corners`; transpose the boxes' result for rows).
    Leading dimensions broadcast: anchors (4, N) shared by the images of gt (B, K, 4), or the rois of each
    image (B, 1, 4, N). The reference kernel's arithmetic in its order (+1 widths, negative -> 0)."""
    corners = torch.minimum(rows, query.unsqueeze(-1))  # (..., K, 4, N)
    extent = (corners[..., 2:4, :] + corners[..., 0:2, :]).add_(1).clamp_(min=0)
    inter = extent.prod(-2)
    # A positive intersection implies both boxes have positive +1 areas, so the union is >= either
    # area > 0; where the intersection is 0 the clamp only avoids 0/0 (degenerate or inverted boxes).
    union = (areas + query_areas.unsqueeze(-1)).sub_(inter).clamp_(min=1e-12)
    return inter.div_(union)


def bbox_overlaps_by_query(boxes: Tensor, query_boxes: Tensor) -> Tensor:
    """IoU laid out query-major: (K, N), the transpose of :func:`bbox_overlaps`, same values bit for bit.

    Args:
        boxes: (N, 4), typically many (anchors, rois).
        query_boxes: (K, 4), typically few (gt boxes).

    With N contiguous in the last dimension every elementwise op and every reduction over K or N runs
    on long contiguous rows; the (N, K) layout with a small K is several times slower on CPU.
    The arithmetic is the reference kernel's, in the same order, so ties and thresholds agree.
    """
    if not query_boxes.is_floating_point():
        query_boxes = query_boxes.to(torch.float32)
    signed, areas = signed_corners(boxes.to(query_boxes.dtype))
    query, query_areas = signed_corners(query_boxes)
    return iou_of_signed(signed.t().contiguous(), areas, query, query_areas)


def best_query(overlaps: Tensor) -> tuple[Tensor, Tensor]:
    """Per box, the largest IoU (..., N) and the first query reaching it (..., N) int64, from query-major
    ``overlaps`` (..., K, N), K > 0: ``overlaps.max(dim=-2)`` with argmax's first-index rule.

    Built from ``amax`` reductions only: ``max`` / ``argmax`` over a dimension take several times
    longer on CPU. The first query reaching the maximum has the largest weight K - k.
    """
    num_query = overlaps.shape[-2]
    best = overlaps.amax(dim=-2)
    weight_dtype = torch.int16 if num_query < 2**15 else torch.int64
    first_weight = torch.arange(num_query, 0, -1, dtype=weight_dtype, device=overlaps.device)
    first = num_query - ((overlaps == best.unsqueeze(-2)) * first_weight[:, None]).amax(dim=-2).to(torch.int64)
    # A NaN column (boxes from a diverged network) equals nothing and would give index K: keep it in range
    # so that training goes on to its NaN guard instead of failing on an index.
    return best, first.clamp_(max=num_query - 1)


def bbox_overlaps(boxes: Tensor, query_boxes: Tensor) -> Tensor:
    """IoU of every box with every query box, with ``+1`` in widths, heights and areas.

    Args:
        boxes: (N, 4)
        query_boxes: (K, 4)

    Returns:
        (N, K) IoU. Pairs that do not intersect (including degenerate or inverted boxes,
        whose +1 width is <= 0) have IoU 0, as in the reference Cython kernel.
    """
    return bbox_overlaps_by_query(boxes, query_boxes).t().contiguous()
