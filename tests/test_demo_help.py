"""tools/demo.py's help says what --thresh defaults to and what --json writes (the detections it draws, those
scoring at least --thresh; tests/test_detector.py checks the file against the API)."""
from __future__ import annotations

import importlib.util

import pytest

from tool_runs import REPO


def _demo_help(capsys) -> str:
    spec = importlib.util.spec_from_file_location('demo_tool', REPO / 'tools' / 'demo.py')
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    with pytest.raises(SystemExit):
        demo.parse_args(['--help'])
    return ' '.join(capsys.readouterr().out.split())


def test_demo_help_gives_the_threshold_default_and_what_json_writes(capsys):
    text = _demo_help(capsys)
    assert 'score threshold of the boxes drawn and written to --json (default: 0.8)' in text
    assert '--json FILE also write the detections scoring at least --thresh (the boxes drawn)' in text
    assert "category_id is the training dataset's id of the class" in text
    assert 'every detection' not in text
