"""The edge: what the tools share. Their argument parser, ``--cfg`` / ``--set`` / a detector file's record merged
into the global config, the settings objects made from it, the device, and how a tool ends on an error.

This module (with ``faster_rcnn.config``) is the only one that reads the global ``cfg``; everything it calls
receives settings objects.

A user's mistake ends a tool with one line on stderr, ``error: <file or key>: <what is wrong>; <what to do>``,
and the exit code of its error class (``faster_rcnn.errors``); ``--debug`` (or FRCNN_DEBUG=1) shows the traceback.
A traceback without it is a bug of ours.
"""
from __future__ import annotations

import argparse
import logging
import os
import pprint
import sys
import traceback
from collections.abc import Callable, Sequence

import torch

from .config import cfg, cfg_from_file, cfg_from_list, check_record_keys, record_keys, set_key
from .errors import (
    DISK_ERRNOS,
    EXIT_BROKEN_PIPE,
    EXIT_BUG,
    EXIT_DISK,
    EXIT_DISTRIBUTED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UserError,
)
from .inference.device import checked_device
from .model_file import DetectorFile
from .settings import ModelSettings, RoidbSettings, TestSettings, TrainSettings


class _StdStream(logging.StreamHandler):
    """A handler writing to ``sys.<name>`` as it is when a message comes (so a replaced stdout is honoured)."""

    def __init__(self, name: str) -> None:
        super().__init__(getattr(sys, name))
        self._name = name

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self._name)
        super().emit(record)


def configure_logging(level: int = logging.INFO) -> None:
    """The tools' output: the package's messages at ``level`` and above as plain lines, INFO and DEBUG on stdout,
    warnings and errors on stderr (what the tools printed before they logged)."""
    package = logging.getLogger('faster_rcnn')
    for handler in [h for h in package.handlers if isinstance(h, _StdStream)]:
        package.removeHandler(handler)
    out, err = _StdStream('stdout'), _StdStream('stderr')
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter('%(message)s'))
        package.addHandler(handler)
    package.setLevel(level)


