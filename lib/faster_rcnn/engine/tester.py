"""Testing: ``detect_batch`` on a padded batch, per-class NMS, and ``test_net`` over a dataset on every process.

Detections are kept as tf-faster-rcnn keeps them: ``all_boxes[cls][image]`` is an ``(n, 5)`` float32 array
``[x1, y1, x2, y2, score]`` in original-image pixels (0-based, inclusive), class 0 (background) empty.

``test_net`` shards the images over the processes of a torchrun launch (rank r tests images r, r + W, ...),
gathers the detections on rank 0 in image order, which writes one ``detections.pkl`` and evaluates once: the
result is the single-process one. A batch of TEST.IMS_PER_BATCH images gives each image exactly what it gets
alone (see ``FasterRCNN``); TEST.AMP runs the network under autocast.
"""
from __future__ import annotations

import os
import os.path as osp
import time
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from faster_rcnn.boxes import bbox_transform_inv, clip_boxes
from faster_rcnn.config import cfg
from faster_rcnn.data.blob import get_test_blob
from faster_rcnn.data.dataset import read_image as _read_image
from faster_rcnn.data.test_loader import build_test_loader
from faster_rcnn.engine.amp import autocast
from faster_rcnn.ops import nms
from faster_rcnn.utils.detections_file import write_detections


