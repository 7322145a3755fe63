"""Training roidb preparation: combine datasets, add flipped copies, drop images with no usable box."""
from __future__ import annotations

import logging

from ..datasets.factory import get_imdb
from ..datasets.imdb import add_max_fields, imdb
from ..errors import DataError
from ..settings import RoidbSettings

logger = logging.getLogger(__name__)


def prepare_roidb(db: imdb) -> None:
    """Make sure every entry has its image path, size and max_classes / max_overlaps."""
    for i, entry in enumerate(db.roidb):
        if 'image' not in entry:
            entry['image'] = db.image_path_at(i)
        if 'max_overlaps' not in entry:
            add_max_fields(entry)


def is_usable(entry: dict, use_all_gt: bool) -> bool:
    """An image can train Faster R-CNN when it has at least one gt box the loader will keep."""
    if use_all_gt:
        return len(entry['gt_classes']) > 0
    return bool((~entry['gt_ishard']).any()) if len(entry['gt_classes']) else False


def filter_roidb(roidb: list[dict], use_all_gt: bool = True, keep_background: bool = False) -> list[dict]:
    """Drop images without usable boxes (reference: no fg / bg roi, i.e. no gt box) and print how many;
    with ``keep_background`` (TRAIN.KEEP_BACKGROUND_IMAGES) they stay, as background-only images (every anchor
    and roi negative)."""
    if keep_background:
        empty = sum(1 for r in roidb if not is_usable(r, use_all_gt))
        logger.info(f'Keeping {empty} roidb entries without usable boxes as background-only images '
              f'(TRAIN.KEEP_BACKGROUND_IMAGES): {len(roidb)} entries')
        return list(roidb)
    kept = [r for r in roidb if is_usable(r, use_all_gt)]
    logger.info(f'Filtered {len(roidb) - len(kept)} roidb entries without usable boxes: {len(roidb)} -> {len(kept)}')
    return kept


def get_training_roidb(db: imdb, use_flipped: bool = True) -> list[dict]:
    """The roidb of ``db`` prepared for training, with a flipped copy of every image when ``use_flipped``."""
    if use_flipped:
        logger.info('Appending horizontally-flipped training examples...')
        db.append_flipped_images()
    prepare_roidb(db)
    return db.roidb


class CombinedImdb(imdb):
    """Several datasets with the same classes, joined by '+' (e.g. voc_2007_trainval+voc_2012_trainval)."""

    def __init__(self, parts: list[imdb]):
        super().__init__('+'.join(p.name for p in parts), parts[0].classes, parts[0].data_dir)
        for p in parts[1:]:
            if p.classes != parts[0].classes:
                raise DataError(f'cannot combine {parts[0].name} and {p.name}: their classes differ '
                                 f'({list(parts[0].classes)} vs {list(p.classes)})')
        self.parts = parts
        self._image_index = [i for p in parts for i in p.image_index]
        for p in parts[1:]:
            if p.category_ids != parts[0].category_ids:
                raise DataError(f'cannot combine {parts[0].name} and {p.name}: their category ids differ '
                                f'({parts[0].category_ids} vs {p.category_ids})')

    @property
    def category_ids(self) -> list[int]:
        return self.parts[0].category_ids

    def image_path_at(self, i: int) -> str:
        index = i
        for p in self.parts:
            if i < p.num_images:
                return p.image_path_at(i)
            i -= p.num_images
        raise IndexError(f'{self.name}: image index {index} is out of range (the combined dataset has '
                         f'{sum(p.num_images for p in self.parts)} images)')


def combined_roidb(imdb_names: str, settings: RoidbSettings | None = None,
                   data_dir: str | None = None) -> tuple[imdb, list[dict]]:
    """``'a+b'`` -> (imdb, roidb). Training (``settings`` given): flipped copies when ``settings.use_flipped``,
    images without a usable box dropped (unless ``settings.keep_background_images``). Testing (``settings``
    None): the roidb as annotated, one entry per image. ``data_dir``: the config's DATA_DIR."""
    training = settings is not None

    def one(name: str) -> tuple[imdb, list[dict]]:
        db = get_imdb(name, data_dir)
        logger.info(f'Loaded dataset `{db.name}` for {"training" if training else "testing"}')
        if settings is not None:
            db.set_proposal_method(settings.proposal_method)
            return db, get_training_roidb(db, settings.use_flipped)
        prepare_roidb(db)
        return db, db.roidb

    pairs = [one(n) for n in imdb_names.split('+')]
    roidb = [r for _, rdb in pairs for r in rdb]
    db = pairs[0][0] if len(pairs) == 1 else CombinedImdb([d for d, _ in pairs])
    if len(pairs) > 1:
        db.roidb = roidb
    if settings is not None:
        total = len(roidb)
        roidb = filter_roidb(roidb, settings.use_all_gt, settings.keep_background_images)
        if not roidb:
            reason = ('none has a box of its classes' if settings.use_all_gt else
                      'none has a box that is not marked difficult (TRAIN.USE_ALL_GT is False)')
            raise DataError(f'{imdb_names}: no image left to train on: of its {total} roidb entries {reason}; '
                            'check the annotations and the class names')
    return db, roidb
