"""How the tools end on a user's mistake: one line on stderr and a documented exit code, no traceback.

``error: <file or key>: <what is wrong>; <what to do>`` is the form of every message (DESIGN section 5). The
traceback is for our own bugs, and for everything when ``--debug`` is on the command line or the environment
variable ``FRCNN_DEBUG`` is set (to anything but 0).

Exit codes (the same for every tool and script):

====  ========================================================================================
0     success
1     an unexpected error (a bug: the traceback is printed)
2     a usage or configuration mistake: flags, --cfg / --set values, unknown dataset or network
3     training stopped: a loss or weight became NaN or infinite
4     a dataset problem: annotations, image files, empty splits
5     a model or weight file problem: unreadable, truncated, foreign, another network or class count
6     the disk: full, not writable, or a file cannot be written
7     a download or network problem (the fetch scripts)
8     a distributed run lost a process (it died, or did not answer within FRCNN_DIST_TIMEOUT seconds)
130   interrupted (SIGINT / Ctrl-C); 143 terminated (SIGTERM): training writes a snapshot first
====  ========================================================================================
"""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable, Sequence

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_DATA = 4
EXIT_MODEL = 5
EXIT_DISK = 6
EXIT_NETWORK = 7
EXIT_DISTRIBUTED = 8
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

# errno values of a full, read-only or forbidden disk (exit code 6).
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)


class UserError(Exception):
    """A mistake the user can fix; its message says what and how. ``exit_code`` is the tool's exit status."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(UserError):
    exit_code = EXIT_USAGE


class DataError(UserError):
    exit_code = EXIT_DATA


class MissingFileError(DataError, FileNotFoundError):
    """A file the dataset lists does not exist (also a FileNotFoundError, for callers that catch that)."""


class ModelFileError(UserError):
    exit_code = EXIT_MODEL


class DiskError(UserError):
    exit_code = EXIT_DISK


class DownloadError(UserError):
    exit_code = EXIT_NETWORK


class StoppedBySignal(UserError):
    """Training stopped on SIGINT / SIGTERM after writing a snapshot; the same command resumes it."""

    def __init__(self, message: str, signum: int) -> None:
        import signal
        super().__init__(message, EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED)

# Fragments of the errors torch.distributed raises when a peer process is gone or silent.
_PEER_LOST = ('Connection closed by peer', 'Connection reset by peer', 'Timed out', 'timed out', 'Broken pipe',
              'NCCL communicator was aborted', 'ProcessGroupGloo', 'ProcessGroupNCCL', 'DistBackendError')


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get('FRCNN_DEBUG', '0') not in ('', '0')


def _user_error(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) when ``exc`` is a user's mistake this project reports; None for a bug."""
    # Imported here: the tools must be able to report errors raised before these modules load.
    from faster_rcnn.config import ConfigError
    from faster_rcnn.convert.tensorbundle import CheckpointFormatError
    from faster_rcnn.datasets.voc_xml import AnnotationError
    from faster_rcnn.engine.checkpoint import CheckpointError

    if isinstance(exc, UserError):
        return str(exc), exc.exit_code
    if isinstance(exc, ConfigError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, (CheckpointError, CheckpointFormatError)):
        return str(exc), EXIT_MODEL
    if isinstance(exc, AnnotationError):
        return str(exc), EXIT_DATA
    if type(exc).__name__ == 'NonFiniteLossError':
        return str(exc), EXIT_DIVERGED
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


def _in_distributed_run() -> bool:
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def run_tool(main: Callable[[], int | None]) -> int:
    """Run a tool's ``main``; a user's mistake ends it with ``error: ...`` on stderr and its exit code."""
    debug = debug_requested()
    try:
        code = main()
        return int(code or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print('error: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that decides what the user sees
        known = _user_error(exc)
        if known is None or debug:
            if known is None:
                traceback.print_exc()
                print('error: this is a bug in faster-rcnn (the traceback above says where); please report it',
                      file=sys.stderr)
                return EXIT_BUG
            raise
        message, code = known
        print(f'error: {_one_line(message)}', file=sys.stderr)
        return code


def _one_line(message: str) -> str:
    """Messages with details on later lines are folded into one line. An error raised in a DataLoader worker
    arrives with the worker's traceback in its text: only its own message (the last line) is kept."""
    if 'Original Traceback' in message:
        last = [line for line in message.splitlines() if line.strip()][-1].strip()
        head, sep, rest = last.partition(': ')
        message = rest if sep and head.replace('.', '').replace('_', '').isalnum() else last
    message = ' '.join(part.strip() for part in message.splitlines() if part.strip())
    return message[len('error: '):] if message.startswith('error: ') else message
