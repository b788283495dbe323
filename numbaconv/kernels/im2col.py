"""im2col kernels: lower a convolution to a matrix product by laying out every input window as a column.

The matrix product itself is the driver's; these kernels only move data. `lower_row` and `raise_row` (one
row of a column matrix and its adjoint) are shared with the fused kernels of `numbaconv.kernels.lowered`.
Each thread owns whole rows (or, for the scatter-add of `col2im`, whole planes) of the destination, so no
two threads ever write the same element.

Column layout, for a chunk of ``nb`` samples starting at sample ``n0``: ``cols`` is (groups, rows, nb, oh, ow)
with ``rows >= cg * kh * kw`` (``cg = c // groups``). Row ``(ci * kh + i) * kw + j`` of group ``g`` holds,
for sample ``s`` and output pixel ``(oy, ox)``, the input value
``x[n0 + s, g * cg + ci, oy * stride_h - pad_h + i * dil_h, ox * stride_w - pad_w + j * dil_w]``, zero where
that position falls outside ``[0, h) x [0, w)``. Viewed as (groups, rows, nb * oh * ow) it is the right-hand
operand of one matrix product per group; viewed per sample, as (rows, oh * ow) with row stride
``nb * oh * ow``, it yields output already in (n, k, oh, ow) order. Rows past ``cg * kh * kw`` are left
alone (the driver puts a row of ones there to fold the bias into the product).

Inner loops read x at ``start + t`` where ``start`` is clamped with ``max(0, ...)`` and ``t`` counts from
zero, and index the flat column matrix with unsigned integers: LLVM can then prove the indices non-negative
and drops Numba's negative-index wraparound, which otherwise turns the row copies into gathers (about 4x
slower).
"""

import numpy as np
from numba import njit, prange

from numbaconv.kernels import FASTMATH
from numbaconv.kernels.vector import copy_run

_u = np.uint64  # flat destination indices: unsigned, so Numba emits no negative-index wraparound


