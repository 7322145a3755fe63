"""Testing: ``im_detect`` on one image, per-class NMS, and ``test_net`` over a dataset.

Detections are kept as tf-faster-rcnn keeps them: ``all_boxes[cls][image]`` is an ``(n, 5)`` float32 array
``[x1, y1, x2, y2, score]`` in original-image pixels (0-based, inclusive), class 0 (background) empty.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import time

import cv2
import numpy as np
import torch
from tqdm import tqdm

from faster_rcnn.boxes import bbox_transform_inv, clip_boxes
from faster_rcnn.config import cfg
from faster_rcnn.data.blob import get_test_blob
from faster_rcnn.ops import nms


def read_image(path: str) -> np.ndarray:
    """BGR uint8 image (H, W, 3); an error naming the file when it cannot be decoded."""
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    if im is None:
        raise FileNotFoundError(f'image {path} is missing or cannot be decoded by OpenCV')
    return im


def image_to_input(im: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The network input for one test image: blob (1, 3, H, W), im_info (1, 3) and the scale used."""
    if len(cfg.TEST.SCALES) != 1:
        raise ValueError(f'TEST.SCALES = {cfg.TEST.SCALES}: testing uses exactly one scale, as tf-faster-rcnn')
    blob, im_scales = get_test_blob(im, cfg.TEST.SCALES, cfg.TEST.MAX_SIZE, cfg.PIXEL_MEANS, cfg.PIXEL_STDS,
                                    cfg.CHANNEL_ORDER)
    scale = float(im_scales[0])
    data = torch.from_numpy(np.ascontiguousarray(blob)).to(device, non_blocking=True)
    im_info = torch.tensor([[blob.shape[2], blob.shape[3], scale]], dtype=torch.float32, device=device)
    return data, im_info, scale


@torch.no_grad()
def im_detect(model: torch.nn.Module, im: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (R, K) and class-specific boxes (R, 4K) in original-image pixels, on ``device``."""
    data, im_info, scale = image_to_input(im, device)
    rois, cls_prob, bbox_pred = model(data, im_info)
    boxes = rois[:, 1:5].float() / scale
    if cfg.TEST.BBOX_REG:
        pred_boxes = bbox_transform_inv(boxes, bbox_pred.float())
        pred_boxes = clip_boxes(pred_boxes, im.shape[:2])
    else:
        pred_boxes = boxes.repeat(1, cls_prob.shape[1])
    return cls_prob.float(), pred_boxes


def select_detections(scores: torch.Tensor, boxes: torch.Tensor, *, score_thresh: float, nms_thresh: float,
                      max_per_image: int) -> list[np.ndarray]:
    """Per-class NMS and the per-image cap, as tf-faster-rcnn's test_net.

    Args:
        scores: (R, K) class probabilities; boxes: (R, 4K) class-specific boxes.
    Returns:
        K arrays (n_k, 5) ``[x1, y1, x2, y2, score]``; entry 0 (background) is empty.
        A detection is a candidate when its score is > ``score_thresh``; after NMS at ``nms_thresh`` per class,
        only the ``max_per_image`` best remain (all ties with the last one are kept).
    """
    num_classes = scores.shape[1]
    cand = scores[:, 1:] > score_thresh
    rows, cols = cand.nonzero(as_tuple=True)
    cls = cols + 1
    cls_boxes = boxes.view(boxes.shape[0], num_classes, 4)[rows, cls]
    cls_scores = scores[rows, cls]
    # Per-class NMS; candidates come out row-major, so within a class equal scores keep the lower roi first.
    keep_parts = []
    for j in range(1, num_classes):
        idx = (cls == j).nonzero(as_tuple=True)[0]
        if idx.numel():
            keep_parts.append(idx[nms(cls_boxes[idx], cls_scores[idx], nms_thresh)])
    keep = torch.cat(keep_parts) if keep_parts else rows.new_zeros(0)
    kept_scores = cls_scores[keep]
    if max_per_image > 0 and keep.numel() > max_per_image:
        image_thresh = torch.topk(kept_scores, max_per_image).values[-1]
        keep = keep[kept_scores >= image_thresh]
    dets = torch.cat([cls_boxes[keep], cls_scores[keep, None]], dim=1).cpu().numpy().astype(np.float32)
    kept_cls = cls[keep].cpu().numpy()
    out = [np.zeros((0, 5), dtype=np.float32)]
    for j in range(1, num_classes):
        out.append(dets[kept_cls == j])
    return out


def detect_image(model: torch.nn.Module, im: np.ndarray, device: torch.device, *,
                 max_per_image: int | None = None, score_thresh: float | None = None) -> list[np.ndarray]:
    """``im_detect`` followed by ``select_detections`` with the TEST config."""
    scores, boxes = im_detect(model, im, device)
    return select_detections(scores, boxes,
                             score_thresh=cfg.TEST.SCORE_THRESH if score_thresh is None else score_thresh,
                             nms_thresh=cfg.TEST.NMS,
                             max_per_image=cfg.TEST.MAX_PER_IMAGE if max_per_image is None else max_per_image)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def test_net(model: torch.nn.Module, imdb, output_dir: str, device: torch.device, *,
             max_per_image: int = 100, evaluate: bool = True) -> list[list[np.ndarray]]:
    """Detect on every image of ``imdb``, save ``detections.pkl`` in ``output_dir`` and evaluate.

    Returns ``all_boxes[cls][image]``.
    """
    os.makedirs(output_dir, exist_ok=True)
    model.eval()
    num_images = imdb.num_images
    all_boxes: list[list[np.ndarray]] = [[None] * num_images for _ in range(imdb.num_classes)]  # type: ignore
    t_det, t_misc = 0.0, 0.0
    bar = tqdm(range(num_images), desc=f'test {imdb.name}', unit='im', dynamic_ncols=True, mininterval=1.0)
    for i in bar:
        im = read_image(imdb.image_path_at(i))
        t0 = time.perf_counter()
        scores, boxes = im_detect(model, im, device)
        _sync(device)
        t1 = time.perf_counter()
        dets = select_detections(scores, boxes, score_thresh=cfg.TEST.SCORE_THRESH, nms_thresh=cfg.TEST.NMS,
                                 max_per_image=max_per_image)
        t2 = time.perf_counter()
        for j in range(imdb.num_classes):
            all_boxes[j][i] = dets[j]
        t_det += t1 - t0
        t_misc += t2 - t1
        bar.set_postfix(im_detect=f'{t_det / (i + 1):.3f}s', nms=f'{t_misc / (i + 1):.3f}s', refresh=False)
    bar.close()
    n = max(num_images, 1)
    print(f'im_detect: {num_images} images, {t_det / n:.3f}s detect + {t_misc / n:.3f}s nms per image')
    det_file = osp.join(output_dir, 'detections.pkl')
    # Our own output, read back by tools/reval.py; pickle keeps the reference's file format.
    with open(det_file, 'wb') as f:
        pickle.dump(all_boxes, f, pickle.HIGHEST_PROTOCOL)
    print(f'Wrote detections to {det_file}')
    if evaluate:
        print('Evaluating detections')
        imdb.evaluate_detections(all_boxes, output_dir)
    return all_boxes
