"""Faults during training, survived with nothing lost (run as a user runs the tools):

- SIGTERM / SIGINT: a snapshot at the current iteration, exit 143 / 130 with one line, and the same command
  resumes exactly: bitwise the weights and optimizer state of an uninterrupted run;
- SIGKILL at a random moment: no half-written snapshot under a final name, the stray temporary cleaned at
  the next start, the same exact resume;
- a truncated newest snapshot: reported, the previous one used, the same final weights;
- a full disk while writing a snapshot (a file-size limit): exit 6, the earlier snapshots whole;
- snapshots get the permissions of the umask;
- a process of a distributed run that dies: the run stops with a message, it does not hang.

The reference for "uninterrupted" is the session's 40-iteration run (``trained``).
"""
from __future__ import annotations

import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tool_runs import REPO, _env, run_tool, snapshot, train_args


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

def _same_training_state(a_path: Path, b_path: Path) -> int:
    """Assert two snapshots hold bitwise the same weights and optimizer state; returns how many tensors."""
    a = torch.load(a_path, map_location='cpu', weights_only=True)
    b = torch.load(b_path, map_location='cpu', weights_only=True)
    count = 0
    assert a['model'].keys() == b['model'].keys()
    for k, v in a['model'].items():
        assert torch.equal(v, b['model'][k]), f'weight {k} differs'
        count += 1
    assert a['optimizer']['state'].keys() == b['optimizer']['state'].keys()
    for pid, st in a['optimizer']['state'].items():
        for name, t in st.items():
            if torch.is_tensor(t):
                assert torch.equal(t, b['optimizer']['state'][pid][name]), f'optimizer state {pid}.{name} differs'
                count += 1
    assert a['iter'] == b['iter']
    return count


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for(proc: subprocess.Popen, pattern: str, timeout: float = 600) -> str:
    """Read the process's stdout until a line matches ``pattern``; returns what was read."""
    seen = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            return ''.join(seen)
        assert time.time() < deadline, 'the pattern did not appear in time'
    raise AssertionError(f'the process ended before {pattern!r}:\n{"".join(seen)[-3000:]}')


@pytest.mark.parametrize('signum, code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_write_a_snapshot_and_the_run_resumes_exactly(root, trained, signum, code):
    tag = f'signal_{signum}'
    args = train_args(root, tag, 40)
    proc = _start(args)
    _wait_for(proc, r'^iter: 15 / 40')
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    m = re.match(r'error: training stopped by SIG(TERM|INT) at iteration (\d+) / 40; (\S+) written: run the same '
                 r'command to resume', lines[0])
    assert m, lines[0]
    stopped = int(m.group(2))
    assert 15 <= stopped < 40 and Path(m.group(3)) == snapshot(root, tag, stopped)
    resumed = run_tool(args).stdout
    assert f'Resuming from {snapshot(root, tag, stopped)} at iteration {stopped}' in resumed
    assert _same_training_state(trained, snapshot(root, tag, 40)) > 40


def test_sigkill_at_a_random_moment_leaves_whole_snapshots_and_resumes_exactly(root, trained):
    tag = 'sigkill'
    out_dir = snapshot(root, tag, 10).parent
    args = train_args(root, tag, 40)
    proc = _start(args)
    _wait_for(proc, r'^Training tiny')
    time.sleep(random.Random(os.getpid()).uniform(0.5, 6.0))  # anywhere in the run, a snapshot write included
    proc.kill()
    proc.wait()
    for path in out_dir.glob('*_iter_*.pth'):
        torch.load(path, map_location='cpu', weights_only=True)  # every snapshot under its final name is whole
    # What a kill during a write leaves: a temporary next to the snapshots. The next start removes it.
    stray = out_dir / '.tiny_faster_rcnn_iter_30.pth.x1y2z3.tmp'
    out_dir.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b'half a snapshot')
    resumed = run_tool(args).stdout
    assert f'Removed {stray}, left by a snapshot write that was interrupted' in resumed
    assert not stray.exists() and not list(out_dir.glob('.*.tmp'))
    assert _same_training_state(trained, snapshot(root, tag, 40)) > 40


def test_a_truncated_newest_snapshot_is_passed_over(root, trained):
    tag = 'truncated'
    args = train_args(root, tag, 40)
    proc = _start(args)
    _wait_for(proc, r'Wrote snapshot to: .*_iter_20\.pth')
    proc.kill()
    proc.wait()
    newest = max(snapshot(root, tag, 10).parent.glob('*_iter_*.pth'),
                 key=lambda p: int(re.search(r'_iter_(\d+)', p.name).group(1)))
    newest.write_bytes(newest.read_bytes()[:1000])
    out = run_tool(args).stdout
    assert f'warning: {newest} cannot be read' in out and 'passing over it to the previous snapshot' in out
    assert 'Resuming from' in out
    assert _same_training_state(trained, snapshot(root, tag, 40)) > 40


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_writing_a_snapshot_loses_nothing(root):
    tag = 'disk_full'
    args = train_args(root, tag, 20)
    run_tool(train_args(root, tag, 10))
    first = snapshot(root, tag, 10)
    before = first.read_bytes()
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600, preexec_fn=_limit_file_size(2_000_000))
    assert proc.returncode == 6, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert str(snapshot(root, tag, 20)) in lines[0] and 'free some space' in lines[0]
    assert first.read_bytes() == before and not snapshot(root, tag, 20).exists()
    assert not list(first.parent.glob('.*.tmp'))
    torch.load(first, map_location='cpu', weights_only=True)


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o007, 0o660)])
def test_snapshots_follow_the_umask(root, umask, mode):
    tag = f'umask_{umask:o}'
    proc = subprocess.run([sys.executable, *train_args(root, tag, 5)], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600, preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.stat(snapshot(root, tag, 5)).st_mode & 0o777 == mode


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / 'stat').read_text().split(') ')[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def test_a_dead_rank_stops_the_distributed_run(root):
    args = train_args(root, 'ddp_death', 400, ['TRAIN.SNAPSHOT_ITERS', '1000'], flags=['--keep-schedule'])
    proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                             *args], cwd=REPO, env={**_env(), 'OMP_NUM_THREADS': '1', 'FRCNN_DIST_TIMEOUT': '60'},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, r'^iter: 10 / 400')
    ranks = _children(proc.pid)
    assert len(ranks) == 2, ranks
    os.kill(max(ranks), signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and time.time() - t0 < 120
    # The surviving rank says what happened in one line (what follows is torchrun's own report of the dead one).
    ours = [line for line in err.splitlines() if line.startswith('error: ')]
    assert ours and 'another process of the distributed run died or stopped answering' in ours[0], err[-3000:]
    assert 'FRCNN_DIST_TIMEOUT' in ours[0]
