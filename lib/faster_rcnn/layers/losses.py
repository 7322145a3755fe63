"""The losses of Faster R-CNN: tf-faster-rcnn's smooth L1 (``_smooth_l1_loss``), and the RPN and R-CNN losses built
on it (cross entropy over the sampled anchors and rois, box regression); BUTD's multi-label attribute loss.
"""
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["smooth_l1_loss", "rpn_losses", "rcnn_losses", "attribute_loss"]


def smooth_l1_loss(
    pred: Tensor,
    targets: Tensor,
    inside_w: Tensor,
    outside_w: Tensor,
    sigma: float = 1.0,
    dim: Sequence[int] = (1,),
) -> Tensor:
    """Weighted smooth L1, summed over ``dim`` and averaged over the remaining (first) axis.

    With ``d = inside_w * pred - inside_w * targets``: ``0.5 * sigma^2 * d^2`` where ``|d| < 1 / sigma^2``
    (strictly), else ``|d| - 0.5 / sigma^2``; times ``outside_w``. The weights broadcast against ``pred``
    (e.g. one weight per anchor, (N, M, 1) for (N, M, 4) deltas). RPN: sigma 3; R-CNN: sigma 1, dim (1,) on
    (B, 4K). Returns a scalar. torch's fused smooth L1 with beta = 1 / sigma^2 is the same function in one
    operator (and one for its gradient), instead of the reference's chain of elementwise ones.
    """
    beta = 1.0 / (sigma * sigma)
    loss = F.smooth_l1_loss(inside_w * pred, inside_w * targets, reduction="none", beta=beta)
    return (outside_w * loss).sum(dim=tuple(dim)).mean()


def rpn_losses(scores: Tensor, deltas: Tensor, labels: Tensor, targets: Tensor, inside_w: Tensor,
               outside_w: Tensor) -> tuple[Tensor, Tensor]:
    """The RPN's (cross entropy, box loss) of a batch, as the mean of the per-image losses.

    Args:
        scores: (N, M, 2) fp32 logits (bg, fg) per anchor; deltas: (N, M, 4) fp32.
        labels: (N, M) int64 1 fg, 0 bg, -1 not sampled; targets, inside_w: (N, M, 4); outside_w: (N, M, 1) or
            (N, M, 4), 1/N_sampled of each image (``layers.anchor_target``).
    Cross entropy: the mean over each image's sampled anchors, then over images. Box loss: smooth L1 with
    sigma 3; the outside weights make the sum over an image's anchors its loss.
    """
    valid = labels >= 0
    ce = F.cross_entropy(scores.reshape(-1, 2), labels.clamp(min=0).reshape(-1), reduction="none").view_as(labels)
    cross_entropy = ((ce * valid).sum(1) / valid.sum(1).clamp(min=1)).mean()
    loss_box = smooth_l1_loss(deltas, targets, inside_w, outside_w, sigma=3.0, dim=[1, 2])
    return cross_entropy, loss_box


def rcnn_losses(cls_score: Tensor, bbox_pred: Tensor, labels: Tensor, targets: Tensor, inside_w: Tensor,
                outside_w: Tensor) -> tuple[Tensor, Tensor]:
    """The R-CNN head's (cross entropy, box loss) over the sampled rois of a batch.

    Args:
        cls_score: (B, K) fp32 logits; bbox_pred: (B, 4K); labels: (B,) int64; targets and weights: (B, 4K)
            class-specific (``layers.proposal_target``).
    Every image has exactly TRAIN.BATCH_SIZE rois, so the mean over all rois is the mean of the image means.
    Box loss: smooth L1 with sigma 1, summed over the 4K columns and averaged over the rois.
    """
    cross_entropy = F.cross_entropy(cls_score, labels)
    loss_box = smooth_l1_loss(bbox_pred, targets, inside_w, outside_w, sigma=1.0, dim=[1])
    return cross_entropy, loss_box


def attribute_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """BUTD's attribute loss: one softmax over the A + 1 attribute slots and up to L labels per roi.

    Args:
        logits: (B, A + 1) fp32 attribute scores; labels: (B, L) int64 attribute indices, -1 where there is no
            label (``layers.proposal_target``: a foreground roi's row is its gt's attributes, an object without
            any is ``[0, -1, ...]``, i.e. "no attribute"; background rows are all -1).
    A roi with at least one label (its first >= 0) contributes the mean over its labels of -log p(label); the loss
    is the mean of those contributions over the rois that have one, 0 when none has (Caffe's SoftmaxWithLoss with
    several labels per instance, ``ignore_label: -1``, ``normalization: VALID``). The caller weighs it
    (TRAIN.ATTRIBUTE_LOSS_WEIGHT, BUTD: 0.5).
    """
    valid = labels >= 0
    log_p = F.log_softmax(logits, dim=1).gather(1, labels.clamp(min=0))  # (B, L)
    per_roi = -(log_p * valid).sum(1) / valid.sum(1).clamp(min=1)
    has_label = valid[:, 0].to(per_roi.dtype)
    return (per_roi * has_label).sum() / has_label.sum().clamp(min=1.0)
