"""Box encoding, decoding, clipping and IoU with tf-faster-rcnn's inclusive-pixel convention.

Boxes are ``(x1, y1, x2, y2)`` inclusive pixel indices, so a box's width is ``x2 - x1 + 1``.
Every function works on any device and keeps the input dtype (float32 in, float32 out).
"""
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ["bbox_transform", "bbox_transform_inv", "clip_boxes", "bbox_overlaps"]


def _centres_and_sizes(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    return ctr_x, ctr_y, widths, heights


def bbox_transform(ex_rois: Tensor, gt_rois: Tensor) -> Tensor:
    """Regression targets that move ``ex_rois`` onto ``gt_rois``.

    Args:
        ex_rois: (N, 4) source boxes (anchors or rois).
        gt_rois: (N, 4) target boxes, row-aligned with ``ex_rois``.

    Returns:
        (N, 4) deltas ``(dx, dy, dw, dh)``: ``dx = (gx - ex) / ew``, ``dw = log(gw / ew)``.

    Example: ``bbox_transform([[0, 0, 9, 9]], [[5, 0, 14, 9]])`` gives ``[[0.5, 0, 0, 0]]``.
    """
    ex_x, ex_y, ex_w, ex_h = _centres_and_sizes(ex_rois)
    gt_x, gt_y, gt_w, gt_h = _centres_and_sizes(gt_rois)
    return torch.stack(
        (
            (gt_x - ex_x) / ex_w,
            (gt_y - ex_y) / ex_h,
            torch.log(gt_w / ex_w),
            torch.log(gt_h / ex_h),
        ),
        dim=1,
    )


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
    ctr_x, ctr_y, widths, heights = (t[:, None] for t in _centres_and_sizes(boxes))
    dx, dy, dw, dh = deltas[:, 0::4], deltas[:, 1::4], deltas[:, 2::4], deltas[:, 3::4]
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    pred_w = torch.exp(dw) * widths
    pred_h = torch.exp(dh) * heights
    pred = torch.stack(
        (
            pred_ctr_x - 0.5 * pred_w,
            pred_ctr_y - 0.5 * pred_h,
            pred_ctr_x + 0.5 * pred_w,
            pred_ctr_y + 0.5 * pred_h,
        ),
        dim=2,
    )
    return pred.reshape(deltas.shape)


def clip_boxes(boxes: Tensor, im_shape: Union[Sequence[float], Tensor]) -> Tensor:
    """Clip every 4-column group of ``boxes`` (N, 4k) to ``[0, W-1] x [0, H-1]``.

    ``im_shape`` is ``(H, W, ...)``: a tuple or a tensor (a tensor stays on the device, so
    clipping to an ``im_info`` tensor costs no host round trip).
    """
    if isinstance(im_shape, Tensor):
        im_shape = im_shape.to(device=boxes.device, dtype=boxes.dtype)
        max_x = (im_shape[1] - 1).clamp(min=0)
        max_y = (im_shape[0] - 1).clamp(min=0)
        upper = torch.stack((max_x, max_y, max_x, max_y)).repeat(boxes.shape[1] // 4)
        return torch.minimum(boxes, upper).clamp(min=0)
    max_x = max(float(im_shape[1]) - 1.0, 0.0)
    max_y = max(float(im_shape[0]) - 1.0, 0.0)
    grouped = boxes.reshape(boxes.shape[0], boxes.shape[1] // 4, 4)
    out = torch.empty_like(grouped)
    out[..., 0::2] = grouped[..., 0::2].clamp(0.0, max_x)
    out[..., 1::2] = grouped[..., 1::2].clamp(0.0, max_y)
    return out.reshape(boxes.shape)


def bbox_overlaps(boxes: Tensor, query_boxes: Tensor) -> Tensor:
    """IoU of every box with every query box, with ``+1`` in widths, heights and areas.

    Args:
        boxes: (N, 4)
        query_boxes: (K, 4)

    Returns:
        (N, K) IoU. Pairs that do not intersect (including degenerate or inverted boxes,
        whose +1 width is <= 0) have IoU 0, as in the reference Cython kernel.
    """
    if not query_boxes.is_floating_point():
        query_boxes = query_boxes.to(torch.float32)
    boxes = boxes.to(query_boxes.dtype)
    area_q = (query_boxes[:, 2] - query_boxes[:, 0] + 1) * (query_boxes[:, 3] - query_boxes[:, 1] + 1)
    area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    iw = torch.minimum(boxes[:, None, 2], query_boxes[None, :, 2]) - torch.maximum(boxes[:, None, 0], query_boxes[None, :, 0])
    ih = torch.minimum(boxes[:, None, 3], query_boxes[None, :, 3]) - torch.maximum(boxes[:, None, 1], query_boxes[None, :, 1])
    inter = (iw + 1).clamp_(min=0) * (ih + 1).clamp_(min=0)
    # A positive intersection implies both boxes have positive +1 areas, so the union is >= either
    # area > 0; where the intersection is 0 the clamp only avoids 0/0 (degenerate or inverted boxes).
    union = (area_b[:, None] + area_q[None, :] - inter).clamp_(min=1e-12)
    return inter / union
