"""Winograd tile transforms: gather image tiles into the transformed domain, and scatter products back.

Both kernels work on a *chunk* of tile rows: global tile row ``g`` (``row0 <= g < row0 + nrows``) is tile row
``g % tiles_h`` of image ``g // tiles_h``, and its ``tiles_w`` tiles are columns ``t = (g - row0) * tiles_w +
tw`` of the transformed buffers. A buffer is laid out ``(a*a, channels, t)``: for each of the ``a*a``
transformed positions a channel's tiles form one contiguous run, so the batched matrix product in the driver
sees contiguous ``(channels, tiles)`` operands and every transform loop here runs along ``t``, vectorised.

Work items are (channel, segment of up to ``tiles_buf.shape[2] // tiles_w`` tile rows), split into
``tiles_buf.shape[0]`` contiguous blocks, one per parallel iteration; each block owns its slice of the scratch
buffers, so nothing is allocated inside the parallel loop. Arrays are indexed directly rather than through
views (a view inside the loop costs an atomic reference-count update), and offsets that are never negative are
cast to unsigned so Numba emits no negative-index wraparound and LLVM sees plain strided addresses.

The transform matrix of each kernel is a compile-time constant: the ``make_*`` factories close over it, so
Numba compiles (and caches, keyed by the matrix) one kernel per tile size and dtype, LLVM fully unrolls the
short loops over the matrix and drops the terms whose coefficient is zero.
"""

import numpy as np
from numba import njit, prange

from . import FASTMATH

_U = np.uint64


