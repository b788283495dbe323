"""im2col fused with its matrix product: each thread lowers one block of output pixels at a time into its own
column buffer and multiplies it there, so the column matrix never leaves the cache.

The materialised path (`numbaconv.kernels.im2col` plus one big product) writes the whole column matrix to
memory and reads it back: on few-channel layers (3 input channels, 32x32 maps) that traffic, not the
arithmetic, was most of the time. Here a work item is (sample, group, block of ``block_rows`` output rows):
`numbaconv.kernels.im2col.lower_row` writes the block's columns, (rows, pixels) with a row pitch ``ldb``,
into the thread's slice of ``cols``, and the GEMM's register tile (`numbaconv.kernels.gemm.multiply_tile`)
multiplies the group's weight matrix by it straight into the output.

Shapes: x (n, c, h, w); ``w_mat`` (groups, kpad, rows_b): each group's (kg, cg * kh * kw) weight matrix,
zero rows up to ``kpad`` (a multiple of the tile's MR rows, so every row sliver can be read in place) and,
when ``rows_b`` exceeds cg * kh * kw, the bias as one more column (the column buffers then hold a row of
ones there). ``out`` is (n * groups, kg, oh * ow), the (n, k, oh, ow) output viewed per (sample, group).
``cols`` is (threads, rows_b * ldb) with ``ldb`` a multiple of the tile's NR columns, at least
``block_rows * ow``: a partial last column sliver is read in place too, its extra columns only ever reaching
tile columns that are discarded. ``scratch`` is the GEMM's (threads, MR * KC + MR * NR) scratch.

`forward_gathered` skips the lowering: its tiles run along single output rows, and the register tile reads
row p of the column matrix at a table's offset into the padded input planes (what `_lower_block_phased`
would have copied from there).
"""

import numpy as np
from numba import njit, prange

from numbaconv.kernels import FASTMATH
from numbaconv.kernels.direct import pad_planes, tap_offsets, unpad_plane
from numbaconv.kernels.gemm import KC, MR, multiply_tile
from numbaconv.kernels.im2col import lower_row, raise_row, zero_planes
from numbaconv.kernels.vector import copy_run

_u = np.uint64  # flat indices: unsigned, so Numba emits no negative-index wraparound


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _lower_block(x, n, ch0, cg, lowering, oy0, oy1, ow, cols, c0, r_step, p_step):
    """The block's column matrix at ``cols[c0:]``, row ``r`` of pixel ``p`` at ``r * r_step + p * p_step``:
    output rows ``[oy0, oy1)`` of sample n, input channels ``ch0 .. ch0 + cg``. Row-major (``p_step`` a
    literal 1, so the copies vectorise once inlined) for the forward product, transposed (``r_step`` 1) for
    grad_weight's, which reduces over pixels."""
    kh, kw = lowering[0], lowering[1]
    for ci in range(cg):
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                lower_row(x, n, ch0 + ci, i, j, lowering, oy0, oy1, ow, cols, c0 + r * r_step, p_step)


@njit(cache=True, fastmath=FASTMATH)
def _lower_block_phased(xpad, plane_in, cg, tap, oy0, oy1, ow, wq, cols, ldb):
    """Row-major `_lower_block` from the (sample, group)'s input planes already zero-padded and split into
    stride phases in xpad (`numbaconv.kernels.direct`'s layout, taps at ``tap`` offsets): each tap's row is
    then one contiguous run, where `lower_row` on a strided layer reads every stride-th element. One thread,
    CPU time: forward on stem7x7 31 -> 25 ms, on the tutorial layer 16 -> 12 ms."""
    kh, kw = tap.shape
    for ci in range(cg):
        for i in range(kh):
            for j in range(kw):
                d = ((ci * kh + i) * kw + j) * ldb
                s = ci * plane_in + tap[i, j]
                for oy in range(oy0, oy1):
                    copy_run(cols, d + (oy - oy0) * ow, xpad, s + oy * wq, ow)


