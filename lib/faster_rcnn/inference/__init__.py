"""Inference from Python: ``Detector`` (load, call, draw, COCO json) and its ``Detections``."""
from .detections import Detections
from .detector import Detector, is_graph_file

__all__ = ['Detector', 'Detections', 'is_graph_file']
