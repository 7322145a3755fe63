#!/usr/bin/env python
"""Download PASCAL VOC 2007 / 2012 into data/VOCdevkit<year>/VOC<year> (md5-checked), as tf-faster-rcnn
expects it.

    python data/scripts/fetch_voc.py --year 2007            # trainval + test (~900 MB)
    python data/scripts/fetch_voc.py --year 2012            # trainval (~2 GB)
    python data/scripts/fetch_voc.py --year 2007 --mirror https://my.mirror/voc/   # same file names
    python data/scripts/fetch_voc.py --year 2007 --tars ~/Downloads                 # tars already at hand

Each archive's md5 is checked before it is unpacked; a wrong or partial download is never unpacked.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import tarfile
import urllib.error
import urllib.request

from faster_rcnn.config import cfg
from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.errors import DISK_ERRNOS, DownloadError
from faster_rcnn.utils.download import download, file_digest

# (file name, md5) of the official archives.
ARCHIVES = {
    '2007': [('VOCtrainval_06-Nov-2007.tar', 'c52e279531787c972589f7e41ab4ae64'),
             ('VOCtest_06-Nov-2007.tar', 'b6e924de25625d8de591ea690078ad9f')],
    '2012': [('VOCtrainval_11-May-2012.tar', '6cd6e144f989b92b3379bac3b3de84fd')],
}
BASE_URL = {'2007': 'http://host.robots.ox.ac.uk/pascal/VOC/voc2007/',
            '2012': 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/'}


def safe_extract(tar_path: str, dest: str) -> None:
    with tarfile.open(tar_path) as tar:
        if hasattr(tarfile, 'data_filter'):
            tar.extractall(dest, filter='data')
        else:  # older Pythons: refuse members that would escape ``dest``
            for m in tar.getmembers():
                target = osp.realpath(osp.join(dest, m.name))
                if not target.startswith(osp.realpath(dest) + os.sep) or m.issym() or m.islnk():
                    raise OSError(f'{tar_path}: unsafe member {m.name}')
            tar.extractall(dest)


def merge_move(src: str, dst: str) -> None:
    """Move the tree ``src`` into ``dst``, merging folders (trainval and test share JPEGImages/...)."""
    for dirpath, _, files in os.walk(src):
        rel = osp.relpath(dirpath, src)
        os.makedirs(osp.join(dst, rel), exist_ok=True)
        for name in files:
            os.replace(osp.join(dirpath, name), osp.join(dst, rel, name))


def fetch_year(year: str, data_dir: str, mirror: str | None, tars: str | None) -> None:
    dl_dir = osp.join(data_dir, 'downloads')
    os.makedirs(dl_dir, exist_ok=True)
    target = osp.join(data_dir, f'VOCdevkit{year}', f'VOC{year}')
    for name, md5 in ARCHIVES[year]:
        path = osp.join(tars, name) if tars else osp.join(dl_dir, name)
        if not osp.exists(path):
            if tars:
                raise FileNotFoundError(f'{path} does not exist (--tars must hold {name})')
            download((mirror.rstrip('/') + '/' if mirror else BASE_URL[year]) + name, path)
        print(f'checking md5 of {path}')
        got = file_digest(path, 'md5')
        if got != md5:
            raise OSError(f'{path}: md5 {got}, expected {md5}: the file is damaged or not the official '
                          'archive; delete it and download again')
        tmp = osp.join(data_dir, f'.voc_extract_{year}')
        shutil.rmtree(tmp, ignore_errors=True)
        print(f'unpacking {name}')
        safe_extract(path, tmp)
        merge_move(osp.join(tmp, 'VOCdevkit', f'VOC{year}'), target)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'PASCAL VOC {year} is in {target}')


def main(argv: list[str] | None = None) -> int:
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--year', choices=['2007', '2012', 'all'], default='2007')
    p.add_argument('--data-dir', default=cfg.DATA_DIR, help='cfg.DATA_DIR (default: data/, or $FRCNN_DATA_DIR)')
    p.add_argument('--mirror', default=None, help='base URL holding the official file names')
    p.add_argument('--tars', default=None, help='folder holding already downloaded archives')
    args = p.parse_args(argv)
    years = ['2007', '2012'] if args.year == 'all' else [args.year]
    try:
        for y in years:
            fetch_year(y, args.data_dir, args.mirror, args.tars)
    except (OSError, urllib.error.URLError) as e:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise
        names = ', '.join(n for y in years for n, _ in ARCHIVES[y])
        raise DownloadError(f'{e}; without network access, download {names} on another machine (from '
                            f'{BASE_URL[years[0]]} or a mirror) and run this script again with --tars <folder>') from None
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
