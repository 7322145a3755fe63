"""Running an exported ONNX graph with ONNX Runtime behind ``faster_rcnn.Detector`` (and so ``test_net.py``,
``demo.py``): ``Detector.load('tiny.onnx')``.

The graph's settings are baked in: a keyword argument of ``Detector.load`` that asks for another value is an
ExportError naming the key (re-export with it), never silently ignored. The session uses the CPU execution
provider with as many intra-op threads as torch uses (the machine's cores), or CUDA's where asked for and
installed.
"""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import torch

from ..errors import ExportError, ModelFileError

# Detector.load's keyword -> the baked setting it must equal.
_BAKED = {'score_thresh': 'score_thresh', 'nms': 'nms', 'max_per_image': 'max_per_image', 'max_size': 'max_size'}


def read_metadata(session) -> dict:
    """The graph's metadata_props, JSON values decoded."""
    raw = session.get_modelmeta().custom_metadata_map
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if key not in ('net', 'channel_order', 'exp_dir') else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def _check_overrides(path: str, settings: dict, overrides: dict, amp: str | None) -> None:
    if amp:
        raise ExportError(f'amp={amp!r}: {path} is an fp32 ONNX graph; run it without amp (or use the .pth with '
                          'Detector.load(..., amp=...))')
    for key, value in overrides.items():
        if key == 'scales':
            wanted = [int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]
            baked = [int(v) for v in settings.get('scales', [])]
        elif key in _BAKED:
            wanted, baked = value, settings.get(_BAKED[key])
        else:
            raise ExportError(f'{key}: not a setting of an exported graph')
        if baked is None or not np.allclose(np.asarray(wanted, np.float64), np.asarray(baked, np.float64)):
            raise ExportError(f'{key}={value!r}: {path} was exported with {key} = {baked!r}, which is part of the '
                              f'graph; export again with the new value (tools/export.py --{key.replace("_", "-")})')


class OnnxBackend:
    """An ONNX Runtime session over an exported graph; ``run`` takes decoded images (test loader items)."""

    inputs = None  # the loader hands over decoded images: the graph resizes and normalises them itself

    def __init__(self, path: str, *, overrides: dict | None = None, amp: str | None = None,
                 device: torch.device | str = 'cpu', threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError('running an .onnx file needs onnxruntime: pip install -e ".[export]"') from None
        if not osp.isfile(path):
            raise ModelFileError(f'{path} does not exist: export one with tools/export.py')
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.log_severity_level = 3
        providers = ['CPUExecutionProvider']
        if torch.device(device).type == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise ExportError('device cuda: this onnxruntime has no CUDA execution provider '
                                  '(pip install onnxruntime-gpu), run the graph on the CPU')
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # ORT raises its own types for damaged or foreign files
            raise ModelFileError(f'{path} cannot be loaded by ONNX Runtime ({type(e).__name__}: '
                                 f'{str(e).splitlines()[0][:200]}); is it an exported detector?') from None
        self.metadata = read_metadata(self.session)
        if 'classes' not in self.metadata or 'channel_order' not in self.metadata:
            raise ModelFileError(f'{path} has no detector metadata (classes, channel_order): export it with '
                                 'tools/export.py')
        _check_overrides(path, self.metadata.get('settings', {}), dict(overrides or {}), amp)
        self.path = path
        self.classes = [str(c) for c in self.metadata['classes']]
        self.channel_order = str(self.metadata['channel_order'])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()][:3]

    def item(self, im: np.ndarray, index: int) -> dict:
        return {'image': im, 'im_info': np.array([im.shape[0], im.shape[1], 1.0], np.float32), 'size': im.shape[:2],
                'index': index}

    def run_image(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One BGR uint8 image (H, W, 3) -> boxes (D, 4), scores (D,), labels (D,)."""
        im = bgr if self.channel_order == 'BGR' else bgr[:, :, ::-1]
        boxes, scores, labels = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(im)})
        return boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)

    def run(self, batch: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [self.run_image(im) for im in batch['images']]
