"""Snapshots and detector files: safe reading, atomic writing, the recorded config, pruning.

Every ``.pth`` this project writes (a training snapshot, a converted tf-faster-rcnn / pytorch-faster-rcnn model)
holds plain Python values readable with ``torch.load(..., weights_only=True)``::

    {'format': 2, 'kind': 'snapshot' | 'detector', 'net': 'res101', 'classes': ['__background__', ...],
     'model': state_dict,
     'config': {'model': {'PIXEL_MEANS': [[[...]]], 'RESNET.LAYOUT': 'slim', ...},   # defines the network
                'test': {'SCALES': [600], 'NMS': 0.3, ...},                           # cfg.TEST at training time
                'exp_dir': 'res101'},                                                 # cfg.EXP_DIR likewise
     'source': {...}}                         # converted files: where the weights came from
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
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .errors import CheckpointError
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
    removed = []
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
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
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


# -- reading ----------------------------------------------------------------------------------------------
def load_model_file(path: str, map_location: str | torch.device = 'cpu') -> dict:
    """Read a snapshot, detector file or bare state_dict safely (``weights_only=True``); errors name the file."""
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path} does not exist: check --model / --weight')
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols: the outcome is what we report
            warnings.simplefilter('ignore')
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
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
def detector_payload(*, net: str, classes: list[str], state_dict: dict, record: dict, kind: str = 'detector',
                     source: dict | None = None) -> dict:
    """The dict of a detector file (a snapshot adds its training state to it). ``record``: the recorded config
    (``faster_rcnn.config.config_record``)."""
    payload = {'format': DETECTOR_FORMAT, 'kind': kind, 'net': net, 'classes': list(classes), 'model': state_dict,
               'config': record}
    if source is not None:
        payload['source'] = source
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
    def iteration(self) -> int:
        return int(self.contents.get('iter', 0))


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
