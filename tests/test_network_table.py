"""The network table (nets/registry.py) is the one list of networks: the converters, the model-cost check, the
benchmarks and the experiment scripts read it, and a network added to it at run time appears in all of them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faster_rcnn.convert import from_tensorflow, rtl_names
from faster_rcnn.convert.tf_names import SCOPES
from faster_rcnn.errors import ConfigError
from faster_rcnn.nets import registry
from faster_rcnn.nets.registry import TABLE, NetSpec, networks_where

from tool_runs import REPO, _env


def test_every_entry_has_its_yml():
    for name, entry in TABLE.items():
        assert (REPO / 'experiments' / 'cfgs' / entry.config_file).is_file(), name
    assert TABLE['tiny'].config_file == 'shapes.yml' and TABLE['res101'].config_file == 'res101.yml'


def test_converters_list_the_published_networks():
    published = ('vgg16', 'res50', 'res101', 'res152', 'mobile')
    assert rtl_names.NETS == published and from_tensorflow.NETS == published
    assert set(from_tensorflow.NETS) <= set(SCOPES)
    assert networks_where(classifier=True) == published


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'tools/networks.py', *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=120)


def test_networks_tool_resolves_names_and_variants():
    out = _run('--resolve', 'res101-lg')
    assert out.returncode == 0 and out.stdout.split() == ['res101', 'experiments/cfgs/res101-lg.yml', 'yes']
    assert _run('--resolve', 'tiny').stdout.split() == ['tiny', 'experiments/cfgs/shapes.yml', 'no']
    assert _run('--names').stdout.split() == list(TABLE)
    bad = _run('--resolve', 'res101-xx')
    assert bad.returncode == 2 and bad.stderr.startswith('error: NET res101-xx:') and 'Traceback' not in bad.stderr


def test_a_network_added_at_run_time_reaches_the_lists(monkeypatch: pytest.MonkeyPatch):
    from faster_rcnn.analysis.model_cost import imagenet_check
    from faster_rcnn.bench.infer import spec as bench_spec
    extra = NetSpec('tiny2', 'a copy of tiny', TABLE['tiny'].build, ('TINY.CHANNELS',), None, config='shapes.yml')
    monkeypatch.setitem(TABLE, 'tiny2', extra)
    assert bench_spec('tiny2').config_file == 'shapes.yml'
    assert registry.model_keys('tiny2')[-1] == 'TINY.CHANNELS'
    assert 'tiny2' not in networks_where('rtl')
    with pytest.raises(ConfigError, match='tiny2: torchvision publishes no ImageNet classifier'):
        imagenet_check('tiny2')
