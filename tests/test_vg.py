"""The Visual Genome reader on a generated set (tests/vg_data.py): BUTD's cleaning rules, synonyms, the
vocabulary filter, clipping, dropped boxes and images, attributes, split names, errors, the cache and the
evaluation."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from faster_rcnn.config import load_config
from faster_rcnn.datasets import vg as vg_module
from faster_rcnn.datasets.factory import classes_of, get_imdb, list_imdbs
from faster_rcnn.datasets.vg_eval import attribute_ground_truth, class_ap
from faster_rcnn.datasets.vg_vocab import read_vocabulary, split_attribute, split_object_name
from faster_rcnn.engine.distributed import init_distributed
from faster_rcnn.engine.run import build_run
from faster_rcnn.engine.schedule import run_schedule
from faster_rcnn.engine.trainer import train_net
from faster_rcnn.errors import AnnotationError, MissingFileError
from faster_rcnn.settings import TrainSettings

from vg_data import (BLACK_AND_WHITE, BLUE, CAR, DOG, GRAY, RED, SHIRT, STOP_SIGN, WHITE, default_attributes,
                     default_objects, obj, write_vg)
from tool_runs import FAST, REPO, SHAPES_CFG, _dirs


@pytest.fixture
def data_dir(tmp_path):
    write_vg(tmp_path)
    return tmp_path


def test_cleaning_rules():
    assert split_object_name(' White Dog. ') == ('dog', ['white'])
    assert split_object_name('tall dark tree') == ('tree', ['tall', 'dark'])
    assert split_object_name('hot dog') == ('hot dog', [])  # "hot" is no common attribute: the name stays whole
    assert split_object_name('white') == ('white', [])
    assert split_attribute('Red and Blue.') == ['red', 'blue']
    assert split_attribute('black and white') == ['black and white']


def test_vocabulary_synonyms_and_duplicates(tmp_path):
    path = tmp_path / 'v.txt'
    path.write_text('television,tv\nStop Sign , stopsign\n\n')
    v = read_vocabulary(str(path), '__background__')
    assert v.names == ('__background__', 'television', 'stop sign')
    assert v.index['tv'] == 1 and v.index['stopsign'] == 2 and v.index['__background__'] == 0
    path.write_text('tv\ntelevision,tv')
    with pytest.raises(AnnotationError, match=r"v.txt, line 2: 'tv' is already the name of class 1"):
        read_vocabulary(str(path), '__background__')


def test_split_names_are_registered():
    names = set(list_imdbs())
    assert {f'vg_1600-400-20_{s}' for s in ('train', 'val', 'test', 'minitrain', 'minival')} <= names


def test_val_roidb(data_dir, caplog):
    with caplog.at_level(logging.INFO, logger='faster_rcnn.datasets.vg'):
        db = get_imdb('vg_1600-400-20_val', str(data_dir))
    assert db.classes == ('__background__', 'dog', 'stop sign', 'shirt', 'car')
    assert db.attributes[:6] == ('__no_attribute__', 'white', 'gray', 'red', 'blue', 'black and white')
    assert db.image_index == [1, 3]  # image 2 has no object of the vocabulary
    assert db.image_path_at(0) == str(data_dir / 'vg' / 'VG_100K' / '1.jpg')
    first, third = db.roidb
    assert (first['width'], first['height'], first['image_id']) == (60, 40, 1)
    # x2 = x + w, y2 = y + h (no -1), clipped to [0, W-1] x [0, H-1]; the unicorn and the car outside are dropped.
    np.testing.assert_array_equal(first['boxes'], [[5, 5, 25, 15], [50, 30, 59, 39], [0, 0, 10, 10]])
    assert first['boxes'].dtype == np.float32
    np.testing.assert_array_equal(first['gt_classes'], [DOG, STOP_SIGN, SHIRT])
    assert 'gt_overlaps' not in first and first['max_classes'].tolist() == [DOG, STOP_SIGN, SHIRT]
    attrs = first['gt_attributes']
    assert attrs.shape == (3, 16) and attrs.dtype == np.int32
    # "white" from the name, then attributes.json's, "red and blue" split; each index once.
    assert attrs[0].tolist() == [WHITE, GRAY, RED, BLUE] + [0] * 12
    # "grey" and "gray" are one attribute; "black and white" stays whole.
    assert attrs[1].tolist() == [GRAY, BLACK_AND_WHITE] + [0] * 14
    # 17 attributes in the vocabulary: the first 16 are kept.
    assert attrs[2].tolist() == [WHITE, RED] + list(range(6, 20))
    np.testing.assert_array_equal(third['boxes'], [[10, 10, 40, 30]])
    assert third['gt_classes'].tolist() == [CAR] and third['gt_attributes'][0].tolist() == [RED] + [0] * 15
    messages = caplog.text
    assert '2 objects outside the vocabulary dropped; 1 images without an object of the vocabulary' in messages
    assert '1 boxes lying wholly outside their image dropped (image 1 object 14)' in messages


def test_flipped_copies_keep_attributes(data_dir):
    db = get_imdb('vg_1600-400-20_val', str(data_dir))
    db.append_flipped_images()
    flipped = db.roidb[2]
    assert flipped['flipped'] and flipped['boxes'][0].tolist() == [60 - 25 - 1, 5, 60 - 5 - 1, 15]
    np.testing.assert_array_equal(flipped['gt_attributes'], db.roidb[0]['gt_attributes'])


def test_mini_splits_take_the_first_lines(data_dir):
    assert get_imdb('vg_1600-400-20_train', str(data_dir)).image_index == [3, 1]
    assert get_imdb('vg_1600-400-20_minitrain', str(data_dir)).image_index == [3]
    assert get_imdb('vg_1600-400-20_minival', str(data_dir)).image_index == [1, 3]
    assert classes_of('vg_1600-400-20_test', str(data_dir)) == ('__background__', 'dog', 'stop sign', 'shirt', 'car')


def _bad(data_dir, **fields):
    objects = default_objects()
    objects[3] = [obj(31, 'car', 10, 10, 30, 20) | fields]
    write_vg(data_dir, objects=objects)


@pytest.mark.parametrize('fields, message', [
    ({'x': None}, '"x" must be a finite number, got None'),
    ({'h': 'ten'}, '"h" must be a finite number, got \'ten\''),
    ({'w': -3}, 'negative width or height (x=10, y=10, w=-3, h=20)'),
    ({'names': []}, 'no name ("names" must be a non-empty list of strings, got [])'),
])
def test_bad_object_names_file_image_and_object(tmp_path, fields, message):
    _bad(tmp_path, **fields)
    with pytest.raises(AnnotationError) as e:
        get_imdb('vg_1600-400-20_test', str(tmp_path))
    text = str(e.value)
    assert text.startswith(f'{tmp_path / "vg" / "objects.json"}: image 3, object 31')
    assert message in text and '\n' not in text


def test_bad_attributes_and_files(tmp_path):
    attributes = default_attributes()
    attributes[3] = [{'object_id': 31, 'attributes': 'red'}]
    write_vg(tmp_path, attributes=attributes)
    with pytest.raises(AnnotationError, match=r'attributes.json: image 3, object 31: "attributes" must be a list'):
        get_imdb('vg_1600-400-20_test', str(tmp_path))
    (tmp_path / 'vg' / 'attributes.json').write_text('[{"image_id": 3, "attributes": [')
    with pytest.raises(AnnotationError, match='attributes.json: malformed JSON'):
        get_imdb('vg_1600-400-20_test', str(tmp_path))
    (tmp_path / 'vg' / 'attributes.json').unlink()
    with pytest.raises(MissingFileError, match='attributes.json does not exist; run data/scripts/fetch_vg.py'):
        get_imdb('vg_1600-400-20_test', str(tmp_path))


def test_missing_image_and_split_file(data_dir):
    (data_dir / 'vg' / 'VG_100K' / '3.jpg').unlink()
    with pytest.raises(MissingFileError, match=r'VG_100K/3.jpg does not exist \(listed in .*test.txt\)'):
        get_imdb('vg_1600-400-20_test', str(data_dir))
    for line in ('VG_100K/1.jpg', 'VG_100K/1.jpg xml/2.xml'):
        (data_dir / 'vg' / 'genome' / 'val.txt').write_text(f'VG_100K/3.jpg xml/3.xml\n{line}\n')
        with pytest.raises(AnnotationError, match=r'val.txt, line 2: expected "<folder>/<image id>.jpg'):
            get_imdb('vg_1600-400-20_val', str(data_dir))


def test_cache_is_reused_and_rebuilt_when_annotations_change(data_dir, monkeypatch):
    first = get_imdb('vg_1600-400-20_val', str(data_dir)).roidb

    def fail(self):
        raise AssertionError('rebuilt although nothing changed')
    monkeypatch.setattr(vg_module.vg, '_build_roidb', fail)
    cached = get_imdb('vg_1600-400-20_val', str(data_dir)).roidb
    for a, b in zip(first, cached):
        for key in ('boxes', 'gt_classes', 'gt_attributes'):
            assert b[key].dtype == a[key].dtype
            np.testing.assert_array_equal(b[key], a[key])
    monkeypatch.undo()
    objects = default_objects()
    objects[3] = [obj(31, 'dog', 1, 2, 3, 4)]
    path = data_dir / 'vg' / 'objects.json'
    path.write_text(json.dumps([{'image_id': i, 'objects': o} for i, o in objects.items()]) + ' ')
    rebuilt = get_imdb('vg_1600-400-20_val', str(data_dir)).roidb
    assert rebuilt[1]['gt_classes'].tolist() == [DOG] and rebuilt[1]['boxes'].tolist() == [[1, 2, 4, 6]]


def test_evaluation_by_hand(data_dir, caplog):
    db = get_imdb('vg_1600-400-20_val', str(data_dir))
    empty = np.zeros((0, 5), np.float32)
    all_boxes = [[empty, empty] for _ in range(db.num_classes)]
    all_boxes[DOG][0] = np.array([[5, 5, 25, 15, 0.9]], np.float32)  # exact: AP 1
    # stop sign: a false positive above the true one: precision [0, 1/2] at recall [0, 1] -> AP 0.5
    all_boxes[STOP_SIGN][0] = np.array([[0, 0, 5, 5, 0.9], [50, 30, 59, 39, 0.8]], np.float32)
    # car (image 3): the detection overlaps its gt box with IoU = 11*21 / (31*21) = 0.35 < 0.5 -> AP 0
    all_boxes[CAR][1] = np.array([[10, 10, 20, 30, 0.7]], np.float32)
    with caplog.at_level(logging.INFO, logger='faster_rcnn.datasets.vg'):
        result = db.evaluate_detections(all_boxes, str(data_dir / 'out'))
    assert result.per_class == {'dog': 1.0, 'stop sign': 0.5, 'shirt': 0.0, 'car': 0.0}
    assert result.mean_ap == pytest.approx(1.5 / 4)
    assert result.stats == pytest.approx([1.5 / 4, 1.5 / 4])  # one gt box per class: equal weights
    assert 'Mean AP = 0.3750' in caplog.text


def test_classes_without_gt_are_left_out_of_the_means(data_dir):
    db = get_imdb('vg_1600-400-20_test', str(data_dir))  # image 3 only: a car
    empty = np.zeros((0, 5), np.float32)
    all_boxes = [[empty] for _ in range(db.num_classes)]
    all_boxes[CAR][0] = np.array([[10, 10, 40, 30, 0.5]], np.float32)
    all_boxes[DOG][0] = np.array([[10, 10, 40, 30, 0.4]], np.float32)
    result = db.evaluate_detections(all_boxes, str(data_dir / 'out'))
    assert result.mean_ap == 1.0 and np.isnan(result.per_class['dog'])


def _recipe(gpu_id: str) -> list[str]:
    """dataset_table.sh's variables for ``<gpu_id> vg res101``: TRAIN_IMDB, TEST_IMDB, ITERS, STEPSIZE, NET_FINAL,
    then the --set pairs."""
    env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}',
           'PYTHONPATH': f'{REPO / "lib"}{os.pathsep}{os.environ.get("PYTHONPATH", "")}'}
    script = ('set -euo pipefail; source experiments/scripts/dataset_table.sh "$@"; '
              'printf "%s\\n" "$TRAIN_IMDB" "$TEST_IMDB" "$ITERS" "$STEPSIZE" "$NET_FINAL" "${ANCHOR_SET[@]}"')
    proc = subprocess.run(['bash', '-c', script, '_', gpu_id, 'vg', 'res101'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_the_scripts_vg_recipe_is_butds_at_eight_gpus_and_scaled_below():
    train, test, iters, stepsize, final, *pairs = _recipe('0,1,2,3,4,5,6,7')
    assert (train, test) == ('vg_1600-400-20_train', 'vg_1600-400-20_val')
    # The 8-process run is BUTD's: its final snapshot at 380000 (dataset_table.sh asks tools/schedule.py).
    assert final.endswith('output/res101/vg_1600-400-20_train/default/res101_faster_rcnn_iter_380000.pth')
    # Every pair is a config key with BUTD's value.
    config = load_config(str(REPO / 'experiments' / 'cfgs' / 'res101.yml'), [*pairs, 'TRAIN.STEPSIZE', stepsize])
    assert config.TRAIN.BATCH_SIZE == 64 and config.TRAIN.FG_FRACTION == 0.5 and config.TRAIN.RPN_BATCHSIZE == 64
    assert config.TRAIN.BG_THRESH_LO == 0.0 and list(config.TRAIN.SCALES) == [600] and config.TRAIN.MAX_SIZE == 1000
    assert config.TRAIN.WEIGHT_DECAY == 0.0005 and list(config.ANCHOR_SCALES) == [4, 8, 16, 32]
    assert list(config.TEST.SCALES) == [600] and config.TEST.MAX_PER_IMAGE == 400
    settings = TrainSettings.from_config(config)
    for world, (its, lr, steps) in ((8, (380000, 0.001, (350000,))), (1, (3040000, 0.000125, (2800000,)))):
        _, used = run_schedule(settings, int(iters), world, reference_batch=int(config.TRAIN.REFERENCE_BATCH),
                               scale=True, scaled_warmup_iters=int(config.TRAIN.SCALED_WARMUP_ITERS))
        assert (used.iters, used.stepsize) == (its, steps) and used.learning_rate == pytest.approx(lr)


def test_tiny_trains_on_the_generated_vg_set(tmp_path):
    write_vg(tmp_path / 'data')
    config = load_config(SHAPES_CFG, [*_dirs(tmp_path), *FAST, 'DATA_LOADER.NUM_WORKERS', '0',
                                      'TRAIN.BATCH_SIZE', '64', 'TRAIN.FG_FRACTION', '0.5', 'TRAIN.RPN_BATCHSIZE',
                                      '64', 'TRAIN.BG_THRESH_LO', '0.0'])
    with redirect_stdout(io.StringIO()):
        run = build_run(config, net='tiny', imdb='vg_1600-400-20_train', iters=2, tag='vg', fresh=True,
                        verbose=False)
        assert run.classes == ['__background__', 'dog', 'stop sign', 'shirt', 'car']
        assert len(run.roidb) == 4 and all(e['gt_attributes'].shape == (len(e['boxes']), 16) for e in run.roidb)
        final = train_net(run, init_distributed('cpu'))
    state = torch.load(final, map_location='cpu', weights_only=True)
    assert Path(final).name == 'tiny_faster_rcnn_iter_2.pth'
    assert all(torch.isfinite(v).all() for v in state['model'].values() if v.is_floating_point())


def test_attribute_ground_truth_scores_like_the_objects(data_dir):
    """The hook for the attribute mAP: a gt box counts for each of its attributes (BUTD's eval_attributes)."""
    db = get_imdb('vg_1600-400-20_val', str(data_dir))
    gt = attribute_ground_truth(db.roidb, db.image_index, len(db.attributes))
    assert list(gt[GRAY]) == [1] and gt[GRAY][1].tolist() == [[5, 5, 25, 15], [50, 30, 59, 39]]
    assert gt[RED][1].tolist() == [[5, 5, 25, 15], [0, 0, 10, 10]] and gt[RED][3].tolist() == [[10, 10, 40, 30]]
    assert gt[0] == {}
    # gray: the dog box found (TP), then a miss (FP); one of two gt boxes found: recall 0.5 at precision 1.
    ap = class_ap(gt[GRAY], [(1, 0.9, [5, 5, 25, 15]), (1, 0.8, [0, 0, 5, 5])])
    assert ap.npos == 2 and ap.ap == pytest.approx(0.5)
    np.testing.assert_allclose(ap.prec, [1.0, 0.5])


def test_blank_names_and_non_string_attributes_are_left_out_and_counted(tmp_path, caplog):
    objects = default_objects()
    objects[3].append(obj(32, ' ', 1, 1, 5, 5))
    attributes = default_attributes()
    attributes[3] = [{'object_id': 31, 'attributes': [None, 'white', 7]}]
    write_vg(tmp_path, objects=objects, attributes=attributes)
    with caplog.at_level(logging.INFO, logger='faster_rcnn.datasets.vg'):
        db = get_imdb('vg_1600-400-20_test', str(tmp_path))
    (entry,) = db.roidb
    assert entry['gt_classes'].tolist() == [CAR] and entry['gt_attributes'][0, :2].tolist() == [WHITE, 0]
    assert '1 objects outside the vocabulary dropped' in caplog.text
    assert '2 attribute values of' in caplog.text and 'are not strings: skipped' in caplog.text
