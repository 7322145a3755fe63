"""The one atomic writer: every JSON file, cache, detections file and snapshot goes through ``atomic_write``.

The data is written to a hidden temporary file in the destination's folder (``.<name>.<random>.tmp``), flushed and
fsync'ed, given the umask's permissions, renamed over the destination (``os.replace``, atomic on POSIX), and the
folder is fsync'ed so that the rename itself survives a power loss. Whatever fails or kills the writer, the
destination holds the previous file or the new one, whole; an exception removes the temporary file, and one a
kill leaves behind is hidden and ends in ``.tmp``, so no reader takes it for data (``model_file`` deletes them).
"""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import tempfile
from collections.abc import Iterator
from typing import IO, Any

TMP_SUFFIX = '.tmp'


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', encoding: str | None = None) -> Iterator[IO[Any]]:
    """``with atomic_write(path, 'w', 'utf-8') as f: ...``: ``f`` is the temporary file; on a normal exit of the
    block it replaces ``path`` (temporary file, fsync, rename, fsync of the folder)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # mkstemp's 0600 would make the file private to its owner
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def write_json_atomic(path: str, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_write(path, 'w', 'utf-8') as f:
        json.dump(obj, f, indent=indent)
