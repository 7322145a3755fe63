"""The fast tier's end-to-end run: train -> test -> demo with the tools, as a user runs them, on `shapes` (a short
schedule at a small scale: the session's ``trained`` model), then the same model through the Python API."""
from __future__ import annotations

import json

import cv2

from faster_rcnn import Detector

from tool_runs import _dirs, run_tool


def test_train_test_demo(root, trained, tmp_path):
    assert trained.is_file()  # tools/trainval_net.py, 40 iterations (conftest's ``trained``)
    out = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--device', 'cpu',
                    '--workers', '0', '--tag', 'smoke', '--set', *_dirs(root)]).stdout
    mean_ap = float([line for line in out.splitlines() if line.startswith('Mean AP = ')][-1].split('=')[1])
    assert 0.0 <= mean_ap <= 1.0
    assert (root / 'output' / 'tiny' / 'shapes_test' / 'smoke' / trained.stem / 'detections.pkl').is_file()
    image = sorted((root / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))[0]
    run_tool(['tools/demo.py', '--model', str(trained), '--images', str(image), '--output', str(tmp_path / 'demo'),
              '--thresh', '0.1', '--json', str(tmp_path / 'dets.json'), '--device', 'cpu'])
    drawn = tmp_path / 'demo' / f'{image.stem}_detections.jpg'
    assert cv2.imread(str(drawn)).shape == cv2.imread(str(image)).shape
    written = json.loads((tmp_path / 'dets.json').read_text())
    expected = Detector.load(str(trained), score_thresh=0.1)(str(image)).to_coco(0, file_name=str(image))
    assert written == expected