@njit(cache=True, inline="always")
def _tap_range(offset, stride, size, out_size):
    """Output indices ``[lo, hi)`` (``0 <= lo <= hi``) whose input index ``o * stride + offset`` is in
    ``[0, size)``."""
    lo = max(0, min(out_size, -(offset // stride)))  # ceil(-offset / stride)
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def lower_row(x, n, ch, i, j, lowering, oy0, oy1, ow, dst, d0, step):
    """One row of a column matrix, for output rows ``[oy0, oy1)``: ``dst[d0 + ((oy - oy0) * ow + ox) * step]``
    is what tap (i, j) of output pixel (oy, ox) reads from plane ``x[n, ch]`` (zero in the padding); dst is
    flat, ``step`` 1 for a row-major column matrix (a literal 1 lets the copies vectorise) or its row length
    for a transposed one. ``lowering = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)``; x is
    C-contiguous (row-major rows are copied from it by flat offset)."""
    _, _, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = lowering
    h, w = x.shape[2], x.shape[3]
    lo, hi = _tap_range(j * dil_w - pad_w, stride_w, w, ow)
    ix0 = max(0, lo * stride_w + j * dil_w - pad_w)  # input column of output column lo
    for oy in range(oy0, oy1):
        iy = oy * stride_h - pad_h + i * dil_h
        row = (oy - oy0) * ow
        if iy < 0 or iy >= h:
            lo_, hi_ = ow, ow  # the whole row is padding
        else:
            lo_, hi_ = lo, hi
        for ox in range(lo_):
            dst[_u(d0 + (row + ox) * step)] = 0
        # Constant strides let LLVM vectorise with plain (1) or interleaved (2) loads instead of gathers.
        if stride_w == 1 and step == 1:
            copy_run(dst, d0 + row + lo_, x, ((n * x.shape[1] + ch) * h + iy) * w + ix0, hi_ - lo_)
        elif stride_w == 1:
            for t in range(hi_ - lo_):
                dst[_u(d0 + (row + lo_ + t) * step)] = x[n, ch, iy, ix0 + t]
        elif stride_w == 2:
            for t in range(hi_ - lo_):
                dst[_u(d0 + (row + lo_ + t) * step)] = x[n, ch, iy, ix0 + 2 * t]
        else:
            for t in range(hi_ - lo_):
                dst[_u(d0 + (row + lo_ + t) * step)] = x[n, ch, iy, ix0 + t * stride_w]
        for ox in range(hi_, ow):
            dst[_u(d0 + (row + ox) * step)] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def im2col(x, n0, lowering, cols):
    """Fill rows ``[0, cg * kh * kw)`` of ``cols`` (groups, rows, nb, oh, ow) with the windows of samples
    ``n0 .. n0 + nb`` of x (n, c, h, w); padding positions get real zeros. One thread per (row, sample)."""
    kh, kw = lowering[0], lowering[1]
    c = x.shape[1]
    groups, rows_total, nb, oh, ow = cols.shape
    flat = cols.reshape(cols.size)
    cg = c // groups
    taps = kh * kw
    rows = cg * taps
    for job in prange(groups * rows * nb):
        s = job % nb
        gr = job // nb
        g = gr // rows
        r = gr - g * rows
        ci = r // taps
        i = (r - ci * taps) // kw
        j = r - ci * taps - i * kw
        d0 = ((g * rows_total + r) * nb + s) * oh * ow
        lower_row(x, n0 + s, g * cg + ci, i, j, lowering, 0, oh, ow, flat, d0, 1)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def raise_row(src, s0, i, j, lowering, oy0, oy1, ow, dx, n, ch):
    """The adjoint of `lower_row`: add each entry ``src[s0 + (oy - oy0) * ow + ox]`` of one column-matrix row
    (output rows ``[oy0, oy1)``) to the pixel of plane ``dx[n, ch]`` that tap (i, j) of (oy, ox) reads;
    entries that fall in the padding are dropped."""
    _, _, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = lowering
    h, w = dx.shape[2], dx.shape[3]
    oy_lo, oy_hi = _tap_range(i * dil_h - pad_h, stride_h, h, oy1)
    ox_lo, ox_hi = _tap_range(j * dil_w - pad_w, stride_w, w, ow)
    ix0 = max(0, ox_lo * stride_w + j * dil_w - pad_w)
    for oy in range(max(oy0, oy_lo), oy_hi):
        iy = oy * stride_h + i * dil_h - pad_h
        row = s0 + (oy - oy0) * ow + ox_lo
        if stride_w == 1:  # constant strides vectorise, as in `lower_row`
            for t in range(ox_hi - ox_lo):
                dx[n, ch, iy, ix0 + t] += src[_u(row + t)]
        elif stride_w == 2:
            for t in range(ox_hi - ox_lo):
                dx[n, ch, iy, ix0 + 2 * t] += src[_u(row + t)]
        else:
            for t in range(ox_hi - ox_lo):
                dx[n, ch, iy, ix0 + t * stride_w] += src[_u(row + t)]


@njit(cache=True, fastmath=FASTMATH)
def zero_planes(dx, n, ch0, count):
    """dx[n, ch0:ch0 + count] = 0."""
    for ch in range(ch0, ch0 + count):
        for iy in range(dx.shape[2]):
            for ix in range(dx.shape[3]):
                dx[n, ch, iy, ix] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def col2im(cols, n0, lowering, dx):
    """Overwrite samples ``n0 .. n0 + nb`` of dx (n, c, h, w) with the sum of every column entry of
    ``cols`` (groups, rows, nb, oh, ow) at the input position it was gathered from (the adjoint of
    `im2col`); entries that came from padding are dropped. One thread per (sample, channel) plane of dx, so
    the scatter-add never races."""
    kh, kw = lowering[0], lowering[1]
    c = dx.shape[1]
    groups, rows_total, nb, oh, ow = cols.shape
    flat = cols.reshape(cols.size)
    cg = c // groups
    for plane in prange(nb * c):
        s = plane // c
        ch = plane - s * c
        g = ch // cg
        ci = ch - g * cg
        zero_planes(dx, n0 + s, ch, 1)
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                raise_row(flat, ((g * rows_total + r) * nb + s) * oh * ow, i, j, lowering, 0, oh, ow, dx, n0 + s, ch)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def swap_leading(src, dst):
    """dst[b, a, :] = src[a, b, :] for src (A, B, m) and dst (B, A, m): moves between the per-sample
    (nb, k, pixels) order of outputs and gradients and the per-channel (k, nb, pixels) order of one matrix
    product over a whole chunk. One thread per destination row."""
    a_len, b_len, m = src.shape
    for row in prange(a_len * b_len):
        b = row // a_len
        a = row - b * a_len
        for p in range(m):
            dst[b, a, p] = src[a, b, p]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def add_bias(out, bias):
    """out[s, kk, :] += bias[kk] for out (n, k, pixels) and bias (k,). One thread per (sample, channel) row."""
    n, k, m = out.shape
    for row in prange(n * k):
        b = bias[row % k]
        s = row // k
        kk = row - s * k
        for p in range(m):
            out[s, kk, p] += b
