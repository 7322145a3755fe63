"""Testing a dataset: ``detect_dataset`` on every process's shard, ``test_net`` to gather, save and evaluate.

Detections are kept as tf-faster-rcnn keeps them: ``all_boxes[cls][image]`` is an ``(n, 5)`` float32 array
``[x1, y1, x2, y2, score]`` in original-image pixels (0-based, inclusive), class 0 (background) empty.

Images go through a ``faster_rcnn.Detector``: its DataLoader workers decode (and for a network, resize and
normalise) the images, the detector runs a batch of ``detector.batch_size`` (TEST.IMS_PER_BATCH) images, each of
which gets exactly what it gets alone; an ``.onnx`` graph takes the decoded images one by one.

``test_net`` shards the images over the processes of a torchrun launch (rank r tests images r, r + W, ...),
gathers the detections on rank 0 in image order, which writes one ``detections.pkl`` and evaluates once: the
result is the single-process one.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from faster_rcnn.data.dataset import read_image
from faster_rcnn.data.test_loader import build_test_loader, prepare_test_image
from faster_rcnn.datasets.attribute_eval import (
    AttributeAP,
    AttributeImage,
    attribute_ap_at_detections,
    attribute_ap_at_gt,
)
from faster_rcnn.inference import Detector
from faster_rcnn.utils.detections_file import write_detections

if TYPE_CHECKING:
    from faster_rcnn.nets.network import FasterRCNN

logger = logging.getLogger(__name__)


def _sync(detector: Detector) -> None:
    model = detector.model
    if model is not None and torch.cuda.is_available():
        device = next(model.parameters()).device
        if device.type == 'cuda':
            torch.cuda.synchronize(device)


def detect_dataset(detector: Detector, paths: Sequence[str], *, rank: int = 0, world_size: int = 1,
                   num_workers: int = 0, progress: bool = True,
                   timing: dict | None = None) -> dict[int, list[np.ndarray]]:
    """Detections {image index: K arrays (n, 5)} of this rank's shard of ``paths``.

    ``timing``, when given, receives 'wall_s' (the whole pass), 'startup_s' (until the first batch is loaded:
    worker start-up and the first decodes), 'steady_s' (from then on), 'images' and 'detect_s'.
    """
    model = detector.model
    if model is not None:
        model.eval()
    loader = build_test_loader(paths, detector.loader_inputs, ims_per_batch=detector.batch_size, rank=rank,
                               world_size=world_size, num_workers=num_workers)
    found: dict[int, list[np.ndarray]] = {}
    t_det = 0.0
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
        results = detector.detect_loaded(batch)
        _sync(detector)
        t_det += time.perf_counter() - t0
        for index, dets in zip(batch['index'], results):
            found[index] = dets.per_class()
        bar.update(len(batch['index']))
        bar.set_postfix(detect=f'{t_det / max(len(found), 1):.3f}s', refresh=False)
    bar.close()
    t_end = time.perf_counter()
    elapsed = t_end - t_start
    n = max(len(found), 1)
    if timing is not None:
        t_first = t_end if t_first is None else t_first
        timing.update(wall_s=elapsed, startup_s=t_first - t_start, steady_s=t_end - t_first, images=len(found),
                      detect_s=t_det)
    if progress:
        logger.info(f'im_detect: {len(found)} images in {elapsed:.1f}s ({len(found) / max(elapsed, 1e-9):.1f} '
                    f'images/s), {t_det / n:.3f}s per image to detect (network and NMS)')
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
    assert parts is not None  # rank 0 gathered into it
    merged: dict[int, list[np.ndarray]] = {}
    for part in parts:
        merged.update(part)
    if len(merged) != num_images:
        raise RuntimeError(f'gathered detections for {len(merged)} of {num_images} images')
    return merged


def test_net(detector: Detector, imdb, output_dir: str, *, evaluate: bool = True, rank: int = 0,
             world_size: int = 1, num_workers: int = 0, progress: bool = True):
    """Detect on every image of ``imdb`` (sharded over ``world_size`` processes), save ``detections.pkl`` in
    ``output_dir`` and evaluate, on rank 0.

    Returns ``(all_boxes[cls][image], evaluation)`` on rank 0 (evaluation None when ``evaluate`` is off),
    ``(None, None)`` on the other ranks.
    """
    if len(detector.classes) != imdb.num_classes:
        raise ValueError(f'the detector has {len(detector.classes)} classes, {imdb.name} {imdb.num_classes}')
    paths = [imdb.image_path_at(i) for i in range(imdb.num_images)]
    found = detect_dataset(detector, paths, rank=rank, world_size=world_size, num_workers=num_workers,
                           progress=progress)
    merged = gather_detections(found, imdb.num_images, world_size)
    if merged is None:
        return None, None
    all_boxes = [[merged[i][j] for i in range(imdb.num_images)] for j in range(imdb.num_classes)]
    os.makedirs(output_dir, exist_ok=True)
    det_file = osp.join(output_dir, 'detections.pkl')
    # The reference's file format, written atomically; tools/reval.py reads it without running code.
    write_detections(all_boxes, det_file)
    if progress:
        logger.info(f'Wrote detections to {det_file}')
    result = None
    if evaluate:
        logger.info('Evaluating detections')
        result = imdb.evaluate_detections(all_boxes, output_dir)
    return all_boxes, result


@torch.no_grad()
def evaluate_attributes(model: FasterRCNN, imdb, *, progress: bool = True) -> tuple[AttributeAP, AttributeAP]:
    """The attribute mAP of a network with an attribute head on ``imdb`` (which has ``attributes`` and
    ``gt_attributes``): (at its detections, at the gt boxes), ``datasets.attribute_eval``. One image at a time:
    its detections with their attribute probabilities, then its gt boxes scored as rois."""
    model.eval()
    device = next(model.parameters()).device
    inputs = model.settings.input
    images = []
    for i, entry in enumerate(tqdm(imdb.roidb[:imdb.num_images], desc='attributes', unit='im',
                                   disable=None if progress else True)):
        im = read_image(imdb.image_path_at(i))
        blob, im_info = prepare_test_image(im, inputs)
        data = torch.from_numpy(blob).permute(2, 0, 1)[None].to(device)
        info = torch.from_numpy(im_info)[None].to(device)
        dets = model.detect(data, info, [im.shape[:2]])[0]
        assert dets.attr_prob is not None  # the network has an attribute head
        boxes = np.asarray(entry['boxes'], np.float32).reshape(-1, 4)
        gt_prob = (model.attributes_at(data, torch.from_numpy(boxes * im_info[2]).to(device)).cpu().numpy()
                   if len(boxes) else np.zeros((0, model.num_attributes), np.float32))
        images.append(AttributeImage(
            gt_boxes=boxes, gt_attributes=np.asarray(entry['gt_attributes']).reshape(len(boxes), -1),
            gt_hard=np.asarray(entry.get('gt_ishard', np.zeros(len(boxes), bool)), bool),
            det_boxes=dets.boxes.cpu().numpy(), det_attr_prob=dets.attr_prob.cpu().numpy(), gt_attr_prob=gt_prob))
    names = list(imdb.attributes)
    return attribute_ap_at_detections(images, names), attribute_ap_at_gt(images, names)


def print_attribute_ap(at_dets: AttributeAP, at_gt: AttributeAP) -> None:
    """The attribute AP table, logged (the tools show it on stdout): per attribute at detections and at gt boxes,
    then the means."""
    logger.info('Attribute AP (at detections / at gt boxes):')
    for name, ap in at_dets.per_attribute.items():
        logger.info(f'  {name:>16s}: {ap:.4f} / {at_gt.per_attribute[name]:.4f}')
    logger.info(f'Attribute mAP at detections = {at_dets.mean_ap:.4f} (weighted {at_dets.weighted_ap:.4f})')
    logger.info(f'Attribute mAP at gt boxes   = {at_gt.mean_ap:.4f} (weighted {at_gt.weighted_ap:.4f})')
