"""The user-error classes, each with the exit code a tool ends with. This module imports nothing of the package.

A user's mistake is an exception of one of these classes; its message names the file, key or object at fault
and says what to do (``<file or key>: <what is wrong>; <what to do>``). ``faster_rcnn.cli.run_tool`` prints it as
one line on stderr and exits with the class's ``exit_code``; anything else is a bug and gets a traceback.
``EXIT_CODES`` is the table the documentation shows (docs/reliability.md is tested against it).
"""
from __future__ import annotations

import errno
import signal

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
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool that SIGPIPE ended
EXIT_TERMINATED = 143

# (code, what it means): the one source of the exit-code table.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, 'success'),
    (EXIT_BUG, 'an unexpected error (a bug: the traceback is printed)'),
    (EXIT_USAGE, 'a usage or configuration mistake: flags, --cfg / --set values, unknown dataset or network'),
    (EXIT_DIVERGED, 'training stopped: a loss or weight became NaN or infinite'),
    (EXIT_DATA, 'a dataset problem: annotations, image files, empty splits'),
    (EXIT_MODEL, 'a model or weight file problem: unreadable, truncated, foreign, another network or class count'),
    (EXIT_DISK, 'the disk: full, not writable, or a file cannot be written'),
    (EXIT_NETWORK, 'a download or network problem (the fetch scripts)'),
    (EXIT_DISTRIBUTED, 'a distributed run lost a process (it died, or did not answer within FRCNN_DIST_TIMEOUT '
                       'seconds)'),
    (EXIT_INTERRUPTED, 'interrupted (SIGINT / Ctrl-C); training writes a snapshot first'),
    (EXIT_BROKEN_PIPE, 'the reader of its output stopped early (a pipe into head); nothing is printed'),
    (EXIT_TERMINATED, 'terminated (SIGTERM); training writes a snapshot first'),
)

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
    """A flag, argument or environment variable is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError, ValueError):
    """A config file, ``--set`` pair or settings value names an unknown key or gives a value of the wrong type."""


class DataError(UserError):
    """A dataset problem: annotations, image files, empty splits."""

    exit_code = EXIT_DATA


class AnnotationError(DataError, ValueError):
    """An annotation file is malformed or describes an impossible box; the message names file and object."""


class MissingFileError(DataError, FileNotFoundError):
    """A file the dataset lists does not exist (also a FileNotFoundError, for callers that catch that)."""


class ModelFileError(UserError):
    """A model, snapshot or weight file cannot be used."""

    exit_code = EXIT_MODEL


class CheckpointError(ModelFileError, RuntimeError):
    """A snapshot or detector file is missing, unreadable or does not fit the network it is loaded into."""


class CheckpointFormatError(ModelFileError, ValueError):
    """A file is not a TensorFlow checkpoint, or is truncated or damaged."""


class ExportError(UsageError):
    """A model whose settings cannot be exported to the asked format (the message names the key)."""


class DiskError(UserError):
    """A file cannot be written: a full or read-only disk, a folder that is not writable."""

    exit_code = EXIT_DISK


class DownloadError(UserError):
    """A download failed or gave a file other than the published one."""

    exit_code = EXIT_NETWORK


class NonFiniteLossError(UserError, RuntimeError):
    """A training loss or weight became NaN or infinite; no snapshot was written after it."""

    exit_code = EXIT_DIVERGED


class DistributedError(UserError, RuntimeError):
    """Another process of a distributed run died or stopped answering."""

    exit_code = EXIT_DISTRIBUTED


class StoppedBySignal(UserError):
    """Training stopped on SIGINT / SIGTERM after writing a snapshot; the same command resumes it."""

    exit_code = EXIT_INTERRUPTED  # 143 for SIGTERM, set per instance

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message, EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED)
        self.signum = signum
