"""The dataset fetchers verify what they download: a wrong archive is never unpacked, a right one lands
where tf-faster-rcnn expects it. A ``file://`` mirror stands in for the network."""
import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

from faster_rcnn.utils.download import file_digest
from faster_rcnn.cli import run_tool

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / 'data' / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _voc_tar(path: Path) -> None:
    with tarfile.open(path, 'w') as tar:
        for member, text in (('VOCdevkit/VOC2007/ImageSets/Main/test.txt', b'000001\n'),
                             ('VOCdevkit/VOC2007/Annotations/000001.xml', b'<annotation/>')):
            info = tarfile.TarInfo(member)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))


@pytest.fixture
def voc(monkeypatch, tmp_path):
    module = _load('fetch_voc')
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    _voc_tar(mirror / 'VOCtest_06-Nov-2007.tar')
    monkeypatch.setitem(module.ARCHIVES, '2007', [('VOCtest_06-Nov-2007.tar', '0' * 32)])
    return module, mirror


def test_voc_wrong_md5_is_refused_and_not_unpacked(voc, tmp_path, capsys):
    module, mirror = voc
    data = tmp_path / 'data'
    rc = run_tool(lambda: module.main(['--year', '2007', '--data-dir', str(data), '--mirror', mirror.as_uri() + '/']))
    assert rc == 7
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    assert 'VOCtest_06-Nov-2007.tar: md5' in err and '--tars' in err
    assert not (data / 'VOCdevkit2007').exists()


def test_voc_verified_archive_lands_in_the_devkit(voc, tmp_path, monkeypatch):
    module, mirror = voc
    digest = file_digest(str(mirror / 'VOCtest_06-Nov-2007.tar'), 'md5')
    monkeypatch.setitem(module.ARCHIVES, '2007', [('VOCtest_06-Nov-2007.tar', digest)])
    data = tmp_path / 'data'
    assert module.main(['--year', '2007', '--data-dir', str(data), '--mirror', mirror.as_uri() + '/']) == 0
    assert (data / 'VOCdevkit2007' / 'VOC2007' / 'ImageSets' / 'Main' / 'test.txt').read_text() == '000001\n'
    assert (data / 'downloads' / 'VOCtest_06-Nov-2007.tar').is_file()


def test_voc_missing_local_archive_says_what_to_do(tmp_path, capsys):
    module = _load('fetch_voc')
    rc = run_tool(lambda: module.main(['--year', '2007', '--data-dir', str(tmp_path / 'data'), '--tars', str(tmp_path)]))
    assert rc == 7
    assert 'VOCtrainval_06-Nov-2007.tar does not exist' in capsys.readouterr().err
