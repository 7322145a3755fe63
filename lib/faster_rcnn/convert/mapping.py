"""What every converter does: fit a published file's tensors to our network by an explicit name table.

``map_tensors`` checks the whole table before reading any data, and reports every problem at once: tensors
the table expects but the file lacks, tensors the file has that neither the table nor a skip rule names,
and shapes that differ from what our network (built on the meta device, costing no memory) expects.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch

from faster_rcnn.config import Config, merge_list, new_config, set_key
from faster_rcnn.errors import ModelFileError, UsageError
from faster_rcnn.settings import ModelSettings

from .layouts import COPY, transform, transformed_shape

Entry = tuple[str, str, str]


def layout_config(values: Mapping[str, object], test_set: list[str] | tuple[str, ...] = ()) -> Config:
    """A private config: the defaults with ``values`` (dotted keys) set, the layout a converted file records,
    and ``test_set`` (--set style pairs of TEST.* keys only: the rest is fixed by the original network)."""
    config = new_config()
    for key, value in values.items():
        set_key(key, value, config)
    if test_set:
        keys = list(test_set[0::2])
        if any(not k.startswith('TEST.') for k in keys):
            raise UsageError(f'--set {keys}: only TEST.* keys can be set here; the rest is fixed by the original '
                             'network')
        merge_list(config, list(test_set))
    return config


def converted_record(config: Config, net: str) -> dict:
    """The recorded config of a converted ``net`` detector made with ``config``."""
    from faster_rcnn.config import config_record
    from faster_rcnn.nets.registry import model_keys
    return config_record(config, model_keys(net))


def expected_shapes(net: str, num_classes: int, config: Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our ``net`` state_dict for ``config`` (built on the meta device: no memory)."""
    from faster_rcnn.nets.factory import build_network
    with torch.device('meta'):
        model = build_network(net, num_classes, ModelSettings.from_config(config, net))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_classes_and_anchors(where: str, *, file_classes: int | None, file_anchors: int | None, num_classes: int,
                              num_anchors: int) -> None:
    """Clear errors for the two mistakes users make most: the wrong dataset, and COCO's anchors forgotten.

    ``file_classes`` / ``file_anchors``: the counts the file's predictors have (None when it lacks them).
    """
    if file_classes is not None and file_classes != num_classes:
        k = file_classes
        hint = (' (COCO: --imdb coco_2014_minival)' if k == 81 else ' (PASCAL VOC: --imdb voc_2007_test)' if k == 21
                else '')
        raise ModelFileError(f'{where}: the model detects {k - 1} classes, the given classes are {num_classes - 1}: '
                             f'pass the dataset it was trained on{hint}')
    if file_anchors is not None and file_anchors != num_anchors:
        hint = ' (COCO models: --anchors 4,8,16,32)' if file_anchors == 12 else ''
        raise ModelFileError(f'{where}: the model has {file_anchors} anchors per position, the given anchor scales '
                             f'x ratios make {num_anchors}: pass its --anchors{hint}')


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ', '.join(items[:limit])
    return f'{shown}{f" and {len(items) - limit} more" if len(items) > limit else ""}'


def map_tensors(table: Iterable[Entry], available: Mapping[str, tuple[int, ...]],
                read: Callable[[str], np.ndarray], expected: Mapping[str, tuple[int, ...]], *, where: str,
                skip_rule: Callable[[str], str | None], nhwc_channels: int | None = None,
                scratch_views: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Map a file's tensors onto our state_dict keys.

    Args:
        table: (file name, our key, layout transform) for every model tensor.
        available: file name -> shape of what the file holds.
        read: file name -> array (read on demand, so that unmapped tensors are never loaded).
        expected: our key -> shape.
        where: the file, for messages.
        skip_rule: file name -> why it is not a model tensor (None: it must be mapped).
        nhwc_channels: the channel count C of an input flattened in (h, w, c) order (FC_FROM_NHWC).
        scratch_views: ``read`` returns views of a reused buffer: tensors kept as they are are copied out.

    Returns the state_dict (float32 tensors) and the count of skipped file tensors per reason.
    Raises ModelFileError listing every missing, unmapped and mis-shaped tensor.
    """
    table = list(table)
    problems = []
    missing = [name for name, _, _ in table if name not in available]
    mapped = {name for name, _, _ in table}
    skipped: dict[str, int] = {}
    unmapped = []
    for name in available:
        if name in mapped:
            continue
        reason = skip_rule(name)
        if reason is None:
            unmapped.append(name)
        else:
            skipped[reason] = skipped.get(reason, 0) + 1
    produced = {key for _, key, _ in table}
    not_produced = [k for k in expected if k not in produced]
    unknown_keys = [key for _, key, _ in table if key not in expected]
    shapes = []
    for name, key, kind in table:
        if name in available and key in expected:
            got = transformed_shape(available[name], kind)
            if got != expected[key]:
                shapes.append(f'{name} {list(available[name])} (-> {list(got)}) for {key} {list(expected[key])}')
    if missing:
        problems.append(f'missing {len(missing)} tensors: {_listing(sorted(missing))}')
    if unmapped:
        problems.append(f'{len(unmapped)} tensors no rule maps: {_listing(sorted(unmapped))}')
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: {_listing(shapes, 6)}')
    if not_produced or unknown_keys:  # a table that does not fit our network: a bug, said plainly
        problems.append(f'the name table does not fit the network (keys not produced: {_listing(not_produced)}; '
                        f'unknown keys: {_listing(unknown_keys)})')
    if problems:
        raise ModelFileError(f'{where} does not fit the expected layout: ' + '; '.join(problems))

    state: dict[str, torch.Tensor] = {}
    for name, key, kind in table:
        array = transform(read(name), kind, channels=nhwc_channels)
        if scratch_views and kind == COPY:
            array = array.copy()
        state[key] = torch.from_numpy(array.astype(np.float32, copy=False))
    return state, skipped
