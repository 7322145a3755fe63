"""Snapshots and detector files: safe reading, atomic writing, the recorded config, pruning.

Every ``.pth`` this project writes (a training snapshot, a converted tf-faster-rcnn / pytorch-faster-rcnn model)
holds plain Python values readable with ``torch.load(..., weights_only=True)``::

    {'format': 2, 'kind': 'snapshot' | 'detector', 'net': 'res101', 'classes': ['__background__', ...],
     'category_ids': [0, 1, 2, ...],          # the dataset's category id of each class, background slot 0
     'model': state_dict,
     'config': {'model': {'PIXEL_MEANS': [[[...]]], 'RESNET.LAYOUT': 'slim', ...},   # defines the network
                'test': {'SCALES': [600], 'NMS': 0.3, ...},                           # cfg.TEST at training time
                'exp_dir': 'res101'},                                                 # cfg.EXP_DIR likewise
     'source': {...},                         # converted files: where the weights came from
     'attributes': ['__no_attribute__', ...]} # only a network with an attribute head: its output names
    (+ 'iter', 'optimizer', 'rng', 'data', ['grad_scaler'] in snapshots: the training state)

A file is written to a temporary file in the same folder, fsync'ed and renamed, so a crash, a kill or a full
disk never leaves a truncated file under the final name (a temporary left by a kill is removed at the next
start, ``remove_stray_temporaries``); it gets the permissions the umask gives any new file. Files from before
the record (format 1, or a bare state_dict) still load; they need the config they were trained with.

This module sits below ``nets``, ``convert`` and ``engine``: it knows the file format, not the networks (the
keys to record come from the caller, ``faster_rcnn.nets.registry``).
"""
from __future__ import annotations

import glob
import numbers
import os
import os.path as osp
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import CheckpointError, UserError
from .utils.atomic import TMP_SUFFIX, atomic_write

DETECTOR_FORMAT = 2
SNAPSHOT_FORMAT = 2
_ITER_RE = re.compile(r'_iter_(\d+)\.pth$')
_TMP_SUFFIX = TMP_SUFFIX


# -- paths ------------------------------------------------------------------------------------------------
def snapshot_path(output_dir: str, prefix: str, iteration: int) -> str:
    return osp.join(output_dir, f'{prefix}_iter_{iteration}.pth')


def list_snapshots(output_dir: str, prefix: str) -> list[tuple[int, str]]:
    """``[(iteration, path), ...]`` of the snapshots in ``output_dir``, oldest first."""
    found = []
    for path in glob.glob(osp.join(glob.escape(output_dir), f'{glob.escape(prefix)}_iter_*.pth')):
        m = _ITER_RE.search(path)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def prune_snapshots(output_dir: str, prefix: str, keep: int, protect: int | None = None) -> list[str]:
    """Delete the oldest snapshots so that ``keep`` remain (``protect``: an iteration never deleted)."""
    snaps = [s for s in list_snapshots(output_dir, prefix) if s[0] != protect]
    removed: list[str] = []
    if keep <= 0:
        return removed
    for _, path in snaps[:-keep] if len(snaps) > keep else []:
        os.unlink(path)
        removed.append(path)
    return removed


def remove_stray_temporaries(output_dir: str, prefix: str) -> list[str]:
    """Delete the temporaries of snapshot writes that a kill interrupted (``.<prefix>_iter_<N>.pth.*.tmp``)."""
    pattern = osp.join(glob.escape(output_dir), f'.{glob.escape(prefix)}_iter_*.pth.*{_TMP_SUFFIX}')
    removed = []
    for path in glob.glob(pattern):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


