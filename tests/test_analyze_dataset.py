"""tools/analyze_dataset.py and faster_rcnn.analysis.dataset_stats: the statistics of the boxes the training
loader delivers, the tool end to end on `shapes`, and a dataset that cannot be loaded ending the tool with
the loader's own one-line error and exit code."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faster_rcnn.analysis.dataset_stats import (TrainingBoxes, box_statistics, format_statistics,
                                                plot_box_histograms, training_boxes)
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import EXIT_DATA, EXIT_USAGE, AnnotationError, UsageError
from faster_rcnn.settings import InputSettings
from tool_runs import SHAPES_CFG, _dirs, run_tool

CLASSES = ('__background__', 'cat', 'dog')


def boxes_of(rows: list[tuple], targets=(600,), flipped=None) -> TrainingBoxes:
    """A TrainingBoxes from (x1, y1, x2, y2, class, target) rows, images 600 x 800."""
    a = np.array(rows, np.float64)
    n = len(rows)
    return TrainingBoxes(boxes=a[:, :4].astype(np.float32), classes=a[:, 4].astype(np.int64),
                         entry=np.arange(n), target=a[:, 5].astype(np.int64),
                         image_size=np.tile([600, 800], (n, 1)),
                         flipped=np.zeros(n, bool) if flipped is None else np.asarray(flipped),
                         difficult=np.zeros(n, bool), class_names=CLASSES, num_entries=n, num_images=n,
                         targets=tuple(targets), max_size=1000)


def test_statistics_count_each_box_once_per_scale_and_leave_out_flipped_copies():
    rows = [(0, 0, 9, 19, 1, 600), (0, 0, 39, 39, 2, 600), (0, 0, 99, 199, 2, 600),
            (0, 0, 9, 19, 1, 600)]  # the last: a flipped copy of the first
    stats = box_statistics(boxes_of(rows, flipped=[False, False, False, True]))
    assert stats['boxes'] == 3 and stats['per_class'] == {'cat': 1, 'dog': 2}
    s = stats['per_scale'][600]
    # sqrt(w * h) with w = x2 - x1 + 1: sqrt(200), 40, sqrt(20000); h / w: 2, 1, 2.
    np.testing.assert_allclose(s['size'][[0, 3, 6]], [np.sqrt(200), 40, np.sqrt(20000)])
    np.testing.assert_allclose(s['aspect'][[0, 6]], [1, 2])
    assert s['groups'] == {'small': 1, 'medium': 1, 'large': 1}  # COCO: < 32^2, < 96^2, larger
    text = format_statistics(stats, 'toy', (600,), 1000)
    assert 'cat' in text and 'dog' in text and 'TRAIN.SCALES 600' in text and 'small 1 (33.3%)' in text


def test_statistics_per_training_scale(tmp_path):
    entry = dict(image='x.jpg', width=800, height=400, boxes=np.array([[0, 0, 39, 79]], np.float32),
                 gt_classes=np.array([1], np.int32), gt_ishard=np.array([False]), flipped=False)
    tb = training_boxes([entry], InputSettings(scales=(200, 400), max_size=2000), class_names=CLASSES)
    stats = box_statistics(tb)
    # Scale 0.5 and 1.0: the loader's box is [0, 0, 19.5, 39.5] (20.5 x 40.5 px, +1 widths) and 40 x 80 px.
    assert stats['per_scale'][200]['size'][3] == pytest.approx(np.sqrt(20.5 * 40.5))
    assert stats['per_scale'][400]['size'][3] == pytest.approx(np.sqrt(40 * 80))
    assert tuple(tb.image_size[tb.target == 200][0]) == (200, 400)
    paths = plot_box_histograms(tb, str(tmp_path))
    assert all(Path(p).stat().st_size > 0 for p in paths)


# -- the tool ------------------------------------------------------------------------------------------------
def analyze(root: Path, args: list[str], extra: list[str] = (), check: bool = True):
    return run_tool(['tools/analyze_dataset.py', *args, '--set', *_dirs(root), *extra], check=check, timeout=600)


@pytest.mark.slow
def test_tool_on_shapes_with_browser(root, tmp_path):
    out = tmp_path / 'analysis'
    proc = analyze(root, ['--imdb', 'shapes_trainval', '--cfg', SHAPES_CFG, '--out', str(out), '--show', '2'])
    report = (out / 'report.txt').read_text()
    assert report.strip() in proc.stdout
    for needle in ('400 images, 800 training roidb entries', 'boxes per class:', 'circle', 'square', 'triangle',
                   'at TRAIN.SCALES 224 (MAX_SIZE 384)', 'size sqrt(w*h) px', 'aspect h/w',
                   'anchor coverage: ANCHOR_SCALES [1, 2, 4, 8] ANCHOR_RATIOS [0.5, 1, 2]', 'all boxes',
                   'small (COCO)', '>=0.7'):
        assert needle in report, needle
    for name in ('box_sizes.png', 'aspect_ratios.png', 'best_iou.png'):
        assert cv2.imread(str(out / name)) is not None
    shown = sorted((out / 'show').glob('*.png'))
    assert len(shown) == 2
    # Drawn at the training scale: the shorter side is TRAIN.SCALES' 224 (MAX_SIZE 384 never binds here).
    assert all(min(cv2.imread(str(p)).shape[:2]) == 224 for p in shown)


@pytest.mark.slow
def test_unknown_dataset_is_the_factorys_error(root, tmp_path):
    with pytest.raises(UsageError) as e:
        get_imdb('no_such_set')
    proc = analyze(root, ['--imdb', 'no_such_set', '--out', str(tmp_path)], check=False)
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr == f'error: {e.value}\n'


@pytest.mark.slow
def test_broken_annotations_are_the_readers_error(root, tmp_path):
    voc = tmp_path / 'voc'
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        (voc / sub).mkdir(parents=True)
    (voc / 'Annotations' / 'im1.xml').write_text(
        '<annotation><size><width>60</width><height>40</height></size><object><name>dog</name><difficult>0'
        '</difficult><bndbox><xmin>20</xmin><ymin>5</ymin><xmax>12</xmax><ymax>30</ymax></bndbox></object>'
        '</annotation>')
    cv2.imwrite(str(voc / 'JPEGImages' / 'im1.jpg'), np.zeros((40, 60, 3), np.uint8))
    (voc / 'ImageSets' / 'Main' / 'train.txt').write_text('im1\n')
    (voc / 'classes.txt').write_text('dog\n')
    name = f'voc_dir:{voc}:train'
    with pytest.raises(AnnotationError) as e:
        get_imdb(name, str(tmp_path / 'cache')).roidb
    proc = analyze(root, ['--imdb', name, '--out', str(tmp_path / 'out')], check=False)
    assert proc.returncode == EXIT_DATA
    assert proc.stderr == f'error: {e.value}\n'
    assert 'im1.xml' in proc.stderr and 'inverted box' in proc.stderr
