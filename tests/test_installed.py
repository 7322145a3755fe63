"""``pip install .`` (not editable): the package runs from site-packages and writes its output, TensorBoard and
data folders under the current directory, never into the installation."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _copy_tracked(dst: Path) -> None:
    """The checkout's files (not what git ignores: no build products, no venv): the build then happens in the
    copy, not in the checkout."""
    files = subprocess.run(['git', '-C', str(REPO), 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], capture_output=True, check=True).stdout
    for name in files.decode().split('\0'):
        if name and (REPO / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dst / name)


def test_a_non_editable_install_writes_under_the_current_directory(tmp_path):
    source, site, work = tmp_path / 'source', tmp_path / 'site', tmp_path / 'work'
    source.mkdir()
    work.mkdir()
    _copy_tracked(source)
    build = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
                            '--target', str(site), str(source)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (site / 'faster_rcnn' / 'config.py').is_file() and list((site / 'faster_rcnn' / 'ops').glob('_native*.so'))

    env = {k: v for k, v in os.environ.items() if not k.startswith('FRCNN_')}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS='2', PYTHONUNBUFFERED='1')
    where = subprocess.run([sys.executable, '-c', 'import faster_rcnn, faster_rcnn.config as c; '
                            'print(faster_rcnn.__file__); print(c.cfg.ROOT_DIR); print(c.cfg.DATA_DIR)'],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split('\n')
    assert where[0].startswith(str(site)) and where[1] == str(work) and where[2] == str(work / 'data')

    train = subprocess.run([sys.executable, str(REPO / 'tools' / 'trainval_net.py'), '--net', 'tiny', '--imdb',
                            'shapes_trainval', '--imdbval', '', '--iters', '2', '--cfg',
                            str(source / 'experiments' / 'cfgs' / 'shapes.yml'), '--device', 'cpu', '--workers', '0',
                            '--set', 'TRAIN.SCALES', '[160]', 'TRAIN.DISPLAY', '1'],
                           cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert (work / 'output' / 'tiny' / 'shapes_trainval' / 'default' / 'tiny_faster_rcnn_iter_2.pth').is_file()
    assert (work / 'tensorboard' / 'tiny' / 'shapes_trainval' / 'default').is_dir()
    assert (work / 'data' / 'shapes' / 'shapes_meta.json').is_file()
    written = [p for p in site.rglob('*') if p.name in ('output', 'tensorboard', 'shapes', 'imagenet_weights')]
    assert not written and not (site / 'data').exists(), written
