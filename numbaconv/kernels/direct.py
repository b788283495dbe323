"""Direct convolution kernels: every output is a plain multiply-add over its window, no lowering.

They serve every geometry (any kernel, stride, dilation, implicit zero padding, groups) and are the fast path
for depthwise, grouped and few-channel layers, where a matrix product has too little reduction depth to pay
for its lowering.

Layout. Feature maps are 7-56 pixels wide, too short for a vectorised loop (LLVM's AVX-512 loop takes 64
floats per trip), so each kernel first copies the planes it works on into per-thread scratch, laid out so
that one tap is one contiguous loop over a whole plane:

- An input plane is zero-padded and split into ``stride_h * stride_w`` phase planes of ``hq x wq``: padded
  pixel (r, c) goes to phase (r % stride_h, c % stride_w) at (r // stride_h, c // stride_w). Output (oy, ox)
  then reads tap (i, j) at (oy + (i*dil_h) // stride_h, ox + (j*dil_w) // stride_w) of one phase plane: every
  stride becomes stride 1, and no bounds checks are left.
- Output-shaped planes are ``oh x wq``: with the input's row pitch, output ``f = oy * wq + ox`` reads input
  ``f + tap_offset`` for the whole plane at once ("flat" mode). The ``wq - ow`` extra columns per row compute
  garbage that is never copied out, and one spare zero row at the bottom of each phase plane absorbs the
  reads of the last row's garbage.

`forward_same_width` needs neither scratch nor copies where output rows are as wide as the input's (stride
1, "same" width): there the input's own row pitch serves as the flat layout.

Where garbage could become a NaN PyTorch would not produce (``0 * inf``, see each kernel), the same scratch
is walked row by row instead ("row" mode). Taps go three at a time (`_madd3`, `_dot3`), which saves loads
and stores of the accumulator.

Shapes: x (n, c, h, w); weight (k, c // groups, kh, kw); output and grad_out (n, k, oh, ow), all
C-contiguous (the engine's guarantee: row copies address them by flat offsets). Input row
``oy * stride_h - pad_h + i * dil_h`` and column ``ox * stride_w - pad_w + j * dil_w`` read as zero outside
``[0, h)`` / ``[0, w)``; pads may be negative (the input is then cropped). The parallel kernels take
``plan = (chunks, hq, wq)`` and ``conv = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)``.
Scratch arrays are 1-D: the kernels loop over ``chunks`` static slices of the work (one per thread), slice
t owning piece t of every scratch array.
"""

import numpy as np
from numba import njit, prange

from numbaconv.kernels import FASTMATH
from numbaconv.kernels.vector import copy_run

# Inner-loop indices are cast to unsigned: they are never negative, and a signed index makes Numba emit a
# negative-index wraparound select per element, which stops LLVM from vectorising the loop.
_u = np.uint64


@njit(cache=True, fastmath=FASTMATH)
def _madd(dst, d0, src, s0, wv, size):
    """``dst[d0 + q] += wv * src[s0 + q]`` for q < size."""
    for q in range(size):
        dst[_u(d0 + q)] += wv * src[_u(s0 + q)]


@njit(cache=True, fastmath=FASTMATH)
def _madd3(dst, d0, src, s0, s1, s2, w0, w1, w2, size):
    """`_madd` for three sources at once: ``dst[d0 + q] += w0*src[s0 + q] + w1*src[s1 + q] + w2*src[s2 + q]``."""
    for q in range(size):
        dst[_u(d0 + q)] += w0 * src[_u(s0 + q)] + w1 * src[_u(s1 + q)] + w2 * src[_u(s2 + q)]


@njit(cache=True, fastmath=FASTMATH)
def _dot(a, a0, b, b0, size, acc):
    """``acc`` plus the sum over q < size of ``a[a0 + q] * b[b0 + q]``."""
    for q in range(size):
        acc += a[_u(a0 + q)] * b[_u(b0 + q)]
    return acc


@njit(cache=True, fastmath=FASTMATH)
def _dot3(a, a0, b, b0, b1, b2, size, acc0, acc1, acc2):
    """`_dot` for three b offsets at once: acc0, acc1, acc2 take the sums with b0, b1, b2."""
    for q in range(size):
        g = a[_u(a0 + q)]
        acc0 += g * b[_u(b0 + q)]
        acc1 += g * b[_u(b1 + q)]
        acc2 += g * b[_u(b2 + q)]
    return acc0, acc1, acc2


@njit(cache=True, fastmath=FASTMATH)
def _fill(dst, d0, size, value):
    """``dst[d0:d0+size] = value``."""
    for f in range(size):
        dst[_u(d0 + f)] = value


