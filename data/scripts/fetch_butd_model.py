#!/usr/bin/env python
"""Fetch bottom-up-attention's Visual Genome models (Caffe) and vocabularies; optionally convert them.

    python data/scripts/fetch_butd_model.py                      # both models and both vocabularies
    python data/scripts/fetch_butd_model.py --model 36 --convert # the fixed-36-box model, converted
    python data/scripts/fetch_butd_model.py --mirror /mnt/models  # a folder or URL holding the same file names

The two published models (peteanderson80/bottom-up-attention README):

- ``10-100``: ``resnet101_faster_rcnn_final.caffemodel``, the adaptive 10 to 100 boxes features and the README's
  mAP (objects 10.2 %, attributes 7.8 % on vg val);
- ``36``: ``resnet101_faster_rcnn_final_iter_320000.caffemodel``, trained for fewer iterations, which made the
  fixed 36-box features most vision-language code reads.

Each is tried at every host it was published on, in order (no checksum was ever published: the sha256 of what
arrived is printed). The vocabularies come from the repository's ``data/genome/1600-400-20/``. Everything goes
into data/butd/ (--out-dir); --convert writes ``res101_butd_<model>.pth`` there with tools/convert_from_caffe.py's
converter.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import time
import urllib.error

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.convert.caffemodel import read_caffemodel
from faster_rcnn.convert.from_caffe import convert_butd, read_vocabulary
from faster_rcnn.convert.io import write_detector
from faster_rcnn.errors import DISK_ERRNOS, DownloadError, ModelFileError, UsageError
from faster_rcnn.utils.download import download, file_digest

_GCS_NEW = 'https://storage.googleapis.com/up-down-attention'
_GCS_OLD = 'https://storage.googleapis.com/bottom-up-attention'
MODELS = {
    '10-100': ('resnet101_faster_rcnn_final.caffemodel',
               (f'{_GCS_NEW}/resnet101_faster_rcnn_final.caffemodel',
                f'{_GCS_OLD}/resnet101_faster_rcnn_final.caffemodel',
                'https://www.dropbox.com/s/5xethd2nxa8qrnq/resnet101_faster_rcnn_final.caffemodel?dl=1',
                'https://www.dropbox.com/s/wqada4qiv1dz9dk/resnet101_faster_rcnn_final.caffemodel?dl=1',
                'https://www.dropbox.com/s/tr24q7h0zm2wnjv/resnet101_faster_rcnn_final.caffemodel?dl=1')),
    '36': ('resnet101_faster_rcnn_final_iter_320000.caffemodel',
           (f'{_GCS_OLD}/resnet101_faster_rcnn_final_iter_320000.caffemodel',
            'https://www.dropbox.com/s/2h4hmgcvpaewizu/resnet101_faster_rcnn_final_iter_320000.caffemodel?dl=1')),
}
VOCAB_BASE = 'https://raw.githubusercontent.com/peteanderson80/bottom-up-attention/master/data/genome/1600-400-20'
VOCABS = ('objects_vocab.txt', 'attributes_vocab.txt')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description="Fetch bottom-up-attention's Caffe models and vocabularies",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--model', default='all', choices=('all', *MODELS),
                        help='10-100 (resnet101_faster_rcnn_final), 36 (..._iter_320000) or all (default)')
    parser.add_argument('--out-dir', default=None, help='where the files go (default: data/butd)')
    parser.add_argument('--mirror', default=None,
                        help='a folder or URL holding the published file names (tried instead of the hosts)')
    parser.add_argument('--convert', action='store_true', help='also write res101_butd_<model>.pth detector files')
    parser.add_argument('--force', action='store_true', help='convert again even if the detector file exists')
    return parser.parse_args(argv)


def _from_folder(mirror: str, name: str, dst: str) -> None:
    src = osp.join(mirror, name)
    if not osp.isfile(src):
        raise UsageError(f'--mirror {mirror}: {src} does not exist (expected <mirror>/{name})')
    shutil.copyfile(src, dst + '.part')
    os.replace(dst + '.part', dst)


def fetch_file(name: str, urls: tuple[str, ...], out_dir: str, mirror: str | None) -> str:
    """``out_dir/name``, downloaded from the mirror or the first host that answers (kept if already there)."""
    dst = osp.join(out_dir, name)
    if osp.isfile(dst):
        print(f'{dst} already downloaded')
        return dst
    os.makedirs(out_dir, exist_ok=True)
    if mirror and '://' not in mirror:
        _from_folder(mirror, name, dst)
        return dst
    if mirror:
        urls = (f'{mirror.rstrip("/")}/{name}',)
    failures = []
    for url in urls:
        try:
            download(url, dst)
            return dst
        except (urllib.error.URLError, OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
                raise
            failures.append(f'{url} ({getattr(e, "reason", e)})')
            print(f'  failed: {failures[-1]}')
    raise DownloadError(f'{name}: no host answered ({"; ".join(failures)}); download it by hand from one of these '
                        f'into {out_dir}/ (or pass --mirror)')


def check_caffemodel(path: str) -> None:
    """A downloaded file that is not BUTD's caffemodel (a host's HTML page, a cut transfer) is removed and named."""
    try:
        layers = read_caffemodel(path)
        if 'cls_score' not in layers or 'rpn_cls_score' not in layers:
            raise ModelFileError(f'{path} is a caffemodel without cls_score / rpn_cls_score: not the BUTD detector')
    except ModelFileError as e:
        os.replace(path, path + '.bad')
        raise DownloadError(f'{e}; moved to {path}.bad: fetch again, or from another host (--mirror)') from None
    print(f'{path}: {len(layers)} layers with weights, sha256 {file_digest(path, "sha256")} (none is published)')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(cfg.DATA_DIR, 'butd')
    vocab = {name: fetch_file(name, (f'{VOCAB_BASE}/{name}',), out_dir, args.mirror) for name in VOCABS}
    objects = read_vocabulary(vocab['objects_vocab.txt'], 'objects_vocab.txt', '__background__')
    attributes = read_vocabulary(vocab['attributes_vocab.txt'], 'attributes_vocab.txt', '__no_attribute__')
    print(f'vocabularies: {len(objects) - 1} objects, {len(attributes) - 1} attributes')
    for key in MODELS if args.model == 'all' else (args.model,):
        name, urls = MODELS[key]
        existed = osp.isfile(osp.join(out_dir, name))
        path = fetch_file(name, urls, out_dir, args.mirror)
        if not existed:
            check_caffemodel(path)
        if not args.convert:
            continue
        out = osp.join(out_dir, f'res101_butd_{key}.pth')
        if osp.isfile(out) and not args.force:
            print(f'{out} already exists (--force converts again)')
            continue
        t0 = time.perf_counter()
        write_detector(convert_butd(path, objects, attributes, objects_flag='objects_vocab.txt',
                                    attributes_flag='attributes_vocab.txt'), out)
        print(f'converted {name} -> {out} in {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
