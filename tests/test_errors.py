"""The error classes are the one source of the exit codes: every class has a documented code, the table in
docs/reliability.md is the module's, and run_tool maps classes to codes without looking at names or messages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from faster_rcnn import errors
from faster_rcnn.cli import run_tool

DOC = Path(__file__).resolve().parents[1] / 'docs' / 'reliability.md'


def _classes() -> list[type]:
    return [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, errors.UserError)]


def test_every_error_class_has_a_documented_exit_code():
    codes = dict(errors.EXIT_CODES)
    for cls in _classes():
        assert cls.exit_code in codes, cls


def test_the_reliability_page_shows_the_modules_table():
    rows = re.findall(r'^\| (\d+) \| ([^|]+) \|', DOC.read_text(encoding='utf-8'), flags=re.M)
    assert [(int(c), m.strip()) for c, m in rows] == list(errors.EXIT_CODES)
    for cls in _classes():
        line = [r for r in DOC.read_text(encoding='utf-8').splitlines() if r.startswith(f'| {cls.exit_code} |')]
        assert line and (f'`{cls.__name__}`' in line[0] or cls is errors.StoppedBySignal), cls


@pytest.mark.parametrize('cls', [c for c in _classes() if c is not errors.StoppedBySignal])
def test_run_tool_ends_with_the_class_code_and_one_line(cls, capsys):
    def main():
        raise cls('somefile.xml: something is wrong\nsecond line; do this')
    assert run_tool(main) == cls.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: somefile.xml: something is wrong second line; do this']


def test_a_subclass_renamed_keeps_its_code(capsys):
    class Renamed(errors.NonFiniteLossError):  # the class, not its name, decides
        pass
    assert run_tool(lambda: (_ for _ in ()).throw(Renamed('loss is nan; lower the lr'))) == errors.EXIT_DIVERGED


def test_a_bug_gets_a_traceback_and_code_1(capsys):
    assert run_tool(lambda: 1 / 0) == errors.EXIT_BUG
    assert 'Traceback' in capsys.readouterr().err
