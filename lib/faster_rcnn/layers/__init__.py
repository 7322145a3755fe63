"""Faster R-CNN layers: anchors, RPN / R-CNN targets, proposals, RoI features and losses (pure functions)."""
from .anchor_target import anchor_target_layer
from .anchors import anchors_for, generate_anchors, shift_anchors
from .losses import smooth_l1_loss
from .proposal import proposal_layer
from .proposal_target import proposal_target_layer
from .proposal_top import proposal_top_layer
from .roi_pool import POOLING_MODES, crop_and_resize, roi_features

__all__ = [
    "anchor_target_layer",
    "anchors_for",
    "generate_anchors",
    "shift_anchors",
    "smooth_l1_loss",
    "proposal_layer",
    "proposal_target_layer",
    "proposal_top_layer",
    "POOLING_MODES",
    "crop_and_resize",
    "roi_features",
]
