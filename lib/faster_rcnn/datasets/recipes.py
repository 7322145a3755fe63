"""The DATASET names of the experiment scripts (``train_faster_rcnn.sh GPU DATASET NET``) and of tf-faster-rcnn's
demo: which imdbs, schedule and anchors each stands for, and so where its final model lies.

Mirrors ``experiments/scripts/dataset_table.sh`` (the scripts' copy), so that ``tools/demo.py --dataset`` and
``data/scripts/fetch_faster_rcnn_models.py`` find models where the scripts put them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    train_imdb: str
    test_imdb: str
    iters: int
    stepsize: int
    anchor_scales: tuple[int, ...] | None  # None: the config file's own (shapes)


RECIPES = {
    'pascal_voc': Recipe('voc_2007_trainval', 'voc_2007_test', 70000, 50000, (8, 16, 32)),
    'pascal_voc_0712': Recipe('voc_2007_trainval+voc_2012_trainval', 'voc_2007_test', 110000, 80000, (8, 16, 32)),
    'coco': Recipe('coco_2014_train+coco_2014_valminusminival', 'coco_2014_minival', 490000, 350000, (4, 8, 16, 32)),
    'coco_2017': Recipe('coco_2017_train', 'coco_2017_val', 490000, 350000, (4, 8, 16, 32)),
    'shapes': Recipe('shapes_trainval', 'shapes_test', 1600, 100000, None),
}


def recipe(dataset: str) -> Recipe:
    if dataset not in RECIPES:
        raise KeyError(f'unknown DATASET {dataset!r}: expected one of {", ".join(RECIPES)}')
    return RECIPES[dataset]
