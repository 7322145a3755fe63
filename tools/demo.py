#!/usr/bin/env python3
"""Run a detector on images, a video or a webcam and save them with the detected boxes drawn (tf-faster-rcnn's
demo.py, plus video).

    python tools/demo.py --net res101 --dataset pascal_voc_0712        # the model the scripts / fetch put in output/
    python tools/demo.py --model output/.../res101_faster_rcnn_iter_110000.pth [--images DIR] [--output DIR]
    python tools/demo.py --model M --video clip.mp4                     # -> output/demo/clip_detections.mp4
    python tools/demo.py --model M --webcam 0 [--max-frames 300]        # Ctrl-C ends it; the video is kept
    python tools/demo.py --model M --images DIR --json detections.json  # the boxes drawn, as COCO results

The model file records its network, classes, normalisation and test settings: no --cfg is needed (older
snapshots take the --cfg they were trained with); an exported ``--model X.onnx`` runs under ONNX Runtime (a
``.pt2`` program in torch with ``--trust-code``). Works
without a display: pictures and videos go to --output (default output/demo/). Frames per second of the detector
are printed. The detections come from ``faster_rcnn.Detector``, as in Python. ``--json`` writes the detections
scoring at least --thresh (those drawn) in COCO's results layout, with the category ids of the dataset the model
was trained on (recorded in the model file), so that pycocotools scores them against that dataset's annotations.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import sys
import time
from typing import Iterator

import cv2
import numpy as np
import torch

from faster_rcnn.cli import (ToolParser, add_config_args, apply_config, apply_detector_config, model_settings,
                             resolve_device, run_tool)
from faster_rcnn.config import cfg
from faster_rcnn.data.dataset import read_image
from faster_rcnn.datasets.recipes import RECIPES, recipe
from faster_rcnn.errors import DiskError, ModelFileError, UsageError
from faster_rcnn.export.runtime import RUNTIMES
from faster_rcnn.inference import Detections, Detector, is_graph_file
from faster_rcnn.inference.detector import warn_no_category_ids
from faster_rcnn.model_file import list_snapshots, open_detector
from faster_rcnn.nets.factory import build_from_file
from faster_rcnn.nets.registry import describe_networks

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Faster R-CNN demo: detect and draw boxes')
    parser.add_argument('--net', default=None,
                        help=f"{describe_networks()} (default: the model file's; res101 when --model is not given)")
    parser.add_argument('--dataset', default='pascal_voc_0712', choices=sorted(RECIPES),
                        help='without --model: the DATASET whose final model (from train_faster_rcnn.sh or '
                             'fetch_faster_rcnn_models.py) to use (default: pascal_voc_0712)')
    parser.add_argument('--model', default=None,
                        help='a model file (<prefix>_iter_<N>.pth), or a graph from tools/export.py (.onnx, .pt2 '
                             'with --trust-code)')
    parser.add_argument('--runtime', choices=RUNTIMES, default=None,
                        help='what runs an .onnx graph (default onnxruntime; openvino; opencv: OpenCV 5\'s DNN)')
    parser.add_argument('--trust-code', action='store_true',
                        help='run a .pt2 program (loading one runs code stored in it: only for files you trust)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--images', default=None, help='an image file or a folder of images (default: data/demo)')
    source.add_argument('--video', default=None, help='a video file: writes <output>/<name>_detections.mp4')
    source.add_argument('--webcam', type=int, default=None, metavar='N',
                        help='camera N: writes <output>/webcam<N>_detections.mp4 until Ctrl-C or --max-frames')
    parser.add_argument('--max-frames', type=int, default=0, help='video / webcam: stop after this many frames (0: all)')
    parser.add_argument('--output', default=None, help='folder for the pictures and videos (default: output/demo)')
    parser.add_argument('--json', default=None, metavar='FILE',
                        help='also write the detections scoring at least --thresh (the boxes drawn) to FILE: a list '
                             'of COCO results {image_id, category_id, bbox [x, y, w, h], score} plus category_name '
                             'and file_name / frame; category_id is the training dataset\'s id of the class (from '
                             'the model file), image_id the image\'s position in --images (or the frame number)')
    parser.add_argument('--thresh', type=float, default=0.8,
                        help='score threshold of the boxes drawn and written to --json (default: %(default)s)')
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


def _quiet_opencv() -> None:
    # OpenCV logs its own warnings on stderr (a camera that does not open): the tool says it in one line.
    logging = getattr(getattr(cv2, 'utils', None), 'logging', None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def frames(capture: cv2.VideoCapture, max_frames: int) -> Iterator[np.ndarray]:
    count = 0
    while max_frames <= 0 or count < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        count += 1
        yield frame


class Timed:
    """A ``Detector`` with its time counted; ``__call__`` detects on a BGR image and returns (drawn, dets).

    The detector's score threshold is --thresh (a network's candidates before NMS, as tf-faster-rcnn's demo); a
    graph, whose threshold is fixed in it, has its detections filtered by ``filter_thresh`` instead."""

    def __init__(self, detector: Detector, filter_thresh: float | None = None) -> None:
        self.detector, self.filter_thresh = detector, filter_thresh
        self.classes = detector.classes
        self.seconds = 0.0
        self.count = 0

    def __call__(self, im: np.ndarray) -> tuple[np.ndarray, Detections]:
        t0 = time.perf_counter()
        dets = self.detector(im)
        if self.filter_thresh is not None:
            dets = dets.above(self.filter_thresh)
        self.seconds += time.perf_counter() - t0
        self.count += 1
        return dets.draw(im), dets

    def summary(self, dets: Detections) -> str:
        counts = {j: int((dets.labels == j).sum()) for j in range(1, len(self.classes))}
        return ', '.join(f'{self.classes[j]} x{n}' for j, n in counts.items() if n) or 'nothing'

    @property
    def fps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def run_images(detector: Timed, paths: list[str], out_dir: str, results: list[dict]) -> None:
    for i, path in enumerate(paths):
        t0 = detector.seconds
        drawn, dets = detector(read_image(path))
        out_path = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '_detections.jpg')
        if not cv2.imwrite(out_path, drawn):
            raise DiskError(f'{out_path}: the picture cannot be written; check that the folder is writable')
        results += dets.to_coco(i, file_name=path)
        print(f'{path}: {detector.summary(dets)} in {detector.seconds - t0:.3f}s -> {out_path}')


def run_stream(detector: Timed, capture: cv2.VideoCapture, name: str, out_dir: str, max_frames: int,
               results: list[dict]) -> None:
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 25.0
    out_path = osp.join(out_dir, f'{name}_detections.mp4')
    writer = None
    try:
        for k, frame in enumerate(frames(capture, max_frames)):
            drawn, dets = detector(frame)
            if writer is None:
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                         (drawn.shape[1], drawn.shape[0]))
                if not writer.isOpened():
                    raise DiskError(f'{out_path}: the video cannot be written (mp4v); check that the folder is writable')
            writer.write(drawn)
            results += dets.to_coco(k, frame=k)
            if (k + 1) % 50 == 0:
                print(f'{name}: {k + 1} frames, {detector.fps:.1f} frames/s', flush=True)
    except KeyboardInterrupt:
        print(f'{name}: stopped after {detector.count} frames')
    finally:
        if writer is not None:
            writer.release()
    if detector.count == 0:
        raise UsageError(f'{name}: no frame could be read; is it a video OpenCV can decode?')
    print(f'{name}: {detector.count} frames -> {out_path}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_path = args.model or final_model(args.net or 'res101', args.dataset)
    device = torch.device(resolve_device(args.device))
    if is_graph_file(model_path):
        apply_config(args, verbose=False)
        detector = Detector.load(model_path, runtime=args.runtime, trust_code=args.trust_code,
                                 **({} if args.nms is None else {'nms': args.nms}))
        net = detector.metadata.get('net', 'graph')
    else:
        detector_file = open_detector(model_path, args.net)
        apply_detector_config(args, detector_file, verbose=False)
        if args.nms is not None:
            cfg.TEST.NMS = args.nms
        net = detector_file.net
        detector = None
    out_dir = args.output or osp.join(cfg.ROOT_DIR, 'output', 'demo')
    if args.video is not None or args.webcam is not None:
        _quiet_opencv()
        source = args.video if args.video is not None else args.webcam
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            what = f'--video {args.video}: the file does not exist or' if args.video is not None else \
                f'--webcam {args.webcam}: the camera does not exist or'
            raise UsageError(f'{what} OpenCV cannot open it')
    os.makedirs(out_dir, exist_ok=True)
    if detector is None:
        settings = model_settings(net).with_test(score_thresh=args.thresh)
        model = build_from_file(detector_file, settings, device)
        ids = detector_file.category_ids
        if ids is None:
            warn_no_category_ids(model_path)
            ids = tuple(range(len(detector_file.classes)))  # the fallback, said once above
        detector = Timed(Detector.from_model(model, detector_file.classes, device=device,
                                             attributes=detector_file.attributes, category_ids=ids))
    else:
        detector = Timed(detector, filter_thresh=args.thresh)
    print(f'Detector {model_path}: {net}, {len(detector.classes) - 1} classes')
    results: list[dict] = []
    if args.video is not None or args.webcam is not None:
        name = osp.splitext(osp.basename(args.video))[0] if args.video is not None else f'webcam{args.webcam}'
        try:
            run_stream(detector, capture, name, out_dir, args.max_frames, results)
        finally:
            capture.release()
    else:
        run_images(detector, list_images(args.images or osp.join(cfg.DATA_DIR, 'demo')), out_dir, results)
    unit = 'frames' if args.video is not None or args.webcam is not None else 'images'
    print(f'{detector.count} {unit}: {detector.fps:.1f} per second (detection and NMS, {device.type})')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f)
        print(f'Wrote {len(results)} detections to {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
