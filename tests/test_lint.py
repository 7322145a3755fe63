"""Lint and type checks over lib/ (configured in pyproject.toml): ruff (pyflakes, pycodestyle, import order, the
``X | None`` / builtin-generics typing style, lines <= 120) and mypy must report nothing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f'{name} is not installed (experiments/scripts/setup_env.sh --test installs it)')
    return [found]


def test_ruff_finds_nothing():
    proc = subprocess.run([*_tool('ruff'), 'check', '--output-format', 'concise', 'lib'], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_mypy_finds_nothing():
    proc = subprocess.run([*_tool('mypy')], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