class ToolParser(argparse.ArgumentParser):
    """argparse for the tools: every tool takes --debug (tracebacks on) and --quiet / --verbose (the library's
    messages: warnings only / debug too), and a bad flag ends the tool with one line on stderr
    (``error: <tool>: <what is wrong>; see <tool> --help``) and exit code 2, not a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='show the Python traceback of an error (also with the environment variable '
                               'FRCNN_DEBUG=1)')
        self.add_argument('--quiet', action='store_true', help="only the library's warnings and the results")
        self.add_argument('--verbose', action='store_true', help="the library's debug messages too")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, rest = super().parse_known_args(args, namespace)
        quiet, verbose = getattr(parsed, 'quiet', False), getattr(parsed, 'verbose', False)
        configure_logging(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
        return parsed, rest

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


def apply_record_to_cfg(detector: DetectorFile, *, allow_override: bool = False, test_keys: bool = True) -> bool:
    """Put a detector file's recorded model keys (fixed: a contradicting --cfg / --set is an error) and TEST keys
    and EXP_DIR (defaults) into the global cfg; False if it records nothing."""
    record = detector.record
    if not record:
        return False
    check_record_keys(record, detector.path)
    record_keys(record.get('model', {}), detector.path, allow_override=allow_override)
    if test_keys:
        for key, value in record.get('test', {}).items():
            if key in cfg.TEST:  # a key that a later version added cannot change the model
                set_key(f'TEST.{key}', value)
        if 'exp_dir' in record:
            cfg.EXP_DIR = str(record['exp_dir'])
    return True


def apply_detector_config(args: argparse.Namespace, detector: DetectorFile, *, verbose: bool = True,
                          test_keys: bool = True) -> None:
    """The config of a run on a detector file: the file's record first (its model keys fixed), then --cfg and
    --set, checked against it. A file without a record and no --cfg gets a warning: it would run with the
    defaults, which may not be what it was trained with."""
    recorded = apply_record_to_cfg(detector, allow_override=getattr(args, 'override', False), test_keys=test_keys)
    if not recorded and args.cfg_file is None:
        print(f'warning: {detector.path} records no config (an older snapshot or a bare state_dict) and no --cfg '
              'was given: it runs with the default normalisation, anchors and layout; pass the --cfg it was '
              'trained with', file=sys.stderr)
    elif recorded and verbose:
        print(f'Model config recorded in {detector.path} applied')
    apply_config(args, verbose=verbose)


# -- settings from the global config ---------------------------------------------------------------------
def model_settings(net: str) -> ModelSettings:
    """The ModelSettings of ``net`` from the global cfg."""
    return ModelSettings.from_config(cfg, net)


def train_settings(num_workers: int | None = None) -> TrainSettings:
    return TrainSettings.from_config(cfg, num_workers)


def test_settings(num_workers: int | None = None) -> TestSettings:
    return TestSettings.from_config(cfg, num_workers)


def roidb_settings() -> RoidbSettings:
    return RoidbSettings.from_config(cfg)


def resolve_device(name: str | None) -> str:
    """--device (default: cuda when available); one that this machine does not have is a UsageError."""
    if name is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    checked_device(name, '--device')
    return name


# -- how a tool ends -------------------------------------------------------------------------------------
# Fragments of the errors torch.distributed raises when a peer process is gone or silent (torch's messages,
# not ours: they have no class of their own).
_PEER_LOST = ('Connection closed by peer', 'Connection reset by peer', 'Timed out', 'timed out', 'Broken pipe',
              'NCCL communicator was aborted', 'ProcessGroupGloo', 'ProcessGroupNCCL', 'DistBackendError')


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get('FRCNN_DEBUG', '0') not in ('', '0')


def _in_distributed_run() -> bool:
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def user_error(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) when ``exc`` is a user's mistake this project reports; None for a bug."""
    if isinstance(exc, UserError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        what = exc.filename or 'a file'
        return f'{what}: {exc.strerror}; free some space or choose a writable folder', EXIT_DISK
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in _PEER_LOST) and _in_distributed_run():
        first = str(exc).strip().splitlines()[0][:200]
        return (f'another process of the distributed run died or stopped answering ({first}); every process stops: '
                'run the same command to resume from the last snapshot (the wait is FRCNN_DIST_TIMEOUT seconds, '
                'default 1800)'), EXIT_DISTRIBUTED
    if isinstance(exc, FileNotFoundError) and exc.filename is None and exc.args:
        return str(exc.args[0]), EXIT_USAGE  # our own messages: they name the file and what to do
    return None


def one_line(message: str) -> str:
    """Messages with details on later lines are folded into one line. An error raised in a DataLoader worker
    arrives with the worker's traceback in its text: only its own message (the last line) is kept."""
    if 'Original Traceback' in message:
        last = [line for line in message.splitlines() if line.strip()][-1].strip()
        head, sep, rest = last.partition(': ')
        message = rest if sep and head.replace('.', '').replace('_', '').isalnum() else last
    message = ' '.join(part.strip() for part in message.splitlines() if part.strip())
    return message[len('error: '):] if message.startswith('error: ') else message


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (an embedding program's)
        pass


def run_tool(main: Callable[[], int | None]) -> int:
    """Run a tool's ``main``; a user's mistake ends it with ``error: ...`` on stderr and its exit code. A reader
    of its output that stops early (``| head``) ends it quietly with 141, as a Unix tool ends on SIGPIPE."""
    debug = debug_requested()
    try:
        code = main()
        sys.stdout.flush()  # a pipe closed by its reader fails here, not in the interpreter's exit
        return int(code or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if debug:
            raise
        print('error: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that decides what the user sees
        known = user_error(exc)
        if known is None or debug:
            if known is None:
                traceback.print_exc()
                print('error: this is a bug in faster-rcnn (the traceback above says where); please report it',
                      file=sys.stderr)
                return EXIT_BUG
            raise
        message, code = known
        print(f'error: {one_line(message)}', file=sys.stderr)
        return code
