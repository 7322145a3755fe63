"""RPN proposals (tf-faster-rcnn's proposal_layer) for a whole batch: decode, clip, pre-NMS top-N, NMS,
post-NMS top-N.

Sorting, decoding and clipping run on (N, M) tensors in one pass; only NMS runs image by image (its
output size is data-dependent), on boxes prepared for it once for the batch. The kept proposals come back
padded to the longest image's count with a validity mask, the form the proposal-target layer takes.
``proposal_layer`` is the one-image form (the reference's signature and output).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..ops.nms import nms_sorted_batch

__all__ = ["proposal_layer", "proposals", "Proposals", "im_shape_of", "clip_to_images", "top_scoring", "large_enough"]


class Proposals(NamedTuple):
    boxes: Tensor  # (N, P, 4) float32 x1, y1, x2, y2 by decreasing score; zeros past each image's count
    scores: Tensor  # (N, P) float32; 0 past each image's count
    valid: Tensor  # (N, P) bool: the first counts[i] entries of row i
    counts: list  # (N,) host ints: proposals kept per image
    anchors: Tensor  # (N, P) int64: the anchor each proposal comes from (0 past the count)


def im_shape_of(im_info: Union[Tensor, Sequence[float]], device: torch.device) -> Union[Tensor, Tuple[float, float]]:
    """``(H, W)`` of ``im_info``: a tensor stays on the device (no host round trip)."""
    if isinstance(im_info, Tensor):
        return im_info.reshape(-1)[:2].to(device)
    return (float(im_info[0]), float(im_info[1]))


def clip_to_images(boxes: Tensor, im_info: Tensor) -> Tensor:
    """Clip boxes (N, K, 4) to ``[0, W_i - 1] x [0, H_i - 1]`` of each image of ``im_info`` (N, 3)."""
    upper = (im_info[:, :2].flip(1).to(boxes.dtype) - 1).clamp_(min=0)  # (N, 2): W - 1, H - 1
    pairs = boxes.reshape(boxes.shape[0], boxes.shape[1], 2, 2)
    return torch.minimum(pairs, upper[:, None, None, :]).clamp_(min=0).reshape(boxes.shape)


def top_scoring(scores: Tensor, deltas: Tensor, anchors: Tensor, im_info: Tensor, top_n: int,
                anchor_valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``top_n`` best anchors of each image (equal scores: lower index first), decoded and clipped.

    Args:
        scores: (N, M) foreground probabilities; deltas: (N, M, 4); anchors: (M, 4); im_info: (N, 3).
        top_n: boxes kept per image (<= 0: all).
        anchor_valid: (N, M) bool, False for anchors an image does not have (a padded test batch): those
            sort last.

    Returns:
        boxes (N, K, 4), scores (N, K) and anchor indices (N, K), K = min(top_n, M), by decreasing score.
    """
    n, m = scores.shape
    if scores.dtype != torch.float32:
        scores = scores.float()
    if anchor_valid is not None:
        scores = scores.masked_fill(~anchor_valid, float('-inf'))
    k = m if top_n <= 0 else min(int(top_n), m)
    # Stable sort: equal scores keep the lower anchor index first, as the NMS rule wants.
    top, order = torch.sort(scores, dim=1, descending=True, stable=True)
    top, order = top[:, :k], order[:, :k]
    # Only the kept rows are decoded: bbox_transform_inv's float32 arithmetic on (x, y) pairs,
    # ctr' = d_xy * size + ctr, half = 0.5 * (exp(d_wh) * size), box = (ctr' - half, ctr' + half).
    # Coordinates are rows (N, 4, K) while decoding: every elementwise step then runs along K (with (x, y)
    # as an inner dimension of 2, CPU kernels are up to 100 times slower, exp above all).
    centres, sizes = _anchor_centres_and_sizes(anchors)  # (2, M) rows each
    picked = deltas.transpose(1, 2).gather(2, order.unsqueeze(1).expand(n, 4, k))  # (N, 4, K)
    if picked.dtype != torch.float32:
        picked = picked.float()
    flat = order.reshape(-1)
    size = sizes[:, flat].view(2, n, k).transpose(0, 1)  # (N, 2, K)
    ctr = picked[:, 0:2] * size + centres[:, flat].view(2, n, k).transpose(0, 1)
    half = 0.5 * (picked[:, 2:4].exp() * size)
    rows = _clip_rows(torch.cat((ctr - half, ctr + half), 1), im_info)
    return rows.transpose(1, 2).contiguous(), top, order


def _clip_rows(rows: Tensor, im_info: Tensor) -> Tensor:
    """:func:`clip_to_images` for boxes as coordinate rows (N, 4, K)."""
    upper = (im_info[:, :2].flip(1).to(rows.dtype) - 1).clamp_(min=0)  # (N, 2): W - 1, H - 1
    pairs = rows.view(rows.shape[0], 2, 2, rows.shape[2])
    return torch.minimum(pairs, upper[:, None, :, None]).clamp_(min=0).view(rows.shape)


