"""Writing a detector as a ``torch.export`` program (``.pt2``), the image's height and width dynamic.

    import torch, torchvision                   # torchvision registers the nms / roi_align / roi_pool operators
    program = torch.export.load('tiny.pt2').module()
    boxes, scores, labels = program(torch.from_numpy(image))   # image (H, W, 3) uint8 in the file's channel order

Loading needs torch and torchvision only, not this package. The metadata of ``onnx_export`` is stored beside the
program as the extra file ``faster_rcnn.json`` (``torch.export.load(path, extra_files={'faster_rcnn.json': ''})``).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import tempfile
from collections.abc import Sequence

import torch

from ..errors import DiskError
from ..nets.network import FasterRCNN
from .graph import DetectorGraph
from .metadata import META_FILE, graph_metadata
from .onnx_export import example_image, export_program


def export_pt2(model: FasterRCNN, classes: Sequence[str], out: str, *, net: str, record: dict | None,
               raw_outputs: bool = False, category_ids: Sequence[int] | None = None) -> dict:
    """Write ``model`` (a FasterRCNN, eval mode, CPU) as a ``.pt2`` program at ``out``; returns its metadata."""
    program = export_program(DetectorGraph(model, raw_outputs=raw_outputs), example_image())
    meta = graph_metadata(model.settings, classes, net=net, record=record, category_ids=category_ids)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(out) + '.', suffix='.tmp.pt2', dir=folder)  # torch wants .pt2
    os.close(fd)
    try:
        torch.export.save(program, tmp, extra_files={META_FILE: json.dumps(meta)})
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
    except OSError as e:
        raise DiskError(f'{out}: cannot be written ({e.strerror}); free some space or choose another --out') from None
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return meta
