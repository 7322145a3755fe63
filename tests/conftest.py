"""Shared fixtures: the ``device`` fixture runs a test on CPU and, where available, on CUDA."""
from pathlib import Path

import numpy as np
import pytest
import torch

from faster_rcnn.cli import configure_logging

DATA_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def tool_logging():
    """The library's messages shown as the tools show them (INFO on stdout, warnings on stderr), so tests that
    read what a library function reports see it; tests/test_logging.py checks the silent default."""
    configure_logging()


@pytest.fixture(
    params=[
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")),
    ]
)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def reference():
    """Load ``tests/data/<name>.npz`` (no pickles)."""

    def load(name: str):
        return np.load(DATA_DIR / f"{name}.npz", allow_pickle=False)

    return load


@pytest.fixture
def tmp_data_dir(tmp_path, monkeypatch):
    """The default data folder (FRCNN_DATA_DIR: what datasets and caches use without a ``data_dir``) is
    ``tmp_path/data`` for the test."""
    monkeypatch.setenv("FRCNN_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(scope='session')
def root(tmp_path_factory) -> Path:
    """ROOT_DIR / DATA_DIR of the tool tests (the shapes set is generated once, in its data/)."""
    return tmp_path_factory.mktemp('frcnn_root')


@pytest.fixture(scope='session')
def working(root) -> Path:
    """A detector that works: the quick-start recipe (experiments/cfgs/shapes.yml, its own scales and proposal counts)
    for 300 iterations, about a minute on 2 CPU cores; shared by the tests that need a real mean AP."""
    from tool_runs import SHAPES_CFG, _dirs, run_tool, snapshot
    run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_trainval', '--imdbval', '', '--iters', '300',
              '--tag', 'working', '--cfg', SHAPES_CFG, '--device', 'cpu', '--set', *_dirs(root)])
    return snapshot(root, 'working', 300)


@pytest.fixture(scope='session')
def trained(root) -> Path:
    """A 40-iteration shapes run with a validation summary at every iteration (SUMMARY_INTERVAL 0)."""
    from tool_runs import run_tool, snapshot, train_args
    run_tool(train_args(root, 'full', 40, ['TRAIN.SUMMARY_INTERVAL', '0']))
    return snapshot(root, 'full', 40)
