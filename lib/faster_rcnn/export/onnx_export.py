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
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DiskError, ExportError
from ..nets.network import FasterRCNN
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


def export_onnx(model: FasterRCNN, classes: Sequence[str], out: str, *, net: str, record: dict | None,
                raw_outputs: bool = False, example: torch.Tensor | None = None,
                category_ids: Sequence[int] | None = None) -> dict:
    """Write ``model`` (a FasterRCNN, eval mode, CPU) as an ONNX graph at ``out``; returns its metadata."""
    _require_onnx()
    import onnx
    graph = DetectorGraph(model, raw_outputs=raw_outputs)
    program = export_program(graph, example_image() if example is None else example)
    names = list(OUTPUTS) + (list(RAW_OUTPUTS) if raw_outputs else [])
    meta = graph_metadata(model.settings, classes, net=net, record=record, category_ids=category_ids)
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
        fold_even_pads(proto.graph)
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


def _is_minus_inf(graph, name: str) -> bool:
    from onnx import numpy_helper
    for init in graph.initializer:
        if init.name == name:
            value = numpy_helper.to_array(init)
            return value.size == 1 and bool(np.isneginf(value).all())
    return False


def fold_even_pads(graph) -> int:
    """``EvenPadMaxPool`` (a -inf Pad to even sizes, then a 2x2 stride-2 floor max-pool) back into one ONNX
    ``MaxPool`` with ``ceil_mode`` 1: the same values (ONNX's ceil-mode rule skips the window cells past the edge),
    without copying the feature map or breaking ONNX Runtime's blocked layout. torch.export needs the padded form
    (it cannot decide ceil mode's shape guard on a dynamic size); the ONNX graph does not. Returns how many
    pools were folded; the Pad nodes and their shape arithmetic are then unused and removed."""
    from onnx import helper
    producer = {out: node for node in graph.node for out in node.output}
    folded = 0
    for node in graph.node:
        if node.op_type != 'MaxPool':
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pad = producer.get(node.input[0])
        if (pad is None or pad.op_type != 'Pad' or list(attrs.get('kernel_shape', [])) != [2, 2]
                or list(attrs.get('strides', [])) != [2, 2] or any(attrs.get('pads', [0])) or attrs.get('ceil_mode', 0)
                or any(d != 1 for d in attrs.get('dilations', [1, 1]))):
            continue
        mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == 'mode'), b'constant')
        if mode != b'constant' or len(pad.input) < 3 or not _is_minus_inf(graph, pad.input[2]):
            continue
        node.input[0] = pad.input[0]
        for a in node.attribute:
            if a.name == 'ceil_mode':
                a.i = 1
        folded += 1
    _remove_unused(graph)
    return folded


def _inputs_read(graph) -> set:
    """Every name a node of ``graph`` reads, subgraphs (If / Loop bodies, which may read outer names) included."""
    from onnx import AttributeProto
    names = set()
    for node in graph.node:
        names.update(node.input)
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                names |= _inputs_read(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    names |= _inputs_read(g)
    return names


def _remove_unused(graph) -> None:
    """Drop the nodes whose outputs nothing reads (repeatedly) and the initializers no node reads."""
    while True:
        used = _inputs_read(graph) | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = _inputs_read(graph)
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
