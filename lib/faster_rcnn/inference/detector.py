"""``faster_rcnn.Detector``: a trained or converted detector as a Python object.

    import cv2
    from faster_rcnn import Detector
    det = Detector.load('output/tiny/shapes_trainval/default/tiny_faster_rcnn_iter_1600.pth')
    image = cv2.imread('data/demo/test_000000.jpg')  # or a path, a PIL image, a uint8 tensor (RGB)
    d = det(image)
    d.boxes, d.scores, d.labels, d.class_names       # (D, 4) float32 in input pixels, (D,), (D,) int64
    cv2.imwrite('out.jpg', d.draw(image, score=0.5))  # a BGR uint8 array
    results = d.to_coco(image_id=1)                  # category_id: the training dataset's ids (det.category_ids)
    many = det([image, image])                       # batches of batch_size; the same as one at a time

Channel order: numpy arrays are BGR (OpenCV's), torch tensors and PIL images RGB (torchvision's, PIL's);
``det(x, channel_order='RGB')`` (or 'BGR') overrides it for arrays and tensors.

A detector holds its own settings (``ModelSettings``: normalisation, channel order, test scale, NMS, caps) taken
from its file's recorded config when loaded, with the keyword arguments of ``load`` on top; nothing is read
from the global config, so detectors of different files live side by side in one process. ``amp`` and
``batch_size`` are the detector's own run-time choices. An ``.onnx`` file runs under ONNX Runtime, OpenVINO
(``runtime='openvino'``) or OpenCV 5 (``runtime='opencv'``), a trusted ``.pt2`` program in torch
(``faster_rcnn.export.runtime``), with the settings baked into the graph.

``tools/test_net.py``, ``tools/demo.py``, the evaluation during training and the TensorBoard detections run
through the same functions: ``data.test_loader.prepare_test_image``, ``FasterRCNN.detect`` and
``nets.postprocess``.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ..config import Config, apply_record, merge_file, new_config
from ..data.test_loader import collate_test, prepare_test_image
from ..errors import ModelFileError, UsageError
from ..model_file import exported_kind, full_category_ids, open_detector
from ..nets.amp import AMP_DTYPES
from ..nets.factory import build_from_file
from ..nets.half_weights import with_half_weights
from ..nets.postprocess import top_attributes
from ..settings import AMP_MODES, InputSettings, ModelSettings
from .detections import Detections
from .device import checked_device
from .images import check_channel_order, to_bgr
from .region_features import SELECT_MODES, RegionFeatures, Selection, regions_of_batch

if TYPE_CHECKING:
    from ..nets.network import FasterRCNN

ATTRIBUTES_PER_BOX = 3  # the attributes a detection lists (the most probable, "no attribute" excluded)
logger = logging.getLogger(__name__)


def warn_no_category_ids(path: str) -> None:
    """The one warning for a detector file from before the category ids were recorded."""
    logger.warning('%s does not record the dataset category ids of its classes (a file from before they were '
                   'recorded): COCO results (to_coco, demo --json) number the classes 1..K-1, which is right for '
                   'VOC and the shapes sets but not for COCO; pass category_ids=[one per class] to to_coco', path)


class _EagerBackend:
    """A ``FasterRCNN`` on a device: preprocessing on the host (workers), the network and NMS on the device.

    With ``amp`` the network that runs is a copy whose weights are held in the autocast dtype, cast once here
    (``nets.half_weights``); ``model`` stays the fp32 original.
    """

    def __init__(self, model: FasterRCNN, device: torch.device, amp: str) -> None:
        if amp not in AMP_MODES:
            raise UsageError(f"amp={amp!r}: expected '' (fp32), 'bf16' or 'fp16'")
        self.model, self.device, self.amp = model, device, amp
        # The copy is a FasterRCNN too (``with_half_weights`` deep-copies the module it is given).
        self.runner = cast('FasterRCNN', with_half_weights(model, AMP_DTYPES[amp])) if amp else model

    @property
    def inputs(self) -> InputSettings:
        return self.model.settings.input

    def item(self, im: np.ndarray, index: int) -> dict:
        blob, im_info = prepare_test_image(im, self.inputs)
        return {'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': index}

    def run(self, batch: dict) -> list[tuple[np.ndarray, ...]]:
        """Per image (boxes, scores, labels), and with an attribute head (attribute indices, their scores), the
        top ``ATTRIBUTES_PER_BOX`` of each box."""
        data = batch['data'].to(self.device, non_blocking=True)
        im_info = batch['im_info'].to(self.device, non_blocking=True)
        found = self.runner.detect(data, im_info, batch['sizes'], amp=self.amp)
        out: list[tuple[np.ndarray, ...]] = []
        for d in found:
            arrays: tuple[np.ndarray, ...] = (d.boxes.cpu().numpy(), d.scores.cpu().numpy(), d.labels.cpu().numpy())
            if d.attr_prob is not None:
                indices, scores = top_attributes(d.attr_prob, ATTRIBUTES_PER_BOX)
                arrays += (indices.cpu().numpy(), scores.cpu().numpy())
            out.append(arrays)
        return out


class Detector:
    """A detector: call it on an image (or a list of images) to get ``Detections``.

    Build one with ``Detector.load(path)`` (a snapshot, a converted detector file, an exported ``.onnx`` or ``.pt2``) or
    ``Detector.from_model(model, classes)``.
    """

    def __init__(self, backend: Any, classes: Sequence[str], *, batch_size: int = 1, source: str = '',
                 attributes: Sequence[str] | None = None, category_ids: Sequence[int] | None = None) -> None:
        if int(batch_size) < 1:
            raise UsageError(f'batch_size={batch_size}: expected at least 1')
        self._backend = backend
        self.classes = tuple(classes)
        # The attribute names of a network with an attribute head ('__no_attribute__' first), else None.
        self.attributes = tuple(attributes) if attributes else None
        self.batch_size = int(batch_size)
        self.source = source
        self.category_ids = category_ids

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The training dataset's category id of each class (K values, background slot 0 first; the detector
        file's), which ``Detections.to_coco`` writes. A file from before they were recorded gets 0..K-1 after a
        warning; None (unknown, ``from_model`` without them): ``to_coco`` warns and numbers the classes."""
        return self._category_ids

    @category_ids.setter
    def category_ids(self, ids: Sequence[int] | None) -> None:
        self._category_ids = None if ids is None else full_category_ids(ids, len(self.classes), 'category_ids',
                                                                        UsageError)

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: torch.nn.Module, classes: Sequence[str], *, device: torch.device | str | None = None,
                   amp: str = '', batch_size: int = 1, attributes: Sequence[str] | None = None,
                   category_ids: Sequence[int] | None = None) -> Detector:
        """A detector over a built ``FasterRCNN`` (its ``settings`` decide the input and post-processing);
        ``attributes``: the names of its attribute head's outputs ('__no_attribute__' first); ``category_ids``:
        the dataset's id of each class (K - 1 values, or K with the background slot)."""
        model = cast('FasterRCNN', model)  # as documented; callers hold it as a plain module
        num_attributes: int = getattr(model, 'num_attributes', 0)
        if len(classes) != model.num_classes:
            raise UsageError(f'{len(classes)} class names for a model of {model.num_classes} classes')
        if attributes is not None and len(attributes) != num_attributes:
            raise UsageError(f'{len(attributes)} attribute names for a model with '
                             f'{num_attributes} attribute outputs')
        device = checked_device(device) if device is not None else next(model.parameters()).device
        model.eval()
        if attributes is None and num_attributes:
            attributes = ['__no_attribute__'] + [f'attribute {i}' for i in range(1, model.num_attributes)]
        return cls(_EagerBackend(model, device, amp), classes, batch_size=batch_size, attributes=attributes,
                   category_ids=category_ids)

    @classmethod
    def load(cls, path: str, device: torch.device | str = 'cpu', *, net: str | None = None,
             config: str | Config | None = None, score_thresh: float | None = None, nms: float | None = None,
             max_per_image: int | None = None, scales: int | Sequence[int] | None = None,
             max_size: int | None = None, amp: str | None = None, batch_size: int | None = None,
             runtime: str | None = None, trust_code: bool = False) -> Detector:
        """Load a detector file (``.pth``: a snapshot or converted model) or an exported ``.onnx`` / ``.pt2`` graph.

        The file's recorded config decides the network and its settings; the keyword arguments override the
        test-time ones (default: the recorded TEST.* values). ``config`` (a yml path or a config object) is
        only for files from before the record, which need the config they were trained with. ``runtime``
        ('onnxruntime', the default, 'openvino' or 'opencv') runs an ``.onnx`` file; OpenVINO takes
        ``amp='bf16'``. A graph's settings are baked in: a higher ``score_thresh`` or a smaller ``max_per_image``
        filters its output, other values are errors. A ``.pt2`` program runs code stored in it when loaded:
        it needs ``trust_code=True``.

        ``category_ids`` (what ``to_coco`` writes) come from the file; a file from before they were recorded
        says so once (a logged warning) and its detections number the classes 1..K-1. ``device``: 'cpu', 'cuda',
        'cuda:N' (a name this machine does not have is a UsageError listing those it has).
        """
        device = checked_device(device)
        overrides = {k: v for k, v in dict(score_thresh=score_thresh, nms=nms, max_per_image=max_per_image,
                                           scales=scales, max_size=max_size).items() if v is not None}
        if is_graph_file(path):
            from ..export.runtime import graph_backend
            backend = graph_backend(str(path), runtime, overrides=overrides, amp=amp, device=device,
                                    trust_code=trust_code)
            ids = (getattr(backend, 'metadata', None) or {}).get('category_ids')
            if ids is None:
                warn_no_category_ids(str(path))
                ids = range(len(backend.classes))  # said once here, not at every to_coco
            return cls(backend, backend.classes, batch_size=batch_size or 1, source=str(path), category_ids=ids)
        if runtime not in (None, 'onnxruntime'):
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
                                  batch_size=int(c.TEST.IMS_PER_BATCH) if batch_size is None else batch_size,
                                  attributes=detector_file.attributes,
                                  category_ids=detector_file.category_ids)
        if detector.category_ids is None:
            warn_no_category_ids(str(path))
            detector.category_ids = range(1, len(detector.classes))  # said once here, not at every to_coco
        detector.source = str(path)
        return detector

    # -- what it is --------------------------------------------------------------------------------------
    @property
    def model(self) -> FasterRCNN | None:
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
        out = []
        for arrays in self._backend.run(batch):
            b, s, lab = arrays[:3]
            extra = {}
            if len(arrays) == 5 and self.attributes is not None:
                extra = dict(attributes=arrays[3].astype(np.int64), attribute_scores=arrays[4].astype(np.float32),
                             attribute_names=self.attributes)
            out.append(Detections(b, s, lab.astype(np.int64), self.classes, category_ids=self._category_ids,
                                  **extra))
        return out

    def __call__(self, images: Any, channel_order: str | None = None) -> Detections | list[Detections]:
        """Detect on one image, or on a list (or tuple) of images in batches of ``batch_size``.

        An image: a file path, a numpy uint8 array (BGR, as ``cv2.imread`` gives), a PIL image, a uint8 torch
        tensor (RGB, as ``torchvision.io.read_image`` gives; (3, H, W) or (H, W, 3)). ``channel_order`` 'RGB' or
        'BGR' overrides the order of arrays and tensors (e.g. 'RGB' for ``np.asarray(pil_image)``).
        """
        check_channel_order(channel_order)
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

    # -- region features ---------------------------------------------------------------------------------
    def features(self, images: Any, boxes: Any = None, *, select: str = 'butd', min_boxes: int = 10,
                 max_boxes: int = 100, conf_thresh: float = 0.2, channel_order: str | None = None
                 ) -> RegionFeatures | list[RegionFeatures]:
        """Regions and their pooled features (``RegionFeatures``) of one image, or of a list of images.

        ``select``: 'butd' (bottom-up-attention's selection of proposals: ``min_boxes``..``max_boxes`` boxes,
        ``conf_thresh``) or 'detections' (the detections of ``__call__``, re-pooled). ``boxes``: an (N, 4) array
        of x1, y1, x2, y2 in input pixels (a list of them for a list of images) to pool exactly those boxes.
        Batches of ``batch_size`` give what each image gives alone. See ``docs/features.md``.
        """
        check_channel_order(channel_order)
        selection = self.selection(select, min_boxes, max_boxes, conf_thresh)
        single = not isinstance(images, (list, tuple))
        ims = [images] if single else list(images)
        if not ims:
            return []
        names = ['image'] if single else [f'images[{i}]' for i in range(len(ims))]
        bgr = [to_bgr(im, channel_order, name) for im, name in zip(ims, names)]
        given = None if boxes is None else _boxes_per_image(boxes, len(ims), single)
        out: list[RegionFeatures] = []
        for start in range(0, len(bgr), self.batch_size):
            batch = collate_test([self._backend.item(im, start + i)
                                  for i, im in enumerate(bgr[start:start + self.batch_size])])
            out += self.features_loaded(batch, selection,
                                        None if given is None else given[start:start + self.batch_size])
        return out[0] if single else out

    @staticmethod
    def selection(select: str = 'butd', min_boxes: int = 10, max_boxes: int = 100,
                  conf_thresh: float = 0.2) -> Selection:
        """The checked ``Selection`` of ``features``' keyword arguments (UsageError naming a wrong one)."""
        if select not in SELECT_MODES:
            raise UsageError(f'select={select!r}: expected one of {list(SELECT_MODES)}')
        if int(min_boxes) < 1 or int(max_boxes) < int(min_boxes):
            raise UsageError(f'min_boxes={min_boxes}, max_boxes={max_boxes}: expected 1 <= min_boxes <= max_boxes')
        if not 0.0 <= float(conf_thresh) <= 1.0:
            raise UsageError(f'conf_thresh={conf_thresh}: expected a probability in [0, 1]')
        return Selection(select, int(min_boxes), int(max_boxes), float(conf_thresh))

    def features_loaded(self, batch: dict, selection: Selection,
                        boxes: Sequence[np.ndarray] | None = None) -> list[RegionFeatures]:
        """The regions of a batch from ``data.test_loader`` (``collate_test``) built with ``loader_inputs``."""
        model = self.model
        if model is None:
            raise UsageError(f'{self.source or "this detector"}: region features need the network (a .pth '
                             'detector file), not an exported graph')
        device = self._backend.device
        data = batch['data'].to(device, non_blocking=True)
        im_info = batch['im_info'].to(device, non_blocking=True)
        given = None if boxes is None else [torch.from_numpy(np.ascontiguousarray(b, np.float32)) for b in boxes]
        return regions_of_batch(model, data, im_info, batch['sizes'], selection, given, amp=self._backend.amp)


