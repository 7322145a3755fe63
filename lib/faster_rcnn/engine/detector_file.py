"""Self-describing detector files: what a snapshot or a converted model records besides its weights.

Every ``.pth`` this project writes (a training snapshot, a converted tf-faster-rcnn / pytorch-faster-rcnn
model) holds, in plain Python values readable with ``torch.load(..., weights_only=True)``::

    {'format': 2, 'kind': 'snapshot' | 'detector', 'net': 'res101', 'classes': ['__background__', ...],
     'model': state_dict,
     'config': {'model': {'PIXEL_MEANS': [[[...]]], 'RESNET.LAYOUT': 'slim', ...},   # defines the network
                'test': {'SCALES': [600], 'NMS': 0.3, ...},                           # cfg.TEST at training time
                'exp_dir': 'res101'},                                                 # cfg.EXP_DIR likewise
     'source': {...}}                         # converted files: where the weights came from
    (+ 'iter', 'optimizer', 'rng', 'data' in snapshots: the training state)

Loading a file applies its ``config.model`` values and keeps them fixed (``config.record_keys``): a --cfg
or --set that contradicts one is an error naming the key and both values unless the user passes
--override. The recorded TEST values and EXP_DIR (where test results go) become the defaults that --cfg/--set may
change freely. Files from
before the record (format 1, or a bare state_dict) keep loading with the user's --cfg, as before.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Any

import torch

from faster_rcnn.config import cfg, format_value, get_key, record_keys, same_value, set_key, to_plain
from faster_rcnn.engine.checkpoint import CheckpointError, load_model_weights, load_snapshot

DETECTOR_FORMAT = 2

# Keys that define any network or its input.
COMMON_MODEL_KEYS = (
    'PIXEL_MEANS', 'PIXEL_STDS', 'CHANNEL_ORDER',            # input normalisation and channel order
    'ANCHOR_SCALES', 'ANCHOR_RATIOS', 'RPN_CHANNELS',         # the RPN's anchors and width
    'POOLING_MODE', 'POOLING_SIZE',                           # RoI features
    'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED',               # test-time box de-normalisation
    'TRAIN.BBOX_NORMALIZE_MEANS', 'TRAIN.BBOX_NORMALIZE_STDS',
)
# Keys that define one backbone's layout or width.
NET_MODEL_KEYS = {
    'vgg16': ('VGG16.CEIL_MODE',),
    'res50': ('RESNET.LAYOUT', 'RESNET.MAX_POOL'),
    'res101': ('RESNET.LAYOUT', 'RESNET.MAX_POOL'),
    'res152': ('RESNET.LAYOUT', 'RESNET.MAX_POOL'),
    'mobile': ('MOBILENET.VERSION', 'MOBILENET.DEPTH_MULTIPLIER'),
    'tiny': ('TINY.CHANNELS', 'TINY.FC_DIM'),
}


def model_keys(net: str) -> tuple[str, ...]:
    """The config keys that define network ``net`` and its input."""
    if net not in NET_MODEL_KEYS:
        raise ValueError(f'unknown network {net!r}: expected one of {list(NET_MODEL_KEYS)}')
    return COMMON_MODEL_KEYS + NET_MODEL_KEYS[net]


def config_record(net: str) -> dict[str, dict[str, Any]]:
    """What a file of network ``net`` records of the current config (plain values)."""
    return {'model': {k: to_plain(get_key(k)) for k in model_keys(net)},
            'test': {k: to_plain(v) for k, v in cfg.TEST.items()},
            'exp_dir': str(cfg.EXP_DIR)}


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


def _apply_test_record(test: dict, path: str) -> None:
    for k, v in test.items():
        if k in cfg.TEST:  # a key that a later version added and this one lacks cannot change the model
            set_key(f'TEST.{k}', v)


@dataclass
class DetectorFile:
    """A loaded detector file: its contents, the network it holds and the classes it detects."""

    path: str
    contents: dict
    net: str
    classes: list[str] | None

    @property
    def record(self) -> dict | None:
        return self.contents.get('config')

    @property
    def kind(self) -> str:
        return self.contents.get('kind', 'snapshot' if 'optimizer' in self.contents else 'detector')

    def apply_config(self, *, allow_override: bool = False, test_keys: bool = True) -> bool:
        """Put the recorded model keys (fixed) and TEST keys (defaults) into ``cfg``; False if nothing is recorded."""
        record = self.record
        if not record:
            return False
        model = record.get('model', {})
        unknown = [k for k in model if not _is_config_key(k)]
        if unknown:
            raise CheckpointError(f'{self.path} records config keys this version does not know ({unknown}): it was '
                                  'written by a newer version; update faster-rcnn to use it')
        record_keys(model, self.path, allow_override=allow_override)
        if test_keys:
            _apply_test_record(record.get('test', {}), self.path)
            if 'exp_dir' in record:
                cfg.EXP_DIR = str(record['exp_dir'])
        return True

    def build(self, device: torch.device | str, num_classes: int | None = None) -> torch.nn.Module:
        """The network with the file's weights (strictly), in eval mode on ``device``, from the current ``cfg``.

        ``num_classes`` defaults to the file's class count; a mismatch with it is an error naming the file.
        """
        from faster_rcnn.nets.factory import build_network
        if num_classes is None:
            if self.classes is None:
                raise CheckpointError(f'{self.path} does not list its classes: pass the dataset (--imdb)')
            num_classes = len(self.classes)
        elif self.classes is not None and len(self.classes) != num_classes:
            raise CheckpointError(f'{self.path} detects {len(self.classes) - 1} classes {list(self.classes[1:])}, '
                                  f'but the dataset has {num_classes - 1}: test with the dataset it was trained on')
        model = build_network(self.net, num_classes, cfg=cfg)
        load_model_weights(model, self.contents, self.path, net=self.net)
        model.place(device).eval()
        return model


def check_config_matches(contents: dict, path: str, net: str) -> None:
    """Resuming: the snapshot's recorded model keys must equal the current config's (the same experiment)."""
    record = (contents.get('config') or {}).get('model', {})
    for key in model_keys(net):
        if key in record and not same_value(record[key], get_key(key)):
            raise CheckpointError(f'{path} was trained with {key} = {format_value(record[key])}, but the config '
                                  f'now says {format_value(get_key(key))}: resuming would change the network. '
                                  'Put the key back, or start a new run (--fresh, or another --tag)')


def _is_config_key(key: str) -> bool:
    try:
        get_key(key)
    except KeyError:
        return False
    return True


def open_detector(path: str, net: str | None = None) -> DetectorFile:
    """Read a detector file safely and decide its network: ``net`` (the --net flag) must agree with the one
    the file records; when omitted the file's is used."""
    contents = load_snapshot(path, map_location='cpu')
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


def detector_payload(*, net: str, classes: list[str], state_dict: dict, kind: str = 'detector',
                     source: dict | None = None) -> dict:
    """The dict of a detector file for the current ``cfg`` (a snapshot adds its training state to it)."""
    payload = {'format': DETECTOR_FORMAT, 'kind': kind, 'net': net, 'classes': list(classes), 'model': state_dict,
               'config': config_record(net)}
    if source is not None:
        payload['source'] = source
    return payload


def default_model_path(net: str, imdb_name: str, iters: int, exp_dir: str | None = None, tag: str = 'default') -> str:
    """Where train_faster_rcnn.sh leaves (and test_faster_rcnn.sh / demo.py look for) a final model:
    ``output/<EXP_DIR>/<imdb>/<tag>/<net>_faster_rcnn_iter_<N>.pth``."""
    return osp.join(cfg.ROOT_DIR, 'output', exp_dir or net, imdb_name, tag, f'{net}_faster_rcnn_iter_{iters}.pth')
