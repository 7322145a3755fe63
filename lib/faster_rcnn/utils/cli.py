"""Command-line pieces shared by the tools: config files, --set pairs and the device."""
from __future__ import annotations

import argparse
import pprint

import torch

from faster_rcnn.config import cfg, cfg_from_file, cfg_from_list


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='experiment config file (YAML)')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='config overrides as KEY VALUE pairs, e.g. --set TRAIN.SCALES "[500]" POOLING_MODE align '
                             '(must come last)')
    parser.add_argument('--device', default=None,
                        help="'cuda', 'cuda:N' or 'cpu' (default: cuda when available); under torchrun each "
                             'process takes cuda:LOCAL_RANK')


def apply_config(args: argparse.Namespace, verbose: bool = True) -> None:
    """Merge --cfg then --set into the global cfg (errors name the offending key)."""
    if args.cfg_file is not None:
        cfg_from_file(args.cfg_file)
    if args.set_cfgs is not None:
        cfg_from_list(args.set_cfgs)
    if verbose:
        print('Using config:')
        pprint.pprint(cfg)


def resolve_device(name: str | None) -> str:
    if name is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {name}: CUDA is not available on this machine; use --device cpu')
    return name
