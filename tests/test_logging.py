"""The library logs (``logging.getLogger(__name__)``) and never prints: used from Python it is silent unless the
caller configures logging; the tools print its INFO messages as plain lines on stdout, warnings on stderr, and
take --quiet / --verbose."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from faster_rcnn.cli import ToolParser, configure_logging
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.settings import RoidbSettings

from test_datasets import write_voc

LIB = Path(__file__).resolve().parents[1] / 'lib' / 'faster_rcnn'
# The edge and the benchmark runners are tools: they print their results.
ALLOWED = {'cli.py', 'bench'}


def test_no_print_in_the_library():
    found = []
    for path in sorted(LIB.rglob('*.py')):
        rel = path.relative_to(LIB)
        if rel.parts[0] in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'print':
                found.append(f'{rel}:{node.lineno}')
    assert not found, f'print() in library code (use logging.getLogger(__name__)): {found}'


@pytest.fixture
def unconfigured(monkeypatch):
    """The package logger as a Python user finds it: no handler of the tools."""
    package = logging.getLogger('faster_rcnn')
    monkeypatch.setattr(package, 'handlers', [h for h in package.handlers if isinstance(h, logging.NullHandler)])
    monkeypatch.setattr(package, 'level', logging.NOTSET)
    yield package
    for h in list(package.handlers):
        if not isinstance(h, logging.NullHandler):
            package.removeHandler(h)


def _voc(tmp_path) -> str:
    write_voc(str(tmp_path / 'v'), {'a': (40, 30, [('car', (5, 5, 20, 20), False)])}, {'train': ['a']},
              classes_txt=['car'])
    return f'voc_dir:{tmp_path / "v"}:train'


def test_library_code_is_silent_from_python_and_speaks_through_the_tools(tmp_path, capsys, unconfigured):
    name = _voc(tmp_path)
    _, roidb = combined_roidb(name, RoidbSettings(), data_dir=str(tmp_path / 'data'))
    assert len(roidb) == 2  # flipped too
    out = capsys.readouterr()
    assert out.out == '' and out.err == ''
    configure_logging()
    combined_roidb(name, RoidbSettings(), data_dir=str(tmp_path / 'data'))
    out = capsys.readouterr()
    assert 'Appending horizontally-flipped training examples...\n' in out.out and out.err == ''
    logging.getLogger('faster_rcnn.some.module').warning('warning: something')
    out = capsys.readouterr()
    assert out.out == '' and out.err == 'warning: something\n'


def test_quiet_and_verbose(capsys, unconfigured):
    log = logging.getLogger('faster_rcnn.x')
    ToolParser(prog='t').parse_args(['--quiet'])
    log.info('info line')
    log.warning('warning line')
    out = capsys.readouterr()
    assert out.out == '' and out.err == 'warning line\n'
    ToolParser(prog='t').parse_args(['--verbose'])
    log.debug('debug line')
    assert capsys.readouterr().out == 'debug line\n'
    ToolParser(prog='t').parse_args([])
    log.debug('debug line')
    log.info('info line')
    assert capsys.readouterr().out == 'info line\n'
