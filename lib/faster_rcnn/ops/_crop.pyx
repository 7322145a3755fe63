# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CPU kernels of bilinear RoI crops with an optional fused max-pool, forward and backward.

The caller computes, for every sample of every crop, the four feature-table rows it blends and their
weights (TensorFlow's sample geometry lives in Python, in one place). These loops only gather, blend,
max-pool and scatter. Each call handles the channel slice ``[c0, c1)``, so several threads can run
disjoint slices without the GIL, and the result does not depend on how the channels are split.
"""
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc


cdef inline void _blend(const float* v0, const float* v1, const float* v2, const float* v3,
                        float w0, float w1, float w2, float w3, float* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n):
        dst[c] = w0 * v0[c] + w1 * v1[c] + w2 * v2[c] + w3 * v3[c]


cdef inline void _axpy(float w, const float* x, float* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n):
        y[c] += w * x[c]


def crop_pool_forward(
    const float[:, ::1] table,
    const int64_t[:, :, :, ::1] rows,
    const float[:, :, :, ::1] weights,
    int k,
    float[:, :, :, ::1] out,
    uint8_t[:, :, :, ::1] argmax,
    Py_ssize_t c0,
    Py_ssize_t c1,
):
    """Blend and max-pool, channels ``[c0, c1)``.

    Args:
        table: (M, C) channels-last features, a row per (image, y, x).
        rows: (R, S, S, 4) int64 table rows of each sample's four neighbours.
        weights: (R, S, S, 4) their bilinear weights (0 for a sample outside the map).
        k: max-pool window and stride (1: no pooling); S = k * P.
        out: (R, C, P, P) written.
        argmax: (R, P, P, C) or None (no gradient wanted). When given and k > 1, the window position
            (dy * k + dx) of each maximum, the first one on ties, as torch's max_pool2d (which also lets
            a NaN win).
    """
    cdef Py_ssize_t cc = c1 - c0
    if cc <= 0 or out.shape[0] == 0:
        return
    # Scratch per call: the blended samples, the running maximum and its window position.
    cdef float* scratch = <float*> malloc(2 * cc * sizeof(float))
    cdef int* best_pos = <int*> malloc(cc * sizeof(int))
    if scratch == NULL or best_pos == NULL:
        free(scratch)
        free(best_pos)
        raise MemoryError(f'crop_pool_forward: cannot allocate {cc} channels of scratch')
    cdef Py_ssize_t r_count = out.shape[0], p = out.shape[2]
    cdef Py_ssize_t r, py, px, dy, dx, c, sy, sx
    cdef int pos
    cdef bint track = argmax is not None
    cdef float* acc = scratch
    cdef float* val = scratch + cc
    cdef float a, v
    cdef bint take
    try:
        with nogil:
            for r in range(r_count):
                for py in range(p):
                    for px in range(p):
                        for dy in range(k):
                            for dx in range(k):
                                sy = py * k + dy
                                sx = px * k + dx
                                pos = dy * k + dx
                                _blend(&table[rows[r, sy, sx, 0], c0], &table[rows[r, sy, sx, 1], c0],
                                       &table[rows[r, sy, sx, 2], c0], &table[rows[r, sy, sx, 3], c0],
                                       weights[r, sy, sx, 0], weights[r, sy, sx, 1],
                                       weights[r, sy, sx, 2], weights[r, sy, sx, 3], acc if pos == 0 else val, cc)
                                if pos == 0:
                                    if track:
                                        for c in range(cc):
                                            best_pos[c] = 0
                                elif track:
                                    # torch's max_pool2d rule: a larger value or a NaN replaces the maximum.
                                    # Branch-free selects so the compiler can vectorise the loop.
                                    for c in range(cc):
                                        a = acc[c]
                                        v = val[c]
                                        take = (v > a) | (v != v)
                                        acc[c] = v if take else a
                                        best_pos[c] = pos if take else best_pos[c]
                                else:
                                    for c in range(cc):
                                        a = acc[c]
                                        v = val[c]
                                        acc[c] = v if (v > a) | (v != v) else a
                        for c in range(cc):
                            out[r, c0 + c, py, px] = acc[c]
                        if track:
                            for c in range(cc):
                                argmax[r, py, px, c0 + c] = <uint8_t>best_pos[c]
    finally:
        free(scratch)
        free(best_pos)


def crop_pool_backward(
    const float[:, :, :, ::1] grad_out,
    const int64_t[:, :, :, ::1] rows,
    const float[:, :, :, ::1] weights,
    const uint8_t[:, :, :, ::1] argmax,
    int k,
    float[:, ::1] grad_table,
    Py_ssize_t c0,
    Py_ssize_t c1,
):
    """Adds the gradient of ``crop_pool_forward`` into ``grad_table`` (M, C), channels ``[c0, c1)``.

    ``grad_out`` (R, C, P, P); each output's gradient goes to the sample that won the max-pool
    (``argmax`` (R, P, P, C), ignored when k == 1), split over its four neighbours by their weights.
    """
    cdef Py_ssize_t cc = c1 - c0
    if cc <= 0 or grad_out.shape[0] == 0:
        return
    # Scratch: the output gradient of one cell, and its share for one window position.
    cdef float* scratch = <float*> malloc(2 * cc * sizeof(float))
    if scratch == NULL:
        raise MemoryError(f'crop_pool_backward: cannot allocate {cc} channels of scratch')
    cdef Py_ssize_t r_count = grad_out.shape[0], p = grad_out.shape[2]
    cdef Py_ssize_t r, py, px, dy, dx, c, sy, sx, i
    cdef uint8_t pos
    cdef float* g = scratch
    cdef float* share = scratch + cc
    cdef const float* src
    try:
        with nogil:
            for r in range(r_count):
                for py in range(p):
                    for px in range(p):
                        for c in range(cc):
                            g[c] = grad_out[r, c0 + c, py, px]
                        for dy in range(k):
                            for dx in range(k):
                                sy = py * k + dy
                                sx = px * k + dx
                                src = g
                                if k > 1:
                                    # Only the channels whose maximum sat at this window position.
                                    pos = <uint8_t>(dy * k + dx)
                                    for c in range(cc):
                                        share[c] = g[c] if argmax[r, py, px, c0 + c] == pos else 0.0
                                    src = share
                                for i in range(4):
                                    _axpy(weights[r, sy, sx, i], src, &grad_table[rows[r, sy, sx, i], c0], cc)
    finally:
        free(scratch)
