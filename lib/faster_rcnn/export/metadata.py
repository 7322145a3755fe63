"""What an exported graph says about itself: classes, channel order, network, recorded config, baked settings;
written by ``graph_metadata``, read back from an ``.onnx`` or ``.pt2`` file by ``read_graph_metadata``."""
from __future__ import annotations

import dataclasses
import json
import os.path as osp
import zipfile
from collections.abc import Sequence

from ..errors import ExportError, ModelFileError
from ..model_file import exported_kind
from ..settings import ModelSettings

FORMAT = 1


def graph_metadata(settings: ModelSettings, classes: Sequence[str], *, net: str, record: dict | None,
                   category_ids: Sequence[int] | None = None) -> dict:
    """The metadata of an exported ``net`` graph (plain values; ONNX stores them as strings, JSON for non-str).
    ``category_ids``: the detector file's (K values, background slot 0), kept for ``to_coco``."""
    d = settings.detection
    extra = {} if category_ids is None else {'category_ids': [int(i) for i in category_ids]}
    return {'faster_rcnn_export': str(FORMAT), 'net': net, 'classes': list(classes), **extra,
            'channel_order': settings.input.channel_order, 'config': record or {},
            'settings': {'scales': list(settings.input.scales), 'max_size': settings.input.max_size,
                         'pixel_means': list(settings.input.pixel_means),
                         'pixel_stds': list(settings.input.pixel_stds),
                         **dataclasses.asdict(d),
                         'pooling_mode': settings.network.pooling_mode,
                         'anchor_scales': list(settings.network.anchor_scales),
                         'anchor_ratios': list(settings.network.anchor_ratios),
                         'test_proposals': dict(settings.network.test_proposal_kwargs),
                         'test_mode': settings.network.test_mode},
            'exp_dir': str((record or {}).get('exp_dir', net))}


# Keys stored as plain text; the others are JSON.
_TEXT_KEYS = ('net', 'channel_order', 'exp_dir')
META_FILE = 'faster_rcnn.json'  # the extra file of a .pt2 program that holds the metadata


def decode_metadata(raw: dict) -> dict:
    """metadata_props as strings -> values (JSON decoded, except the plain-text keys)."""
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if key not in _TEXT_KEYS else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def _onnx_props(path: str) -> dict[str, str]:
    """The metadata_props of an ONNX file, read by the onnx package (or ONNX Runtime), never by torch.load."""
    try:
        import onnx
        have_onnx = True
    except ImportError:
        have_onnx = False
    try:
        if have_onnx:
            return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        import onnxruntime as ort
    except ImportError:
        raise ExportError('reading an .onnx file needs onnx or onnxruntime: pip install -e ".[export]"') from None
    except Exception as e:  # a damaged or foreign file: the protobuf decoder's error types
        raise _unreadable(path, e) from None
    try:
        return dict(ort.InferenceSession(path, providers=['CPUExecutionProvider']).get_modelmeta()
                    .custom_metadata_map)
    except Exception as e:
        raise _unreadable(path, e) from None


def _pt2_props(path: str) -> dict:
    """The metadata extra file of a .pt2 program, read from the zip archive (no part of the program is loaded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith('/extra/' + META_FILE)]
            return json.loads(archive.read(names[0])) if names else {}
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as e:
        raise _unreadable(path, e) from None


def _unreadable(path: str, e: Exception) -> ModelFileError:
    first = str(e).splitlines()[0][:200] if str(e) else ''
    return ModelFileError(f'{path} cannot be read ({type(e).__name__}: {first}); is it a graph of tools/export.py?')


def read_graph_metadata(path: str) -> dict:
    """The metadata of an exported ``.onnx`` or ``.pt2`` file (``graph_metadata``'s keys, decoded), read without
    running or unpickling anything; a ModelFileError names a file without it."""
    if not osp.isfile(path):
        raise ModelFileError(f'{path} does not exist: export one with tools/export.py')
    kind = exported_kind(path, by_contents=True)
    meta = _pt2_props(path) if kind == 'pt2' else decode_metadata(_onnx_props(path))
    if 'classes' not in meta or 'channel_order' not in meta:
        raise ModelFileError(f'{path} has no detector metadata (classes, channel_order): export it with '
                             'tools/export.py')
    return meta
