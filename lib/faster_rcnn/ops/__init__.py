"""Native ops: NMS (torchvision's CUDA kernel / a Cython CPU kernel) and numpy box helpers.

``faster_rcnn.ops._native`` is built by ``pip install -e .`` or ``python setup.py build_ext --inplace``.
"""
try:
    from . import _native  # noqa: F401 - imported to fail early, with the fix below, when it is not built
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "faster_rcnn.ops._native is not built: run `pip install -e .` or "
        "`python setup.py build_ext --inplace` in the repository root"
    ) from exc

from ._native import bbox_overlaps_np, cpu_nms
from .nms import nms

__all__ = ["nms", "bbox_overlaps_np", "cpu_nms"]
