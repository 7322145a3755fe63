"""``faster_rcnn.Detector``: a trained or converted detector as a Python object.

    from faster_rcnn import Detector
    det = Detector.load('output/tiny/shapes_trainval/default/tiny_faster_rcnn_iter_1600.pth')
    d = det('data/demo/test_000000.jpg')            # a path, a BGR uint8 array, a PIL image, a uint8 tensor
    d.boxes, d.scores, d.labels, d.class_names       # (D, 4) float32 in input pixels, (D,), (D,) int64
    cv2.imwrite('out.jpg', d.draw(image, score=0.5)); json.dump(d.to_coco(image_id=1), f)
    many = det([im1, im2, im3])                      # batches of batch_size; the same as one at a time

A detector holds its own settings (``ModelSettings``: normalisation, channel order, test scale, NMS, caps) taken
from its file's recorded config when loaded, with the keyword arguments of ``load`` on top; nothing is read
from the global config, so detectors of different files live side by side in one process. ``amp`` and
``batch_size`` are the detector's own run-time choices. An ``.onnx`` file runs under ONNX Runtime, or OpenVINO
with ``runtime='openvino'`` (``faster_rcnn.export.runtime``), with the settings baked into its graph.

``tools/test_net.py``, ``tools/demo.py``, the evaluation during training and the TensorBoard detections run
through the same functions: ``data.test_loader.prepare_test_image``, ``FasterRCNN.detect`` and
``nets.postprocess``.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any, Sequence

import numpy as np
import torch

from ..config import Config, apply_record, merge_file, new_config
from ..data.test_loader import collate_test, prepare_test_image
from ..errors import ModelFileError, UsageError
from ..model_file import open_detector
from ..nets.amp import AMP_DTYPES
from ..nets.factory import build_from_file
from ..nets.half_weights import with_half_weights
from ..settings import AMP_MODES, InputSettings, ModelSettings
from .detections import Detections
from .images import to_bgr

class _EagerBackend:
    """A ``FasterRCNN`` on a device: preprocessing on the host (workers), the network and NMS on the device.

    With ``amp`` the network that runs is a copy whose weights are held in the autocast dtype, cast once here
    (``nets.half_weights``); ``model`` stays the fp32 original.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, amp: str) -> None:
        if amp not in AMP_MODES:
            raise UsageError(f"amp={amp!r}: expected '' (fp32), 'bf16' or 'fp16'")
        self.model, self.device, self.amp = model, device, amp
        self.runner = with_half_weights(model, AMP_DTYPES[amp]) if amp else model

    @property
    def inputs(self) -> InputSettings:
        return self.model.settings.input

    def item(self, im: np.ndarray, index: int) -> dict:
        blob, im_info = prepare_test_image(im, self.inputs)
        return {'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': index}

    def run(self, batch: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        data = batch['data'].to(self.device, non_blocking=True)
        im_info = batch['im_info'].to(self.device, non_blocking=True)
        found = self.runner.detect(data, im_info, batch['sizes'], amp=self.amp)
        return [(d.boxes.cpu().numpy(), d.scores.cpu().numpy(), d.labels.cpu().numpy()) for d in found]


class Detector:
    """A detector: call it on an image (or a list of images) to get ``Detections``.

    Build one with ``Detector.load(path)`` (a snapshot, a converted detector file or an exported ``.onnx``) or
    ``Detector.from_model(model, classes)``.
    """

    def __init__(self, backend: Any, classes: Sequence[str], *, batch_size: int = 1, source: str = '') -> None:
        if int(batch_size) < 1:
            raise UsageError(f'batch_size={batch_size}: expected at least 1')
        self._backend = backend
        self.classes = tuple(classes)
        self.batch_size = int(batch_size)
        self.source = source

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: torch.nn.Module, classes: Sequence[str], *, device: torch.device | str | None = None,
                   amp: str = '', batch_size: int = 1) -> 'Detector':
        """A detector over a built ``FasterRCNN`` (its ``settings`` decide the input and post-processing)."""
        if len(classes) != model.num_classes:
            raise UsageError(f'{len(classes)} class names for a model of {model.num_classes} classes')
        device = torch.device(device) if device is not None else next(model.parameters()).device
        model.eval()
        return cls(_EagerBackend(model, device, amp), classes, batch_size=batch_size)

    @classmethod
    def load(cls, path: str, device: torch.device | str = 'cpu', *, net: str | None = None,
             config: str | Config | None = None, score_thresh: float | None = None, nms: float | None = None,
             max_per_image: int | None = None, scales: int | Sequence[int] | None = None,
             max_size: int | None = None, amp: str | None = None, batch_size: int | None = None,
             runtime: str = 'onnxruntime') -> 'Detector':
        """Load a detector file (``.pth``: a snapshot or converted model) or an exported ``.onnx`` graph.

        The file's recorded config decides the network and its settings; the keyword arguments override the
        test-time ones (default: the recorded TEST.* values). ``config`` (a yml path or a config object) is
        only for files from before the record, which need the config they were trained with. ``runtime``
        ('onnxruntime' or 'openvino') runs an ``.onnx`` file; OpenVINO takes ``amp='bf16'``.
        """
        overrides = {k: v for k, v in dict(score_thresh=score_thresh, nms=nms, max_per_image=max_per_image,
                                           scales=scales, max_size=max_size).items() if v is not None}
        if str(path).endswith('.onnx'):
            from ..export.runtime import graph_backend
            backend = graph_backend(str(path), runtime, overrides=overrides, amp=amp, device=device)
            return cls(backend, backend.classes, batch_size=batch_size or 1, source=str(path))
        if runtime != 'onnxruntime':
            raise UsageError(f'runtime={runtime!r}: a runtime is chosen for an exported .onnx file; {path} is a '
                             'network file, which runs in PyTorch')
        detector_file = open_detector(str(path), net)
        c = new_config()
        if isinstance(config, str):
            merge_file(c, config)
        elif config is not None:
            c = copy.deepcopy(config)
        if not apply_record(c, detector_file.record, source=str(path)) and config is None:
            raise ModelFileError(f'{path} records no config (an older snapshot or a bare state_dict): pass '
                                 'config=<the yml it was trained with>')
        if detector_file.classes is None:
            raise ModelFileError(f'{path} does not list its classes; it cannot be loaded without a dataset')
        settings = ModelSettings.from_config(c, detector_file.net).with_test(**overrides)
        model = build_from_file(detector_file, settings, device)
        detector = cls.from_model(model, detector_file.classes, device=device,
                                  amp=str(c.TEST.AMP) if amp is None else amp,
                                  batch_size=int(c.TEST.IMS_PER_BATCH) if batch_size is None else batch_size)
        detector.source = str(path)
        return detector

    # -- what it is --------------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module | None:
        """The ``FasterRCNN`` (None for an ONNX graph)."""
        return getattr(self._backend, 'model', None)

    @property
    def metadata(self) -> dict:
        """An exported graph's metadata (classes, channel_order, net, config, settings); {} for a network."""
        return dict(getattr(self._backend, 'metadata', {}) or {})

    @property
    def settings(self) -> ModelSettings | None:
        """The model's settings (None for an ONNX graph, whose settings are in its metadata)."""
        model = self.model
        return model.settings if model is not None else None

    @property
    def loader_inputs(self) -> InputSettings | None:
        """How a test loader prepares images for this detector (None: it takes the decoded images)."""
        return self._backend.inputs

    def __repr__(self) -> str:
        kind = getattr(self._backend, 'runtime', None) or type(self._backend).__name__.strip('_').replace(
            'Backend', '').lower()
        return f'Detector({self.source or kind!r}, {len(self.classes) - 1} classes, batch_size={self.batch_size})'

    # -- detecting ---------------------------------------------------------------------------------------
    def detect_loaded(self, batch: dict) -> list[Detections]:
        """The detections of a batch from ``data.test_loader`` (``collate_test``) built with ``loader_inputs``."""
        return [Detections(b, s, lab.astype(np.int64), self.classes) for b, s, lab in self._backend.run(batch)]

    def __call__(self, images: Any, channel_order: str = 'BGR') -> Detections | list[Detections]:
        """Detect on one image, or on a list (or tuple) of images in batches of ``batch_size``."""
        if isinstance(images, (list, tuple)):
            if not images:
                return []
            bgr = [to_bgr(im, channel_order, f'images[{i}]') for i, im in enumerate(images)]
            out: list[Detections] = []
            for start in range(0, len(bgr), self.batch_size):
                out += self._detect(bgr[start:start + self.batch_size], start)
            return out
        return self._detect([to_bgr(images, channel_order, 'image')], 0)[0]

    def _detect(self, ims: list[np.ndarray], start: int) -> list[Detections]:
        return self.detect_loaded(collate_test([self._backend.item(im, start + i) for i, im in enumerate(ims)]))


def is_graph_file(path: str) -> bool:
    """Whether ``path`` names an exported graph (run by ONNX Runtime) rather than a detector file."""
    return osp.splitext(str(path))[1].lower() == '.onnx'
