#!/usr/bin/env python
"""Fetch a published Faster R-CNN detector and convert it to where the scripts and the demo look for it.

    python data/scripts/fetch_faster_rcnn_models.py --net res101 --dataset pascal_voc_0712       # tf-faster-rcnn's
    python data/scripts/fetch_faster_rcnn_models.py --net res101 --dataset coco
    python data/scripts/fetch_faster_rcnn_models.py --net res101 --dataset pascal_voc_0712 --mirror /mnt/models
    python data/scripts/fetch_faster_rcnn_models.py --net res101 --dataset pascal_voc_0712 --archive voc_0712_80k-110k.tgz
    python data/scripts/fetch_faster_rcnn_models.py --source rtl --net res101 --dataset pascal_voc_0712 \\
        --archive res101_faster_rcnn_iter_110000.pth                                            # pytorch-faster-rcnn's

The archive is downloaded from the hosts tf-faster-rcnn names (into data/faster_rcnn_models/), its md5
checked where one is published, unpacked, and converted into
``output/<net>/<train imdb>/default/<net>_faster_rcnn_iter_<N>.pth``. Then::

    ./experiments/scripts/test_faster_rcnn.sh 0 pascal_voc_0712 res101
    python tools/demo.py --net res101 --dataset pascal_voc_0712

--mirror is a folder or URL with the hosts' layout (<mirror>/<net>/<archive>); --archive a file you
downloaded yourself (an archive, a checkpoint, or for --source rtl the .pth). Models behind Google Drive
need a browser: the script says what to download and where to put it.
"""
from __future__ import annotations

import argparse
import glob
import os
import os.path as osp
import re
import shutil
import sys
import tarfile
import urllib.error
import zipfile

from faster_rcnn.config import cfg
from faster_rcnn.convert.from_rtl import convert_rtl_state_dict
from faster_rcnn.convert.from_tensorflow import convert_tf_checkpoint
from faster_rcnn.convert.io import write_detector
from faster_rcnn.convert.published import RTL_DRIVE, TF_DRIVE, TF_HOSTS, PublishedModel, published
from faster_rcnn.datasets.factory import category_ids_of, classes_of
from faster_rcnn.datasets.recipes import recipe
from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.utils.download import download, file_digest
from faster_rcnn.errors import DownloadError, ModelFileError, UsageError

NETS = ('vgg16', 'res50', 'res101', 'res152', 'mobile')
_ITER_RE = re.compile(r'_iter_(\d+)')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Fetch and convert a published Faster R-CNN detector',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--net', default='res101', choices=NETS)
    parser.add_argument('--dataset', default='pascal_voc_0712', choices=('pascal_voc', 'pascal_voc_0712', 'coco'))
    parser.add_argument('--source', default='tf', choices=('tf', 'rtl'),
                        help='tf: tf-faster-rcnn (TensorFlow checkpoints); rtl: ruotianluo/pytorch-faster-rcnn')
    parser.add_argument('--mirror', default=None, help='a folder or URL laid out as the hosts: <mirror>/<net>/<archive>')
    parser.add_argument('--archive', default=None,
                        help='use this file instead of downloading: an archive (.tgz, .tar, .zip), a checkpoint '
                             '(.ckpt prefix, .index, or its folder) or, with --source rtl, the .pth')
    parser.add_argument('--skip-checksum', action='store_true',
                        help='accept an archive whose md5 differs from the published one (a repackaged copy you trust)')
    parser.add_argument('--force', action='store_true', help='convert again even if the model file exists')
    return parser.parse_args(argv)


def models_dir() -> str:
    return osp.join(cfg.DATA_DIR, 'faster_rcnn_models')


def manual_steps(model: PublishedModel | None, net: str, dataset: str, source: str, why: str) -> DownloadError:
    """Print what to download by hand and where to put it; returns the error that ends the script."""
    r = recipe(dataset)
    if source == 'rtl':
        name = model.archive if model else f'{net}_faster_rcnn_iter_<N>.pth'
        where = RTL_DRIVE
        what = f'{name} (the {net} model trained on {r.train_imdb})'
    else:
        name = model.archive if model and model.archive else f'the archive of {net} trained on {r.train_imdb}'
        where = ' or '.join(f'{h}/{net}/' for h in TF_HOSTS[:1]) + f', or the Google Drive folder {TF_DRIVE}'
        what = name
    dest = osp.join(models_dir(), net)
    print(f'\n{why}. To get this model by hand:\n'
          f'  1. open {where} in a browser and download {what}\n'
          f'  2. put it in {dest}/ (any folder works)\n'
          f'  3. run: python data/scripts/fetch_faster_rcnn_models.py --source {source} --net {net} '
          f'--dataset {dataset} --archive {dest}/{model.archive if model and model.archive else "<the file>"}\n')
    return DownloadError(f'{source} {net} {dataset}: {why}; download it by hand as printed above, then pass --archive')


def obtain_archive(model: PublishedModel | None, args: argparse.Namespace) -> str:
    """The local path of the archive (downloaded if needed, md5-checked where a checksum is published)."""
    if args.archive:
        if not osp.exists(args.archive):
            raise UsageError(f'--archive {args.archive}: no such file or folder')
        path = args.archive
    elif args.source == 'rtl':
        raise manual_steps(model, args.net, args.dataset, 'rtl', "pytorch-faster-rcnn's models are on Google Drive only, "
                           'which needs a browser')
    elif model is None or model.archive is None:
        raise manual_steps(model, args.net, args.dataset, 'tf', f'the archive name of tf-faster-rcnn\'s {args.net} '
                           f'{args.dataset} model is not published in its scripts')
    else:
        path = _download(model, args)
    archive = is_archive(path)
    if model is not None and model.md5 and archive:
        digest = file_digest(path, 'md5')
        if digest != model.md5:
            if not args.skip_checksum:
                raise DownloadError(f'{path}: md5 {digest} differs from the published {model.md5} ({model.provenance}): '
                                    'the download is damaged or another file; delete it and fetch again, or pass '
                                    '--skip-checksum if you trust it')
            print(f'warning: {path}: md5 {digest} differs from the published {model.md5}; used anyway (--skip-checksum)')
        else:
            print(f'{path}: md5 {digest} matches the published checksum')
    elif archive:
        print(f'{path}: no checksum is published for this archive; sha256 {file_digest(path, "sha256")}')
    return path


