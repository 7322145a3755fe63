"""The README's Python API snippet runs as pasted after the quick start: only its model path is replaced by a
small model trained here; it runs in a folder that has the checkout's data/demo pictures."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import cv2
import pytest

from tool_runs import REPO, _env

QUICK_START_MODEL = 'output/tiny/shapes_trainval/default/tiny_faster_rcnn_iter_1600.pth'


def readme_api_snippet() -> str:
    """The first ```python block under '## Python API' in README.md."""
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    section = text.split('\n## Python API\n', 1)[1].split('\n## ', 1)[0]
    found = re.search(r'```python\n(.*?)```', section, flags=re.S)
    assert found, 'README.md: no ```python block under ## Python API'
    return found.group(1)


@pytest.mark.slow
def test_the_readme_api_snippet_runs_as_pasted(trained, tmp_path):
    snippet = readme_api_snippet()
    assert snippet.count(QUICK_START_MODEL) == 1
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(REPO / 'data' / 'demo')
    script = tmp_path / 'snippet.py'
    script.write_text(snippet.replace(QUICK_START_MODEL, str(trained)))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawn = cv2.imread(str(tmp_path / 'out.jpg'))
    assert drawn is not None and drawn.shape == cv2.imread(str(REPO / 'data' / 'demo' / 'test_000000.jpg')).shape
    results = json.loads((tmp_path / 'dets.json').read_text())
    assert isinstance(results, list) and results and all(r['image_id'] == 1 for r in results)
    assert {r['category_id'] for r in results} <= {1, 2, 3} and {'bbox', 'score', 'category_name'} <= set(results[0])
