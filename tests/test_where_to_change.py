"""docs/design.md §10 followed at run time through the public registration points: a throwaway backbone (a
network-table entry), a dataset format (a reader registering its ``prefix:``), a hook with a setting of its own
(``settings.declare``) — and one training step that uses all three. A reader's roidb is checked against the
documented entry format and its evaluation against the evaluation contract."""
from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np
import pytest

from faster_rcnn import settings as settings_module
from faster_rcnn.config import load_config
from faster_rcnn.datasets import registry as datasets_registry
from faster_rcnn.datasets.evaluation import EvalResult
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.datasets.imdb import check_roidb_entry, imdb, make_roidb_entry
from faster_rcnn.engine.distributed import init_distributed
from faster_rcnn.engine.run import build_run
from faster_rcnn.engine.train_loop import HookBase
from faster_rcnn.engine.trainer import train_net
from faster_rcnn.nets import registry as nets_registry
from faster_rcnn.nets.registry import NetSpec
from faster_rcnn.nets.tiny import Tiny

from tool_runs import SHAPES_CFG


class TxtBoxes(imdb):
    """A minimal reader: ``<folder>/<n>.jpg`` with ``<folder>/<n>.txt`` lines ``class x1 y1 x2 y2`` (0-based)."""

    CLASSES = ('__background__', 'square')

    def __init__(self, name: str, folder: str, data_dir: str | None):
        super().__init__(name, self.CLASSES, data_dir)
        self._folder = folder
        self._image_index = sorted(f[:-4] for f in os.listdir(folder) if f.endswith('.txt'))

    def image_path_at(self, i: int) -> str:
        return osp.join(self._folder, self._image_index[i] + '.jpg')

    def gt_roidb(self) -> list[dict]:
        out = []
        for i, stem in enumerate(self._image_index):
            rows = [line.split() for line in open(osp.join(self._folder, stem + '.txt')) if line.strip()]
            h, w = cv2.imread(self.image_path_at(i)).shape[:2]
            out.append(make_roidb_entry(self.image_path_at(i), w, h, [[float(v) for v in r[1:]] for r in rows],
                                        [self.CLASSES.index(r[0]) for r in rows], self.num_classes, image_id=stem))
        return out

    def evaluate_detections(self, all_boxes, output_dir) -> EvalResult:
        # The contract: all_boxes[class][image] (n, 5); returns an EvalResult. Here: the share of images with a
        # detection of their class (a stand-in metric for the test).
        hits = [float(len(all_boxes[1][i]) > 0) for i in range(self.num_images)]
        return EvalResult(mean_ap=float(np.mean(hits)), per_class={'square': float(np.mean(hits))})


def _write_set(folder, count: int = 3) -> None:
    for i in range(count):
        im = np.full((96, 128, 3), 90, np.uint8)
        x, y = 10 + 20 * i, 20
        im[y:y + 40, x:x + 40] = 220
        cv2.imwrite(str(folder / f'{i}.jpg'), im)
        (folder / f'{i}.txt').write_text(f'square {x} {y} {x + 39} {y + 39}\n')


class Probe(HookBase):
    """A hook with its own setting: what it saw."""

    def __init__(self, key: str):
        self.key, self.seen = key, []

    def after_step(self) -> None:
        t = self.trainer
        self.seen.append((t.state.iteration, t.settings.extra[self.key], sorted(t.losses)))


def test_a_backbone_a_reader_and_a_hook_with_its_setting_train_one_step(tmp_path, monkeypatch):
    # 1. A backbone: its module (here Tiny at another width) and one entry in the network table.
    monkeypatch.setitem(nets_registry.TABLE, 'tiny_narrow', NetSpec(
        'tiny_narrow', 'a narrower tiny', lambda s: Tiny(channels=[8, 8, 16, 16, 16], fc_dim=32,
                                                         pooling_size=s.pooling_size),
        (), None, config='shapes.yml', from_scratch=True))
    # 2. A dataset format: the reader above and its prefix.
    monkeypatch.setitem(datasets_registry.PREFIXES, 'txtboxes', lambda name, rest, d: TxtBoxes(name, rest, d))
    folder = tmp_path / 'boxes'
    folder.mkdir()
    _write_set(folder)
    db = get_imdb(f'txtboxes:{folder}')
    for entry in db.roidb:
        check_roidb_entry(entry, db.num_classes)
    result = db.evaluate_detections([[np.zeros((0, 5))] * 3, [np.array([[1, 1, 5, 5, 0.9]])] * 3], str(tmp_path))
    assert isinstance(result, EvalResult) and result.mean_ap == 1.0
    # 3. A hook with a setting declared in its own file.
    monkeypatch.setattr(settings_module, 'EXTENSIONS', dict(settings_module.EXTENSIONS))
    key = settings_module.declare('TRAIN.PROBE_EVERY', 1, settings_module.positive, 'a positive number')
    config = load_config(SHAPES_CFG, ['ROOT_DIR', str(tmp_path), 'DATA_DIR', str(tmp_path / 'data'),
                                      'TRAIN.SCALES', '[96]', 'TRAIN.MAX_SIZE', '128', 'TRAIN.SNAPSHOT_ITERS', '1',
                                      'TRAIN.DISPLAY', '1', 'TRAIN.PROBE_EVERY', '7', 'TRAIN.WARMUP_ITERS', '0'])
    info = init_distributed('cpu')
    run = build_run(config, net='tiny_narrow', imdb=f'txtboxes:{folder}', iters=1, world_size=1, workers=0,
                    verbose=False)
    probe = Probe(key)
    final = train_net(run, info, extra_hooks=[probe])
    assert osp.isfile(final)
    assert probe.seen[0][0] == 1 and probe.seen[0][1] == 7 and 'total_loss' in probe.seen[0][2]


def test_the_roidb_check_names_a_bad_entry():
    good = make_roidb_entry('a.jpg', 10, 10, [[0, 0, 4, 4]], [1], 2)
    check_roidb_entry(good, 2)
    with pytest.raises(ValueError, match='boxes must be 0-based inclusive'):
        check_roidb_entry(make_roidb_entry('a.jpg', 10, 10, [[0, 0, 10, 4]], [1], 2), 2)
    with pytest.raises(ValueError, match=r'gt_classes must be int32 \(G,\) in 1..1'):
        check_roidb_entry(make_roidb_entry('a.jpg', 10, 10, [[0, 0, 4, 4]], [2], 3), 2)
