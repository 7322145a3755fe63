"""Writing a detector as an ONNX graph (opset 18) with its description in ``metadata_props``.

    export_onnx(model, classes, 'tiny.onnx', record=detector_file.record, net='tiny')

The graph is ``DetectorGraph`` (see there for what is inside) traced by ``torch.export`` with the image's height
and width dynamic, translated by ``torch.onnx`` (its dynamo exporter, onnxscript's operator library) and checked
with ``onnx.checker``. One input ``image`` (H, W, 3) uint8 in ``channel_order``; outputs ``boxes`` (D, 4) float32,
``scores`` (D,) float32, ``labels`` (D,) int64. The metadata says what the graph is: ``classes`` (JSON list,
background first), ``channel_order``, ``net``, ``config`` (the detector file's recorded config, JSON), ``settings``
(the test-time values baked in, JSON) and ``faster_rcnn_export`` (the format version).

torchvision's RoIPool has a translation in onnxscript whose signature does not fit the operator; ours maps it to
MaxRoiPool (the same values, checked by the tests).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Sequence

import torch

from ..errors import DiskError, ExportError
from .graph import DetectorGraph
from .metadata import graph_metadata

OPSET = 18
INPUT = 'image'
OUTPUTS = ('boxes', 'scores', 'labels')
RAW_OUTPUTS = ('rois', 'cls_prob', 'class_boxes')


def _roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
    from onnxscript import opset18 as op
    pooled = op.MaxRoiPool(input, rois, pooled_shape=[pooled_height, pooled_width], spatial_scale=spatial_scale)
    # torchvision's operator also returns the argmax, which nothing reads.
    return pooled, op.Cast(pooled, to=7)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError('ONNX export needs the onnx and onnxscript packages: pip install -e ".[export]"') from None


@contextlib.contextmanager
def quiet():
    """The exporters' progress lines and torchvision's deprecation warnings are not for the user."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        yield


def export_program(graph: DetectorGraph, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``graph`` on an example image (H, W, 3) uint8, H and W dynamic (16 .. 16384)."""
    h = torch.export.Dim('height', min=16, max=16384)
    w = torch.export.Dim('width', min=16, max=16384)
    with torch.no_grad(), quiet():
        return torch.export.export(graph.eval(), (example,), dynamic_shapes={'image': {0: h, 1: w}})


def example_image(size: tuple[int, int] = (224, 288)) -> torch.Tensor:
    """A seeded example image for tracing (any size works: nothing is specialised to it)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (*size, 3), dtype=torch.uint8, generator=g)


def export_onnx(model: torch.nn.Module, classes: Sequence[str], out: str, *, net: str, record: dict | None,
                raw_outputs: bool = False, example: torch.Tensor | None = None) -> dict:
    """Write ``model`` (a FasterRCNN, eval mode, CPU) as an ONNX graph at ``out``; returns its metadata."""
    _require_onnx()
    import onnx
    graph = DetectorGraph(model, raw_outputs=raw_outputs)
    program = export_program(graph, example_image() if example is None else example)
    names = list(OUTPUTS) + (list(RAW_OUTPUTS) if raw_outputs else [])
    meta = graph_metadata(model.settings, classes, net=net, record=record)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(out) + '.', suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        with quiet():
            torch.onnx.export(program, (example_image(),), tmp, dynamo=True, input_names=[INPUT],
                              output_names=names, opset_version=OPSET, external_data=False, verbose=False,
                              custom_translation_table={torch.ops.torchvision.roi_pool.default: _roi_pool})
        proto = onnx.load(tmp)
        onnx.helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except OSError as e:
        raise DiskError(f'{out}: cannot be written ({e.strerror}); free some space or choose another --out') from None
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
