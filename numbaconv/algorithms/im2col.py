"""im2col driver: lower the input to a column matrix and multiply, either fused block by block on each
thread (`kernels.lowered`) or materialised chunk by chunk (`kernels.im2col` plus `numbaconv.algorithms.gemm`).

Where the GEMM has its register tile (`FUSED`: AVX-512 or AVX2) each thread lowers a block of output rows into
an L2-sized buffer and multiplies it there with that tile, so the column matrix never goes through memory (on
cifar_c1, 3 input channels, the materialised forward spent more time moving the matrix than multiplying it).
`fused_block_rows` picks the block or, for blocks too narrow for the register tile, the materialised path
described below. Where output rows are whole register tiles, or nearly (`gathered_rows_fit`), the forward
does not lower at all: the tile reads each row of the column matrix straight from the sample's padded input
planes through a table of row offsets (`gathered_forward`).

Per group ``g`` (``kg = k // groups`` output channels, ``rows = c // groups * kh * kw``):

    forward      out_g  (kg, pixels)   = W_g (kg, rows)     @ cols_g (rows, pixels)
    grad_weight  dW_g   (kg, rows)     = dY_g (kg, pixels)  @ cols_g.T
    grad_input   dcols_g (rows, pixels) = W_g.T             @ dY_g,   then col2im scatters dcols into dx

where ``pixels`` runs over the samples of a chunk and their output positions. Chunks are sized so the
column matrix (plus the channel-major copy of outputs or gradients, when one is needed) stays within
`CHUNK_BYTES`, and live in reusable workspaces.

Forward and grad_input reach the (n, k, oh, ow) order one of two ways, picked by the per-sample product size:
- large per-sample products (`PER_SAMPLE_MIN_PIXELS`, `PER_SAMPLE_MIN_MACS`): one product per (sample, group),
  written by BLAS straight into the result (the column matrix is read per sample through its row stride);
- otherwise: one product per group over the whole chunk, into a channel-major buffer that
  `kernels.im2col.swap_leading` moves into place (one cheap pass, and far fewer BLAS calls).
The forward bias rides in the product as an extra column of W against a row of ones in the column matrix.
grad_weight always takes one product per group and chunk (its reduction runs over samples and pixels), with
grad_out moved to channel-major order when the chunk holds more than one sample.

1x1 convolutions with stride 1 and no padding skip the lowering in forward and grad_input: x itself is the
column matrix of each sample (grad_weight still lowers them: for 1x1 that is just the channel-major copy).

The engine guarantees C-contiguous inputs of one float dtype and a validated `ConvGeometry`, so nothing is
checked here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from numbaconv.algorithms.gemm import HAS_REGISTER_TILE, matmul, tile_columns, tile_scratch
from numbaconv.geometry import ConvGeometry
from numbaconv.kernels import L2_BYTES
from numbaconv.kernels import im2col as kernels
from numbaconv.runtime import get_num_threads, workspace

CHUNK_BYTES = 8 << 20
"""Upper bound on the per-chunk scratch (column matrix and channel-major buffer), at least one sample. Small
enough to stay in the last-level cache between the kernel that writes it and the product that reads it
(measured: up to 20% less CPU time than 32 MB chunks, resnet56 grad_input)."""

PER_SAMPLE_MIN_PIXELS = 256
"""Output pixels per sample below which per-(sample, group) products are too thin for BLAS."""

PER_SAMPLE_MIN_MACS = 1 << 25
"""Multiply-adds per (sample, group) product below which one product per chunk (plus a rearranging pass) wins:
every BLAS call synchronises its threads, and many short calls lose badly to one long one whenever the
threads do not all get a core at once (tutorial shape, forward + grad_input on a busy 2-core machine: median
1.4x to 9x faster as 3 products than as 40)."""


FUSED = HAS_REGISTER_TILE
"""Whether forward lowers and multiplies block by block on each thread (`numbaconv.kernels.lowered`, built on
the GEMM's register tile) instead of materialising the column matrix of a whole chunk."""

BLOCK_BYTES = 512 << 10
"""Column-buffer bytes per thread in the fused path: a block of output rows whose columns stay in L2 (1 MB
per core on the reference machine) from the lowering to the product. One thread, CPU time: tutorial
forward 17.3-18.4 ms with 256 KB blocks, 16.5-16.8 ms with whole samples (468 KB); resnet56 forward and
grad_input 15-25% faster in 3-row blocks than materialised (256 KB allowed only one row, too narrow)."""

PANEL_BYTES = L2_BYTES // 4
"""Column-matrix bytes per panel of the fused forward's product (`numbaconv.kernels.lowered`): every row
sliver of the weights passes over a panel while it stays in L2. Over a whole block (`BLOCK_BYTES`, about L2's
size itself) each row sliver read the columns back from L3: on a Zen 3 with 512 KB of L2, median of 30 paired
calls, stem7x7 forward 1.09x faster with 2 threads and 1.10x with 1, tutorial 1.10x and 1.02x, cifar_c1's
blocks one panel (0.96x and 1.01x: noise)."""

FUSED_MIN_PIXELS = 64
"""Fewest output pixels in a fused block: two of the register tile's column slivers; narrower blocks waste
most of the tile, and one product over a materialised chunk serves them better."""


GATHERED_WASTE = 1 / 8
"""Share of wasted tile columns (row tails) up to which forward reads the column matrix from padded input
planes (`gathered_forward`) instead of lowering it: that saves the lowering (a quarter of cifar_c1's forward
on a Zen 3, one thread: 0.75 of 3.0 ms), but its tiles cannot span output rows, where a lowered block's do.
Two threads, same machine, median of 5 rounds against PyTorch: cifar_c1 forward 0.48 -> 0.92x PyTorch's
speed, stem7x7 0.69 -> 0.89x; the tutorial layer's 18-pixel rows (16 + a half tile) stay lowered."""


def _lowering_args(geo: ConvGeometry) -> tuple[int, ...]:
    """The geometry integers `im2col`/`col2im` take after their first two arguments, in kernel order."""
    return (geo.kh, geo.kw, geo.stride_h, geo.stride_w, geo.pad_h, geo.pad_w, geo.dil_h, geo.dil_w)


def _is_pointwise(geo: ConvGeometry) -> bool:
    """True when each sample of x, viewed as (c, h * w), already is its column matrix."""
    return (
        geo.kh == geo.kw == 1
        and geo.stride_h == geo.stride_w == 1
        and geo.pad_h == geo.pad_w == 0
        and (geo.oh, geo.ow) == (geo.h, geo.w)
    )


def _per_sample(geo: ConvGeometry) -> bool:
    """True when each (sample, group) product is big enough to be its own BLAS call (see module docstring)."""
    kg, pixels = geo.k // geo.groups, geo.oh * geo.ow
    macs = kg * (geo.c // geo.groups * geo.kh * geo.kw) * pixels
    return pixels >= PER_SAMPLE_MIN_PIXELS and macs >= PER_SAMPLE_MIN_MACS


def _chunks(n: int, bytes_per_sample: int) -> Iterator[tuple[int, int]]:
    """(first sample, sample count) of equal-as-possible chunks of at most `CHUNK_BYTES` each (>= 1 sample)."""
    cap = max(1, CHUNK_BYTES // max(1, bytes_per_sample))
    count = max(1, -(-n // cap))
    size = max(1, -(-n // count))
    for n0 in range(0, n, size):
        yield n0, min(size, n - n0)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """Convolution output (n, k, oh, ow) of x (n, c, h, w) with weight (k, c // groups, kh, kw) and bias (k,)
    or None."""
    out = np.empty((geo.n, geo.k, geo.oh, geo.ow), dtype=x.dtype)
    if geo.n == 0:
        return out
    groups, kg, pixels = geo.groups, geo.k // geo.groups, geo.oh * geo.ow
    rows = geo.c // groups * geo.kh * geo.kw
    if _is_pointwise(geo):
        matmul(
            weight.reshape(groups, kg, rows),
            x.reshape(geo.n, groups, rows, pixels),
            out=out.reshape(geo.n, groups, kg, pixels),
        )
        if bias is not None:
            kernels.add_bias(out.reshape(geo.n, geo.k, pixels), bias)
        return out
    if gathered_rows_fit(geo, x.itemsize):
        return gathered_forward(x, weight, bias, geo, out)
    block_rows = fused_block_rows(geo, x.itemsize, get_num_threads(), "forward")
    if block_rows:
        return fused_forward(x, weight, bias, geo, block_rows, out)
    w_mat = weight.reshape(groups, kg, rows)
    if bias is not None:  # W gains a bias column, the column matrix a row of ones
        w_mat = np.concatenate((w_mat, bias.reshape(groups, kg, 1)), axis=2)
    rows_b = w_mat.shape[2]
    per_sample = _per_sample(geo)
    bytes_per_sample = (groups * rows_b + (0 if per_sample else geo.k)) * pixels * x.itemsize
    for n0, nb in _chunks(geo.n, bytes_per_sample):
        cols = workspace("im2col.cols", (groups, rows_b, nb, geo.oh, geo.ow), x.dtype)
        kernels.im2col(x, n0, _lowering_args(geo), cols)
        cols[:, rows:] = 1
        dst = out[n0 : n0 + nb].reshape(nb, groups, kg, pixels)
        if per_sample or nb == 1:
            matmul(w_mat, cols.reshape(groups, rows_b, nb, pixels).transpose(2, 0, 1, 3), out=dst)
        else:
            prod = workspace("im2col.kmajor", (groups, kg, nb * pixels), x.dtype)
            matmul(w_mat, cols.reshape(groups, rows_b, nb * pixels), out=prod)
            kernels.swap_leading(prod.reshape(geo.k, nb, pixels), dst.reshape(nb, geo.k, pixels))
    return out


def fused_block_rows(geo: ConvGeometry, itemsize: int, threads: int, pass_name: str) -> int:
    """Output rows per block of the fused path (`FUSED`) for ``pass_name``, or 0 when the materialised path
    serves it: a block's buffers fit in `BLOCK_BYTES` and hold at least `FUSED_MIN_PIXELS` pixels, and there
    is work for every thread (grad_input hands out whole (sample, group) pairs, so it needs as many)."""
    if not FUSED:
        return 0
    rows = _round_up(geo.c // geo.groups * geo.kh * geo.kw + 1, tile_columns(itemsize))
    block_rows = max(1, min(geo.oh, BLOCK_BYTES // (rows * geo.ow * itemsize)))
    if pass_name == "grad_input":
        pairs_per_thread = geo.n * geo.groups >= threads
        return block_rows if pairs_per_thread and block_rows * geo.ow >= FUSED_MIN_PIXELS else 0
    block_rows = max(1, min(block_rows, geo.n * geo.groups * geo.oh // threads))
    return block_rows if block_rows * geo.ow >= FUSED_MIN_PIXELS else 0


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def column_pitch(pixels: int, nr: int, itemsize: int) -> int:
    """Row pitch, in elements, of the fused forward's column buffer for blocks of ``pixels``: whole register
    tiles of ``nr`` columns, one more where the pitch would be a multiple of 1 KB. Rows that far apart share
    at most 4 of L1's 64 sets, too few ways for a tile's KC rows: cifar_c1's 32x32 samples (4 KB rows, all in
    one set) read the tile's b sliver back from L2. Median of 30 paired calls on a Zen 3, forward: cifar_c1
    1.075x faster with 1 thread, 1.035x with 2; cifar_c2 1.03x / 1.02x."""
    pitch = _round_up(pixels, nr)
    return pitch + nr if pitch * itemsize % 1024 == 0 else pitch


def fused_forward(x, weight, bias, geo: ConvGeometry, block_rows: int, out: np.ndarray) -> np.ndarray:
    """`forward` into ``out`` (n, k, oh, ow) through `numbaconv.kernels.lowered` (`FUSED` only), in blocks of
    ``block_rows`` output rows: the weight matrix padded to whole register-tile rows, the bias as an extra
    column. Returns out."""
    from numbaconv.kernels import gemm, lowered  # imported here: never without a register tile

    groups = geo.groups
    w_mat = _weight_matrix(weight, bias, geo, gemm.MR)
    rows_b = w_mat.shape[2]
    scratch, nr = tile_scratch(x.dtype)
    threads = scratch.shape[0]
    ldb = column_pitch(block_rows * geo.ow, nr, x.itemsize)
    cols = workspace("im2col.cols", (threads, rows_b * ldb), x.dtype)
    out3 = out.reshape(geo.n * groups, geo.k // groups, geo.oh * geo.ow)
    xpad, phases = _phase_planes(geo, threads, x.dtype)
    panel = max(nr, PANEL_BYTES // (min(rows_b, gemm.KC) * x.itemsize) // nr * nr)
    lowering, out_size = _lowering_args(geo), (geo.oh, geo.ow)
    lowered.forward(x, w_mat, out3, cols, scratch, lowering, out_size, block_rows, panel, xpad, phases)
    return out


def _weight_matrix(weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry, mr: int) -> np.ndarray:
    """Each group's (kg, cg * kh * kw) weight matrix, plus the bias as one more column when there is one, in
    zero rows up to a multiple of ``mr``: a (groups, kpad, rows_b) workspace."""
    groups, kg = geo.groups, geo.k // geo.groups
    rows = geo.c // groups * geo.kh * geo.kw
    w_mat = workspace("im2col.weights", (groups, _round_up(kg, mr), rows + (bias is not None)), weight.dtype)
    w_mat[:, kg:] = 0
    w_mat[:, :kg, :rows] = weight.reshape(groups, kg, rows)
    if bias is not None:
        w_mat[:, :kg, rows] = bias.reshape(groups, kg)
    return w_mat


def gathered_rows_fit(geo: ConvGeometry, itemsize: int) -> bool:
    """Whether forward multiplies straight from padded input planes (`gathered_forward`): with the register
    tile (`FUSED`), when tiles along each output row compute at most `GATHERED_WASTE` more columns than the
    row has (the last tile takes half the tile's columns when half is enough)."""
    if not FUSED:
        return False
    nr = tile_columns(itemsize)
    full, tail = divmod(geo.ow, nr)
    computed = full * nr + (0 if tail == 0 else nr // 2 if 2 * tail <= nr else nr)
    return computed - geo.ow <= GATHERED_WASTE * geo.ow


def gathered_forward(x, weight, bias, geo: ConvGeometry, out: np.ndarray) -> np.ndarray:
    """`forward` into ``out`` (n, k, oh, ow) with no lowering (`FUSED` only): the register tile reads each
    row of the column matrix from the (sample, group)'s padded, phase-split input planes through a table of
    row offsets (`numbaconv.kernels.lowered.forward_gathered`). Returns out."""
    from numbaconv.algorithms.direct import conv_args, padded_layout
    from numbaconv.kernels import direct, gemm, lowered

    cg = geo.c // geo.groups
    w_mat = _weight_matrix(weight, bias, geo, gemm.MR)
    scratch, nr = tile_scratch(x.dtype)
    threads = scratch.shape[0]
    lay = padded_layout(geo)
    taps = direct.tap_offsets(geo.kh, geo.kw, conv_args(geo), lay.hq, lay.wq).ravel()
    table = np.concatenate((np.add.outer(np.arange(cg) * lay.plane_in, taps).ravel(), [cg * lay.plane_in]))
    xpad = workspace("im2col.xpad", (threads, (cg + 1) * lay.plane_in + nr), x.dtype)
    block_rows = max(1, min(geo.oh, geo.n * geo.groups * geo.oh // threads))
    out3 = out.reshape(geo.n * geo.groups, geo.k // geo.groups, geo.oh * geo.ow)
    args = (_lowering_args(geo), (geo.oh, geo.ow), block_rows, (lay.hq, lay.wq))
    lowered.forward_gathered(x, w_mat, out3, xpad, table[: w_mat.shape[2]], scratch, *args)
    return out


def _phase_planes(geo: ConvGeometry, threads: int, dtype: np.dtype) -> tuple[np.ndarray, tuple[int, int]]:
    """Per-thread scratch for a (sample, group)'s input (or input-gradient) planes padded and split into
    stride phases (the direct algorithm's layout), and its (hq, wq); for stride-1 layers an empty scratch and
    (0, 0): their rows are lowered straight from x (raised straight into dx)."""
    if geo.stride_w == 1:
        return workspace("im2col.xpad", (threads, 0), dtype), (0, 0)
    from numbaconv.algorithms.direct import padded_layout

    lay = padded_layout(geo)
    return workspace("im2col.xpad", (threads, geo.c // geo.groups * lay.plane_in), dtype), (lay.hq, lay.wq)


def fused_grad_input(grad_out, weight, geo: ConvGeometry, block_rows: int, dx: np.ndarray) -> np.ndarray:
    """`grad_input` into ``dx`` (n, c, h, w) through `numbaconv.kernels.lowered` (`FUSED` only): each group's
    transposed weight matrix padded to whole register-tile rows, blocks of ``block_rows`` output rows.
    Returns dx."""
    from numbaconv.kernels import gemm, lowered

    groups, kg, rows = geo.groups, geo.k // geo.groups, geo.c // geo.groups * geo.kh * geo.kw
    w_t = weight.reshape(groups, kg, rows).transpose(0, 2, 1)
    w_pad = workspace("im2col.weights", (groups, _round_up(rows, gemm.MR), kg), dx.dtype)
    w_pad[:, rows:] = 0
    w_pad[:, :rows] = w_t
    scratch, nr = tile_scratch(dx.dtype)
    threads = scratch.shape[0]
    dcols = workspace("im2col.cols", (threads, w_pad.shape[1] * _round_up(block_rows * geo.ow, nr)), dx.dtype)
    edge = workspace("im2col.edge", (threads, gemm.KC * nr), dx.dtype)
    dxpad, phases = _phase_planes(geo, threads, dx.dtype)
    lowered.grad_input(grad_out, w_pad, dx, dcols, edge, scratch, _lowering_args(geo), block_rows, dxpad, phases)
    return dx


def fused_grad_weight(x: np.ndarray, grad_out: np.ndarray, geo: ConvGeometry, block_rows: int) -> np.ndarray:
    """`grad_weight` through `numbaconv.kernels.lowered` (`FUSED` only): per-thread sums of dW, added and
    cropped here. Returns a new (k, c // groups, kh, kw) array."""
    from numbaconv.kernels import gemm, lowered

    groups, kg, cg = geo.groups, geo.k // geo.groups, geo.c // geo.groups
    rows = cg * geo.kh * geo.kw
    scratch, nr = tile_scratch(x.dtype)
    threads = scratch.shape[0]
    rpad = _round_up(rows, nr)
    partial = workspace("im2col.partial", (threads, groups, _round_up(kg, gemm.MR), rpad), x.dtype)
    cols = workspace("im2col.cols", (threads, block_rows * geo.ow * rpad), x.dtype)
    edge = workspace("im2col.edge", (threads, gemm.MR * gemm.KC), x.dtype)
    lowered.grad_weight(x, grad_out, partial, cols, edge, scratch, _lowering_args(geo), block_rows)
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf from NaN/Inf data: silent, like the kernels
        return partial.sum(axis=0)[:, :kg, :rows].reshape(geo.k, cg, geo.kh, geo.kw)


def grad_input(grad_out: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dL/dx (n, c, h, w) from grad_out (n, k, oh, ow) and weight (k, c // groups, kh, kw)."""
    dx = np.empty((geo.n, geo.c, geo.h, geo.w), dtype=grad_out.dtype)
    if geo.n == 0:
        return dx
    groups, kg, pixels = geo.groups, geo.k // geo.groups, geo.oh * geo.ow
    rows = geo.c // groups * geo.kh * geo.kw
    w_t = weight.reshape(groups, kg, rows).transpose(0, 2, 1)  # (groups, rows, kg): BLAS reads it transposed
    if _is_pointwise(geo):
        matmul(w_t, grad_out.reshape(geo.n, groups, kg, pixels), out=dx.reshape(geo.n, groups, rows, pixels))
        return dx
    block_rows = fused_block_rows(geo, dx.itemsize, get_num_threads(), "grad_input")
    if block_rows:
        return fused_grad_input(grad_out, weight, geo, block_rows, dx)
    per_sample = _per_sample(geo)
    bytes_per_sample = (groups * rows + (0 if per_sample else geo.k)) * pixels * dx.itemsize
    for n0, nb in _chunks(geo.n, bytes_per_sample):
        dcols = workspace("im2col.cols", (groups, rows, nb, geo.oh, geo.ow), dx.dtype)
        src = grad_out[n0 : n0 + nb].reshape(nb, groups, kg, pixels)
        if per_sample or nb == 1:
            matmul(w_t, src, out=dcols.reshape(groups, rows, nb, pixels).transpose(2, 0, 1, 3))
        else:
            g_kmajor = workspace("im2col.kmajor", (geo.k, nb, pixels), dx.dtype)
            kernels.swap_leading(src.reshape(nb, geo.k, pixels), g_kmajor)
            matmul(w_t, g_kmajor.reshape(groups, kg, nb * pixels), out=dcols.reshape(groups, rows, nb * pixels))
        kernels.col2im(dcols, n0, _lowering_args(geo), dx)
    return dx


def grad_weight(x: np.ndarray, grad_out: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dL/dweight (k, c // groups, kh, kw) from x (n, c, h, w) and grad_out (n, k, oh, ow)."""
    groups, kg, pixels = geo.groups, geo.k // geo.groups, geo.oh * geo.ow
    rows = geo.c // groups * geo.kh * geo.kw
    block_rows = fused_block_rows(geo, x.itemsize, get_num_threads(), "grad_weight") if geo.n else 0
    if block_rows:
        return fused_grad_weight(x, grad_out, geo, block_rows)
    # The product reduces over pixels, which both operands hold contiguously; the engine's GEMM reads its
    # left operand in place and copies the right one, so the (smaller) gradient goes right: dW^T = cols @ dY^T.
    dw_t = np.zeros((groups, rows, kg), dtype=x.dtype)  # stays zero for an empty batch
    bytes_per_sample = (groups * rows + geo.k) * pixels * x.itemsize
    for n0, nb in _chunks(geo.n, bytes_per_sample):
        cols = workspace("im2col.cols", (groups, rows, nb, geo.oh, geo.ow), x.dtype)
        kernels.im2col(x, n0, _lowering_args(geo), cols)
        g_kmajor = grad_out[n0 : n0 + nb].reshape(nb, geo.k, pixels)
        if nb > 1:  # the product wants each channel's gradients over the whole chunk as one row
            g_kmajor = workspace("im2col.kmajor", (geo.k, nb, pixels), x.dtype)
            kernels.swap_leading(grad_out[n0 : n0 + nb].reshape(nb, geo.k, pixels), g_kmajor)
        g_t = g_kmajor.reshape(groups, kg, nb * pixels).transpose(0, 2, 1)
        matmul(cols.reshape(groups, rows, nb * pixels), g_t, out=dw_t, accumulate=n0 > 0)
    return np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(geo.k, geo.c // groups, geo.kh, geo.kw)
