"""Running the tools as a user runs them (subprocesses), for the tool tests: paths, the environment, the small
settings that make a training run take seconds, and where its snapshots land."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES_CFG = str(REPO / 'experiments' / 'cfgs' / 'shapes.yml')
# Small settings so that each run takes seconds: fewer proposals, smaller images, no workers.
FAST = ['TRAIN.DISPLAY', '5', 'TRAIN.SNAPSHOT_ITERS', '10', 'TRAIN.SNAPSHOT_KEPT', '10', 'TRAIN.SCALES', '[160]',
        'TEST.SCALES', '[160]', 'TRAIN.WARMUP_ITERS', '5']


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO / 'lib') + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


def _dirs(root: Path) -> list[str]:
    return ['ROOT_DIR', str(root), 'DATA_DIR', str(root / 'data')]


def run_tool(args: list[str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args[0]} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


def train_args(root: Path, tag: str, iters: int, extra: list[str] = (), flags: list[str] = ()) -> list[str]:
    return ['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_trainval', '--imdbval', 'shapes_test',
            '--iters', str(iters), '--tag', tag, '--cfg', SHAPES_CFG, '--device', 'cpu', '--workers', '0',
            *flags, '--set', *_dirs(root), *FAST, *extra]


def snapshot(root: Path, tag: str, it: int) -> Path:
    return root / 'output' / 'tiny' / 'shapes_trainval' / tag / f'tiny_faster_rcnn_iter_{it}.pth'
