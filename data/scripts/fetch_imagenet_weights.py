#!/usr/bin/env python
"""Download torchvision's ImageNet weights into data/imagenet_weights/<net>.pth (hash-checked).

    python data/scripts/fetch_imagenet_weights.py --net res101
    python data/scripts/fetch_imagenet_weights.py --net all
    python data/scripts/fetch_imagenet_weights.py --net vgg16 --mirror file:///mnt/models/

``--mirror`` replaces the directory part of torchvision's URLs (the file names, which carry the hash
prefix that is checked, stay the same): for machines that reach a local copy but not download.pytorch.org.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

import torch

from faster_rcnn.config import cfg
from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.errors import DISK_ERRNOS, DownloadError
from faster_rcnn.nets.weights import IMAGENET_NETS, imagenet_url


def _hash_prefix(url: str) -> str:
    # torchvision names its files <name>-<first 8+ hex digits of the sha256>.pth
    stem = osp.splitext(osp.basename(url))[0]
    return stem.rsplit('-', 1)[-1]


def fetch(net: str, out_dir: str, mirror: str | None = None) -> str:
    url = imagenet_url(net)
    if mirror:
        url = mirror.rstrip('/') + '/' + osp.basename(url)
    dst = osp.join(out_dir, f'{net}.pth')
    if osp.isfile(dst):
        print(f'{dst} already exists, skipping {net}')
        return dst
    os.makedirs(out_dir, exist_ok=True)
    print(f'downloading {url} -> {dst}')
    torch.hub.download_url_to_file(url, dst, hash_prefix=_hash_prefix(url), progress=sys.stderr.isatty())
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--net', required=True, choices=list(IMAGENET_NETS) + ['all'])
    parser.add_argument('--out', default=osp.join(cfg.DATA_DIR, 'imagenet_weights'),
                        help='directory to write <net>.pth into (default: data/imagenet_weights)')
    parser.add_argument('--mirror', default=None, help='base URL holding torchvision\'s file names')
    args = parser.parse_args(argv)
    nets = list(IMAGENET_NETS) if args.net == 'all' else [args.net]
    failed = []
    for net in nets:
        try:
            fetch(net, args.out, args.mirror)
        except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError on hash)
            if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
                raise
            print(f'could not download the {net} weights ({type(e).__name__}: {e})', flush=True)
            failed.append(f'{imagenet_url(net)} -> {osp.join(args.out, net + ".pth")}')
    if failed:
        raise DownloadError(f'could not download {"; ".join(failed)}: download by hand (any machine with internet '
                            f'access) and save under the name after "->", or under its own name in '
                            f'{osp.join(torch.hub.get_dir(), "checkpoints")}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
