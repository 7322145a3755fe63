#!/usr/bin/env python3
"""The network table (``nets/registry.py``) for shell scripts and people:

    python tools/networks.py                    # one line per network: name, yml, ImageNet weights, description
    python tools/networks.py --names            # the names, space-separated
    python tools/networks.py --resolve res101-lg
        # NET_BASE CFG_FILE WEIGHTS: the network, its yml and whether it starts from ImageNet weights (yes / no)

``--resolve`` takes a network's name or ``<network>-<variant>`` with a yml of its own in experiments/cfgs/
(``res101-lg``); the experiment scripts read their choices from it instead of listing networks themselves.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from faster_rcnn.cli import ToolParser, run_tool
from faster_rcnn.errors import UsageError
from faster_rcnn.nets.registry import NETWORKS, TABLE, describe_networks

CFG_DIR = osp.join('experiments', 'cfgs')


def resolve(name: str, root: str) -> tuple[str, str, bool]:
    """(network, yml path relative to ``root``, starts from ImageNet weights) of a network or a variant."""
    if name in TABLE:
        entry = TABLE[name]
        return name, osp.join(CFG_DIR, entry.config_file), entry.imagenet is not None
    base = name.rsplit('-', 1)[0]
    variant = osp.join(CFG_DIR, f'{name}.yml')
    if '-' in name and base in TABLE and osp.isfile(osp.join(root, variant)):
        return base, variant, TABLE[base].imagenet is not None
    raise UsageError(f'NET {name}: not a network and not <network>-<variant> with {variant}; use '
                     f'{describe_networks()} or a variant with its own yml')


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('--names', action='store_true', help='print the names only')
    parser.add_argument('--resolve', metavar='NET', default=None, help='print NET_BASE CFG_FILE WEIGHTS of NET')
    parser.add_argument('--root', default=osp.join(osp.dirname(osp.abspath(__file__)), '..'),
                        help='the checkout whose experiments/cfgs/ holds the ymls (default: this one)')
    args = parser.parse_args(argv)
    if args.resolve is not None:
        base, cfg_file, imagenet = resolve(args.resolve, args.root)
        print(base, cfg_file, 'yes' if imagenet else 'no')
    elif args.names:
        print(' '.join(NETWORKS))
    else:
        for name, entry in TABLE.items():
            weights = '.'.join(entry.imagenet) if entry.imagenet else '-'
            print(f'{name:10s} {osp.join(CFG_DIR, entry.config_file):32s} {weights:36s} {entry.description}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