def _boxes_per_image(boxes: Any, num_images: int, single: bool) -> list[np.ndarray]:
    """``boxes`` as one float32 (N_i, 4) array per image; UsageError naming the argument when unusable."""
    per_image = [boxes] if single else boxes
    if not isinstance(per_image, (list, tuple)) or len(per_image) != num_images:
        raise UsageError(f'boxes: expected one (N, 4) array per image ({num_images}), got '
                         f'{type(boxes).__name__}' + (f' of {len(boxes)}' if isinstance(boxes, (list, tuple)) else ''))
    out = []
    for i, b in enumerate(per_image):
        name = 'boxes' if single else f'boxes[{i}]'
        a = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        if a.dtype.kind not in 'fiu':
            raise UsageError(f'{name}: expected numbers, got dtype {a.dtype}')
        a = a.astype(np.float32).reshape(-1, 4) if a.size == 0 else a.astype(np.float32)
        if a.ndim != 2 or a.shape[1] != 4:
            raise UsageError(f'{name}: expected an (N, 4) array of x1, y1, x2, y2, got shape {tuple(a.shape)}')
        if not np.isfinite(a).all():
            raise UsageError(f'{name}: holds a NaN or infinite coordinate; pass finite pixel coordinates')
        if (a[:, 2] < a[:, 0]).any() or (a[:, 3] < a[:, 1]).any():
            bad = int(np.nonzero((a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1]))[0][0])
            raise UsageError(f'{name}: box {bad} has x2 < x1 or y2 < y1; boxes are x1, y1, x2, y2 (inclusive)')
        out.append(a)
    return out


def is_graph_file(path: str) -> bool:
    """Whether ``path`` names an exported graph (``.onnx``: run by ONNX Runtime, OpenVINO or OpenCV; ``.pt2``: by
    torch) rather than a detector file."""
    return exported_kind(str(path), by_contents=True) is not None
