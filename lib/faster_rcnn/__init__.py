"""Faster R-CNN in PyTorch with tf-faster-rcnn semantics.

``from faster_rcnn import Detector`` is the Python API (``faster_rcnn.inference``); it is imported on first use,
so ``import faster_rcnn.errors`` and the tools' start-up do not pay for it.
"""
import logging

__version__ = "1.0.0"

# Library code logs through logging.getLogger(__name__); used from Python it prints nothing unless the caller
# configures logging (the tools do: faster_rcnn.cli.configure_logging).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ['Detector', 'Detections', '__version__']


def __getattr__(name: str):
    if name in ('Detector', 'Detections'):
        from . import inference
        return getattr(inference, name)
    raise AttributeError(f"module 'faster_rcnn' has no attribute {name!r}")