@njit(cache=True)
def _multiply_block(w_mat, g, kg, cols, c0, ldb, pixels, panel, out, item, p0, scratch, t):
    """out[item, :kg, p0:p0 + pixels] = w_mat[g] @ the block's column matrix (rows_b x pixels at cols[c0:]),
    in panels of ``panel`` columns (a multiple of the tile's), each passed over by every row sliver of w_mat
    while it stays in L2."""
    rows_b = w_mat.shape[2]
    nr = (scratch.shape[1] - MR * KC) // MR
    a_address, b_address = w_mat.ctypes.data, cols.ctypes.data
    group_off = g * w_mat.shape[1] * rows_b
    for pc in range(0, rows_b, KC):
        kc = min(KC, rows_b - pc)
        # Within a panel, one row sliver at a time: its MR output rows are written as MR sequential streams.
        # Sliver by sliver per column (the order that keeps b's sliver in L1) wrote every output row per 128
        # bytes, and the misses cost more than the reuse saves: one thread, cifar_c1 3.5 -> 2.3 ms, tutorial
        # 15.1 -> 13.4 ms (the columns stayed in L2 either way).
        for jc in range(0, pixels, panel):
            for row in range(0, kg, MR):
                a_off = group_off + row * rows_b + pc
                for jr in range(jc, min(pixels, jc + panel), nr):
                    target = (item, row, p0 + jr, min(MR, kg - row), min(nr, pixels - jr))
                    b_off = c0 + pc * ldb + jr
                    multiply_tile(
                        pc == 0, a_address, a_off, rows_b, 1, b_address, b_off, ldb, kc, out, target, scratch, t
                    )


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward(x, w_mat, out, cols, scratch, lowering, out_size, block_rows, panel, xpad, phases):
    """Fill ``out`` (n * groups, kg, oh * ow) with the convolution of x by the weights (and bias) in w_mat
    (see the module docstring); ``out_size = (oh, ow)``; ``panel`` as in `_multiply_block`. Work items
    (sample, group, row block) are cut into one static slice per thread. With ``phases = (hq, wq)`` (strided
    layers; (0, 0) otherwise) each thread first pads and phase-splits its (sample, group)'s input planes into
    xpad (threads, cg * planes)."""
    n, c = x.shape[0], x.shape[1]
    groups, kg = w_mat.shape[0], out.shape[1]
    rows_b = w_mat.shape[2]
    cg = c // groups
    rows = cg * lowering[0] * lowering[1]
    oh, ow = out_size
    threads, ldb = cols.shape[0], cols.shape[1] // rows_b
    blocks = (oh + block_rows - 1) // block_rows
    items = n * groups * blocks
    conv, tap, plane_in = _phase_plan(lowering, groups, phases)
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        c0 = t * cols.shape[1]
        for r in range(rows, rows_b):  # the bias row of ones
            for p in range(ldb):
                cols[t, r * ldb + p] = 1
        # Zeros in the columns past a full block, which the last tile reads and discards: whatever a reused
        # buffer held there (denormal floats, say) made the tutorial layer's forward 3x slower.
        for r in range(rows):
            for p in range(block_rows * ow, ldb):
                cols[t, r * ldb + p] = 0
        padded = -1
        for unit in range(t * items // threads, (t + 1) * items // threads):
            pair, blk = unit // blocks, unit % blocks
            b, g = pair // groups, pair % groups
            oy0 = blk * block_rows
            oy1 = min(oh, oy0 + block_rows)
            flat = cols[t]
            if plane_in == 0:
                _lower_block(x, b, g * cg, cg, lowering, oy0, oy1, ow, flat, 0, ldb, 1)
            else:
                if pair != padded:
                    pad_planes(x, b, g * cg, cg, xpad[t], 0, phases[0], phases[1], conv)
                    padded = pair
                _lower_block_phased(xpad[t], plane_in, cg, tap, oy0, oy1, ow, phases[1], flat, ldb)
            _multiply_block(w_mat, g, kg, cols, c0, ldb, (oy1 - oy0) * ow, panel, out, pair, oy0 * ow, scratch, t)


@njit(cache=True)
def _multiply_planes(w_mat, g, kg, xpad, t, table, oy0, oy1, ow, wq, out, item, scratch):
    """out[item, :kg, oy0 * ow:oy1 * ow] = w_mat[g] @ the implicit column matrix of output rows [oy0, oy1):
    its row p for output pixel (oy, ox) is ``xpad[t, table[p] + oy * wq + ox]``, so each tile runs along
    one output row and the register tile reads b from the padded planes through the row table."""
    rows_b = w_mat.shape[2]
    nr = (scratch.shape[1] - MR * KC) // MR
    a_address, b_address = w_mat.ctypes.data, xpad.ctypes.data
    table_address = np.int64(table.ctypes.data)  # int64: an unsigned address plus an int64 would be float64
    group_off, plane_off = g * w_mat.shape[1] * rows_b, t * xpad.shape[1]
    for pc in range(0, rows_b, KC):
        kc = min(KC, rows_b - pc)
        rows_at = table_address + pc * table.itemsize
        for row in range(0, kg, MR):  # one row sliver at a time, as in `_multiply_block`
            a_off = group_off + row * rows_b + pc
            for oy in range(oy0, oy1):
                for ox in range(0, ow, nr):
                    target = (item, row, oy * ow + ox, min(MR, kg - row), min(nr, ow - ox))
                    b_off = plane_off + oy * wq + ox
                    multiply_tile(
                        pc == 0,
                        a_address,
                        a_off,
                        rows_b,
                        1,
                        b_address,
                        b_off,
                        rows_at,
                        kc,
                        out,
                        target,
                        scratch,
                        t,
                        True,
                    )


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward_gathered(x, w_mat, out, xpad, table, scratch, lowering, out_size, block_rows, phases):
    """`forward` with no column buffer: each thread pads (and for strided layers phase-splits) its (sample,
    group)'s input planes into xpad (threads, (cg + 1) * planes + NR), `numbaconv.kernels.direct`'s layout
    with ``phases = (hq, wq)``, followed by ones (the bias row's plane, and slack for the last tile's reads),
    and `_multiply_planes` reads the column matrix from there: ``table`` (rows_b,) holds each row's offset,
    ``ci * planes + tap offset`` (the bias row's: cg * planes). Work items (sample, group, block of
    ``block_rows`` output rows) are cut into one static slice per thread."""
    n, c = x.shape[0], x.shape[1]
    groups, kg = w_mat.shape[0], out.shape[1]
    cg = c // groups
    oh, ow = out_size
    threads = xpad.shape[0]
    blocks = (oh + block_rows - 1) // block_rows
    items = n * groups * blocks
    conv, _, plane_in = _phase_plan(lowering, groups, phases)
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        for f in range(cg * plane_in, xpad.shape[1]):
            xpad[t, f] = 1
        padded = -1
        for unit in range(t * items // threads, (t + 1) * items // threads):
            pair, blk = unit // blocks, unit % blocks
            b, g = pair // groups, pair % groups
            if pair != padded:
                pad_planes(x, b, g * cg, cg, xpad[t], 0, phases[0], phases[1], conv)
                padded = pair
            oy0 = blk * block_rows
            oy1 = min(oh, oy0 + block_rows)
            _multiply_planes(w_mat, g, kg, xpad, t, table, oy0, oy1, ow, phases[1], out, pair, scratch)


@njit(cache=True)
def _phase_plan(lowering, groups, phases):
    """(conv tuple, tap offsets, elements per padded input plane) of `numbaconv.kernels.direct`'s padded,
    phase-split layout for ``phases = (hq, wq)``; a zero plane size when phases is (0, 0)."""
    kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = lowering
    conv = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups)
    hq, wq = phases
    return conv, tap_offsets(kh, kw, conv, max(hq, 1), max(wq, 1)), stride_h * stride_w * hq * wq


@njit(cache=True)
def _copy_edge(src, s0, lds, rows, cols, dst, d0, nr):
    """dst[d0 + r * nr + q] = src[s0 + r * lds + q] for r < rows, q < cols, zero for cols <= q < nr: a ragged
    sliver copied where the register tile may read all of it."""
    for r in range(rows):
        for q in range(cols):
            dst[d0 + r * nr + q] = src[s0 + r * lds + q]
        for q in range(cols, nr):
            dst[d0 + r * nr + q] = 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_input(grad_out, w_t, dx, dcols, edge, scratch, lowering, block_rows, dxpad, phases):
    """Overwrite dx (n, c, h, w) with dL/dx from grad_out (n, k, oh, ow): per (sample, group), block by block
    of output rows, dcols = w_t[g] @ grad_out's block, then `raise_row` adds each column back to the input
    pixel it came from.

    w_t: (groups, rpad, kg), each group's weight matrix transposed, zero rows from cg * kh * kw up to rpad (a
    multiple of MR). dcols: (threads, rpad * ldc), ldc a multiple of NR: every tile is whole. edge: (threads,
    KC * NR), the ragged last column sliver of a block's grad_out, zero-padded. A thread owns whole samples,
    so the scatter-add never races. With ``phases = (hq, wq)`` (strided layers) the columns are added into
    padded, phase-split planes in dxpad (threads, cg * planes), contiguous runs like `forward`'s lowering,
    and each (sample, group)'s planes are then cropped into dx.
    """
    n, k, oh, ow = grad_out.shape
    c = dx.shape[1]
    groups, rpad, kg = w_t.shape
    cg = c // groups
    nr = edge.shape[1] // KC
    threads, ldc = dcols.shape[0], dcols.shape[1] // rpad
    tiles = dcols.reshape(threads, rpad, ldc)
    go = grad_out.reshape(grad_out.size)
    plane = oh * ow
    items = n * groups
    conv, tap, plane_in = _phase_plan(lowering, groups, phases)
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        for pair in range(t * items // threads, (t + 1) * items // threads):
            b, g = pair // groups, pair % groups
            if plane_in == 0:
                zero_planes(dx, b, g * cg, cg)
            else:
                for f in range(cg * plane_in):
                    dxpad[t, f] = 0
            for oy0 in range(0, oh, block_rows):
                oy1 = min(oh, oy0 + block_rows)
                pixels = (oy1 - oy0) * ow
                for pc in range(0, kg, KC):
                    kc = min(KC, kg - pc)
                    g_off = (b * k + g * kg + pc) * plane + oy0 * ow
                    for jr in range(0, pixels, nr):
                        b_address, b_off, ldb = go.ctypes.data, g_off + jr, plane
                        if jr + nr > pixels:
                            _copy_edge(go, g_off + jr, plane, kc, pixels - jr, edge[t], 0, nr)
                            b_address, b_off, ldb = edge.ctypes.data, t * edge.shape[1], nr
                        for row in range(0, rpad, MR):
                            a_off = (g * rpad + row) * kg + pc
                            target = (t, row, jr, MR, nr)
                            multiply_tile(
                                pc == 0,
                                w_t.ctypes.data,
                                a_off,
                                kg,
                                1,
                                b_address,
                                b_off,
                                ldb,
                                kc,
                                tiles,
                                target,
                                scratch,
                                t,
                            )
                if plane_in == 0:
                    _raise_block(dcols[t], ldc, lowering, oy0, oy1, ow, dx, b, g * cg, cg)
                else:
                    _raise_block_phased(dcols[t], ldc, cg, tap, oy0, oy1, ow, phases[1], dxpad[t], plane_in)
            for ci in range(cg if plane_in else 0):
                unpad_plane(dxpad[t], ci * plane_in, phases[0], phases[1], conv, dx, b, g * cg + ci)


@njit(cache=True, fastmath=FASTMATH)
def _raise_block_phased(src, lds, cg, tap, oy0, oy1, ow, wq, dxpad, plane_in):
    """The adjoint of `_lower_block_phased`: add each row of a block's column matrix at src (row pitch lds)
    to the padded, phase-split planes in dxpad, one contiguous run per tap and output row."""
    kh, kw = tap.shape
    for ci in range(cg):
        for i in range(kh):
            for j in range(kw):
                s = ((ci * kh + i) * kw + j) * lds
                d = ci * plane_in + tap[i, j]
                for oy in range(oy0, oy1):
                    row_s, row_d = s + (oy - oy0) * ow, d + oy * wq
                    for ox in range(ow):
                        dxpad[_u(row_d + ox)] += src[_u(row_s + ox)]


@njit(cache=True, fastmath=FASTMATH)
def _raise_block(src, lds, lowering, oy0, oy1, ow, dx, n, ch0, cg):
    """`raise_row` for every row of a block's column matrix at src (row pitch lds)."""
    kh, kw = lowering[0], lowering[1]
    for ci in range(cg):
        for i in range(kh):
            for j in range(kw):
                raise_row(src, ((ci * kh + i) * kw + j) * lds, i, j, lowering, oy0, oy1, ow, dx, n, ch0 + ci)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_weight(x, grad_out, partial, cols, edge, scratch, lowering, block_rows):
    """Fill ``partial`` (threads, groups, kgpad, rpad) with per-thread sums of each group's dL/dW, (kg, cg *
    kh * kw) in its top-left corner, from x (n, c, h, w) and grad_out (n, k, oh, ow); the caller adds the
    threads' sums and crops.

    Work items are (sample, group, block of output rows): the block's columns are lowered transposed into
    cols (threads, ldb * rpad), pixels by taps, and ``partial[t, g] += grad_out's block @ cols`` reduces over
    the block's pixels, grad_out read in place. kgpad and rpad are multiples of the register tile's MR and
    NR, so every tile is whole; the padding columns of cols stay zero, and a ragged last row sliver of
    grad_out is copied, zero-padded, into edge (threads, MR * KC). (Transposed, a strided layer's rows
    gain nothing from phase-split planes: the scattered writes cost as much as the strided reads.)
    """
    n, k, oh, ow = grad_out.shape
    threads, groups, kgpad, rpad = partial.shape
    cg = x.shape[1] // groups
    kg = k // groups
    nr = (scratch.shape[1] - MR * KC) // MR
    sums = partial.reshape(threads * groups, kgpad, rpad)
    flat_sums = partial.reshape(partial.size)
    go = grad_out.reshape(grad_out.size)
    plane = oh * ow
    blocks = (oh + block_rows - 1) // block_rows
    items = n * groups * blocks
    per_thread = groups * kgpad * rpad
    for parallel_t in prange(threads):
        t = np.int64(parallel_t)  # the parfor index may be unsigned: uint64 with int64 arithmetic is float64
        for f in range(t * per_thread, (t + 1) * per_thread):
            flat_sums[f] = 0
        for f in range(cols.shape[1]):  # the padding columns stay zero
            cols[t, f] = 0
        for unit in range(t * items // threads, (t + 1) * items // threads):
            pair, blk = unit // blocks, unit % blocks
            b, g = pair // groups, pair % groups
            oy0 = blk * block_rows
            oy1 = min(oh, oy0 + block_rows)
            pixels = (oy1 - oy0) * ow
            _lower_block(x, b, g * cg, cg, lowering, oy0, oy1, ow, cols[t], 0, 1, rpad)
            for pc in range(0, pixels, KC):
                kc = min(KC, pixels - pc)
                g_off = (b * k + g * kg) * plane + oy0 * ow + pc
                for row in range(0, kg, MR):
                    a_address, a_off, lda = go.ctypes.data, g_off + row * plane, plane
                    if row + MR > kg:  # rows past the group's last channel: read zeros from edge instead
                        _copy_edge(go, a_off, plane, kg - row, kc, edge[t], 0, KC)
                        for f in range((kg - row) * KC, MR * KC):
                            edge[t, f] = 0
                        a_address, a_off, lda = edge.ctypes.data, t * edge.shape[1], KC
                    for jr in range(0, rpad, nr):
                        b_off = t * cols.shape[1] + pc * rpad + jr
                        target = (t * groups + g, row, jr, MR, nr)
                        multiply_tile(
                            False, a_address, a_off, lda, 1, cols.ctypes.data, b_off, rpad, kc, sums, target, scratch, t
                        )
