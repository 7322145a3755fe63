"""Running an exported graph behind ``faster_rcnn.Detector`` (and so ``test_net.py``, ``demo.py``):
``Detector.load('tiny.onnx')`` with ONNX Runtime, ``runtime='openvino'`` with OpenVINO, ``runtime='opencv'`` with
OpenCV 5's DNN module; ``Detector.load('tiny.pt2', trust_code=True)`` with torch.

The graph's settings are baked in: a keyword argument of ``Detector.load`` that asks for another value is an
ExportError naming the key (re-export with it), never silently ignored; only a higher ``score_thresh`` and a
smaller ``max_per_image`` are honoured, by filtering the output (``OutputFilter``). ONNX Runtime uses the CPU
execution provider with as many intra-op threads as torch uses (the machine's cores), or CUDA's where asked for
and installed; the graph is fp32 there, so ``amp`` is an error. OpenVINO (CPU only, the ``openvino`` extra) runs
it in fp32 by default and in bf16 with ``amp='bf16'`` (its CPU plugin's bf16 inference precision: on CPUs with
AMX or AVX512-BF16 several times faster, at bf16's accuracy). OpenCV (CPU, fp32) imports the graph from version
5 on. A ``.pt2`` program runs code stored in it when loaded, so it needs ``trust_code=True``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os.path as osp
from typing import Any

import numpy as np
import torch

from ..errors import ExportError, ModelFileError, UserError
from ..model_file import exported_kind
from .metadata import decode_metadata, read_graph_metadata

# Detector.load's keyword -> the baked setting it must equal.
_BAKED = {'score_thresh': 'score_thresh', 'nms': 'nms', 'max_per_image': 'max_per_image', 'max_size': 'max_size'}


RUNTIMES = ('onnxruntime', 'openvino', 'opencv')


def read_metadata(session) -> dict:
    """The graph's metadata_props (from an ONNX Runtime session), JSON values decoded."""
    return decode_metadata(session.get_modelmeta().custom_metadata_map)


@dataclasses.dataclass(frozen=True)
class OutputFilter:
    """A higher score threshold and a smaller cap than the graph's, applied to its output: the same detections
    as a graph exported with them (greedy NMS suppresses a box only by higher-scoring ones, so thresholding after
    it equals thresholding before; the top ``max_per_image`` of the graph's top-N are the top ``max_per_image``)."""

    score_thresh: float | None = None
    max_per_image: int | None = None

    def __call__(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """boxes (D, 4), scores (D,), labels (D,) -> the kept ones, in the graph's order (class, then score)."""
        keep = np.ones(len(scores), bool)
        if self.score_thresh is not None:
            keep &= scores > np.float32(self.score_thresh)  # in float32 as nets.postprocess: above, not at
        cap = self.max_per_image
        if cap and keep.sum() > cap:
            image_thresh = np.sort(scores[keep])[::-1][cap - 1]
            keep &= scores >= image_thresh  # ties with the last one kept, as the graph and nets.postprocess do
        return boxes[keep], scores[keep], labels[keep]


def _same(wanted, baked) -> bool:
    return baked is not None and bool(np.allclose(np.asarray(wanted, np.float64), np.asarray(baked, np.float64)))


def _baked_error(path: str, key: str, value, baked, allowed: str = '') -> ExportError:
    return ExportError(f'{key}={value!r}: {path} was exported with {key} = {baked!r}, which is part of the '
                       f'graph{allowed}; export again with the new value (tools/export.py --{key.replace("_", "-")})')


def output_filter(path: str, settings: dict, overrides: dict, amp: str | None) -> OutputFilter:
    """Check ``Detector.load``'s keywords against the graph's baked ``settings``: ``amp`` must be unset (pass None
    for a runtime that handles it); ``score_thresh`` above the baked value and ``max_per_image`` below it (the
    baked 0: no cap) filter the output; every other key must equal the baked value."""
    if amp:
        raise ExportError(f'amp={amp!r}: {path} is an fp32 graph; run it without amp (or use the .pth with '
                          'Detector.load(..., amp=...))')
    thresh = cap = None
    wanted: Any  # the asked and the baked value of a key: a number, or a list of scales
    baked: Any
    for key, value in overrides.items():
        if key == 'scales':
            wanted = [int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]
            baked = [int(v) for v in settings.get('scales', [])]
        elif key in _BAKED:
            wanted, baked = value, settings.get(_BAKED[key])
        else:
            raise ExportError(f'{key}: not a setting of an exported graph')
        if _same(wanted, baked):
            continue
        if key == 'score_thresh' and baked is not None:
            if float(value) < float(baked):
                raise _baked_error(path, key, value, baked, '; only a higher threshold can filter its output')
            thresh = float(value)
        elif key == 'max_per_image' and baked is not None:
            if int(value) <= 0 or (int(baked) > 0 and int(value) > int(baked)):
                raise _baked_error(path, key, value, baked, '; only a smaller cap can filter its output')
            cap = int(value)
        else:
            raise _baked_error(path, key, value, baked)
    return OutputFilter(thresh, cap)


class _GraphBackend:
    """What every runtime of an exported graph shares: the metadata checks, the loader items, BGR -> the graph's
    channel order. Subclasses set ``metadata`` and implement ``_outputs(image)``."""

    inputs = None  # the loader hands over decoded images: the graph resizes and normalises them itself
    metadata: dict

    def _configure(self, path: str, overrides: dict | None, amp: str | None) -> None:
        if 'classes' not in self.metadata or 'channel_order' not in self.metadata:
            raise ModelFileError(f'{path} has no detector metadata (classes, channel_order): export it with '
                                 'tools/export.py')
        self.filter = output_filter(path, self.metadata.get('settings', {}), dict(overrides or {}), amp)
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
        return self.filter(boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64))

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