# -- writing ----------------------------------------------------------------------------------------------
def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError with an errno at the root of ``e``'s chain, if there is one."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` through the one atomic writer (``utils.atomic``: temporary file, fsync, rename,
    fsync of the folder).

    Whatever fails (a full disk, a kill), the file under ``path`` is the previous one or the new one, whole.
    """
    try:
        with atomic_write(path) as f:
            torch.save(obj, f)
    except BaseException as e:
        cause = _os_error_in(e)
        if cause is not None:  # torch's zip writer wraps a failed write (a full disk) in a RuntimeError
            raise OSError(cause.errno, cause.strerror, path) from None
        raise


# -- exported graphs --------------------------------------------------------------------------------------
GRAPH_SUFFIXES = ('.onnx', '.pt2')
_ONNX_MARK = b'faster_rcnn_export'  # a metadata key of every exported ONNX graph (export/metadata.py)


def _zip_names(path: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def exported_kind(path: str, by_contents: bool = False) -> str | None:
    """``'onnx'`` or ``'pt2'`` when ``path`` is a graph of ``tools/export.py`` (by its suffix; with
    ``by_contents`` also a renamed one, by what is inside), else None."""
    suffix = osp.splitext(str(path))[1].lower()
    if suffix in GRAPH_SUFFIXES:
        return suffix[1:]
    if not by_contents or not osp.isfile(path):
        return None
    with open(path, 'rb') as f:
        head = f.read(2)
        # A torch.save file is a zip holding data.pkl; a torch.export program is a zip holding archive_format.
        if head == b'PK':
            names = _zip_names(path)
            return 'pt2' if any(osp.basename(n) == 'archive_format' for n in names) else None
        # An ONNX ModelProto starts with its ir_version (field 1, a varint: byte 0x08); the metadata comes last.
        if head[:1] == b'\x08':
            f.seek(max(0, osp.getsize(path) - (4 << 20)))
            return 'onnx' if _ONNX_MARK in f.read() else None
    return None


def graph_file_error(path: str, kind: str) -> CheckpointError:
    """The one line for an exported graph given where a detector file (.pth) is needed."""
    runs = ('Detector.load, test_net.py and demo.py run the .onnx' if kind == 'onnx' else
            'a trusted .pt2 runs in test_net.py / demo.py --trust-code and Detector.load(path, trust_code=True)')
    return CheckpointError(f'{path} is an exported {"ONNX graph" if kind == "onnx" else "torch.export program"} '
                           f'(tools/export.py), not a detector file: pass the .pth it was exported from ({runs})')


# -- reading ----------------------------------------------------------------------------------------------
def load_model_file(path: str, map_location: str | torch.device = 'cpu') -> dict:
    """Read a snapshot, detector file or bare state_dict safely (``weights_only=True``); errors name the file."""
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path} does not exist: check --model / --weight')
    kind = exported_kind(path)
    if kind is not None:  # torch.load would call it corrupted (.pt2) or suggest weights_only=False (.onnx)
        raise graph_file_error(path, kind)
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols: the outcome is what we report
            warnings.simplefilter('ignore')
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        kind = exported_kind(path, by_contents=True)
        if kind is not None:
            raise graph_file_error(path, kind) from None
        raise CheckpointError(f'checkpoint {path} cannot be read safely ({type(e).__name__}: {e}); '
                              'it may be truncated or not a checkpoint of this project') from e
    if not isinstance(obj, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(obj).__name__}, expected a dict')
    return obj


def model_state_from(obj: dict, path: str) -> dict:
    """The model's state_dict inside a snapshot, or the object itself when it is a bare state_dict."""
    if 'model' in obj and isinstance(obj['model'], dict):
        return obj['model']
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError(f'checkpoint {path} has no model weights (keys: {sorted(obj)[:10]})')


def _shape_hint(keys: list[str]) -> str:
    """What a set of mis-shaped tensors says about the mistake (the biases carry only the output count)."""
    if 'cls_score.bias' in keys:
        return 'the number of classes differs: use the dataset it was trained on (--imdb)'
    if 'rpn_cls_score.bias' in keys:
        return 'the number of anchors differs: check ANCHOR_SCALES / ANCHOR_RATIOS (COCO models use 4 scales)'
    if 'rpn_conv.bias' in keys:
        return 'the RPN width differs: check RPN_CHANNELS'
    return 'the network width or layout differs: check TINY.*, MOBILENET.DEPTH_MULTIPLIER, POOLING_SIZE and --net'


