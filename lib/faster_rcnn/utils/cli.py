"""Command-line pieces shared by the tools: their argument parser, config files, --set pairs and the device."""
from __future__ import annotations

import argparse
import pprint
import sys

import torch

from faster_rcnn.config import cfg, cfg_from_file, cfg_from_list


class ToolParser(argparse.ArgumentParser):
    """argparse for the tools: every tool takes --debug (tracebacks on), and a bad flag ends the tool with one
    line on stderr (``error: <tool>: <what is wrong>; see <tool> --help``) and exit code 2, not a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='show the Python traceback of an error (also with the environment variable FRCNN_DEBUG=1)')

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f'error: {self.prog}: {message}; see {self.prog} --help\n')


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg', dest='cfg_file', default=None, help='experiment config file (YAML)')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER,
                        help='config overrides as KEY VALUE pairs, e.g. --set TRAIN.SCALES "[500]" POOLING_MODE align '
                             '(must come last)')
    parser.add_argument('--override', action='store_true',
                        help='let --cfg / --set change the keys a model file records (its normalisation, anchors, '
                             'pooling, layout); without it such a change is an error naming the key')
    parser.add_argument('--device', default=None,
                        help="'cuda', 'cuda:N' or 'cpu' (default: cuda when available); under torchrun each "
                             'process takes cuda:LOCAL_RANK')


def apply_config(args: argparse.Namespace, verbose: bool = True) -> None:
    """Merge --cfg then --set into the global cfg (errors name the offending key)."""
    if args.cfg_file is not None:
        cfg_from_file(args.cfg_file)
    if args.set_cfgs:
        # --set takes the rest of the line: a --debug after it is the flag, not a key.
        cfg_from_list([a for a in args.set_cfgs if a != '--debug'])
    if verbose:
        print('Using config:')
        pprint.pprint(cfg)


def apply_detector_config(args: argparse.Namespace, detector, *, verbose: bool = True, test_keys: bool = True) -> None:
    """The config of a run on a detector file: the file's record first (its model keys fixed), then --cfg and
    --set, checked against it. A file without a record and no --cfg gets a warning: it would run with the
    defaults, which may not be what it was trained with."""
    recorded = detector.apply_config(allow_override=getattr(args, 'override', False), test_keys=test_keys)
    if not recorded and args.cfg_file is None:
        print(f'warning: {detector.path} records no config (an older snapshot or a bare state_dict) and no --cfg '
              'was given: it runs with the default normalisation, anchors and layout; pass the --cfg it was '
              'trained with', file=sys.stderr)
    elif recorded and verbose:
        print(f'Model config recorded in {detector.path} applied')
    apply_config(args, verbose=verbose)


def resolve_device(name: str | None) -> str:
    if name is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        from faster_rcnn.utils.errors import UsageError
        raise UsageError(f'--device {name}: CUDA is not available on this machine; use --device cpu')
    return name
