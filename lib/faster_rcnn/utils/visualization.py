"""Drawing boxes on images (demo pictures and TensorBoard summaries), with OpenCV only: no display needed."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

_PALETTE = np.array([[56, 56, 255], [151, 157, 255], [31, 112, 255], [29, 178, 255], [49, 210, 207],
                     [10, 249, 72], [23, 204, 146], [134, 219, 61], [52, 147, 26], [187, 212, 0],
                     [168, 153, 44], [255, 194, 0], [147, 69, 52], [255, 115, 100], [236, 24, 0],
                     [255, 56, 132], [133, 0, 82], [255, 56, 203], [200, 149, 255], [199, 55, 255]],
                    dtype=np.uint8)


def color_for(class_index: int) -> tuple[int, int, int]:
    c = _PALETTE[class_index % len(_PALETTE)]
    return int(c[0]), int(c[1]), int(c[2])


def draw_boxes(im_bgr: np.ndarray, boxes: np.ndarray, labels: Sequence[str], class_ids: Sequence[int],
               scores: Sequence[float] | None = None) -> np.ndarray:
    """A copy of ``im_bgr`` (H, W, 3 uint8) with ``boxes`` (n, 4) [x1, y1, x2, y2] and their captions drawn."""
    out = np.ascontiguousarray(im_bgr.copy())
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    font_scale = max(0.35, min(h, w) / 900)
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = color_for(class_ids[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        caption = labels[i] if scores is None else f'{labels[i]} {scores[i]:.2f}'
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(out, caption, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def unnormalize_blob(blob_chw: np.ndarray, pixel_means: np.ndarray, pixel_stds: np.ndarray,
                     channel_order: str) -> np.ndarray:
    """Invert the input normalisation of one network input (3, H, W) back to a BGR uint8 image (H, W, 3)."""
    im = np.transpose(blob_chw, (1, 2, 0)).astype(np.float32)
    if channel_order == 'RGB':
        im = im[:, :, ::-1]
    im = im * np.asarray(pixel_stds, dtype=np.float32).reshape(1, 1, 3) + \
        np.asarray(pixel_means, dtype=np.float32).reshape(1, 1, 3)
    return np.clip(im, 0, 255).astype(np.uint8)
