#!/usr/bin/env python
"""Download COCO into data/coco/{annotations, images/<split>} as tf-faster-rcnn expects it.

    python data/scripts/fetch_coco.py --year 2017                    # train2017, val2017, annotations
    python data/scripts/fetch_coco.py --year 2014                    # train2014, val2014, annotations
    python data/scripts/fetch_coco.py --year 2017 --zips ~/Downloads # archives already at hand

The 2017 archives are checked against their published sha1; the 2014 ones have no published checksum and
are checked for completeness only (size announced by the server, then a readable zip). The minival /
valminusminival 2014 split files (instances_minival2014.json, instances_valminusminival2014.json, from
Detectron's release) go in data/coco/annotations/ by hand.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import urllib.error
import urllib.request
import zipfile

from faster_rcnn.config import cfg
from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.errors import DISK_ERRNOS, DownloadError
from faster_rcnn.utils.download import download, file_digest

# (url, sha1 or None, where its content goes under data/coco)
ARCHIVES = {
    '2017': [('http://images.cocodataset.org/zips/train2017.zip', '10ad623668ab00c62c096f0ed636d6aff41faca5', 'images'),
             ('http://images.cocodataset.org/zips/val2017.zip', '4950dc9d00dbe1c933ee0170f5797584351d2a41', 'images'),
             ('http://images.cocodataset.org/annotations/annotations_trainval2017.zip',
              '8551ee4bb5860311e79dace7e79cb91e432e78b3', '.')],
    '2014': [('http://images.cocodataset.org/zips/train2014.zip', None, 'images'),
             ('http://images.cocodataset.org/zips/val2014.zip', None, 'images'),
             ('http://images.cocodataset.org/annotations/annotations_trainval2014.zip', None, '.')],
}


def fetch_year(year: str, data_dir: str, zips: str | None) -> None:
    coco = osp.join(data_dir, 'coco')
    dl_dir = osp.join(data_dir, 'downloads')
    os.makedirs(dl_dir, exist_ok=True)
    for url, sha1, sub in ARCHIVES[year]:
        name = osp.basename(url)
        path = osp.join(zips, name) if zips else osp.join(dl_dir, name)
        if not osp.exists(path):
            if zips:
                raise FileNotFoundError(f'{path} does not exist (--zips must hold {name})')
            download(url, path)
        if sha1:
            print(f'checking sha1 of {path}')
            got = file_digest(path, 'sha1')
            if got != sha1:
                raise OSError(f'{path}: sha1 {got}, expected {sha1}: damaged download; delete it and retry')
        if not zipfile.is_zipfile(path):
            raise OSError(f'{path} is not a readable zip archive: delete it and download again')
        dest = osp.join(coco, sub)
        os.makedirs(dest, exist_ok=True)
        print(f'unpacking {name} into {dest}')
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():  # refuse members that would escape ``dest``
                target = osp.realpath(osp.join(dest, member))
                if not target.startswith(osp.realpath(dest) + os.sep):
                    raise OSError(f'{path}: unsafe member {member}')
            zf.extractall(dest)
    print(f'COCO {year} is in {coco}')


def main(argv: list[str] | None = None) -> int:
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--year', choices=['2014', '2017'], default='2017')
    p.add_argument('--data-dir', default=cfg.DATA_DIR, help='cfg.DATA_DIR (default: data/, or $FRCNN_DATA_DIR)')
    p.add_argument('--zips', default=None, help='folder holding already downloaded archives')
    args = p.parse_args(argv)
    try:
        fetch_year(args.year, args.data_dir, args.zips)
    except (OSError, urllib.error.URLError) as e:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise
        names = ', '.join(osp.basename(u) for u, _, _ in ARCHIVES[args.year])
        raise DownloadError(f'{e}; without network access, download {names} from http://images.cocodataset.org/ '
                            'on another machine and run this script again with --zips <folder>') from None
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
