"""Faster R-CNN in PyTorch with tf-faster-rcnn semantics."""
__version__ = "1.0.0"
