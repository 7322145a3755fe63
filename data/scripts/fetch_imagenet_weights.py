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

_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

import torch

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--net', required=True, choices=list(IMAGENET_NETS) + ['all'])
    parser.add_argument('--out', default=osp.join(_ROOT, 'data', 'imagenet_weights'),
                        help='directory to write <net>.pth into (default: data/imagenet_weights)')
    parser.add_argument('--mirror', default=None, help='base URL holding torchvision\'s file names')
    args = parser.parse_args(argv)
    nets = list(IMAGENET_NETS) if args.net == 'all' else [args.net]
    failed = []
    for net in nets:
        try:
            fetch(net, args.out, args.mirror)
        except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError on hash)
            url = imagenet_url(net)
            print(f'error: could not download the {net} weights ({type(e).__name__}: {e}).\n'
                  f'  Download {url} by hand (any machine with internet access) and save it as '
                  f'{osp.join(args.out, net + ".pth")}\n'
                  f'  or put it, under its own name, in {osp.join(torch.hub.get_dir(), "checkpoints")}.',
                  file=sys.stderr)
            failed.append(net)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
