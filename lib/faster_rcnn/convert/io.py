"""The converters' command-line inputs and output: class lists, number lists, writing the detector file."""
from __future__ import annotations

import os
import os.path as osp

from faster_rcnn.errors import DiskError, UsageError
from faster_rcnn.model_file import save_atomic


def parse_number_list(text: str, flag: str) -> list[float]:
    """'4,8,16,32', '[4, 8, 16, 32]' or '4 8 16 32' -> [4.0, 8.0, 16.0, 32.0]."""
    parts = text.replace('[', ' ').replace(']', ' ').replace(',', ' ').split()
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f'{flag} {text!r}: expected numbers such as 4,8,16,32') from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f'{flag} {text!r}: expected positive numbers such as 4,8,16,32')
    return values


def read_class_names(*, imdb: str | None, path: str | None) -> list[str]:
    """The class list (background first) of a dataset name, or of a file of names (one a line; a first
    line ``__background__`` is optional)."""
    if imdb is not None:
        from faster_rcnn.datasets.factory import classes_of
        return list(classes_of(imdb))
    assert path is not None  # the tools require one of --imdb and --classes
    try:
        with open(path, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise UsageError(f'--classes {path}: cannot be read ({e.strerror})') from None
    if names and names[0] == '__background__':
        names = names[1:]
    if not names:
        raise UsageError(f'--classes {path}: the file lists no class names (one a line)')
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f'--classes {path}: class names repeat ({dupes})')
    return ['__background__'] + names


def read_category_ids(*, imdb: str | None, classes: list[str]) -> tuple[int, ...]:
    """The dataset category id of classes 1..K-1: the dataset's own (COCO's 80 ids 1..90 for a COCO model) with
    --imdb, 1..K-1 for a --classes file (no ids to read there)."""
    if imdb is not None:
        from faster_rcnn.datasets.factory import category_ids_of
        return tuple(category_ids_of(imdb))
    return tuple(range(1, len(classes)))


def write_detector(payload: dict, out: str) -> None:
    """Write a detector file atomically (no half-written file under ``out``, an earlier one kept on failure)."""
    folder = osp.dirname(osp.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        save_atomic(payload, out)
    except OSError as e:
        raise DiskError(f'{out}: cannot be written ({e.strerror}); free some space or choose another --out') from None
