"""The quick start's training script as the quick start runs it (experiments/scripts/train_faster_rcnn.sh on the
shapes set): it evaluates during training, so TensorBoard's _val run holds a mean AP curve of several points."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tool_runs import REPO, _env


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every ``tag`` scalar in the event files of ``folder``."""
    from tensorboardX.proto import event_pb2
    points = []
    for f in sorted(folder.glob('events.out.tfevents.*')):
        data, pos = f.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack('<Q', data[pos:pos + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            points += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return points


@pytest.mark.slow
def test_the_quick_start_run_writes_a_mean_ap_curve(tmp_path):
    """16 iterations (ITERS, as the script's header says) evaluate every 16 / 8 = 2 iterations: 8 mean APs."""
    env = {**_env(), 'ITERS': '16', 'FRCNN_ROOT_DIR': str(tmp_path), 'FRCNN_DATA_DIR': str(tmp_path / 'data'),
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    small = ['TRAIN.SCALES', '[160]', 'TEST.SCALES', '[160]', 'TRAIN.EVAL_IMAGES', '8', 'TRAIN.WARMUP_ITERS', '2']
    proc = subprocess.run(['bash', 'experiments/scripts/train_faster_rcnn.sh', 'cpu', 'shapes', 'tiny', *small],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('Evaluation on shapes_test (8 images) at iteration') == 8
    assert 'Mean AP = ' in proc.stdout
    runs = list((tmp_path / 'tensorboard' / 'tiny' / 'shapes_trainval').glob('*_val'))
    assert len(runs) == 1, runs
    points = _scalars(runs[0], 'eval/mean_ap')
    assert [step for step, _ in points] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(0.0 <= value <= 1.0 for _, value in points)
