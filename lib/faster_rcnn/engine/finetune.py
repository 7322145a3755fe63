"""Starting a new training run from a detector file (fine-tuning), possibly to other classes.

Distinct from resuming (the same run continues from its own snapshot, optimizer and data order included)
and from ImageNet initialisation (the backbone only): every weight of the detector is copied, and only the
class-dependent predictors (``cls_score``, ``bbox_pred``) depend on the new class list. A class of the new
dataset whose name the detector knows keeps its rows of those predictors (background always does); the
others keep their fresh initialisation (normal, std 0.01 / 0.001).

    detector classes  ('__background__', 'circle', 'square')
    new classes       ('__background__', 'circle', 'square', 'triangle')
    -> rows 0, 1, 2 copied (bbox_pred rows 4j..4j+3 for class j), row 3 / rows 12..15 fresh.
"""
from __future__ import annotations

import torch
from torch import nn

from faster_rcnn.errors import CheckpointError
from faster_rcnn.model_file import model_state_from

# The class-dependent tensors and how many rows each class owns.
_PER_CLASS_ROWS = {'cls_score.weight': 1, 'cls_score.bias': 1, 'bbox_pred.weight': 4, 'bbox_pred.bias': 4}
_HEAD = 'attr_head.'  # the attribute head's tensors (nets.attribute_head)


def class_row_map(old: list[str] | None, new: list[str]) -> dict[int, int]:
    """``{new class index: old class index}`` for the classes both lists name (by name; background is index 0)."""
    if old is None:
        return {0: 0}
    where = {name: i for i, name in enumerate(old)}
    mapping = {j: where[name] for j, name in enumerate(new) if name in where}
    mapping[0] = 0
    return mapping


def load_finetune_weights(model: nn.Module, detector, classes: list[str]) -> str:
    """Copy ``detector``'s weights (a ``DetectorFile``) into ``model`` built for ``classes``; returns a report.

    Every tensor but the class-dependent ones must exist in both with the same shape; otherwise a
    CheckpointError lists the differences and names the file (another network, width or layout). An attribute
    head (``attr_head.*``) is copied only when the file has one of the same shapes for the same classes;
    otherwise the model's head (if any) starts fresh and the file's is left out.
    """
    path = detector.path
    state = dict(model_state_from(detector.contents, path))
    own = model.state_dict()
    head_note = _take_attribute_head(state, own, detector, classes)
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in own if k in state and k not in _PER_CLASS_ROWS and own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}' for k in mismatched[:6]]
        raise CheckpointError(
            f'{path} does not fit this {detector.net} network: missing {missing[:6]}, unexpected {unexpected[:6]}, '
            f'shapes {shapes}. Was it made with another network, width or layout (see its recorded config: '
            'tools/describe_model.py)?')
    same_classes = detector.classes is not None and list(detector.classes) == list(classes)
    mapping = {j: j for j in range(len(classes))} if same_classes else class_row_map(detector.classes, classes)
    old_count = state['cls_score.bias'].shape[0]
    if any(i >= old_count for i in mapping.values()):
        raise CheckpointError(f'{path}: its class list has {len(detector.classes or [])} names but its predictor '
                              f'{old_count} rows: the file is inconsistent')
    with torch.no_grad():
        for k, v in state.items():
            if k not in _PER_CLASS_ROWS:
                own[k].copy_(v)
                continue
            rows = _PER_CLASS_ROWS[k]
            for j, i in mapping.items():
                own[k][j * rows:(j + 1) * rows].copy_(v[i * rows:(i + 1) * rows])
    if same_classes:
        return f'  every weight loaded ({len(classes) - 1} classes, as the detector)' + head_note
    kept = [classes[j] for j in sorted(mapping)]
    fresh = [c for j, c in enumerate(classes) if j not in mapping]
    return (f'  every weight loaded but the class predictors: rows kept for {len(kept)} classes {kept}, '
            f'fresh for {len(fresh)} {fresh}' + head_note)


def _take_attribute_head(state: dict, own: dict, detector, classes: list[str]) -> str:
    """Drop the file's attribute head from ``state`` unless it fits ``own`` (same keys, shapes and classes);
    returns the report's note about the head ('' when neither has one)."""
    theirs = {k for k in state if k.startswith(_HEAD)}
    mine = {k for k in own if k.startswith(_HEAD)}
    if not theirs and not mine:
        return ''
    fits = (theirs == mine and all(state[k].shape == own[k].shape for k in mine)
            and detector.classes is not None and list(detector.classes) == list(classes))
    if fits:
        return '; the attribute head too'
    for k in theirs:
        del state[k]
    for k in mine:  # the model's own fresh initialisation stays
        state[k] = own[k]
    return '; the attribute head starts fresh' if mine else '; the file\'s attribute head is left out'
