"""Inference from Python: ``Detector`` (load, call, draw, COCO json, region features), its ``Detections`` and
``RegionFeatures``."""
from .detections import Detections
from .detector import Detector, is_graph_file
from .region_features import RegionFeatures

__all__ = ['Detector', 'Detections', 'RegionFeatures', 'is_graph_file']
