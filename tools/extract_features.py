#!/usr/bin/env python3
"""Extract region features (boxes and their pooled features) for vision-language models, in their file layouts.

    python tools/extract_features.py --model M --images DIR --format butd-tsv --out feats.tsv
    python tools/extract_features.py --model M --imdb coco_2014_val --format npz --out data/cocobu --boxes 10-100
    python tools/extract_features.py --model M --list files.txt --format h5 --out data/val36.hdf5 --boxes 36
    torchrun --nproc_per_node 4 tools/extract_features.py ...          # one output, the same as one process

Regions are chosen as bottom-up-attention's generate_tsv.py does (``--boxes MIN-MAX`` or a fixed ``K``,
``--conf-thresh``), or taken from ``--boxes-from`` (a COCO json's boxes, or a folder of ``<id>.npy`` (N, 4)
x1, y1, x2, y2 arrays). An image's id is its file stem (``--imdb``: the dataset's image id). The same command
after a kill or crash finishes the job: nothing is lost or written twice. Unreadable images are skipped and
listed at the end; then the exit code is 4. Formats and their consumers: docs/features.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import sys
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from faster_rcnn.cli import (ToolParser, add_config_args, apply_detector_config, model_settings, resolve_device,
                             run_tool)
from faster_rcnn.config import cfg
from faster_rcnn.data.dataset import read_image
from faster_rcnn.data.test_loader import collate_test, prepare_test_image
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.distributed import DistInfo, barrier, cleanup, init_distributed
from faster_rcnn.errors import DataError, UsageError
from faster_rcnn.inference import Detector, is_graph_file
from faster_rcnn.inference.feature_formats import FORMATS, FeatureWriter, make_writer
from faster_rcnn.model_file import open_detector
from faster_rcnn.nets.amp import bf16_backbone
from faster_rcnn.nets.factory import build_from_file
from faster_rcnn.settings import InputSettings

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Region features for vision-language models (bottom-up-attention style)')
    parser.add_argument('--model', required=True, help='a detector file (.pth): a snapshot or converted model')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--images', help='a folder of images (searched recursively) or one image')
    source.add_argument('--list', help='a text file of image paths, one a line (relative to the file)')
    source.add_argument('--imdb', help='a dataset the tools know (e.g. shapes_test, coco_2014_val)')
    parser.add_argument('--format', required=True, choices=FORMATS, help='the output layout (docs/features.md)')
    parser.add_argument('--out', required=True, help='the output file (TSV, h5) or prefix / folder (npz, mmf)')
    parser.add_argument('--boxes', default='10-100',
                        help='boxes per image: MIN-MAX (generate_tsv.py, default 10-100) or a fixed K (e.g. 36)')
    parser.add_argument('--conf-thresh', type=float, default=0.2, help='generate_tsv.py conf_thresh (default 0.2)')
    parser.add_argument('--boxes-from', default=None,
                        help='pool these boxes instead: a COCO json (annotations matched by image id or file '
                             'stem) or a folder of <id>.npy (N, 4) x1, y1, x2, y2 arrays in image pixels')
    parser.add_argument('--batch-size', type=int, default=1, help='images per batch (padded; the same features)')
    parser.add_argument('--amp', choices=('', 'bf16', 'fp16'), default='', help="autocast precision ('' = fp32)")
    parser.add_argument('--workers', type=int, default=2, help='image decoding processes per extracting process')
    add_config_args(parser)
    return parser.parse_args(argv)


def box_range(text: str) -> tuple[int, int]:
    """'10-100' -> (10, 100); '36' -> (36, 36)."""
    try:
        lo, _, hi = text.partition('-')
        low, high = int(lo), int(hi or lo)
    except ValueError:
        raise UsageError(f'--boxes {text}: expected MIN-MAX (e.g. 10-100) or a count (e.g. 36)') from None
    if low < 1 or high < low:
        raise UsageError(f'--boxes {text}: expected 1 <= MIN <= MAX')
    return low, high


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def _unique(items: list[tuple[str, str]], what: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for image_id, path in items:
        if image_id in seen:
            raise UsageError(f'{what}: {seen[image_id]} and {path} have the same image id {image_id!r} (the file '
                             'stem); rename one or extract them separately')
        seen[image_id] = path
    return items


def images_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(image id, path) of every image, in the run's order (sorted paths, the list's order, the dataset's)."""
    if args.imdb:
        imdb = get_imdb(args.imdb, cfg.DATA_DIR)
        return _unique([(str(imdb.image_index[i]), imdb.image_path_at(i)) for i in range(imdb.num_images)],
                       f'--imdb {args.imdb}')
    if args.list:
        if not osp.isfile(args.list):
            raise UsageError(f'--list {args.list}: no such file')
        base = osp.dirname(osp.abspath(args.list))
        with open(args.list, encoding='utf-8') as f:
            paths = [osp.join(base, line.strip()) for line in f if line.strip()]
        return _unique([(_stem(p), p) for p in paths], f'--list {args.list}')
    if osp.isfile(args.images):
        return [(_stem(args.images), args.images)]
    if not osp.isdir(args.images):
        raise UsageError(f'--images {args.images}: no such file or folder')
    found = []
    for folder, _, files in os.walk(args.images):
        found += [osp.join(folder, f) for f in files if f.lower().endswith(_IMAGE_EXTS)]
    if not found:
        raise UsageError(f'--images {args.images}: no {"/".join(_IMAGE_EXTS)} image in it')
    found.sort(key=lambda p: osp.relpath(p, args.images))
    return _unique([(_stem(p), p) for p in found], f'--images {args.images}')


