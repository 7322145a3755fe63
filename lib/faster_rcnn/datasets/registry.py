"""The dataset names: each reader registers its fixed names (``voc_2007_trainval``) and its ``prefix:`` names
(``voc_dir:<root>:<split>``) from its own module; ``datasets.factory`` imports every module of this package, so a
new reader is one file in ``datasets/`` (a reader elsewhere registers when its module is imported).

A reader's contract (docs/design.md §10): an ``imdb`` subclass whose ``roidb`` entries have the format of
``datasets.imdb.make_roidb_entry`` and whose ``evaluate_detections(all_boxes, output_dir)`` returns an
``EvalResult``.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .imdb import imdb

Builder = Callable[[str | None], imdb]                   # data_dir -> the dataset
PrefixBuilder = Callable[[str, str, str | None], imdb]   # (whole name, text after 'prefix:', data_dir) -> the dataset

NAMES: dict[str, Builder] = {}
NAME_CLASSES: dict[str, tuple[str, ...]] = {}
PREFIXES: dict[str, PrefixBuilder] = {}
PREFIX_USAGE: dict[str, str] = {}


def register(name: str, build: Builder, classes: tuple[str, ...] | None = None) -> None:
    """Name a dataset; ``classes`` (background first), when known without reading files, lets
    ``factory.classes_of`` answer without the dataset on disk."""
    if ':' in name or '+' in name:
        raise ConfigError(f'dataset name {name!r}: a fixed name has no ":" or "+"; use register_prefix')
    NAMES[name] = build
    if classes is not None:
        NAME_CLASSES[name] = tuple(classes)


def register_prefix(prefix: str, build: PrefixBuilder, usage: str = '') -> None:
    """Make ``<prefix>:...`` names build datasets; ``usage`` (``voc_dir:<root>:<split>``) goes into messages."""
    if not prefix or ':' in prefix or '+' in prefix:
        raise ConfigError(f'dataset prefix {prefix!r}: expected a word without ":" or "+"')
    PREFIXES[prefix] = build
    PREFIX_USAGE[prefix] = usage or f'{prefix}:...'


def prefix_of(name: str) -> str | None:
    """The registered prefix of ``name`` (``voc_dir`` of ``voc_dir:/data:train``), or None."""
    head, sep, _ = name.partition(':')
    return head if sep and head in PREFIXES else None
