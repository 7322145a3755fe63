# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU kernels: greedy NMS on float32 box arrays, float64 box IoU, and a numpy NMS on (N, 5) detections.

The loops run without the GIL so data-loader threads and the training step are not blocked.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()


cdef inline float _fmax(float a, float b) noexcept nogil:
    return a if a > b else b


cdef inline float _fmin(float a, float b) noexcept nogil:
    return a if a < b else b


DEF _CHUNK = 32


cdef inline bint _suppressed_by_chunk(
    const float* kx1, const float* ky1, const float* kx2, const float* ky2, const float* karea,
    Py_ssize_t count, float x1, float y1, float x2, float y2, float area, float thresh,
) noexcept nogil:
    # No early exit inside a chunk: a branch-free loop the compiler turns into SIMD code.
    cdef Py_ssize_t j
    cdef float iw, ih, inter
    cdef int hit = 0
    for j in range(count):
        iw = _fmax(_fmin(x2, kx2[j]) - _fmax(x1, kx1[j]) + 1, 0)
        ih = _fmax(_fmin(y2, ky2[j]) - _fmax(y1, ky1[j]) + 1, 0)
        inter = iw * ih
        hit |= (inter / (area + karea[j] - inter)) > thresh
    return hit


def greedy_nms_sorted(const float[:, ::1] boxes, float thresh, int64_t max_keep):
    """Greedy NMS over ``boxes`` (N, 4) visited in row order (rows sorted by decreasing score).

    A candidate is compared only with the boxes already kept, chunk by chunk, and dropped at the
    first chunk holding a suppressor (IoU with +1 widths > ``thresh``); the scan stops once
    ``max_keep`` boxes are kept (``max_keep <= 0`` means no limit). Returns the kept row indices
    (int64), increasing.
    """
    cdef Py_ssize_t n = boxes.shape[0]
    cdef Py_ssize_t limit = n if max_keep <= 0 or max_keep > n else max_keep
    keep_arr = np.empty(limit, dtype=np.int64)
    if n == 0 or limit == 0:
        return keep_arr[:0]
    # Kept boxes live in separate coordinate arrays (structure of arrays) for vector loads.
    kept_np = np.empty((5, limit), dtype=np.float32)
    cdef float[:, ::1] kept = kept_np
    cdef float* kx1 = &kept[0, 0]
    cdef float* ky1 = &kept[1, 0]
    cdef float* kx2 = &kept[2, 0]
    cdef float* ky2 = &kept[3, 0]
    cdef float* karea = &kept[4, 0]
    cdef int64_t[::1] keep = keep_arr
    cdef Py_ssize_t num_kept = 0, i, start, count
    cdef float x1, y1, x2, y2, area
    cdef bint suppressed
    with nogil:
        for i in range(n):
            x1 = boxes[i, 0]
            y1 = boxes[i, 1]
            x2 = boxes[i, 2]
            y2 = boxes[i, 3]
            area = (x2 - x1 + 1) * (y2 - y1 + 1)
            suppressed = False
            start = 0
            while start < num_kept:
                count = num_kept - start if num_kept - start < _CHUNK else _CHUNK
                if _suppressed_by_chunk(kx1 + start, ky1 + start, kx2 + start, ky2 + start, karea + start,
                                        count, x1, y1, x2, y2, area, thresh):
                    suppressed = True
                    break
                start += count
            if not suppressed:
                kx1[num_kept] = x1
                ky1[num_kept] = y1
                kx2[num_kept] = x2
                ky2[num_kept] = y2
                karea[num_kept] = area
                keep[num_kept] = i
                num_kept += 1
                if num_kept == limit:
                    break
    return keep_arr[:num_kept]


def bbox_overlaps_np(boxes, query_boxes):
    """IoU (+1 widths) of ``boxes`` (N, 4) with ``query_boxes`` (K, 4) -> float64 (N, K)."""
    cdef double[:, ::1] b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
    cdef double[:, ::1] q = np.ascontiguousarray(query_boxes, dtype=np.float64).reshape(-1, 4)
    cdef Py_ssize_t n = b.shape[0], k = q.shape[0], i, j
    out_np = np.zeros((n, k), dtype=np.float64)
    cdef double[:, ::1] out = out_np
    cdef double iw, ih, q_area, ua
    with nogil:
        for j in range(k):
            q_area = (q[j, 2] - q[j, 0] + 1) * (q[j, 3] - q[j, 1] + 1)
            for i in range(n):
                iw = (b[i, 2] if b[i, 2] < q[j, 2] else q[j, 2]) - (b[i, 0] if b[i, 0] > q[j, 0] else q[j, 0]) + 1
                if iw > 0:
                    ih = (b[i, 3] if b[i, 3] < q[j, 3] else q[j, 3]) - (b[i, 1] if b[i, 1] > q[j, 1] else q[j, 1]) + 1
                    if ih > 0:
                        ua = (b[i, 2] - b[i, 0] + 1) * (b[i, 3] - b[i, 1] + 1) + q_area - iw * ih
                        out[i, j] = iw * ih / ua
    return out_np


def cpu_nms(dets, double thresh):
    """NMS on numpy detections ``dets`` (N, 5) ``[x1, y1, x2, y2, score]`` -> list of kept indices.

    Same rule as :func:`faster_rcnn.ops.nms`: decreasing score, ties by lower index, suppress
    when IoU (+1 widths) > ``thresh``. For dataset and evaluation code, not the training step.
    """
    dets = np.asarray(dets)
    if dets.ndim != 2 or dets.shape[1] < 5:
        raise ValueError(f"cpu_nms expects dets of shape (N, 5) [x1, y1, x2, y2, score], got {dets.shape}")
    if dets.shape[0] == 0:
        return []
    order = np.argsort(-dets[:, 4], kind="stable").astype(np.int64)
    boxes = np.ascontiguousarray(dets[:, :4], dtype=np.float64)
    cdef double[:, ::1] bx = boxes
    cdef int64_t[::1] od = order
    cdef Py_ssize_t n = order.shape[0], i, j, num_kept = 0
    keep_np = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] keep = keep_np
    cdef int64_t idx, kj
    cdef double x1, y1, x2, y2, area, iw, ih, inter, kept_area
    with nogil:
        for i in range(n):
            idx = od[i]
            x1 = bx[idx, 0]
            y1 = bx[idx, 1]
            x2 = bx[idx, 2]
            y2 = bx[idx, 3]
            area = (x2 - x1 + 1) * (y2 - y1 + 1)
            for j in range(num_kept):
                kj = keep[j]
                iw = (x2 if x2 < bx[kj, 2] else bx[kj, 2]) - (x1 if x1 > bx[kj, 0] else bx[kj, 0]) + 1
                if iw <= 0:
                    continue
                ih = (y2 if y2 < bx[kj, 3] else bx[kj, 3]) - (y1 if y1 > bx[kj, 1] else bx[kj, 1]) + 1
                if ih <= 0:
                    continue
                inter = iw * ih
                kept_area = (bx[kj, 2] - bx[kj, 0] + 1) * (bx[kj, 3] - bx[kj, 1] + 1)
                if inter / (area + kept_area - inter) > thresh:
                    break
            else:
                keep[num_kept] = idx
                num_kept += 1
    return keep_np[:num_kept].tolist()