@lru_cache(maxsize=8)
def large_enough(deltas: Tensor, anchors: Tensor, im_info: Tensor, min_size: float) -> Tensor:
    """(N, M) bool: the decoded, clipped box of each anchor is at least ``min_size * scale`` wide and high.

    py-faster-rcnn's ``_filter_boxes`` (BUTD's proposal layer): widths with the +1 convention, the threshold
    ``RPN_MIN_SIZE * im_info[2]`` of each image. Every anchor is decoded (the filter comes before the top-N
    sort), with the same float32 operations as ``top_scoring``, so a kept box is the box it keeps.
    deltas: (N, M, 4); anchors: (M, 4); im_info: (N, 3).
    """
    n = deltas.shape[0]
    centres, sizes = _anchor_centres_and_sizes(anchors)  # (2, M) each
    d = deltas.transpose(1, 2)  # (N, 4, M)
    if d.dtype != torch.float32:
        d = d.float()
    ctr = d[:, 0:2] * sizes + centres
    half = 0.5 * (d[:, 2:4].exp() * sizes)
    rows = _clip_rows(torch.cat((ctr - half, ctr + half), 1), im_info)
    extent = rows[:, 2:4] - rows[:, 0:2] + 1.0  # (N, 2, M): widths, heights
    threshold = (float(min_size) * im_info[:, 2].to(torch.float32)).view(n, 1, 1)
    return (extent >= threshold).all(dim=1)


@lru_cache(maxsize=8)
def _cached_centres_and_sizes(anchors: Tensor, version: int) -> Tuple[Tensor, Tensor]:
    # Keyed by the tensor object and its version counter, so an in-place change is never served stale.
    a = anchors.detach().to(torch.float32)
    sizes = a[:, 2:4] - a[:, 0:2] + 1.0
    return (a[:, 0:2] + 0.5 * sizes).t().contiguous(), sizes.t().contiguous()


def _anchor_centres_and_sizes(anchors: Tensor) -> Tuple[Tensor, Tensor]:
    """Anchors (M, 4) -> centres (2, M) and sizes (2, M) as rows, +1 convention, made once per anchors tensor."""
    if anchors.is_inference() or anchors.requires_grad:
        return _cached_centres_and_sizes.__wrapped__(anchors, 0)
    return _cached_centres_and_sizes(anchors, anchors._version)


def proposals(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    im_info: Tensor,
    *,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float,
    anchor_valid: Optional[Tensor] = None,
    anchor_counts: Optional[Sequence[int]] = None,
    min_size: float = 0.0,
) -> Proposals:
    """Region proposals of N images.

    Args:
        scores: (N, M) foreground probabilities, rows in the anchors' order; deltas: (N, M, 4) RPN deltas;
        anchors: (M, 4); im_info: (N, 3) ``(H, W, scale)`` of each scaled image.
        pre_nms_top_n: boxes kept by score before NMS (<= 0: all).
        post_nms_top_n: boxes kept after NMS (<= 0: all).
        anchor_valid / anchor_counts: in a padded test batch, which anchors each image has and how many
            (host ints); the others take no part.
        min_size: RPN_MIN_SIZE. 0 (tf-faster-rcnn's networks): no filter. Above 0, a box narrower or lower
            than ``min_size * scale`` after clipping takes no part, dropped before the pre-NMS top-N as
            py-faster-rcnn does (``large_enough``); how many remain is read to the host once per batch.
    """
    n = scores.shape[0]
    if min_size > 0:
        big = large_enough(deltas, anchors, im_info, min_size)
        anchor_valid = big if anchor_valid is None else anchor_valid & big
        anchor_counts = anchor_valid.sum(dim=1).tolist()
    boxes, top, order = top_scoring(scores, deltas, anchors, im_info, pre_nms_top_n, anchor_valid)
    limits = None
    if anchor_counts is not None:
        limits = [min(boxes.shape[1], int(c)) for c in anchor_counts]
    keeps = nms_sorted_batch(boxes, nms_thresh, max_keep=post_nms_top_n if post_nms_top_n > 0 else None,
                             limits=limits)
    counts = [int(k.shape[0]) for k in keeps]
    index = torch.nn.utils.rnn.pad_sequence(keeps, batch_first=True, padding_value=-1)  # (N, P), P = max count
    valid = index >= 0
    index = index.clamp(min=0)
    kept_boxes = boxes.gather(1, index[..., None].expand(n, index.shape[1], 4)).mul_(valid[..., None])
    kept_scores = top.gather(1, index).mul_(valid)
    return Proposals(kept_boxes, kept_scores, valid, counts, order.gather(1, index).mul_(valid))


def proposal_layer(
    scores: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    im_info: Union[Tensor, Sequence[float]],
    *,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float,
    min_size: float = 0.0,
) -> Tuple[Tensor, Tensor]:
    """Region proposals of one image: :func:`proposals` with N = 1.

    Args:
        scores: (M,) foreground probabilities; deltas: (M, 4); anchors: (M, 4); im_info: ``(H, W, scale)``
        (tensor or sequence).

    Returns:
        rois (R, 5) float32 ``[0, x1, y1, x2, y2]`` by decreasing score and roi_scores (R,),
        R <= post_nms_top_n.
    """
    info = torch.as_tensor(im_info, dtype=torch.float32).reshape(1, -1).to(deltas.device)
    out = proposals(scores.reshape(1, -1), deltas.reshape(1, -1, 4), anchors, info, pre_nms_top_n=pre_nms_top_n,
                    post_nms_top_n=post_nms_top_n, nms_thresh=nms_thresh, min_size=min_size)
    r = out.counts[0]
    # [0, x1, y1, x2, y2]: a zero batch-index column in front.
    return torch.nn.functional.pad(out.boxes[0, :r], (1, 0)), out.scores[0, :r]
