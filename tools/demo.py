#!/usr/bin/env python3
"""Run a trained detector on a folder of images and save them with the detected boxes drawn.

Works without a display: pictures are written to --output (default output/demo/).
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
from faster_rcnn.engine.tester import detect_image, load_detector, read_image
from faster_rcnn.utils.cli import add_config_args, apply_config, resolve_device
from faster_rcnn.utils.visualization import draw_boxes

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Faster R-CNN demo: detect and draw boxes')
    parser.add_argument('--net', default='res101', help='vgg16, res50, res101, res152, mobile or tiny')
    parser.add_argument('--model', required=True, help='trained snapshot (<prefix>_iter_<N>.pth)')
    parser.add_argument('--images', default=None,
                        help='an image file or a folder of images (default: data/demo)')
    parser.add_argument('--output', default=None, help='folder for the pictures (default: output/demo)')
    parser.add_argument('--thresh', type=float, default=0.8, help='score threshold of the drawn boxes')
    parser.add_argument('--nms', type=float, default=0.3, help='per-class NMS threshold')
    add_config_args(parser)
    return parser.parse_args(argv)


def list_images(path: str) -> list[str]:
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise SystemExit(f'--images {path}: no such file or folder')
    files = sorted(f for f in glob.glob(osp.join(glob.escape(path), '*')) if f.lower().endswith(_IMAGE_EXTS))
    if not files:
        raise SystemExit(f'--images {path}: the folder holds no {"/".join(_IMAGE_EXTS)} images')
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_config(args, verbose=False)
    cfg.TEST.NMS = args.nms
    device = torch.device(resolve_device(args.device))
    model, classes = load_detector(args.model, args.net, device)
    images = list_images(args.images or osp.join(cfg.DATA_DIR, 'demo'))
    out_dir = args.output or osp.join(cfg.ROOT_DIR, 'output', 'demo')
    os.makedirs(out_dir, exist_ok=True)
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
            raise SystemExit(f'cannot write {out_path}')
        summary = ', '.join(f'{classes[j]} x{len(dets[j])}' for j in range(1, len(dets)) if len(dets[j])) or 'nothing'
        print(f'{path}: {summary} in {elapsed:.3f}s -> {out_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