def boxes_from(path: str) -> Any:
    """A lookup id -> (N, 4) float32 boxes: a COCO json (bbox [x, y, w, h], w = x2 - x1 + 1) or a folder of npy."""
    if osp.isdir(path):
        def from_folder(image_id: str) -> np.ndarray | None:
            f = osp.join(path, f'{image_id}.npy')
            return np.load(f, allow_pickle=False).astype(np.float32).reshape(-1, 4) if osp.isfile(f) else None
        return from_folder
    if not osp.isfile(path):
        raise UsageError(f'--boxes-from {path}: no such file or folder')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        names = {im['id']: [str(im['id']), _stem(im.get('file_name', ''))] for im in data['images']}
        table: dict[str, list] = {}
        for ann in data.get('annotations', []):
            x, y, w, h = (float(v) for v in ann['bbox'])
            for key in names[ann['image_id']]:
                table.setdefault(key, []).append([x, y, x + w - 1, y + h - 1])
        for ids in names.values():
            for key in ids:
                table.setdefault(key, [])
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f'--boxes-from {path}: not a COCO json with images and annotations ({e!r})') from None
    return lambda image_id: np.array(table[image_id], np.float32).reshape(-1, 4) if image_id in table else None


class _Images(Dataset):
    """The images of one process: prepared for the detector, or the reason they cannot be used."""

    def __init__(self, items: list[tuple[int, str, str]], inputs: InputSettings, lookup: Any) -> None:
        self.items, self.inputs, self.lookup = items, inputs, lookup

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        pos, image_id, path = self.items[k]
        head = {'pos': pos, 'id': image_id}
        try:
            im = read_image(path, stops='it was skipped')
        except DataError as e:
            return {**head, 'error': str(e)}
        boxes = None
        if self.lookup is not None:
            boxes = self.lookup(image_id)
            if boxes is None:
                return {**head, 'error': f'image {path}: --boxes-from has no boxes for id {image_id}; it was skipped'}
        blob, im_info = prepare_test_image(im, self.inputs)
        return {**head, 'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': pos, 'boxes': boxes}


def _collate(items: list[dict]) -> list[dict]:
    return items


