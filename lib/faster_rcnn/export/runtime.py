"""Running an exported ONNX graph behind ``faster_rcnn.Detector`` (and so ``test_net.py``, ``demo.py``):
``Detector.load('tiny.onnx')`` with ONNX Runtime, ``Detector.load('tiny.onnx', runtime='openvino')`` with OpenVINO.

The graph's settings are baked in: a keyword argument of ``Detector.load`` that asks for another value is an
ExportError naming the key (re-export with it), never silently ignored. ONNX Runtime uses the CPU execution
provider with as many intra-op threads as torch uses (the machine's cores), or CUDA's where asked for and
installed; the graph is fp32 there, so ``amp`` is an error. OpenVINO (CPU only, the ``openvino`` extra) runs it
in fp32 by default and in bf16 with ``amp='bf16'`` (its CPU plugin's bf16 inference precision: on CPUs with AMX
or AVX512-BF16 several times faster, at bf16's accuracy).
"""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import torch

from ..errors import ExportError, ModelFileError

# Detector.load's keyword -> the baked setting it must equal.
_BAKED = {'score_thresh': 'score_thresh', 'nms': 'nms', 'max_per_image': 'max_per_image', 'max_size': 'max_size'}


RUNTIMES = ('onnxruntime', 'openvino')


def read_metadata(session) -> dict:
    """The graph's metadata_props (from an ONNX Runtime session), JSON values decoded."""
    return decode_metadata(session.get_modelmeta().custom_metadata_map)


def decode_metadata(raw: dict) -> dict:
    """metadata_props as strings -> values (JSON decoded, except the plain-text keys)."""
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if key not in ('net', 'channel_order', 'exp_dir') else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def _check_overrides(path: str, settings: dict, overrides: dict, amp: str | None) -> None:
    """``amp`` must be unset (pass None for a runtime that handles it) and every override the baked value."""
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


class _GraphBackend:
    """What every runtime of an exported graph shares: the metadata checks, the loader items, BGR -> the graph's
    channel order. Subclasses set ``metadata`` and implement ``_outputs(image)``."""

    inputs = None  # the loader hands over decoded images: the graph resizes and normalises them itself
    metadata: dict

    def _configure(self, path: str, overrides: dict | None, amp: str | None) -> None:
        if 'classes' not in self.metadata or 'channel_order' not in self.metadata:
            raise ModelFileError(f'{path} has no detector metadata (classes, channel_order): export it with '
                                 'tools/export.py')
        _check_overrides(path, self.metadata.get('settings', {}), dict(overrides or {}), amp)
        self.path = path
        self.classes = [str(c) for c in self.metadata['classes']]
        self.channel_order = str(self.metadata['channel_order'])

    def item(self, im: np.ndarray, index: int) -> dict:
        return {'image': im, 'im_info': np.array([im.shape[0], im.shape[1], 1.0], np.float32), 'size': im.shape[:2],
                'index': index}

    def _outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def run_image(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One BGR uint8 image (H, W, 3) -> boxes (D, 4), scores (D,), labels (D,)."""
        im = bgr if self.channel_order == 'BGR' else bgr[:, :, ::-1]
        boxes, scores, labels = self._outputs(np.ascontiguousarray(im))
        return boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)

    def run(self, batch: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [self.run_image(im) for im in batch['images']]


def _unreadable(path: str, runtime: str, e: Exception) -> ModelFileError:
    """The one-line error for a file a runtime cannot load (each raises its own types for damaged or foreign
    files)."""
    return ModelFileError(f'{path} cannot be loaded by {runtime} ({type(e).__name__}: '
                          f'{str(e).splitlines()[0][:200] if str(e) else ""}); is it an exported detector?')


def _check_file(path: str) -> None:
    if not osp.isfile(path):
        raise ModelFileError(f'{path} does not exist: export one with tools/export.py')


class OnnxBackend(_GraphBackend):
    """An ONNX Runtime session over an exported graph; ``run`` takes decoded images (test loader items)."""

    runtime = 'onnxruntime'

    def __init__(self, path: str, *, overrides: dict | None = None, amp: str | None = None,
                 device: torch.device | str = 'cpu', threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError('running an .onnx file needs onnxruntime: pip install -e ".[export]"') from None
        _check_file(path)
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
        except Exception as e:
            raise _unreadable(path, 'ONNX Runtime', e) from None
        self.metadata = read_metadata(self.session)
        self._configure(path, overrides, amp)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()][:3]

    def _outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, labels = self.session.run(self.output_names, {self.input_name: image})
        return boxes, scores, labels


class OpenVinoBackend(_GraphBackend):
    """The same graph compiled by OpenVINO for the CPU: fp32 (INFERENCE_PRECISION_HINT f32), or bf16 with
    ``amp='bf16'``."""

    runtime = 'openvino'

    def __init__(self, path: str, *, overrides: dict | None = None, amp: str | None = None,
                 device: torch.device | str = 'cpu', threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ExportError('runtime openvino needs the openvino package: pip install -e ".[openvino]"') from None
        if torch.device(device).type != 'cpu':
            raise ExportError(f'device {device}: runtime openvino runs on the CPU here; use runtime onnxruntime '
                              'for CUDA')
        if amp not in (None, '', 'bf16'):
            raise ExportError(f"amp={amp!r}: runtime openvino runs fp32 (amp None) or bf16 (amp='bf16')")
        _check_file(path)
        core = ov.Core()
        try:
            model = core.read_model(path)
            self.metadata = decode_metadata({k: v.astype(str) for k, v in model.get_rt_info()['framework'].items()})
        except Exception as e:
            raise _unreadable(path, 'OpenVINO', e) from None
        self._configure(path, overrides, None)
        self.precision = 'bf16' if amp == 'bf16' else 'f32'
        threads = int(threads or torch.get_num_threads())
        self.compiled = core.compile_model(model, 'CPU', {'INFERENCE_NUM_THREADS': threads,
                                                          'INFERENCE_PRECISION_HINT': self.precision})
        self.output_names = [o.get_any_name() for o in self.compiled.outputs][:3]

    def _outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        result = self.compiled({'image': image})
        by_name = {k.get_any_name(): v for k, v in result.items()}
        boxes, scores, labels = (by_name[n] for n in self.output_names)
        return boxes, scores, labels


def graph_backend(path: str, runtime: str = 'onnxruntime', **kwargs) -> _GraphBackend:
    """The backend of ``runtime`` (RUNTIMES) over the exported graph ``path``."""
    if runtime == 'onnxruntime':
        return OnnxBackend(path, **kwargs)
    if runtime == 'openvino':
        return OpenVinoBackend(path, **kwargs)
    raise ExportError(f'runtime {runtime!r}: not one of {", ".join(RUNTIMES)}')