def load_model_weights(model: torch.nn.Module, obj: dict, path: str, net: str | None = None) -> None:
    """Load the model weights of a snapshot strictly; name the file and the mismatched keys on failure."""
    if net is not None and obj.get('net') not in (None, net):
        raise CheckpointError(f'checkpoint {path} was trained with --net {obj["net"]}, not --net {net}')
    state = model_state_from(obj, path)
    own = model.state_dict()
    mismatched = sorted(k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
    if mismatched:
        shapes = ', '.join(f'{k} {list(state[k].shape)} vs {list(own[k].shape)}' for k in mismatched[:4])
        raise CheckpointError(f'checkpoint {path} does not fit this network: {len(mismatched)} tensors have other '
                              f'shapes ({shapes}); {_shape_hint(mismatched)}')
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise CheckpointError(
            f'checkpoint {path} does not fit this network ({type(model).__name__}): '
            f'missing keys {missing[:8]}{" ..." if len(missing) > 8 else ""}, '
            f'unexpected keys {unexpected[:8]}{" ..." if len(unexpected) > 8 else ""}. '
            'Check --net and the number of classes of --imdb.')


# -- detector files ---------------------------------------------------------------------------------------
def full_category_ids(ids: Sequence[int], num_classes: int, where: str,
                      error: type[UserError] = CheckpointError) -> tuple[int, ...]:
    """``ids``: one dataset category id per class, with (K values) or without (K - 1) the background slot;
    returns the K values with slot 0 = 0. ``error`` (naming ``where``) for another length, a value that is not a
    whole number, or an id given twice."""
    values = list(ids)
    if len(values) == num_classes - 1:
        values = [0] + values
    if len(values) != num_classes:
        raise error(f'{where}: {len(list(ids))} category ids for a detector of {num_classes - 1} classes; give '
                    f'{num_classes - 1} (one per class, in the order of its classes) or {num_classes} (with the '
                    'background slot 0 first)')
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
    if bad:
        raise error(f'{where}: category ids are whole numbers, got {bad[0]!r}; give one integer id per class')
    values = [int(v) for v in values]
    repeated = sorted({v for v in values[1:] if values[1:].count(v) > 1})
    if repeated:
        raise error(f'{where}: category ids {repeated} are given to two classes; each class has its own id')
    return tuple([0] + values[1:])


def detector_payload(*, net: str, classes: list[str], state_dict: dict, record: dict, kind: str = 'detector',
                     source: dict | None = None, category_ids: Sequence[int] | None = None,
                     attributes: list[str] | None = None) -> dict:
    """The dict of a detector file (a snapshot adds its training state to it). ``record``: the recorded config
    (``faster_rcnn.config.config_record``). ``category_ids``: the dataset's category id of each class (K - 1,
    or K with the background slot); the default is 1..K-1, as VOC and the generated datasets number them.
    ``attributes``: the names of an attribute head's outputs, '__no_attribute__' first (the key is absent without
    a head)."""
    ids = full_category_ids(range(1, len(classes)) if category_ids is None else category_ids, len(classes),
                            'category_ids', CheckpointError)
    payload = {'format': DETECTOR_FORMAT, 'kind': kind, 'net': net, 'classes': list(classes),
               'category_ids': list(ids), 'model': state_dict, 'config': record}
    if source is not None:
        payload['source'] = source
    if attributes:
        payload['attributes'] = [str(a) for a in attributes]
    return payload


@dataclass
class DetectorFile:
    """A loaded detector file: its contents, the network it holds and the classes it detects."""

    path: str
    contents: dict
    net: str
    classes: list[str] | None

    @property
    def record(self) -> dict | None:
        """The recorded config (None for files from before the record)."""
        return self.contents.get('config')

    @property
    def kind(self) -> str:
        return self.contents.get('kind', 'snapshot' if 'optimizer' in self.contents else 'detector')

    @property
    def attributes(self) -> list[str] | None:
        """The attribute names of a network with an attribute head ('__no_attribute__' first), else None."""
        names = self.contents.get('attributes')
        return [str(a) for a in names] if names else None

    @property
    def iteration(self) -> int:
        return int(self.contents.get('iter', 0))

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The dataset's category id of each class (K values, background slot 0); None for files from before
        they were recorded."""
        ids = self.contents.get('category_ids')
        if ids is None or self.classes is None:
            return None
        where = f'{self.path}: category_ids'
        if not isinstance(ids, (list, tuple)) or len(ids) != len(self.classes):
            raise CheckpointError(f'{where}: expected one id per class with the background slot 0 first '
                                  f'({len(self.classes)} values), got {ids!r}; the file is damaged or was edited')
        return full_category_ids(ids, len(self.classes), where, CheckpointError)


def open_detector(path: str, net: str | None = None) -> DetectorFile:
    """Read a detector file safely and decide its network: ``net`` (the --net flag) must agree with the one
    the file records; when omitted the file's is used."""
    contents = load_model_file(path, map_location='cpu')
    recorded = contents.get('net')
    if net is None:
        if recorded is None:
            raise CheckpointError(f'{path} does not say which network it holds (a bare state_dict): pass --net')
        net = str(recorded)
    elif recorded is not None and recorded != net:
        raise CheckpointError(f'{path} holds a {recorded} network, not {net}: drop --net {net} (the file '
                              f'says {recorded}) or pass the model trained for {net}')
    classes = contents.get('classes')
    return DetectorFile(path=path, contents=contents, net=net,
                        classes=[str(c) for c in classes] if classes is not None else None)


def describe_record(record: dict | None) -> list[str]:
    """Human-readable lines of a record (``tools/describe_model.py``)."""
    if not record:
        return ['no recorded config (a file from before format 2, or a bare state_dict): test it with the --cfg '
                'it was trained with']
    lines = [f'  {k} = {v!r}' for k, v in record.get('model', {}).items()]
    lines += [f'  TEST.{k} = {v!r}' for k, v in record.get('test', {}).items()]
    if 'exp_dir' in record:
        lines.append(f'  EXP_DIR = {record["exp_dir"]!r}')
    return lines


def check_same_network(contents: dict, path: str, record: dict) -> None:
    """Resuming: a snapshot's recorded model keys must equal the run's (``record``), or the same experiment would
    continue with another network; a CheckpointError names the key."""
    from .config import format_value, same_value
    saved = (contents.get('config') or {}).get('model', {})
    for key, value in record.get('model', {}).items():
        if key in saved and not same_value(saved[key], value):
            raise CheckpointError(f'{path} was trained with {key} = {format_value(saved[key])}, but the config '
                                  f'now says {format_value(value)}: resuming would change the network. '
                                  'Put the key back, or start a new run (--fresh, or another --tag)')