@njit(cache=True)
def tap_offsets(kh, kw, conv, hq, wq):
    """(kh, kw) offsets of each tap's first read inside a padded, phase-split input plane. Computed once per
    call, outside the parallel loop: the divisions are too slow to redo per tap and plane."""
    stride_h, stride_w, _, _, dil_h, dil_w, _ = conv
    offsets = np.empty((kh, kw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            r, c = i * dil_h, j * dil_w
            offsets[i, j] = ((r % stride_h) * stride_w + c % stride_w) * hq * wq + (r // stride_h) * wq + c // stride_w
    return offsets


@njit(cache=True)
def _phase_range(phase, stride, pad, size, count):
    """Indices [q0, q1) of phase ``phase`` (< stride) whose padded position ``stride*q + phase`` is input
    position ``stride*q + phase - pad`` in [0, size), with q < count."""
    q0 = max(0, -((phase - pad) // stride))
    q1 = min(count, (size - 1 + pad - phase) // stride + 1)
    return q0, q1


@njit(cache=True, fastmath=FASTMATH)
def pad_planes(src, b, c0, nplanes, dst, d0, hq, wq, conv):
    """Copy planes ``src[b, c0:c0+nplanes]`` (h, w) into ``dst[d0:]`` as (nplanes, stride_h*stride_w, hq, wq):
    zero-padded and phase-split (module docstring); what falls outside is dropped, the rest is zero."""
    stride_h, stride_w, pad_h, pad_w, _, _, _ = conv
    h, w = src.shape[2], src.shape[3]
    phase = hq * wq
    plane = stride_h * stride_w * phase
    _fill(dst, d0, nplanes * plane, 0.0)  # one long loop, then short row copies
    for pr in range(stride_h):
        r0, r1 = _phase_range(pr, stride_h, pad_h, h, hq)
        for pc in range(stride_w):
            q0, q1 = _phase_range(pc, stride_w, pad_w, w, wq)
            base = d0 + (pr * stride_w + pc) * phase
            for p in range(nplanes):
                for rq in range(r0, r1):
                    y = stride_h * rq + pr - pad_h
                    row = base + p * plane + rq * wq
                    if stride_w == 1:
                        copy_run(dst, row + q0, src, ((b * src.shape[1] + c0 + p) * h + y) * w + q0 - pad_w, q1 - q0)
                    else:
                        for q in range(q0, q1):
                            dst[_u(row + q)] = src[b, c0 + p, y, _u(stride_w * q + pc - pad_w)]


@njit(cache=True, fastmath=FASTMATH)
def unpad_plane(src, s0, hq, wq, conv, dst, b, cc):
    """Inverse of `pad_planes` for one plane: ``dst[b, cc]`` (h, w) from the padded, phase-split plane at
    ``src[s0:]``; pixels the padded plane does not cover are zero."""
    stride_h, stride_w, pad_h, pad_w, _, _, _ = conv
    h, w = dst.shape[2], dst.shape[3]
    phase = hq * wq
    for y in range(h):
        for x in range(w):
            dst[b, cc, y, _u(x)] = 0.0
    for pr in range(stride_h):
        r0, r1 = _phase_range(pr, stride_h, pad_h, h, hq)
        for pc in range(stride_w):
            q0, q1 = _phase_range(pc, stride_w, pad_w, w, wq)
            base = s0 + (pr * stride_w + pc) * phase
            for rq in range(r0, r1):
                y = stride_h * rq + pr - pad_h
                for q in range(q0, q1):
                    dst[b, cc, y, _u(stride_w * q + pc - pad_w)] = src[_u(base + rq * wq + q)]


@njit(cache=True, fastmath=FASTMATH)
def _all_finite(a, a0, size):
    """Whether ``a[a0:a0+size]`` holds no NaN/Inf (``v * 0`` is 0 for finite v, NaN otherwise)."""
    probe = a[_u(a0)] * 0.0
    for f in range(size):
        probe += a[_u(a0 + f)] * 0.0
    return probe == 0.0


@njit(cache=True, fastmath=FASTMATH)
def _widen_planes(src, b, k0, nplanes, dst, d0, wq):
    """Copy planes ``src[b, k0:k0+nplanes]`` (oh, ow) into ``dst[d0:]`` as (nplanes, oh, wq), zeros in the
    ``wq - ow`` extra columns."""
    oh, ow = src.shape[2], src.shape[3]
    _fill(dst, d0, nplanes * oh * wq, 0.0)
    for p in range(nplanes):
        for oy in range(oh):
            copy_run(dst, d0 + (p * oh + oy) * wq, src, ((b * src.shape[1] + k0 + p) * oh + oy) * ow, ow)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward(x, weight, bias, out, xpad, acc, plan, conv):
    """Fill ``out`` (n, k, oh, ow) with the convolution of x (n, c, h, w) by weight (k, c//groups, kh, kw)
    plus bias (k,).

    Scratch: xpad (chunks * cpg*stride_h*stride_w*hq*wq) holds one (image, group)'s padded input planes, acc
    (chunks * oh*wq) one output plane. Work is the n*k output planes in (image, channel) order, cut into
    ``chunks`` slices; consecutive planes share their padded input, so a slice pads each (image, group) once.
    Always flat: garbage columns are discarded.
    """
    chunks, hq, wq = plan
    stride_h, stride_w, _, _, _, _, groups = conv
    n = x.shape[0]
    k, cpg, kh, kw = weight.shape
    oh, ow = out.shape[2], out.shape[3]
    kpg = k // groups
    plane_in = stride_h * stride_w * hq * wq
    plane_out = oh * wq
    triples = kw - kw % 3  # taps [0, triples) go three at a time
    tap = tap_offsets(kh, kw, conv, hq, wq)
    for t in prange(chunks):
        x0 = t * cpg * plane_in
        a0 = t * plane_out
        padded = -1
        for plane in range(t * n * k // chunks, (t + 1) * n * k // chunks):
            b = plane // k
            kk = plane - b * k
            g = kk // kpg
            if b * groups + g != padded:
                pad_planes(x, b, g * cpg, cpg, xpad, x0, hq, wq, conv)
                padded = b * groups + g
            _fill(acc, a0, plane_out, bias[kk])
            for ci in range(cpg):
                s = x0 + ci * plane_in
                for i in range(kh):
                    for j in range(0, triples, 3):
                        s0, s1, s2 = s + tap[i, j], s + tap[i, j + 1], s + tap[i, j + 2]
                        w0, w1, w2 = weight[kk, ci, i, j], weight[kk, ci, i, j + 1], weight[kk, ci, i, j + 2]
                        _madd3(acc, a0, xpad, s0, s1, s2, w0, w1, w2, plane_out)
                    for j in range(triples, kw):
                        _madd(acc, a0, xpad, s + tap[i, j], weight[kk, ci, i, j], plane_out)
            for oy in range(oh):
                copy_run(out, (plane * oh + oy) * ow, acc, a0 + oy * wq, ow)


@njit(cache=True, inline="always")
def _shifted_run(r0, r1, w, dx_lo, dx_hi):
    """Flat output range [f0, f1) of rows [r0, r1) (pitch w) whose reads, shifted by column offsets dx_lo ..
    dx_hi, all stay inside the row range: the first -dx_lo and last dx_hi outputs (edge columns) are left
    out."""
    return r0 * w + max(0, -dx_lo), r1 * w - max(0, dx_hi)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward_same_width(x, weight, bias, out, chunks, conv):
    """`forward` for stride-1 layers whose output rows are as wide as the input's (``ow == w``: padding
    ``dil_w * (kw - 1) / 2`` on each side), straight from x into out, with no scratch and no copies.

    With equal row pitches, tap (i, j) shifts a whole plane: output ``f = oy * w + ox`` reads input
    ``f + dy * w + dx`` (``dy = i * dil_h - pad_h``, ``dx = j * dil_w - pad_w``), one contiguous loop per tap
    over the output rows whose input row exists. The columns within the padding of either edge would read a
    neighbouring row's pixel instead of padding (or nothing, at the plane's ends, which the loops skip), so
    `_edge_columns` then overwrites them with sums over their valid taps alone: the garbage, NaN or not,
    never survives. Work is the n*k output planes, cut into ``chunks`` slices. On depthwise layers, whose
    planes share no padded input, the padded copies and the copy-out were most of `forward`'s time.
    """
    _, _, pad_h, pad_w, dil_h, dil_w, groups = conv
    n, c, h, w = x.shape
    k, cpg, kh, kw = weight.shape
    oh = out.shape[2]
    kpg = k // groups
    src = x.reshape(x.size)
    dst = out.reshape(out.size)
    plane_out = oh * w
    triples = kw - kw % 3  # taps [0, triples) go three at a time
    for t in prange(chunks):
        for plane in range(t * n * k // chunks, (t + 1) * n * k // chunks):
            b = plane // k
            kk = plane - b * k
            o = plane * plane_out
            _fill(dst, o, plane_out, bias[kk])
            s0_group = (b * c + kk // kpg * cpg) * h * w
            for ci in range(cpg):
                s = s0_group + ci * h * w
                for i in range(kh):
                    dy = i * dil_h - pad_h
                    r0, r1 = max(0, -dy), min(oh, h - dy)
                    for j in range(0, triples, 3):
                        dx = j * dil_w - pad_w
                        f0, f1 = _shifted_run(r0, r1, w, dx, dx + 2 * dil_w)
                        if f1 > f0:
                            w0, w1, w2 = weight[kk, ci, i, j], weight[kk, ci, i, j + 1], weight[kk, ci, i, j + 2]
                            s0 = s + dy * w + dx + f0
                            _madd3(dst, o + f0, src, s0, s0 + dil_w, s0 + 2 * dil_w, w0, w1, w2, f1 - f0)
                    for j in range(triples, kw):
                        dx = j * dil_w - pad_w
                        f0, f1 = _shifted_run(r0, r1, w, dx, dx)
                        if f1 > f0:
                            _madd(dst, o + f0, src, s + dy * w + dx + f0, weight[kk, ci, i, j], f1 - f0)
            _edge_columns(src, s0_group, dst, o, weight, kk, bias[kk], (h, w, oh), conv)


@njit(cache=True, fastmath=FASTMATH)
def _edge_columns(src, s, dst, o, weight, kk, bias_value, shape, conv):
    """Overwrite the columns within the padding of either edge of the output plane at ``dst[o:]`` (see
    `forward_same_width`) with their exact sums: bias plus every tap whose input pixel exists, the input
    planes of the group at ``src[s:]``; ``shape = (h, w, oh)``. One strided loop per column and tap."""
    _, _, pad_h, pad_w, dil_h, dil_w, _ = conv
    h, w, oh = shape
    cpg, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    right = (kw - 1) * dil_w - pad_w  # the right-hand padding ('same' may pad one column more on the right)
    left_end = min(pad_w, w)
    right_start = max(left_end, w - right)
    for edge in range(left_end + w - right_start):
        ox = edge if edge < left_end else right_start + edge - left_end  # the left columns, then the right
        for oy in range(oh):
            dst[_u(o + oy * w + ox)] = bias_value
        for ci in range(cpg):
            for i in range(kh):
                dy = i * dil_h - pad_h
                r0, r1 = max(0, -dy), min(oh, h - dy)
                for j in range(kw):
                    ix = ox + j * dil_w - pad_w
                    if 0 <= ix < w:
                        wv = weight[kk, ci, i, j]
                        si = s + ci * h * w + dy * w + ix
                        for oy in range(r0, r1):
                            dst[_u(o + oy * w + ox)] += wv * src[_u(si + oy * w)]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_input_scatter(grad_out, weight, dx, gwide, dxpad, plan, flat, conv):
    """Fill ``dx`` (n, c, h, w) with dL/dx from grad_out (n, k, oh, ow) and weight (k, c//groups, kh, kw).

    Scatter form, for strides > 1 and NaN/Inf weights (otherwise the gather form -- `forward` on grad_out
    with flipped weights -- fuses taps and is faster): each output gradient adds ``weight * grad`` to the padded input
    pixels of its window, three output channels at a time. Work is the n*c input planes in (image, channel)
    order, cut into ``chunks`` slices; a slice owns its planes, so no two threads write the same element.
    Scratch: gwide (chunks * kpg*oh*wq) holds one (image, group)'s output gradients with zeroed garbage
    columns, dxpad (chunks * stride_h*stride_w*hq*wq) one padded input gradient. ``flat`` must be False when
    a weight is not finite (``0 * inf`` from garbage columns would land on real pixels).
    """
    chunks, hq, wq = plan
    stride_h, stride_w, _, _, _, _, groups = conv
    n, k, oh, ow = grad_out.shape
    c = dx.shape[1]
    cpg, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    kpg = k // groups
    plane_in = stride_h * stride_w * hq * wq
    plane_out = oh * wq
    nrows = 1 if flat else oh
    rowlen = plane_out if flat else ow
    triples = kpg - kpg % 3  # output channels [0, triples) go three at a time
    tap = tap_offsets(kh, kw, conv, hq, wq)
    for t in prange(chunks):
        g0 = t * kpg * plane_out
        d0 = t * plane_in
        widened = -1
        for plane in range(t * n * c // chunks, (t + 1) * n * c // chunks):
            b = plane // c
            cc = plane - b * c
            g = cc // cpg
            ci = cc - g * cpg
            if b * groups + g != widened:
                _widen_planes(grad_out, b, g * kpg, kpg, gwide, g0, wq)
                widened = b * groups + g
            _fill(dxpad, d0, plane_in, 0.0)
            for i in range(kh):
                for j in range(kw):
                    d = d0 + tap[i, j]
                    for kl in range(0, triples, 3):
                        w0, w1, w2 = (
                            weight[g * kpg + kl, ci, i, j],
                            weight[g * kpg + kl + 1, ci, i, j],
                            weight[g * kpg + kl + 2, ci, i, j],
                        )
                        s = g0 + kl * plane_out
                        for r in range(nrows):
                            o = r * wq
                            _madd3(
                                dxpad, d + o, gwide, s + o, s + plane_out + o, s + 2 * plane_out + o, w0, w1, w2, rowlen
                            )
                    for kl in range(triples, kpg):
                        wv = weight[g * kpg + kl, ci, i, j]
                        for r in range(nrows):
                            _madd(dxpad, d + r * wq, gwide, g0 + kl * plane_out + r * wq, wv, rowlen)
            unpad_plane(dxpad, d0, hq, wq, conv, dx, b, cc)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_weight(x, grad_out, partial, xpad, gwide, plan, kblocks, conv):
    """Fill ``partial`` (chunks, k, c//groups, kh, kw) with per-slice sums of dL/dweight from x (n, c, h, w)
    and grad_out (n, k, oh, ow); the caller adds the slices up.

    Work units are (image, group, block of the group's output channels), ``kblocks`` blocks per group so
    that small batches still feed every thread, cut into ``chunks`` slices. A unit pads its input planes into
    xpad (chunks * cpg*stride_h*stride_w*hq*wq; consecutive units of one (image, group) pad once) and widens
    its output gradients into gwide (chunks * kpg*oh*wq), then adds one dot product per weight element,
    three taps per pass. Flat mode would multiply the zero garbage columns of gwide by real pixels, so an
    (image, group) whose input holds NaN/Inf is walked row by row.
    """
    chunks, hq, wq = plan
    stride_h, stride_w, _, _, _, _, groups = conv
    n = x.shape[0]
    k, oh, ow = grad_out.shape[1], grad_out.shape[2], grad_out.shape[3]
    cpg, kh, kw = partial.shape[2], partial.shape[3], partial.shape[4]
    kpg = k // groups
    plane_in = stride_h * stride_w * hq * wq
    plane_out = oh * wq
    triples = kw - kw % 3  # taps [0, triples) go three at a time
    units = n * groups * kblocks
    tap = tap_offsets(kh, kw, conv, hq, wq)
    for t in prange(chunks):
        x0 = t * cpg * plane_in
        g0 = t * kpg * plane_out
        for kk in range(k):
            for ci in range(cpg):
                for i in range(kh):
                    for j in range(kw):
                        partial[t, kk, ci, i, j] = 0.0
        padded = -1
        flat = False
        for unit in range(t * units // chunks, (t + 1) * units // chunks):
            pair = unit // kblocks
            kb = unit - pair * kblocks
            b = pair // groups
            g = pair - b * groups
            if pair != padded:
                pad_planes(x, b, g * cpg, cpg, xpad, x0, hq, wq, conv)
                flat = _all_finite(xpad, x0, cpg * plane_in)
                padded = pair
            nrows = 1 if flat else oh
            rowlen = plane_out if flat else ow
            kl0, kl1 = kb * kpg // kblocks, (kb + 1) * kpg // kblocks
            _widen_planes(grad_out, b, g * kpg + kl0, kl1 - kl0, gwide, g0, wq)
            for kl in range(kl0, kl1):
                kk = g * kpg + kl
                for ci in range(cpg):
                    for i in range(kh):
                        for r in range(nrows):
                            a = g0 + (kl - kl0) * plane_out + r * wq
                            s = x0 + ci * plane_in + r * wq
                            for j in range(0, triples, 3):
                                s0, s1, s2 = s + tap[i, j], s + tap[i, j + 1], s + tap[i, j + 2]
                                p0, p1 = partial[t, kk, ci, i, j], partial[t, kk, ci, i, j + 1]
                                p2 = partial[t, kk, ci, i, j + 2]
                                p0, p1, p2 = _dot3(gwide, a, xpad, s0, s1, s2, rowlen, p0, p1, p2)
                                partial[t, kk, ci, i, j] = p0
                                partial[t, kk, ci, i, j + 1] = p1
                                partial[t, kk, ci, i, j + 2] = p2
                            for j in range(triples, kw):
                                s0 = s + tap[i, j]
                                partial[t, kk, ci, i, j] = _dot(gwide, a, xpad, s0, rowlen, partial[t, kk, ci, i, j])
