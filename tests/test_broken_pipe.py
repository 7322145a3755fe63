"""A tool whose reader stops early (``tool | head``) ends quietly, as Unix tools do: no traceback, no 'this is a
bug' line, exit code 141 (128 + SIGPIPE)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from faster_rcnn.cli import run_tool
from faster_rcnn.errors import EXIT_BROKEN_PIPE

from tool_runs import REPO, _env

# A tool's main that prints far more than a pipe buffer holds, through run_tool as every tool does.
_TOOL = '''
import sys
from faster_rcnn.cli import run_tool

def main():
    for i in range(200000):
        print(f'line {i} of a long listing')
    return 0

sys.exit(run_tool(main))
'''


def _read_one_line_and_close(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its lines
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    proc.stderr.close()
    return subprocess.CompletedProcess(argv, proc.returncode, first.decode(), err)


def test_run_tool_ends_a_broken_pipe_with_141_and_no_message(capsys):
    def main():
        print('the first lines')
        raise BrokenPipeError(32, 'Broken pipe')
    assert run_tool(main) == EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ''


@pytest.mark.slow
def test_a_closed_pipe_ends_a_tool_quietly():
    done = _read_one_line_and_close([sys.executable, '-c', _TOOL])
    assert done.stdout == 'line 0 of a long listing\n'
    assert done.stderr == '' and done.returncode == EXIT_BROKEN_PIPE

