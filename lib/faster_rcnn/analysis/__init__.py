"""Analyses of detection results (error breakdowns) that run on saved detections, without a network."""