def _run_batch(detector: Detector, items: list[dict], selection: Any, writer: FeatureWriter
               ) -> list[tuple[int, str, str | None, str | None]]:
    """(position, id, TSV row or None, error or None) of each image of a batch; per-image files written here."""
    good = [it for it in items if 'error' not in it]
    out = [(it['pos'], it['id'], None, it['error']) for it in items if 'error' in it]
    if good:
        batch = collate_test(good)
        boxes = [it['boxes'] for it in good] if good[0]['boxes'] is not None else None
        for it, r in zip(good, detector.features_loaded(batch, selection, boxes)):
            if writer.rows:
                out.append((it['pos'], it['id'], writer.row(it['id'], r), None))
            else:
                writer.write(it['id'], r)
                out.append((it['pos'], it['id'], None, None))
    return out


def _gather(results: list, info: DistInfo) -> list:
    if not info.distributed:
        return results
    parts: list | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(results, parts, dst=0)
    return [r for p in parts for r in p] if parts is not None else []


def extract(args: argparse.Namespace, info: DistInfo) -> int:
    low, high = box_range(args.boxes)
    if is_graph_file(args.model):
        raise UsageError(f'--model {args.model}: region features need the network (a .pth detector file), not an '
                         'exported graph')
    if args.batch_size < 1:
        raise UsageError(f'--batch-size {args.batch_size}: expected at least 1')
    detector_file = open_detector(args.model, None)
    apply_detector_config(args, detector_file, verbose=False)
    if detector_file.classes is None:
        raise UsageError(f'--model {args.model}: the file does not list its classes')
    writer = make_writer(args.format, args.out, (low, high))
    items = images_of(args)
    lookup = boxes_from(args.boxes_from) if args.boxes_from else None
    model = build_from_file(detector_file, model_settings(detector_file.net), info.device)
    if args.amp == 'bf16':
        bf16_backbone(model)  # cast once, not by autocast at every call (docs/features.md, the speed table)
    detector = Detector.from_model(model, detector_file.classes, device=info.device, amp=args.amp,
                                   batch_size=args.batch_size)
    selection = Detector.selection('butd', low, high, args.conf_thresh)
    if info.is_main:
        done = writer.done()  # the main process repairs what a kill left (a cut TSV row) first
    barrier(info)
    if not info.is_main:
        done = writer.done()
    todo = [(pos, image_id, path) for pos, (image_id, path) in enumerate(items) if image_id not in done]
    mine = todo[info.rank::info.world_size]
    # Every process takes the same number of steps; a step's images are consecutive positions of ``todo``.
    steps = math.ceil(math.ceil(len(todo) / info.world_size) / args.batch_size)
    loader = DataLoader(_Images(mine, detector.loader_inputs, lookup), batch_size=args.batch_size, shuffle=False,
                        num_workers=max(args.workers, 0), collate_fn=_collate)
    if info.is_main:
        print(f'{args.model}: {len(items)} images, {len(done)} already in {args.out}, {len(todo)} to extract on '
              f'{info.world_size} process(es), {args.batch_size} per batch', flush=True)
    bar = tqdm(total=len(todo), unit='img', disable=not info.is_main, file=sys.stderr, dynamic_ncols=True)
    skipped: list[tuple[int, str]] = []
    batches = iter(loader)
    try:
        for _ in range(steps):
            batch = next(batches, [])
            results = _gather(_run_batch(detector, batch, selection, writer), info)
            for pos, image_id, row, error in sorted(results):
                if error is not None:
                    skipped.append((pos, error))
                elif row is not None:
                    writer.append(row)
            bar.update(len(results))
    finally:
        bar.close()
        writer.close()
    barrier(info)
    if info.is_main:
        failed = {pos for pos, _ in skipped}
        written = [image_id for pos, (image_id, _) in enumerate(items) if pos not in failed]
        writer.finish(written, complete=not skipped)
        print(f'Wrote {len(written)} images ({args.format}) to {args.out}')
        if skipped:
            for _, error in sorted(skipped):
                print(f'skipped: {error}', file=sys.stderr)
            raise DataError(f'{len(skipped)} of {len(items)} images could not be used and were skipped (listed '
                            'above); fix or remove them, then run the same command again to add them')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = init_distributed(resolve_device(args.device))
    finished = False
    try:
        code = extract(args, info)
        finished = True
        return code
    finally:
        cleanup(info, finished)


if __name__ == '__main__':
    sys.exit(run_tool(main))
