"""Where the project's folders are by default: the root (output/, tensorboard/) and the data folder.

The environment variable ``FRCNN_ROOT_DIR`` sets the root; otherwise it is the source checkout when the package
runs from one (``pip install -e .``), else the current directory (``pip install .``, where the package sits in
site-packages). ``FRCNN_DATA_DIR`` sets the data folder (default ``<root>/data``). The config's ROOT_DIR and
DATA_DIR start from these; library functions that need a folder take it as an argument and fall back to them.
"""
from __future__ import annotations

import os
import os.path as osp


def default_root() -> str:
    if os.environ.get('FRCNN_ROOT_DIR'):
        return osp.abspath(os.environ['FRCNN_ROOT_DIR'])
    checkout = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
    if osp.isfile(osp.join(checkout, 'setup.py')) and osp.isdir(osp.join(checkout, 'experiments')):
        return checkout
    return osp.abspath(os.getcwd())


def default_data_dir(root: str | None = None) -> str:
    return osp.abspath(os.environ.get('FRCNN_DATA_DIR') or osp.join(root or default_root(), 'data'))
