"""data/scripts/fetch_vg.py over a local mirror: the files land where the Visual Genome reader reads them, the
split and vocabulary files are checked against their sha256, a wrong archive is reported in one line."""
from __future__ import annotations

import importlib.util
import shutil
import zipfile
from pathlib import Path

import pytest

from faster_rcnn.cli import run_tool
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.utils.download import file_digest

from vg_data import write_vg

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location('fetch_vg', REPO / 'data' / 'scripts' / 'fetch_vg.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zip(path: Path, source: Path, members: list[str]) -> None:
    with zipfile.ZipFile(path, 'w') as zf:
        for m in members:
            for f in sorted((source / m).rglob('*')) if (source / m).is_dir() else [source / m]:
                zf.write(f, str(f.relative_to(source)))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """The generated set packed as VG's archives (mirror/) and BUTD's genome folder (genome/); the pinned
    sha256 of the genome files replaced by those of the generated ones."""
    module = _load()
    source = write_vg(tmp_path / 'source')
    archives = tmp_path / 'mirror'
    archives.mkdir()
    _zip(archives / 'images.zip', source, ['VG_100K'])
    _zip(archives / 'images2.zip', source, ['VG_100K_2'])
    for name in ('image_data', 'objects', 'attributes'):
        _zip(archives / f'{name}.json.zip', source, [f'{name}.json'])
    genome = source / 'genome'
    monkeypatch.setattr(module, 'GENOME_FILES', [(rel, file_digest(str(genome / rel), 'sha256'))
                                                 for rel, _ in module.GENOME_FILES])
    return module, archives.as_uri() + '/', genome.as_uri() + '/'


def test_fetched_files_are_read_by_the_dataset(mirror, tmp_path):
    module, archives, genome = mirror
    data = tmp_path / 'data'
    assert module.main(['--data-dir', str(data), '--mirror', archives, '--genome-mirror', genome]) == 0
    for rel in ('objects.json', 'attributes.json', 'image_data.json', 'VG_100K/1.jpg', 'VG_100K_2/2.jpg',
                'genome/val.txt', 'genome/1600-400-20/attributes_vocab.txt'):
        assert (data / 'vg' / rel).is_file(), rel
    db = get_imdb('vg_1600-400-20_val', str(data))
    assert db.image_index == [1, 3] and db.num_classes == 5
    # A second run finds everything in place and downloads nothing.
    shutil.rmtree(data / 'downloads')
    assert module.main(['--data-dir', str(data), '--mirror', 'file:///nonexistent/', '--genome-mirror', genome]) == 0


def test_a_foreign_genome_file_is_refused(mirror, tmp_path, capsys, monkeypatch):
    module, archives, genome = mirror
    files = list(module.GENOME_FILES)
    files[1] = (files[1][0], '0' * 64)
    monkeypatch.setattr(module, 'GENOME_FILES', files)
    data = tmp_path / 'data'
    rc = run_tool(lambda: module.main(['--data-dir', str(data), '--mirror', archives, '--genome-mirror', genome]))
    assert rc == 7
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'val.txt: sha256' in err
    assert not (data / 'vg' / 'genome' / 'val.txt').exists() and not (data / 'vg' / 'objects.json').exists()


def test_an_archive_without_its_content_is_reported(mirror, tmp_path, capsys):
    module, archives, genome = mirror
    zips = tmp_path / 'zips'
    shutil.copytree(Path(archives[len('file://'):]), zips)
    shutil.copy(zips / 'image_data.json.zip', zips / 'objects.json.zip')  # the wrong file under the right name
    data = tmp_path / 'data'
    rc = run_tool(lambda: module.main(['--data-dir', str(data), '--zips', str(zips), '--genome-mirror', genome,
                                       '--no-images']))
    assert rc == 7
    err = capsys.readouterr().err
    assert 'objects.json.zip did not contain objects.json' in err and err.count('\n') == 1
    (zips / 'attributes.json.zip').unlink()
    shutil.rmtree(data)
    shutil.copy(Path(archives[len('file://'):]) / 'objects.json.zip', zips / 'objects.json.zip')
    rc = run_tool(lambda: module.main(['--data-dir', str(data), '--zips', str(zips), '--genome-mirror', genome,
                                       '--no-images']))
    assert rc == 7 and 'attributes.json.zip does not exist (--zips must hold' in capsys.readouterr().err