@contextlib.contextmanager
def _quiet_opencv(cv2):
    """OpenCV logs its importer's errors on stderr before raising them: the exception is what we report."""
    logging = getattr(getattr(cv2, 'utils', None), 'logging', None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class OpenCvBackend(_GraphBackend):
    """The same graph read by OpenCV's DNN module (CPU, fp32). OpenCV 5 runs it (its new ONNX importer and graph
    engine); OpenCV 4.x cannot import the graph's operators, which is said in one line."""

    runtime = 'opencv'

    def __init__(self, path: str, *, overrides: dict | None = None, amp: str | None = None,
                 device: torch.device | str = 'cpu', threads: int | None = None) -> None:
        import cv2
        if torch.device(device).type != 'cpu':
            raise ExportError(f'device {device}: runtime opencv runs on the CPU here; use runtime onnxruntime '
                              'for CUDA')
        _check_file(path)
        self.metadata = read_graph_metadata(path)
        self._configure(path, overrides, amp)
        try:
            with _quiet_opencv(cv2):
                self.net = cv2.dnn.readNetFromONNX(path)
        except cv2.error as e:
            why: UserError = _unreadable(path, f'OpenCV {cv2.__version__}', e)
            if int(cv2.__version__.split('.')[0]) < 5:
                why = ExportError(f'{path}: OpenCV {cv2.__version__} cannot import this graph (its DNN module runs '
                                  'it from version 5 on); pip install "opencv-python-headless>=5", or use runtime '
                                  'onnxruntime')
            raise why from None
        if threads:
            cv2.setNumThreads(int(threads))

    def _outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.net.setInput(image)
        boxes, scores, labels = self.net.forward(['boxes', 'scores', 'labels'])
        return boxes, scores, labels


class Pt2Backend(_GraphBackend):
    """A ``.pt2`` program run by torch (CPU, fp32). Loading one runs code stored in it (torch.export compiles its
    guards to Python and may unpickle its tensors), so it is opened only when the caller trusts it."""

    runtime = 'torch.export'

    def __init__(self, path: str, *, overrides: dict | None = None, amp: str | None = None,
                 device: torch.device | str = 'cpu', threads: int | None = None, trust_code: bool = False) -> None:
        _check_file(path)
        if not trust_code:
            raise ModelFileError(f'{path}: a .pt2 program runs code stored in it when loaded, so it is opened only '
                                 'when trusted: pass --trust-code (Detector.load(path, trust_code=True)), or the '
                                 '.onnx or the .pth it was exported from')
        if torch.device(device).type != 'cpu':
            raise ExportError(f'device {device}: a .pt2 program runs on the CPU here; use the .pth (or the .onnx '
                              'under onnxruntime) for CUDA')
        self.metadata = read_graph_metadata(path)
        self._configure(path, overrides, amp)
        import torchvision  # noqa: F401  (registers the nms / roi_align / roi_pool operators the program calls)
        try:
            with open(path, 'rb') as f:  # a file object: torch warns about a name not ending in .pt2
                self.program = torch.export.load(f).module()
        except Exception as e:  # a damaged archive: torch raises many types
            raise _unreadable(path, 'torch.export', e) from None

    def _outputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            boxes, scores, labels = self.program(torch.from_numpy(image))
        return boxes.numpy(), scores.numpy(), labels.numpy()


def graph_backend(path: str, runtime: str | None = None, *, trust_code: bool = False, **kwargs) -> _GraphBackend:
    """The backend over the exported graph ``path``: a ``.pt2`` runs in torch (``trust_code`` must be True), an
    ``.onnx`` under ``runtime`` (RUNTIMES; default onnxruntime)."""
    if exported_kind(path, by_contents=True) == 'pt2':
        if runtime not in (None, 'torch'):
            raise ExportError(f'runtime {runtime!r}: {path} is a torch.export program, which runs in torch; the '
                              'runtimes run the .onnx export')
        return Pt2Backend(path, trust_code=trust_code, **kwargs)
    if runtime in (None, 'onnxruntime'):
        return OnnxBackend(path, **kwargs)
    if runtime == 'openvino':
        return OpenVinoBackend(path, **kwargs)
    if runtime == 'opencv':
        return OpenCvBackend(path, **kwargs)
    raise ExportError(f'runtime {runtime!r}: not one of {", ".join(RUNTIMES)}')
