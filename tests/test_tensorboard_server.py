"""The TensorBoard program the install provides reads a training's event files: a test starts its server on
127.0.0.1 and reads a scalar and an image back through its HTTP API, as the browser page does."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def _wait_json(url: str, ready, proc, timeout: float = 120):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f'tensorboard exited: {proc.stderr.read()[-3000:]}')
        try:
            last = json.loads(_get(url))
            if ready(last):
                return last
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f'{url} never became ready: {last}')


def test_tensorboard_serves_a_training_runs_scalars_and_images(root, trained):
    logdir = root / 'tensorboard' / 'tiny' / 'shapes_trainval'
    program = Path(sys.executable).parent / 'tensorboard'
    assert program.is_file() or shutil.which('tensorboard'), 'the install must provide the tensorboard program'
    port = _free_port()
    # The quick start's command (its data loader included), bound to 127.0.0.1 and a free port.
    proc = subprocess.Popen([str(program) if program.is_file() else 'tensorboard', '--logdir', str(logdir),
                             '--host', '127.0.0.1', '--port', str(port), '--reload_interval', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f'http://127.0.0.1:{port}'
        tags = _wait_json(f'{base}/data/plugin/scalars/tags', lambda t: 'full' in t and 'full_val' in t, proc)
        assert 'loss/total_loss' in tags['full'] and 'lr' in json.dumps(tags['full'])
        query = urllib.parse.urlencode({'run': 'full', 'tag': 'loss/total_loss'})
        points = json.loads(_get(f'{base}/data/plugin/scalars/scalars?{query}'))
        steps = [p[1] for p in points]
        assert steps and max(steps) == 40 and all(0 < p[2] < 100 for p in points)

        images = _wait_json(f'{base}/data/plugin/images/tags', lambda t: 'full_val' in t and t['full_val'], proc)
        tag = next(t for t in images['full_val'] if 'predictions' in t)
        query = urllib.parse.urlencode({'run': 'full_val', 'tag': tag, 'sample': 0})
        entries = json.loads(_get(f'{base}/data/plugin/images/images?{query}'))
        png = _get(f'{base}/data/plugin/images/individualImage?{entries[-1]["query"]}')
        assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 1000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
