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
"""

from numba import njit, prange

from numbaconv.kernels import FASTMATH
from numbaconv.kernels.gemm import KC, MR, multiply_tile
from numbaconv.kernels.im2col import lower_row


@njit(cache=True, fastmath=FASTMATH)
def _lower_block(x, n, ch0, cg, lowering, oy0, oy1, ow, cols, c0, ldb):
    """Rows ``[0, cg * kh * kw)`` of the block's column matrix at ``cols[c0:]`` (row pitch ldb): output rows
    ``[oy0, oy1)`` of sample n, input channels ``ch0 .. ch0 + cg``."""
    kh, kw = lowering[0], lowering[1]
    for ci in range(cg):
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                lower_row(x, n, ch0 + ci, i, j, lowering, oy0, oy1, ow, cols, c0 + r * ldb)


@njit(cache=True)
def _multiply_block(w_mat, g, kg, cols, c0, ldb, pixels, out, item, p0, scratch, t):
    """out[item, :kg, p0:p0 + pixels] = w_mat[g] @ the block's column matrix (rows_b x pixels at cols[c0:])."""
    rows_b = w_mat.shape[2]
    nr = (scratch.shape[1] - MR * KC) // MR
    a_address, b_address = w_mat.ctypes.data, cols.ctypes.data
    group_off = g * w_mat.shape[1] * rows_b
    for pc in range(0, rows_b, KC):
        kc = min(KC, rows_b - pc)
        for jr in range(0, pixels, nr):
            b_off = c0 + pc * ldb + jr
            for row in range(0, kg, MR):
                target = (item, row, p0 + jr, min(MR, kg - row), min(nr, pixels - jr))
                a_off = group_off + row * rows_b + pc
                multiply_tile(pc == 0, a_address, a_off, rows_b, 1, b_address, b_off, ldb, kc, out, target, scratch, t)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward(x, w_mat, out, cols, scratch, lowering, out_size, block_rows):
    """Fill ``out`` (n * groups, kg, oh * ow) with the convolution of x by the weights (and bias) in w_mat
    (see the module docstring); ``out_size = (oh, ow)``. Work items (sample, group, row block) are cut into
    one static slice per thread."""
    n, c = x.shape[0], x.shape[1]
    groups, kg = w_mat.shape[0], out.shape[1]
    rows_b = w_mat.shape[2]
    cg = c // groups
    rows = cg * lowering[0] * lowering[1]
    oh, ow = out_size
    threads, ldb = cols.shape[0], cols.shape[1] // rows_b
    blocks = (oh + block_rows - 1) // block_rows
    items = n * groups * blocks
    for t in prange(threads):
        c0 = t * cols.shape[1]
        for r in range(rows, rows_b):  # the bias row of ones
            for p in range(ldb):
                cols[t, r * ldb + p] = 1
        for unit in range(t * items // threads, (t + 1) * items // threads):
            pair, blk = unit // blocks, unit % blocks
            b, g = pair // groups, pair % groups
            oy0 = blk * block_rows
            oy1 = min(oh, oy0 + block_rows)
            flat = cols[t]
            _lower_block(x, b, g * cg, cg, lowering, oy0, oy1, ow, flat, 0, ldb)
            _multiply_block(w_mat, g, kg, cols, c0, ldb, (oy1 - oy0) * ow, out, pair, oy0 * ow, scratch, t)
