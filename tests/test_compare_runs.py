"""tools/compare_runs.py and faster_rcnn.analysis.compare: where the numbers come from (eval.json or the dataset's
evaluation again), finding the model files, the config keys that differ, the tables, the errors."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from faster_rcnn.analysis.compare import (RunResults, comparison_tables, differing_keys, find_model_file,
                                          flatten_record, format_table)
from faster_rcnn.errors import DataError
from faster_rcnn.utils.eval_summary import read_eval_summary
from tool_runs import REPO, _dirs, run_tool


def _tool():
    spec = importlib.util.spec_from_file_location('_tool_compare_runs', REPO / 'tools' / 'compare_runs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    from faster_rcnn.cli import run_tool as run
    tool = _tool()
    code = run(lambda: tool.main(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def record(nms: float, **model) -> dict:
    return {'model': {'POOLING_MODE': 'align', **model}, 'test': {'NMS': nms, 'SCALES': [160]}, 'exp_dir': 'tiny'}


def test_flatten_record_and_differing_keys():
    a = flatten_record(record(0.3))
    assert a == {'POOLING_MODE': 'align', 'TEST.NMS': 0.3, 'TEST.SCALES': [160], 'EXP_DIR': 'tiny'}
    b = flatten_record(record(0.5, **{'RESNET.LAYOUT': 'slim'}))
    c = flatten_record(record(0.3))
    assert differing_keys([a, b, c]) == ['RESNET.LAYOUT', 'TEST.NMS']
    assert differing_keys([a, c, None]) == []  # a file without a record is left out, not a difference
    assert flatten_record(None) is None
    # Plain values compare by value: a tuple read back as a list is the same setting.
    assert differing_keys([{'TEST.SCALES': [160]}, {'TEST.SCALES': (160,)}]) == []


def test_find_model_file(tmp_path):
    results = tmp_path / 'output' / 'tiny' / 'shapes_test' / 'default' / 'run_iter_40'
    results.mkdir(parents=True)
    assert find_model_file(str(results))[0] is None and 'pass --models' in find_model_file(str(results))[1]
    model = tmp_path / 'output' / 'tiny' / 'shapes_trainval' / 'a' / 'run_iter_40.pth'
    model.parent.mkdir(parents=True)
    model.write_bytes(b'')
    assert find_model_file(str(results)) == (str(model), '')
    other = tmp_path / 'output' / 'tiny' / 'shapes_trainval' / 'b' / 'run_iter_40.pth'
    other.parent.mkdir(parents=True)
    other.write_bytes(b'')
    path, note = find_model_file(str(results))
    assert path is None and '2 model files named run_iter_40.pth' in note and 'pass --models' in note
    # Outside test_net's layout nothing is searched (a shallow path would search the whole disk).
    shallow = tmp_path / 'a' / 'run_iter_40'
    shallow.mkdir(parents=True)
    assert find_model_file(str(shallow))[0] is None and "not in test_net's layout" in find_model_file(str(shallow))[1]


def _write_eval_json(folder: Path, mean_ap: float, per_class: dict, sha: str | None = None,
                     test_config: dict | None = None) -> None:
    det = folder / 'detections.pkl'
    digest = sha or hashlib.sha256(det.read_bytes()).hexdigest()
    (folder / 'eval.json').write_text(json.dumps({
        'format': 1, 'imdb': 'shapes_test', 'num_images': 2, 'metric': 'VOC07 mAP', 'mean_ap': mean_ap,
        'per_class': per_class, 'coco_stats': None, 'detections': {'file': 'detections.pkl', 'sha256': digest},
        'test_config': test_config}))


def _detections(folder: Path, classes: int = 4, images: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / 'detections.pkl', 'wb') as f:  # this test's own file
        pickle.dump([[np.zeros((0, 5), np.float32) for _ in range(images)] for _ in range(classes)], f)


def test_eval_json_is_used_only_for_its_own_detections(tmp_path):
    _detections(tmp_path)
    _write_eval_json(tmp_path, 0.5, {'circle': 0.5})
    assert read_eval_summary(str(tmp_path))['mean_ap'] == 0.5
    _write_eval_json(tmp_path, 0.5, {'circle': 0.5}, sha='0' * 64)  # written for other detections
    assert read_eval_summary(str(tmp_path)) is None
    (tmp_path / 'eval.json').write_text('{"format": 1, "mean_ap": "high"}')
    with pytest.raises(DataError, match='eval.json: not an evaluation summary'):
        read_eval_summary(str(tmp_path))


def test_tables_show_the_difference_to_the_first_run():
    a = RunResults(folder='A', metric='VOC07 mAP', mean_ap=0.5, per_class={'circle': 0.25, 'square': 0.75},
                   source='eval.json', model='a.pth', config=flatten_record(record(0.3)), iteration=40)
    b = RunResults(folder='B', metric='VOC07 mAP', mean_ap=0.625, per_class={'circle': 0.5, 'square': 0.75},
                   source='eval.json', model='b.pth', config=flatten_record(record(0.7)), iteration=40)
    md = '\n\n'.join(format_table(t) for t in comparison_tables([a, b]))
    assert '| mean | 0.5000 | 0.6250 (+0.1250) |' in md
    assert '| circle | 0.2500 | 0.5000 (+0.2500) |' in md and '| square | 0.7500 | 0.7500 (+0.0000) |' in md
    assert '| TEST.NMS | 0.3 | 0.7 |' in md and 'POOLING_MODE' not in md
    assert 'COCO' not in md
    text = format_table(comparison_tables([a, b])[1], 'text')
    assert re.search(r'^circle\s+0\.2500\s+0\.5000 \(\+0\.2500\)$', text, flags=re.M), text
    coco = RunResults(folder='C', metric='COCO AP', mean_ap=0.3, per_class={}, coco_stats=[0.3] + [0.1] * 11)
    coco2 = RunResults(folder='D', metric='COCO AP', mean_ap=0.35, per_class={}, coco_stats=[0.35] + [0.1] * 11)
    md = format_table(comparison_tables([coco, coco2])[2])
    assert '| AP | 0.3000 | 0.3500 (+0.0500) |' in md and '| ARl | 0.1000 | 0.1000 (+0.0000) |' in md


def _model(path: Path, nms: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'format': 2, 'kind': 'detector', 'net': 'tiny', 'classes': ['__background__', 'circle'],
                'model': {}, 'config': record(nms)}, path)
    return path


def test_tool_on_eval_json_and_given_models(tmp_path, capsys):
    a, b = tmp_path / 'a', tmp_path / 'b'
    _detections(a)
    _detections(b)
    _write_eval_json(a, 0.4, {'circle': 0.4, 'square': None}, test_config={'NMS': 0.3, 'SCALES': [160]})
    _write_eval_json(b, 0.45, {'circle': 0.45, 'square': None}, test_config={'NMS': 0.3, 'SCALES': [224]})
    models = [str(_model(tmp_path / 'm' / 'a.pth', 0.3)), str(_model(tmp_path / 'm' / 'b.pth', 0.5))]
    code, out, err = run_in_process(capsys, str(a), str(b), '--models', *models)
    assert code == 0, err
    assert '| circle | 0.4000 | 0.4500 (+0.0500) |' in out and '| square | - | - |' in out
    assert '| TEST.NMS | 0.3 | 0.5 |' in out  # the detector files
    tested = out.split('TEST keys the runs were tested with')[1]
    assert '| TEST.SCALES | [160] | [224] |' in tested and 'TEST.NMS' not in tested
    assert out.count('| eval.json |') == 2


@pytest.fixture
def voc_runs(tmp_path, monkeypatch):
    """A small generated VOC-layout set and two result folders: all gt boxes as detections (every AP 1), and the
    same without the circles (circle AP 0)."""
    from faster_rcnn.config import cfg
    from faster_rcnn.datasets.factory import get_imdb
    from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes
    monkeypatch.setattr(cfg, 'DATA_DIR', str(tmp_path / 'data'))
    root = ensure_shapes(str(tmp_path / 'data' / 'myshapes'), ShapesSpec(seed=4, num_trainval=1, num_test=6))
    name = f'voc_dir:{root}:test'
    db = get_imdb(name, str(tmp_path / 'data'))
    perfect = [[np.zeros((0, 5), np.float32) for _ in range(db.num_images)] for _ in range(db.num_classes)]
    for i, e in enumerate(db.roidb):
        for c in range(1, db.num_classes):
            boxes = e['boxes'][e['gt_classes'] == c]
            perfect[c][i] = np.concatenate([boxes, np.full((len(boxes), 1), 0.9, np.float32)], axis=1)
    no_circles = [list(per_image) for per_image in perfect]
    no_circles[db.classes.index('circle')] = [np.zeros((0, 5), np.float32) for _ in range(db.num_images)]
    folders = []
    for label, boxes in (('perfect', perfect), ('no_circles', no_circles)):
        folder = tmp_path / 'out' / label
        folder.mkdir(parents=True)
        with open(folder / 'detections.pkl', 'wb') as f:  # this test's own file
            pickle.dump(boxes, f)
        folders.append(folder)
    assert all(any((e['gt_classes'] == c).any() for e in db.roidb) for c in range(1, db.num_classes))
    return name, folders


def test_tool_evaluates_detections_again_with_the_dataset(voc_runs, capsys):
    name, (a, b) = voc_runs
    code, out, err = run_in_process(capsys, str(a), str(b), '--imdb', name, '--format', 'text')
    assert code == 0, err
    assert re.search(r'^mean\s+1\.0000\s+0\.6667 \(-0\.3333\)$', out, flags=re.M), out
    assert re.search(r'^circle\s+1\.0000\s+0\.0000 \(-1\.0000\)$', out, flags=re.M), out
    assert re.search(r'^square\s+1\.0000\s+1\.0000 \(\+0\.0000\)$', out, flags=re.M), out
    assert out.count("not in test_net's layout output/<EXP_DIR>/<imdb>/<tag>/<model>/; pass --models") == 2
    assert not (a / 'results').exists() and not list(a.glob('*_pr.pkl'))  # evaluated elsewhere, folder untouched


def test_errors(voc_runs, capsys, tmp_path):
    name, (a, b) = voc_runs

    def line(err: str) -> str:
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith('error: '), err
        return lines[0]

    code, _, err = run_in_process(capsys, str(a), '--imdb', name)
    assert code == 2 and 'at least two result folders' in line(err)
    code, _, err = run_in_process(capsys, str(a), str(b), '--imdb', name, '--models', 'x.pth')
    assert code == 2 and '--models: 1 model files for 2 folders' in line(err)
    code, _, err = run_in_process(capsys, str(a), str(tmp_path / 'gone'), '--imdb', name)
    assert code == 2 and 'gone: no such folder' in line(err)
    code, _, err = run_in_process(capsys, str(a), str(tmp_path / 'gone'))
    assert code == 2 and 'gone: no such folder' in line(err)
    _detections(tmp_path / 'other', classes=4, images=2)
    code, _, err = run_in_process(capsys, str(a), str(tmp_path / 'other'), '--imdb', name)
    assert code == 4 and '4 classes x 2 images' in line(err) and '4 classes x 6 images' in line(err)
    code, _, err = run_in_process(capsys, str(a), str(b), '--imdb', name, '--models', 'x.pth', 'y.pth')
    assert code == 5 and 'x.pth does not exist' in line(err)


@pytest.mark.slow
def test_two_quick_start_models_with_different_test_nms(root, trained):
    """Two detector files of the quick-start snapshot that differ in their recorded TEST.NMS, each tested by
    test_net; compare_runs finds both model files and shows the mean APs test_net printed, their difference and
    TEST.NMS as the only differing key."""
    snap = torch.load(trained, map_location='cpu', weights_only=True)
    means = []
    folders = []
    for label, nms in (('cmp_a', 0.3), ('cmp_b', 0.7)):
        snap['config']['test']['NMS'] = nms
        model = root / 'output' / 'tiny' / 'shapes_trainval' / 'compare' / f'{label}_iter_40.pth'
        model.parent.mkdir(parents=True, exist_ok=True)
        torch.save(snap, model)
        out = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--device', 'cpu',
                        '--tag', 'compare', '--set', *_dirs(root)]).stdout
        means.append(float(re.search(r'Mean AP = (\d+\.\d+)', out).group(1)))
        folders.append(root / 'output' / 'tiny' / 'shapes_test' / 'compare' / model.stem)
    for folder in folders:  # test_net's own summary of each run
        summary = json.loads((folder / 'eval.json').read_text())
        assert summary['imdb'] == 'shapes_test' and summary['metric'] == 'VOC07 mAP'
    assert [json.loads((f / 'eval.json').read_text())['test_config']['NMS'] for f in folders] == [0.3, 0.7]
    out = run_tool(['tools/compare_runs.py', *map(str, folders), '--set', *_dirs(root)]).stdout
    assert out.count('| eval.json |') == 2, out
    _check_quick_start_comparison(out, means, tested_nms=True)
    # Without the summaries the detections are evaluated again: the same numbers.
    for folder in folders:
        (folder / 'eval.json').unlink()
    out = run_tool(['tools/compare_runs.py', *map(str, folders), '--set', *_dirs(root)]).stdout
    assert out.count('| detections.pkl evaluated on shapes_test |') == 2, out
    _check_quick_start_comparison(out, means, tested_nms=False)


def _check_quick_start_comparison(out: str, means: list, tested_nms: bool) -> None:
    row = re.search(r'^\| mean \| (\d\.\d{4}) \| (\d\.\d{4}) \(([+-]\d\.\d{4})\) \|$', out, flags=re.M)
    assert row, out
    assert float(row.group(1)) == pytest.approx(means[0], abs=6e-5)
    assert float(row.group(2)) == pytest.approx(means[1], abs=6e-5)
    assert float(row.group(3)) == pytest.approx(float(row.group(2)) - float(row.group(1)), abs=1e-4)
    config_part, _, tested_part = out.split('Config keys that differ')[1].partition('TEST keys the runs were tested')
    keys = re.findall(r'^\| (\S+) \| \S+ \| \S+ \|$', config_part, flags=re.M)
    assert keys == ['key', 'TEST.NMS'], out
    assert '| TEST.NMS | 0.3 | 0.7 |' in config_part
    # eval.json's TEST keys: the runs were tested with their own NMS (nothing overrode it).
    assert ('| TEST.NMS | 0.3 | 0.7 |' in tested_part) == tested_nms, out
    assert 'cmp_a_iter_40.pth' in out and 'cmp_b_iter_40.pth' in out
    for c in ('circle', 'square', 'triangle'):
        assert re.search(rf'^\| {c} \| \d\.\d{{4}} \| \d\.\d{{4}} \([+-]\d\.\d{{4}}\) \|$', out, flags=re.M), c


def test_eval_summary_round_trip_and_stale_after_new_detections(tmp_path):
    from faster_rcnn.utils.eval_summary import read_eval_summary, write_eval_summary
    _detections(tmp_path)
    write_eval_summary(str(tmp_path), imdb='shapes_test', num_images=2, metric='VOC07 mAP', mean_ap=0.25,
                       per_class={'circle': 0.5, 'square': float('nan')}, coco_stats=None,
                       test_config={'NMS': 0.3, 'SCALES': (160,)})
    s = read_eval_summary(str(tmp_path))
    assert (s['mean_ap'], s['per_class'], s['test_config']) == (0.25, {'circle': 0.5, 'square': None},
                                                               {'NMS': 0.3, 'SCALES': [160]})
    assert not list(tmp_path.glob('*.tmp*'))
    _detections(tmp_path, classes=4, images=3)  # another test_net run rewrote detections.pkl
    assert read_eval_summary(str(tmp_path)) is None
