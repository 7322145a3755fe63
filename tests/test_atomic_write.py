"""The one atomic writer (utils/atomic.py): a writer killed mid-write, or a failure between its steps, leaves the
previous file intact and no temporary file that a reader could take for data; a finished write is fsync'ed and
so is its folder."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faster_rcnn.datasets.cache import cached_entries
from faster_rcnn.utils import atomic
from faster_rcnn.utils.atomic import atomic_write, write_json_atomic

from tool_runs import _env

_KILLED_WRITER = '''
import os, signal, sys
from faster_rcnn.utils.atomic import atomic_write
with atomic_write(sys.argv[1], 'w', 'utf-8') as f:
    f.write('{"new": [' + '1, ' * 100000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # killed half-way through the new file
'''


def test_a_killed_writer_leaves_the_old_file_and_only_a_hidden_temporary(tmp_path: Path):
    path = tmp_path / 'eval.json'
    write_json_atomic(str(path), {'old': 1})
    proc = subprocess.run([sys.executable, '-c', _KILLED_WRITER, str(path)], env=_env(), timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(path.read_text()) == {'old': 1}
    left = [p.name for p in tmp_path.iterdir() if p.name != 'eval.json']
    assert len(left) == 1 and left[0].startswith('.eval.json.') and left[0].endswith('.tmp')
    assert os.path.getsize(tmp_path / left[0]) > 100000  # the half-written data went there, not to eval.json


def test_a_failure_between_the_steps_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch):
    path = tmp_path / 'cache.json'
    write_json_atomic(str(path), {'old': 1})

    def fail(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(atomic.os, 'replace', fail)  # written and fsync'ed, the rename fails
    with pytest.raises(OSError, match='No space left'):
        write_json_atomic(str(path), {'new': 2})
    monkeypatch.undo()
    with pytest.raises(ZeroDivisionError):
        with atomic_write(str(path), 'w', 'utf-8') as f:  # the producer fails half-way
            f.write('{"new"')
            1 / 0
    assert json.loads(path.read_text()) == {'old': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cache.json']


def test_a_write_fsyncs_the_file_then_its_folder(tmp_path: Path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append('folder' if os.path.isdir(f'/proc/self/fd/{fd}') else 'file')
        real(fd)

    monkeypatch.setattr(atomic.os, 'fsync', spy)
    write_json_atomic(str(tmp_path / 'a.json'), [1, 2])
    assert synced == ['file', 'folder']
    assert json.loads((tmp_path / 'a.json').read_text()) == [1, 2]
    mode = (tmp_path / 'a.json').stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's private 0600


def test_the_roidb_cache_is_written_by_it(tmp_path: Path, monkeypatch):
    calls: list[str] = []
    real = atomic.atomic_write

    def counting(path, *args, **kwargs):
        calls.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(atomic, 'atomic_write', counting)
    entries = cached_entries(str(tmp_path / 'x_gt_roidb.json'), 'k', lambda: [])
    assert entries == [] and calls == ['x_gt_roidb.json']
