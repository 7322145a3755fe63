#!/usr/bin/env python3
"""Run a detector on images and save them with the detected boxes drawn (tf-faster-rcnn's demo.py).

    python tools/demo.py --net res101 --dataset pascal_voc_0712        # the model the scripts / fetch put in output/
    python tools/demo.py --model output/.../res101_faster_rcnn_iter_110000.pth [--images DIR] [--output DIR]

The model file records its network, classes, normalisation and test settings: no --cfg is needed (older
snapshots take the --cfg they were trained with). Works without a display: pictures go to --output
(default output/demo/).
"""
from __future__ import annotations

import argparse
import glob
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np
import torch

from faster_rcnn.config import cfg
from faster_rcnn.datasets.recipes import RECIPES, recipe
from faster_rcnn.engine.checkpoint import list_snapshots
from faster_rcnn.engine.detector_file import open_detector
from faster_rcnn.engine.tester import detect_image, read_image
from faster_rcnn.utils.cli import add_config_args, apply_detector_config, resolve_device
from faster_rcnn.utils.errors import DiskError, ModelFileError, UsageError, run_tool
from faster_rcnn.utils.visualization import draw_boxes

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Faster R-CNN demo: detect and draw boxes')
    parser.add_argument('--net', default=None,
                        help="vgg16, res50, res101, res152, mobile or tiny (default: the model file's; "
                             'res101 when --model is not given)')
    parser.add_argument('--dataset', default='pascal_voc_0712', choices=sorted(RECIPES),
                        help='without --model: the DATASET whose final model (from train_faster_rcnn.sh or '
                             'fetch_faster_rcnn_models.py) to use (default: pascal_voc_0712)')
    parser.add_argument('--model', default=None, help='a model file (<prefix>_iter_<N>.pth)')
    parser.add_argument('--images', default=None,
                        help='an image file or a folder of images (default: data/demo)')
    parser.add_argument('--output', default=None, help='folder for the pictures (default: output/demo)')
    parser.add_argument('--thresh', type=float, default=0.8, help='score threshold of the drawn boxes')
    parser.add_argument('--nms', type=float, default=None, help='per-class NMS threshold (default: TEST.NMS)')
    add_config_args(parser)
    return parser.parse_args(argv)


def final_model(net: str, dataset: str) -> str:
    """The model ``train_faster_rcnn.sh 0 <dataset> <net>`` leaves, or the newest snapshot in its folder."""
    r = recipe(dataset)
    folder = osp.join(cfg.ROOT_DIR, 'output', net, r.train_imdb, 'default')
    prefix = f'{net}_faster_rcnn'
    expected = osp.join(folder, f'{prefix}_iter_{r.iters}.pth')
    if osp.isfile(expected):
        return expected
    found = list_snapshots(folder, prefix)
    if found:
        print(f'{expected} does not exist; using the newest model in its folder, {found[-1][1]}')
        return found[-1][1]
    raise ModelFileError(f'no {net} model for {dataset} in {folder}: fetch the published one with `python '
                         f'data/scripts/fetch_faster_rcnn_models.py --net {net} --dataset {dataset}`, train one with '
                         f'`./experiments/scripts/train_faster_rcnn.sh 0 {dataset} {net}`, or pass --model')


def list_images(path: str) -> list[str]:
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise UsageError(f'--images {path}: no such file or folder')
    files = sorted(f for f in glob.glob(osp.join(glob.escape(path), '*')) if f.lower().endswith(_IMAGE_EXTS))
    if not files:
        raise UsageError(f'--images {path}: the folder holds no {"/".join(_IMAGE_EXTS)} images')
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_path = args.model or final_model(args.net or 'res101', args.dataset)
    detector = open_detector(model_path, args.net)
    apply_detector_config(args, detector, verbose=False)
    if args.nms is not None:
        cfg.TEST.NMS = args.nms
    device = torch.device(resolve_device(args.device))
    model = detector.build(device)
    classes = detector.classes
    images = list_images(args.images or osp.join(cfg.DATA_DIR, 'demo'))
    out_dir = args.output or osp.join(cfg.ROOT_DIR, 'output', 'demo')
    os.makedirs(out_dir, exist_ok=True)
    print(f'Detector {model_path}: {detector.net}, {len(classes) - 1} classes')
    for path in images:
        im = read_image(path)
        t0 = time.perf_counter()
        dets = detect_image(model, im, device, score_thresh=args.thresh)
        elapsed = time.perf_counter() - t0
        ids = [j for j in range(1, len(dets)) for _ in range(len(dets[j]))]
        stacked = np.concatenate(dets[1:], axis=0) if ids else np.zeros((0, 5), np.float32)
        drawn = draw_boxes(im, stacked[:, :4], [classes[j] for j in ids], ids, stacked[:, 4].tolist())
        out_path = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '_detections.jpg')
        if not cv2.imwrite(out_path, drawn):
            raise DiskError(f'{out_path}: the picture cannot be written; check that the folder is writable')
        summary = ', '.join(f'{classes[j]} x{len(dets[j])}' for j in range(1, len(dets)) if len(dets[j])) or 'nothing'
        print(f'{path}: {summary} in {elapsed:.3f}s -> {out_path}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
