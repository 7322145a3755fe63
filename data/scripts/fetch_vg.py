#!/usr/bin/env python
"""Download Visual Genome and bottom-up-attention's splits and 1600/400 vocabularies into data/vg, the layout
the ``vg_1600-400-20_*`` datasets read (lib/faster_rcnn/datasets/vg.py):

    data/vg/{objects,attributes,image_data}.json  data/vg/VG_100K/*.jpg  data/vg/VG_100K_2/*.jpg
    data/vg/genome/{train,val,test}.txt  data/vg/genome/1600-400-20/{objects,attributes,relations}_vocab.txt

    python data/scripts/fetch_vg.py                      # everything (~15 GB of images, ~1 GB of JSON)
    python data/scripts/fetch_vg.py --no-images          # the annotations, splits and vocabularies only
    python data/scripts/fetch_vg.py --zips ~/Downloads   # archives already at hand (same file names)
    python data/scripts/fetch_vg.py --mirror https://my.mirror/vg/ --genome-mirror https://my.mirror/genome/

The split and vocabulary files are checked against the sha256 of bottom-up-attention's commit 514e561 (the one
its models were trained with). Visual Genome publishes no checksums: its archives are checked for completeness
(the size the server announced, then a readable zip) and for the content the reader needs.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import urllib.error
import zipfile

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.config import cfg
from faster_rcnn.errors import DISK_ERRNOS, DownloadError
from faster_rcnn.utils.download import download, file_digest

IMAGES_URL = 'https://cs.stanford.edu/people/rak248/VG_100K_2/'
JSON_URL = 'https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset/'
GENOME_URL = ('https://raw.githubusercontent.com/peteanderson80/bottom-up-attention/'
              '514e561b7179be38f7f93ada102cdf98a5e32c72/data/genome/')

# (archive, where it is published, what it must leave under data/vg)
IMAGE_ARCHIVES = [('images.zip', IMAGES_URL, 'VG_100K'), ('images2.zip', IMAGES_URL, 'VG_100K_2')]
JSON_ARCHIVES = [('image_data.json.zip', JSON_URL, 'image_data.json'),
                 ('objects.json.zip', JSON_URL, 'objects.json'),
                 ('attributes.json.zip', JSON_URL, 'attributes.json')]
# bottom-up-attention's files (path under data/genome there and under data/vg/genome here, sha256).
GENOME_FILES = [
    ('train.txt', 'ca4a2d6a745184a516053cea1c10c612b435d930fbd402c3d98c4b09df612d90'),
    ('val.txt', 'd41a9204db2ef0fc2a81861fa1baf250a1b2b4b9b1f7a44dd21ffd36c392e882'),
    ('test.txt', 'dc9a45f031190d388e162538e15bf799036d02ac38e7da8dddd945a763c5c03c'),
    ('1600-400-20/objects_vocab.txt', 'd985096938db111f585a311ff0a2ee9092fbc325c3a619ac9622e57e5389722f'),
    ('1600-400-20/attributes_vocab.txt', '19981b5a288f284c576545a21de78634f1a78c26b6949f7acf12b924739fdc66'),
    ('1600-400-20/relations_vocab.txt', '664bb4a8f363196d86e3b800a29746d3c60f36d4fd211fa249fa572e1579d3fe'),
]


def _base(url: str) -> str:
    return url.rstrip('/') + '/'


def fetch_archive(name: str, url: str, produces: str, vg_dir: str, dl_dir: str, zips: str | None) -> None:
    """Download (or take from ``zips``) one archive, check it is a zip, unpack it into ``vg_dir`` and check
    that ``produces`` appeared there."""
    target = osp.join(vg_dir, produces)
    if osp.exists(target):
        print(f'{target} exists: skipping {name}')
        return
    path = osp.join(zips, name) if zips else osp.join(dl_dir, name)
    if not osp.exists(path):
        if zips:
            raise FileNotFoundError(f'{path} does not exist (--zips must hold {name})')
        download(url + name, path)
    if not zipfile.is_zipfile(path):
        raise OSError(f'{path} is not a readable zip archive: delete it and download again')
    print(f'unpacking {name} into {vg_dir}')
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():  # refuse members that would escape ``vg_dir``
            dest = osp.realpath(osp.join(vg_dir, member))
            if not dest.startswith(osp.realpath(vg_dir) + os.sep):
                raise OSError(f'{path}: unsafe member {member}')
        zf.extractall(vg_dir)
    if not osp.exists(target):
        raise OSError(f'{path} did not contain {produces}: not the Visual Genome archive; delete it and download '
                      'again')


def fetch_genome(vg_dir: str, base: str) -> None:
    """BUTD's split and vocabulary files into ``vg_dir/genome``, each checked against its sha256."""
    for rel, sha256 in GENOME_FILES:
        path = osp.join(vg_dir, 'genome', rel)
        if osp.exists(path) and file_digest(path, 'sha256') == sha256:
            continue
        os.makedirs(osp.dirname(path), exist_ok=True)
        download(base + rel, path)
        got = file_digest(path, 'sha256')
        if got != sha256:
            os.remove(path)
            raise OSError(f'{base + rel}: sha256 {got}, expected {sha256}: not bottom-up-attention\'s file '
                          f'(commit 514e561); check --genome-mirror')


def fetch_vg(data_dir: str, mirror: str | None, genome_mirror: str | None, zips: str | None,
             images: bool = True) -> str:
    """Fetch everything into ``<data_dir>/vg``; returns that folder."""
    vg_dir = osp.join(data_dir, 'vg')
    dl_dir = osp.join(data_dir, 'downloads')
    os.makedirs(vg_dir, exist_ok=True)
    os.makedirs(dl_dir, exist_ok=True)
    fetch_genome(vg_dir, _base(genome_mirror or GENOME_URL))
    for name, url, produces in JSON_ARCHIVES + (IMAGE_ARCHIVES if images else []):
        fetch_archive(name, _base(mirror or url), produces, vg_dir, dl_dir, zips)
    print(f'Visual Genome is in {vg_dir}')
    return vg_dir


def main(argv: list[str] | None = None) -> int:
    p = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-dir', default=cfg.DATA_DIR, help='cfg.DATA_DIR (default: data/, or $FRCNN_DATA_DIR)')
    p.add_argument('--mirror', default=None, help='base URL holding the Visual Genome archives (same file names)')
    p.add_argument('--genome-mirror', default=None,
                   help='base URL holding bottom-up-attention\'s data/genome files (train.txt, 1600-400-20/...)')
    p.add_argument('--zips', default=None, help='folder holding already downloaded Visual Genome archives')
    p.add_argument('--no-images', action='store_true', help='skip the two image archives (~15 GB)')
    args = p.parse_args(argv)
    try:
        fetch_vg(args.data_dir, args.mirror, args.genome_mirror, args.zips, images=not args.no_images)
    except (OSError, urllib.error.URLError) as e:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise
        names = ', '.join(n for n, _, _ in JSON_ARCHIVES + IMAGE_ARCHIVES)
        raise DownloadError(f'{e}; without network access, download {names} (from {JSON_URL} and {IMAGES_URL}) '
                            'on another machine and run this script again with --zips <folder> (and --genome-mirror '
                            'file:///<folder>/ for the split and vocabulary files)') from None
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