@njit(cache=True, inline="always")
def _work_split(channels, nrows, tiles_w, tiles_buf):
    """(tile rows per work item, segments per channel, work items, parallel blocks) for a chunk of ``nrows``
    tile rows: a work item is one channel's segment of up to tiles_buf.shape[2] // tiles_w tile rows."""
    seg = max(1, tiles_buf.shape[2] // tiles_w)
    nseg = (nrows + seg - 1) // seg
    return seg, nseg, channels * nseg, tiles_buf.shape[0]


@njit(cache=True, inline="always")
def _work_item(item, seg, nseg, row0, nrows, tiles_w):
    """(channel, first global tile row, end tile row, tiles, first tile column in the chunk) of work item."""
    ch = item // nseg
    g_lo = row0 + (item - ch * nseg) * seg
    g_hi = min(g_lo + seg, row0 + nrows)
    return ch, g_lo, g_hi, (g_hi - g_lo) * tiles_w, (g_lo - row0) * tiles_w


def make_tile_transform(mat: np.ndarray):
    """Kernel ``tile_transform(src, ch0, off_h, off_w, row0, tiles_h, tiles_w, dst, rows_buf, tiles_buf)``.

    Computes ``dst[i*a + j, ch, t] = (mat @ window @ mat.T)[i, j]`` for the s x s window of every tile ``t``
    in channel ``ch0 + ch`` of src.
    mat: (a, s) constant in the data dtype, tiles step ``a - 2`` apart: Winograd B^T (s = a) for input tiles,
    A (s = a - 2) for output-gradient tiles.

    src: (n, >= ch0 + channels, sh, sw); the window of tile (th, tw) starts at row ``th*step - off_h``, column
         ``tw*step - off_w``; positions outside the image read as zero (implicit padding; the offsets may be
         negative and windows may hang over any edge).
    dst: (a*a, channels, nrows * tiles_w) for global tile rows row0 .. row0 + nrows - 1.
    rows_buf: (nblocks, 2*s, >= seg * tiles_w * step) scratch; tiles_buf: (nblocks, s*s + a*s, seg * tiles_w)
              scratch, where seg >= 1 tile rows make one work item.
    """
    a, s = mat.shape
    step = a - 2
    e = s - step  # columns a window reaches past its own tile, into the next one

    @njit(parallel=True, cache=True, fastmath=FASTMATH)
    def tile_transform(src, ch0, off_h, off_w, row0, tiles_h, tiles_w, dst, rows_buf, tiles_buf):
        sh = src.shape[2]
        sw = src.shape[3]
        channels = dst.shape[1]
        nrows = dst.shape[2] // tiles_w
        width = tiles_w * step
        x_lo = min(max(off_w, 0), width)
        x_hi = max(min(sw + off_w, width), x_lo)
        seg, nseg, items, nblocks = _work_split(channels, nrows, tiles_w, tiles_buf)
        hb = s * s
        for b in prange(nblocks):
            for item in range(items * b // nblocks, items * (b + 1) // nblocks):
                ch, g_lo, g_hi, nt, t0 = _work_item(item, seg, nseg, row0, nrows, tiles_w)
                sc = ch0 + ch
                # 1. The s image rows under each tile row, zero padded, laid end to end in R = rows_buf[b, :s]
                #    so that tile t's first `step` columns sit at R[u, t*step:]; the `e` columns past a row's
                #    last tile go to O = rows_buf[b, s:2*s].
                for g in range(g_lo, g_hi):
                    img = g // tiles_h
                    y0 = (g - img * tiles_h) * step - off_h
                    base = (g - g_lo) * width
                    for u in range(s):
                        y = y0 + u
                        if 0 <= y < sh:
                            for x in range(x_lo):
                                rows_buf[b, u, _U(base + x)] = 0
                            for x in range(x_lo, x_hi):
                                rows_buf[b, u, _U(base + x)] = src[img, sc, y, _U(x - off_w)]
                            for x in range(x_hi, width):
                                rows_buf[b, u, _U(base + x)] = 0
                            for x in range(e):
                                xs = width + x - off_w
                                val = src[img, sc, y, _U(xs)] if 0 <= xs < sw else 0
                                rows_buf[b, s + u, _U((g - g_lo) * e + x)] = val
                        else:
                            # A whole padding row (kept apart from the copy above: merging the two branches
                            # into one loop with conditional bounds halves the speed of the copy).
                            for x in range(width):
                                rows_buf[b, u, _U(base + x)] = 0
                            for x in range(e):
                                rows_buf[b, s + u, _U((g - g_lo) * e + x)] = 0
                # 2. Windows, one row per element, G = tiles_buf[b, :s*s]: G[u*s + v, t] = window(t)[u, v].
                #    Columns v >= step are the next tile's columns v - step, except for a row's last tile (O).
                for u in range(s):
                    for t in range(nt):
                        for v in range(step):
                            tiles_buf[b, u * s + v, t] = rows_buf[b, u, _U(t * step + v)]
                    for v in range(step, s):
                        for t in range(nt - 1):
                            tiles_buf[b, u * s + v, t] = tiles_buf[b, u * s + v - step, t + 1]
                        for r in range(g_hi - g_lo):
                            last = r * tiles_w + tiles_w - 1
                            tiles_buf[b, u * s + v, _U(last)] = rows_buf[b, s + u, _U(r * e + v - step)]
                # 3. Down window columns, into H = tiles_buf[b, s*s:]: H[i*s + v] = sum_u mat[i, u] G[u*s + v].
                for v in range(s):
                    for t in range(nt):
                        for i in range(a):
                            acc = mat[i, 0] * tiles_buf[b, v, t]
                            for u in range(1, s):
                                if mat[i, u] != 0:
                                    acc += mat[i, u] * tiles_buf[b, u * s + v, t]
                            tiles_buf[b, hb + i * s + v, t] = acc
                # 4. Along window rows, into the output: dst[i*a + j] = sum_v mat[j, v] H[i*s + v].
                for i in range(a):
                    for t in range(nt):
                        for j in range(a):
                            acc = mat[j, 0] * tiles_buf[b, hb + i * s, t]
                            for v in range(1, s):
                                if mat[j, v] != 0:
                                    acc += mat[j, v] * tiles_buf[b, hb + i * s + v, t]
                            dst[i * a + j, ch, _U(t0 + t)] = acc

    return tile_transform


def make_output_transform(mat: np.ndarray):
    """Kernel ``output_transform(prod, bias, row0, tiles_h, tiles_w, out, ch0, rows_buf, tiles_buf)``.

    Computes ``out[img, ch0 + k, th*m + p, tw*m + q] = bias[ch0 + k] + (mat.T @ P @ mat)[p, q]`` where P is the
    a x a transformed product of channel k's tile (th, tw) of image img. mat: (a, m) Winograd A, constant in
    the data dtype.

    prod: (a*a, channels, nrows * tiles_w) products, tiles laid out as in `make_tile_transform`.
    bias: (>= ch0 + channels,) added to every output.
    out: (n, >= ch0 + channels, oh, ow); only outputs inside it are written (edge tiles are clipped).
    rows_buf: (nblocks, >= m, >= seg * tiles_w * m) scratch; tiles_buf: (nblocks, a*m + m*m, seg * tiles_w)
              scratch, where seg >= 1 tile rows make one work item.
    """
    a, m = mat.shape

    @njit(parallel=True, cache=True, fastmath=FASTMATH)
    def output_transform(prod, bias, row0, tiles_h, tiles_w, out, ch0, rows_buf, tiles_buf):
        oh = out.shape[2]
        ow = out.shape[3]
        channels = prod.shape[1]
        nrows = prod.shape[2] // tiles_w
        seg, nseg, items, nblocks = _work_split(channels, nrows, tiles_w, tiles_buf)
        fb = a * m
        for b in prange(nblocks):
            for item in range(items * b // nblocks, items * (b + 1) // nblocks):
                ch, g_lo, g_hi, nt, t0 = _work_item(item, seg, nseg, row0, nrows, tiles_w)
                # 1. Along product rows, into E = tiles_buf[b, :a*m]: E[i*m + q] = sum_j P[i, j] mat[j, q].
                for i in range(a):
                    for t in range(nt):
                        for q in range(m):
                            acc = mat[0, q] * prod[i * a, ch, _U(t0 + t)]
                            for j in range(1, a):
                                if mat[j, q] != 0:
                                    acc += mat[j, q] * prod[i * a + j, ch, _U(t0 + t)]
                            tiles_buf[b, i * m + q, t] = acc
                # 2. Down columns, plus bias, into F = tiles_buf[b, a*m:]:
                #    F[p*m + q] = bias + sum_i mat[i, p] E[i*m + q].
                bk = bias[ch0 + ch]
                for q in range(m):
                    for t in range(nt):
                        for p in range(m):
                            acc = bk
                            for i in range(a):
                                if mat[i, p] != 0:
                                    acc += mat[i, p] * tiles_buf[b, i * m + q, t]
                            tiles_buf[b, fb + p * m + q, t] = acc
                # 3. Interleave each output row of the tiles end to end, Z[p, t*m + q] with Z = rows_buf[b, :m],
                #    then copy the rows that fall inside the output.
                for p in range(m):
                    for t in range(nt):
                        for q in range(m):
                            rows_buf[b, p, _U(t * m + q)] = tiles_buf[b, fb + p * m + q, t]
                for g in range(g_lo, g_hi):
                    img = g // tiles_h
                    th = g - img * tiles_h
                    base = (g - g_lo) * tiles_w * m
                    for p in range(min(m, oh - th * m)):
                        for x in range(ow):
                            out[img, ch0 + ch, th * m + p, x] = rows_buf[b, p, _U(base + x)]

    return output_transform


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def move_phases(array, starts, step_h, step_w, stacked, gather):
    """Between an array and its polyphase parts stacked along the batch axis: part p of sample b is
    ``array[b, :, r_p::step_h, c_p::step_w]`` cropped to stacked's (h, w), with (r_p, c_p) = starts[p], and
    sits at ``stacked[p * n + b]``. ``gather``: copy the parts into stacked; else copy stacked back into
    the parts of array (their positions never overlap).

    array: (n, c, H, W); starts: (parts, 2) int64; stacked: (parts * n, c, h, w). One thread per plane of
    array, which moves all its parts while the plane is in L1 (one thread per part plane took 2x longer).
    """
    n, c = array.shape[0], array.shape[1]
    h, w = stacked.shape[2], stacked.shape[3]
    for job in prange(n * c):
        b, ch = job // c, job % c
        for part in range(starts.shape[0]):
            plane = part * n + b
            r0, c0 = starts[part, 0], starts[part, 1]
            for y in range(h):
                row = _U(r0 + y * step_h)
                if gather:
                    for x in range(w):
                        stacked[plane, ch, y, x] = array[b, ch, row, _U(c0 + x * step_w)]
                else:
                    for x in range(w):
                        array[b, ch, row, _U(c0 + x * step_w)] = stacked[plane, ch, y, x]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def transform_weights(weight, kron, u, taps_buf):
    """``u[p, f] = sum_q kron[p, q] * weight[f, q]``: U = G g G^T of every flattened 3x3 kernel f, in one pass.

    weight: (kernels, 9) C-contiguous (kernels = k * c/groups); kron: (a*a, 9), kron(G, G); u: (a*a,
    kernels). taps_buf: (blocks, 9 * block) scratch: each block of kernels has its taps transposed there, so
    the loop over kernels reads contiguous runs. The weights are read once and U written once: as a matrix
    product of kron by weight^T they were first copied transposed, then read again.
    """
    kernels = weight.shape[0]
    a2 = kron.shape[0]
    threads = taps_buf.shape[0]
    block = taps_buf.shape[1] // 9
    blocks = (kernels + block - 1) // block
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        for blk in range(t * blocks // threads, (t + 1) * blocks // threads):
            f0 = blk * block
            count = min(block, kernels - f0)
            for q in range(count):
                for tap in range(9):
                    taps_buf[t, _U(tap * block + q)] = weight[_U(f0 + q), tap]
            for p in range(a2):
                c0, c1, c2, c3, c4 = kron[p, 0], kron[p, 1], kron[p, 2], kron[p, 3], kron[p, 4]
                c5, c6, c7, c8 = kron[p, 5], kron[p, 6], kron[p, 7], kron[p, 8]
                for q in range(count):
                    u[p, _U(f0 + q)] = (
                        c0 * taps_buf[t, _U(q)]
                        + c1 * taps_buf[t, _U(block + q)]
                        + c2 * taps_buf[t, _U(2 * block + q)]
                        + c3 * taps_buf[t, _U(3 * block + q)]
                        + c4 * taps_buf[t, _U(4 * block + q)]
                        + c5 * taps_buf[t, _U(5 * block + q)]
                        + c6 * taps_buf[t, _U(6 * block + q)]
                        + c7 * taps_buf[t, _U(7 * block + q)]
                        + c8 * taps_buf[t, _U(8 * block + q)]
                    )


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def gradient_taps(du, kron, dw, taps_buf):
    """``dw[g, ko, ci, q] = sum_p kron[p, q] * du[p, g, ci * kg + ko]``: dW = G^T dU G of every kernel, the
    adjoint of `transform_weights`.

    du: (a*a, groups, cg * kg), each group's dU transposed (input channel major), C-contiguous; kron: (a*a, 9),
    kron(G, G); dw: (groups, kg, cg, 9), C-contiguous. taps_buf: (threads, 9 * block) scratch: a block of
    kernels' 9 taps are summed there over the a*a positions along contiguous runs of du, then written to dw.
    A work item is a block of one group's kernels.
    """
    a2, groups, kernels = du.shape
    kg = dw.shape[1]
    threads = taps_buf.shape[0]
    block = taps_buf.shape[1] // 9
    blocks = (kernels + block - 1) // block
    items = groups * blocks
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        for item in range(t * items // threads, (t + 1) * items // threads):
            g, f0 = item // blocks, (item % blocks) * block
            count = min(block, kernels - f0)
            for q in range(9):
                coefficient = kron[0, q]
                for j in range(count):
                    taps_buf[t, _U(q * block + j)] = coefficient * du[0, _U(g), _U(f0 + j)]
                for p in range(1, a2):
                    coefficient = kron[p, q]
                    if coefficient != 0:
                        for j in range(count):
                            taps_buf[t, _U(q * block + j)] += coefficient * du[_U(p), _U(g), _U(f0 + j)]
            for j in range(count):
                ci, ko = (f0 + j) // kg, (f0 + j) % kg
                for q in range(9):
                    dw[_U(g), _U(ko), _U(ci), q] = taps_buf[t, _U(q * block + j)]
