"""A plain-Python greedy NMS with the GPU kernel's rule, the yardstick of the NMS and proposal tests."""
import numpy as np


def greedy_reference(boxes: np.ndarray, scores: np.ndarray, thresh: float):
    """Plain-Python greedy NMS: stable decreasing score, +1 IoU, suppress when IoU > thresh."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        suppressed = False
        for k in keep:
            iw = min(boxes[i, 2], boxes[k, 2]) - max(boxes[i, 0], boxes[k, 0]) + 1
            ih = min(boxes[i, 3], boxes[k, 3]) - max(boxes[i, 1], boxes[k, 1]) + 1
            if iw > 0 and ih > 0:
                inter = iw * ih
                area_i = (boxes[i, 2] - boxes[i, 0] + 1) * (boxes[i, 3] - boxes[i, 1] + 1)
                area_k = (boxes[k, 2] - boxes[k, 0] + 1) * (boxes[k, 3] - boxes[k, 1] + 1)
                if inter / (area_i + area_k - inter) > thresh:
                    suppressed = True
                    break
        if not suppressed:
            keep.append(i)
    return keep