def _download(model: PublishedModel, args: argparse.Namespace) -> str:
    dst = osp.join(models_dir(), args.net, model.archive)
    if osp.isfile(dst):
        print(f'{dst} already downloaded')
        return dst
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if args.mirror and '://' not in args.mirror:  # a local folder laid out as the hosts
        src = osp.join(args.mirror, args.net, model.archive)
        if not osp.isfile(src):
            raise UsageError(f'--mirror {args.mirror}: {src} does not exist (expected <mirror>/<net>/<archive>)')
        shutil.copyfile(src, dst + '.part')
        os.replace(dst + '.part', dst)
        return dst
    bases = [args.mirror.rstrip('/')] if args.mirror else list(TF_HOSTS)
    failures = []
    for base in bases:
        url = f'{base}/{args.net}/{model.archive}'
        try:
            download(url, dst)
            return dst
        except (urllib.error.URLError, OSError, ValueError) as e:
            failures.append(f'{url}: {getattr(e, "reason", e)}')
            print(f'could not download {url} ({getattr(e, "reason", e)})')
    raise manual_steps(model, args.net, args.dataset, 'tf', 'no host could be reached (' + '; '.join(failures) + ')')


def _safe_members(names: list[str], archive: str) -> None:
    for name in names:
        norm = osp.normpath(name)
        if osp.isabs(name) or norm.startswith('..'):
            raise ModelFileError(f'{archive}: the archive holds a path outside its folder ({name}); refusing to unpack it')


def is_archive(path: str) -> bool:
    """A tar or zip archive (a .pth is a zip file too, but a model, not an archive)."""
    return osp.isfile(path) and not path.endswith(('.pth', '.pt')) and (tarfile.is_tarfile(path) or zipfile.is_zipfile(path))


def unpack(path: str, dest: str) -> str:
    """Unpack an archive into ``dest`` (no path may leave it); a file or folder that is not an archive is
    returned as it is."""
    if not is_archive(path):
        return path
    os.makedirs(dest, exist_ok=True)
    print(f'unpacking {path} into {dest}')
    try:
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                _safe_members(tar.getnames(), path)
                if hasattr(tarfile, 'data_filter'):
                    tar.extractall(dest, filter='data')
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extractall(dest)
        else:
            with zipfile.ZipFile(path) as z:
                _safe_members(z.namelist(), path)
                z.extractall(dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise ModelFileError(f'{path}: the archive is damaged or truncated ({e}); delete it and fetch it again') from None
    return dest


def find_model_file(root: str, source: str, archive: str) -> str:
    """The checkpoint (tf: its prefix) or .pth (rtl) inside ``root``; the highest iteration if several."""
    if source == 'tf':
        if osp.isfile(root) or root.endswith('.ckpt'):
            return root
        found = glob.glob(osp.join(glob.escape(root), '**', '*.index'), recursive=True)
        found = [f[:-len('.index')] for f in found]
    else:
        if osp.isfile(root):
            return root
        found = glob.glob(osp.join(glob.escape(root), '**', '*.pth'), recursive=True)
    if not found:
        kind = 'TensorFlow checkpoint (*.ckpt.index)' if source == 'tf' else '.pth model'
        raise ModelFileError(f'{archive}: no {kind} inside; is it the right archive?')
    return max(found, key=lambda f: int(m.group(1)) if (m := _ITER_RE.search(osp.basename(f))) else -1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = published(args.source, args.net, args.dataset)
    r = recipe(args.dataset)
    path = obtain_archive(model, args)
    unpacked = unpack(path, osp.join(models_dir(), f'{args.source}_{args.net}_{args.dataset}'))
    ckpt = find_model_file(unpacked, args.source, path)
    m = _ITER_RE.search(osp.basename(ckpt))
    iters = int(m.group(1)) if m else (model.iters if model else r.iters)
    out = osp.join(cfg.ROOT_DIR, 'output', args.net, r.train_imdb, 'default', f'{args.net}_faster_rcnn_iter_{iters}.pth')
    if osp.isfile(out) and not args.force:
        print(f'{out} exists already (pass --force to convert again)')
    else:
        classes = list(classes_of(r.test_imdb))
        print(f'converting {ckpt} ({args.net}, {len(classes) - 1} classes, anchors {list(r.anchor_scales)})')
        ids = category_ids_of(r.test_imdb)  # VOC 1..20, COCO's 80 ids
        if args.source == 'tf':
            payload = convert_tf_checkpoint(ckpt, args.net, classes, anchor_scales=r.anchor_scales, category_ids=ids)
        else:
            payload = convert_rtl_state_dict(ckpt, args.net, classes, anchor_scales=r.anchor_scales, category_ids=ids)
        payload['source']['published'] = {'dataset': args.dataset, 'mean_ap': model.mean_ap if model else None}
        write_detector(payload, out)
        print(f'wrote {out}')
    env = f'ITERS={iters} ' if iters != r.iters else ''
    print(f'\nTest it:  {env}./experiments/scripts/test_faster_rcnn.sh 0 {args.dataset} {args.net}\n'
          f'Demo:     python tools/demo.py --net {args.net} --dataset {args.dataset}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