def read_image(path: str) -> np.ndarray:
    """BGR uint8 image (H, W, 3); a DataError naming the file when it is missing, truncated or undecodable."""
    return _read_image(path, stops='stopped')


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
def detect_batch(model: torch.nn.Module, data: torch.Tensor, im_info: torch.Tensor,
                 sizes: Sequence[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class probabilities (R_i, K) and class-specific boxes (R_i, 4K) in original-image pixels, per image.

    Args:
        data: (N, 3, H, W) normalised, zero-padded; im_info: (N, 3) (h, w, scale) on the model's device.
        sizes: the original (H_i, W_i) of each image (boxes are clipped to it).
    """
    with autocast(data.device, cfg.TEST.AMP, 'TEST.AMP'):
        rois, cls_prob, bbox_pred = model(data, im_info)
    cls_prob, bbox_pred = cls_prob.float(), bbox_pred.float()
    n = data.shape[0]
    counts = [rois.shape[0]] if n == 1 else torch.bincount(rois[:, 0].long(), minlength=n).tolist()
    scales = im_info[:, 2].tolist()
    out = []
    for i, (r, p, b) in enumerate(zip(rois.split(counts), cls_prob.split(counts), bbox_pred.split(counts))):
        boxes = r[:, 1:5].float() / scales[i]
        if cfg.TEST.BBOX_REG:
            pred = clip_boxes(bbox_transform_inv(boxes, b), sizes[i])
        else:
            pred = boxes.repeat(1, p.shape[1])
        out.append((p, pred))
    return out


def im_detect(model: torch.nn.Module, im: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (R, K) and class-specific boxes (R, 4K) in original-image pixels, on ``device``."""
    data, im_info, _ = image_to_input(im, device)
    return detect_batch(model, data, im_info, [im.shape[:2]])[0]


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


def detect_dataset(model: torch.nn.Module, paths: Sequence[str], device: torch.device, *, max_per_image: int,
                   rank: int = 0, world_size: int = 1, ims_per_batch: int | None = None,
                   num_workers: int | None = None, progress: bool = True,
                   timing: dict | None = None) -> dict[int, list[np.ndarray]]:
    """Detections {image index: K arrays (n, 5)} of this rank's shard of ``paths``.

    ``timing``, when given, receives 'wall_s' (the whole pass), 'startup_s' (until the first batch is loaded:
    worker start-up and the first decodes), 'steady_s' (from then on), 'images', 'detect_s' and 'nms_s'.
    """
    model.eval()
    loader = build_test_loader(paths, ims_per_batch=ims_per_batch, rank=rank, world_size=world_size,
                               num_workers=num_workers)
    found: dict[int, list[np.ndarray]] = {}
    t_det = t_misc = 0.0
    count = len(range(rank, len(paths), world_size))
    bar = tqdm(total=count, desc=f'test ({rank + 1}/{world_size})' if world_size > 1 else 'test', unit='im',
               dynamic_ncols=True, mininterval=1.0,
               disable=None if progress else True)  # None: only on a terminal (stderr stays for errors otherwise)
    t_start = time.perf_counter()
    t_first = None
    for batch in loader:
        t0 = time.perf_counter()
        if t_first is None:
            t_first = t0
        data = batch['data'].to(device, non_blocking=True)
        im_info = batch['im_info'].to(device, non_blocking=True)
        results = detect_batch(model, data, im_info, batch['sizes'])
        _sync(device)
        t1 = time.perf_counter()
        for index, (scores, boxes) in zip(batch['index'], results):
            found[index] = select_detections(scores, boxes, score_thresh=cfg.TEST.SCORE_THRESH,
                                             nms_thresh=cfg.TEST.NMS, max_per_image=max_per_image)
        t2 = time.perf_counter()
        t_det += t1 - t0
        t_misc += t2 - t1
        bar.update(len(batch['index']))
        bar.set_postfix(im_detect=f'{t_det / max(len(found), 1):.3f}s', nms=f'{t_misc / max(len(found), 1):.3f}s',
                        refresh=False)
    bar.close()
    t_end = time.perf_counter()
    elapsed = t_end - t_start
    n = max(len(found), 1)
    if timing is not None:
        t_first = t_end if t_first is None else t_first
        timing.update(wall_s=elapsed, startup_s=t_first - t_start, steady_s=t_end - t_first, images=len(found),
                      detect_s=t_det, nms_s=t_misc)
    if progress:
        print(f'im_detect: {len(found)} images in {elapsed:.1f}s ({len(found) / max(elapsed, 1e-9):.1f} images/s), '
              f'{t_det / n:.3f}s detect + {t_misc / n:.3f}s nms per image')
    return found


def gather_detections(found: dict[int, list[np.ndarray]], num_images: int,
                      world_size: int) -> dict[int, list[np.ndarray]] | None:
    """Every rank's detections on rank 0 (None on the others); a no-op in a single process."""
    if world_size == 1:
        return found
    parts: list | None = [None] * world_size if dist.get_rank() == 0 else None
    dist.gather_object(found, parts, dst=0)
    if dist.get_rank() != 0:
        return None
    merged: dict[int, list[np.ndarray]] = {}
    for part in parts:
        merged.update(part)
    if len(merged) != num_images:
        raise RuntimeError(f'gathered detections for {len(merged)} of {num_images} images')
    return merged


def test_net(model: torch.nn.Module, imdb, output_dir: str, device: torch.device, *, max_per_image: int = 100,
             evaluate: bool = True, rank: int = 0, world_size: int = 1, ims_per_batch: int | None = None,
             num_workers: int | None = None, progress: bool = True):
    """Detect on every image of ``imdb`` (sharded over ``world_size`` processes), save ``detections.pkl`` in
    ``output_dir`` and evaluate, on rank 0.

    Returns ``(all_boxes[cls][image], evaluation)`` on rank 0 (evaluation None when ``evaluate`` is off),
    ``(None, None)`` on the other ranks.
    """
    paths = [imdb.image_path_at(i) for i in range(imdb.num_images)]
    found = detect_dataset(model, paths, device, max_per_image=max_per_image, rank=rank, world_size=world_size,
                           ims_per_batch=ims_per_batch, num_workers=num_workers, progress=progress)
    merged = gather_detections(found, imdb.num_images, world_size)
    if merged is None:
        return None, None
    all_boxes = [[merged[i][j] for i in range(imdb.num_images)] for j in range(imdb.num_classes)]
    os.makedirs(output_dir, exist_ok=True)
    det_file = osp.join(output_dir, 'detections.pkl')
    # The reference's file format, written atomically; tools/reval.py reads it without running code.
    write_detections(all_boxes, det_file)
    if progress:
        print(f'Wrote detections to {det_file}')
    result = None
    if evaluate:
        print('Evaluating detections')
        result = imdb.evaluate_detections(all_boxes, output_dir)
    return all_boxes, result
