"""Winograd convolution F(m x m, 3 x 3) for 3x3 kernels, stride 1, any dilation, zero padding and groups.

Each m x m output tile is ``Y = A^T [U * V] A`` with ``U = G g G^T`` (weights) and ``V = B^T d B`` (the
(m+2) x (m+2) input window d), summed over input channels. Summing over channels at each of the (m+2)^2
transformed positions is a matrix product, so a layer becomes (m+2)^2 * groups GEMMs of shape
(k/groups x c/groups) @ (c/groups x tiles). ``tile=2`` (F(2x2,3x3)) does 16/4 = 4 multiplies per output
instead of 9, ``tile=4`` (F(4x4,3x3)) 36/16 = 2.25, at the price of larger transforms and rounding error.

The tiles are processed in chunks of tile rows so the transformed buffers stay bounded and are reused
(`numbaconv.runtime.workspace`); where one chunk takes all the tiles, the output channels go in blocks, each
with its own slice of the transformed weights (`_channel_blocks`). The transforms are the kernels in
`numbaconv.kernels.winograd`, the GEMMs `numbaconv.algorithms.gemm.matmul`. The backward passes reuse the
same pieces: grad_input is a forward convolution of grad_out with the flipped, channel-swapped weights;
grad_weight multiplies transformed output-gradient tiles ``A dY A^T`` by transformed input tiles and maps
the sum back with ``G^T dU G``.

A dilation d splits into d_h * d_w undilated convolutions (polyphase): output rows r, r + d, ... read only
input rows s, s + d, ... with ``s = (r - pad) mod d``, through the undilated kernel. Phases of one geometry
are copied out stacked along the batch axis, convolved as one layer and copied back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .. import runtime
from ..geometry import ConvGeometry
from ..kernels.winograd import (
    gradient_taps,
    make_output_transform,
    make_tile_transform,
    move_phases,
    transform_weights,
)
from . import flipped_weight
from .gemm import matmul

# (A^T, G, B^T). F(2x2, 3x3) is Lavin & Gray's (interpolation points 0, 1, -1, inf). F(4x4, 3x3) uses the
# points 0, 1, -1, 1/2, -2, inf rather than their 0, +-1, +-2: about 2.5x less float32 error, same cost.
_MATRICES = {
    2: (
        [[1, 1, 1, 0], [0, 1, -1, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    ),
    4: (
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 1 / 2, -2, 0], [0, 1, 1, 1 / 4, 4, 0], [0, 1, -1, 1 / 8, -8, 1]],
        [
            [1, 0, 0],
            [1 / 3, 1 / 3, 1 / 3],
            [-1 / 3, 1 / 3, -1 / 3],
            [-16 / 15, -8 / 15, -4 / 15],
            [1 / 15, -2 / 15, 4 / 15],
            [0, 0, 1],
        ],
        [
            [1, -3 / 2, -2, 3 / 2, 1, 0],
            [0, -1, 1 / 2, 5 / 2, 1, 0],
            [0, 1, -5 / 2, 1 / 2, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 1 / 2, -1, -1 / 2, 1, 0],
            [0, 1, -3 / 2, -2, 3 / 2, 1],
        ],
    ),
}

# A chunk's transformed tiles (both GEMM operands) stay near this many bytes, so they are still in L2 (1 MB a
# core on the reference machine) when the GEMM and the inverse transform read them; but a chunk holds at least
# _MIN_CHUNK_TILES tiles, below which the GEMMs get inefficient. Forward+backward on 2 threads, best / median of
# 15 interleaved rounds, 4 MB and 512 -> 2 MB and 256: cifar_c2 9.5 / 12.4 -> 8.6 / 11.1 ms, resnet56
# 26.4 / 31.8 -> 21.2 / 24.7 ms (1 MB and 128: 9.5 / 12.0 and 22.7 / 25.7; cifar_c3, resnet28 within noise).
_CHUNK_BYTES = 2 << 20
_MIN_CHUNK_TILES = 256
# Tiles per transform work item: long enough for vector loops, short enough for the scratch to stay in L2.
_SEGMENT_TILES = 512
# Kernels per block of the weight transform: their transposed taps (9 * 2 KB in float32) stay in L1.
_WEIGHT_BLOCK = 512
# Output-channel blocks (`_channel_blocks`) are multiples of this many bytes' worth of channels: the GEMM
# register tile's columns (two AVX-512 vectors). grad_weight's products are V @ dM^T with a block's channels
# along the columns; resnet7's take 1.4x longer in blocks of 48 channels than in blocks of 32 or 64.
_CHANNEL_STEP_BYTES = 128
# A dilated layer's polyphase parts are copied out (and back) a slice of the batch at a time, each slice's
# copies (input and output side together) near this many bytes: bounded workspaces, still a chunk of tiles.
# The suite's dilated layer (8x64x56x56, 12.8 MB of copies) in slices of 4 MB, 8 MB, one of 16 MB, min of 7
# rounds, two runs: forward 7.8-8.0 / 7.8 / 7.1 ms, grad_input 7.9-8.1 / 7.8-8.0 / 7.1 ms; but in one slice
# its peak memory in compare.py rose 11 MB, to 1.21-1.54x PyTorch's (the bound is 1.5x).
_PARTS_BYTES = 4 << 20


class _Phase(NamedTuple):
    """One polyphase part of a dilated convolution: its output and input rows/columns, and its geometry."""

    out_rows: slice
    out_cols: slice
    in_rows: slice
    in_cols: slice
    geo: ConvGeometry  # the undilated convolution of in_rows x in_cols giving out_rows x out_cols


def _axis_phases(size: int, out_size: int, pad: int, dil: int) -> list[tuple[slice, int, slice, int, int]]:
    """(output slice, output length, input slice, input length, padding) of each non-empty output phase."""
    phases = []
    for r in range(min(dil, out_size)):
        q, s = divmod(r - pad, dil)
        phases.append(
            (slice(r, None, dil), len(range(r, out_size, dil)), slice(s, None, dil), len(range(s, size, dil)), -q)
        )
    return phases


def _phases(geo: ConvGeometry) -> list[_Phase]:
    """The polyphase parts of ``geo``; a single part covering everything when it is undilated."""
    return [
        _Phase(ro, co, ri, ci, geo._replace(h=h, w=w, oh=oh, ow=ow, pad_h=ph, pad_w=pw, dil_h=1, dil_w=1))
        for ro, oh, ri, h, ph in _axis_phases(geo.h, geo.oh, geo.pad_h, geo.dil_h)
        for co, ow, ci, w, pw in _axis_phases(geo.w, geo.ow, geo.pad_w, geo.dil_w)
    ]


def _phase_groups(geo: ConvGeometry) -> list[tuple[ConvGeometry, list[_Phase]]]:
    """The polyphase parts grouped by geometry; each group runs as one convolution of its parts stacked along
    the batch axis (a "same" dilated layer is one group), whose geometry counts all of their samples."""
    groups: dict[ConvGeometry, list[_Phase]] = {}
    for phase in _phases(geo):
        groups.setdefault(phase.geo, []).append(phase)
    return [(sub._replace(n=sub.n * len(parts)), parts) for sub, parts in groups.items()]


def _batch_slices(windows: list[tuple[slice, slice]], a: np.ndarray, a_hw, b: np.ndarray, b_hw) -> list[slice]:
    """The slices of the batch that go through one polyphase group at a time, whose windows are a_hw in ``a``
    and b_hw in ``b`` (both (n, channels, ...)): all of it when the one window takes everything (nothing is
    copied), else about `_PARTS_BYTES` of copies of both a slice."""
    n = a.shape[0]
    if windows == _WHOLE:
        return [slice(0, n)]
    window_bytes = a.itemsize * (a.shape[1] * a_hw[0] * a_hw[1] + b.shape[1] * b_hw[0] * b_hw[1])
    step = max(1, _PARTS_BYTES // max(1, len(windows) * window_bytes))
    return [slice(s0, min(n, s0 + step)) for s0 in range(0, n, step)]


def _starts(windows: list[tuple[slice, slice]]) -> np.ndarray:
    """The first row and column of each (rows, cols) window, as `move_phases` takes them."""
    return np.array([(rows.start, cols.start) for rows, cols in windows], dtype=np.int64).reshape(-1, 2)


_WHOLE = [(slice(0, None, 1), slice(0, None, 1))]  # the windows of an undilated layer's one part


def _stack(array: np.ndarray, windows: list[tuple[slice, slice]], h: int, w: int, name: str) -> np.ndarray:
    """array[:, :, rows, cols] (h x w each) of every (rows, cols) window, stacked along the batch axis into
    workspace ``name`` (the array itself for one window that takes everything)."""
    if windows == _WHOLE:
        return np.ascontiguousarray(array)
    stacked = runtime.workspace(name, (len(windows) * array.shape[0], array.shape[1], h, w), array.dtype)
    rows, cols = windows[0]
    move_phases(np.ascontiguousarray(array), _starts(windows), rows.step, cols.step, stacked, True)
    return stacked


def _unstack(stacked: np.ndarray, target: np.ndarray, windows: list[tuple[slice, slice]]) -> None:
    """The inverse of `_stack`: each batch-sized block of ``stacked`` into its window of ``target``. The one
    window that takes everything (an undilated layer) is written in place: nothing to move."""
    if windows != _WHOLE:
        rows, cols = windows[0]
        move_phases(target, _starts(windows), rows.step, cols.step, stacked, False)


class _Plan(NamedTuple):
    """The compiled transforms of F(m x m, 3 x 3) in one dtype (see `numbaconv.kernels.winograd`)."""

    kron_g: np.ndarray  # (a*a, 9) kron(G, G): maps a flattened 3x3 kernel g to the flattened G g G^T
    input_transform: Callable  # V = B^T d B of input tiles
    grad_transform: Callable  # A dY A^T of output-gradient tiles
    output_transform: Callable  # Y = A^T M A (+ bias) of products


_plans: dict[tuple[int, np.dtype], _Plan] = {}


def _plan(tile: int, dtype: np.dtype) -> _Plan:
    """The plan for F(tile x tile, 3 x 3) in ``dtype``; its kernels are built once per process."""
    key = (tile, np.dtype(dtype))
    if key not in _plans:
        at, g, bt = (np.array(mat, dtype=np.float64).astype(dtype) for mat in _MATRICES[tile])
        a_mat = np.ascontiguousarray(at.T)
        _plans[key] = _Plan(
            np.kron(g, g), make_tile_transform(bt), make_tile_transform(a_mat), make_output_transform(a_mat)
        )
    return _plans[key]


def _tiling(oh: int, ow: int, n: int, channels: int, tile: int, itemsize: int) -> tuple[int, int, int, int]:
    """(tiles_h, tiles_w, total tile rows, tile rows per chunk) for an oh x ow output of n images. The chunks
    come out equal (to a row), at most `_CHUNK_BYTES` or `_MIN_CHUNK_TILES` each: no small last chunk.

    ``channels``: input + output channels of the GEMMs, whose transformed buffers make up a chunk's bytes.
    """
    a = tile + 2
    tiles_h = -(-oh // tile)
    tiles_w = -(-ow // tile)
    total_rows = n * tiles_h
    row_bytes = a * a * tiles_w * channels * itemsize
    rows = max(_CHUNK_BYTES // row_bytes, -(-_MIN_CHUNK_TILES // tiles_w), 1)
    chunks = max(1, -(-total_rows // rows))
    return tiles_h, tiles_w, total_rows, max(1, -(-total_rows // chunks))


def _scratch(tile: int, tiles_w: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Scratch of the transform kernels, one block per thread: (rows_buf, tiles_buf)."""
    a = tile + 2
    seg_tiles = max(1, _SEGMENT_TILES // tiles_w) * tiles_w
    nblocks = runtime.get_num_threads()
    rows_buf = runtime.workspace("winograd.rows", (nblocks, 2 * a, seg_tiles * tile), dtype)
    tiles_buf = runtime.workspace("winograd.tiles", (nblocks, 2 * a * a, seg_tiles), dtype)
    return rows_buf, tiles_buf


def _taps_scratch(dtype: np.dtype) -> np.ndarray:
    """The per-thread scratch of `transform_weights` and `gradient_taps`: 9 taps of `_WEIGHT_BLOCK` kernels."""
    return runtime.workspace("winograd.taps", (runtime.get_num_threads(), 9 * _WEIGHT_BLOCK), dtype)


def _transform_weight(weight: np.ndarray, tile: int) -> np.ndarray:
    """U = G g G^T of every (k, c/groups) kernel: weight (k, cg, 3, 3) -> workspace (a*a, k, cg)."""
    k, cg = weight.shape[:2]
    kron_g = _plan(tile, weight.dtype).kron_g
    u = runtime.workspace("winograd.U", (kron_g.shape[0], k * cg), weight.dtype)
    transform_weights(np.ascontiguousarray(weight).reshape(k * cg, 9), kron_g, u, _taps_scratch(weight.dtype))
    return u.reshape(kron_g.shape[0], k, cg)


def _channel_blocks(k: int, cg: int, groups: int, tiles: int, a: int, one_chunk: bool, itemsize: int):
    """[(k0, k1)]: the blocks of output channels a pass goes through, one at a time.

    When all the tiles make one chunk (small images, many channels) and there is one group, each block takes
    its own slice of U and of the products, sized like a chunk, so both stay in L2 between the weight
    transform, the product and the output transform, and the workspaces hold a block's share, not the
    layer's (resnet7's F(2x2) U alone is 16.7 MB for a 0.8 MB input). Otherwise one block: the chunks share
    all of U, transformed once.
    """
    per_channel = a * a * (cg + tiles) * itemsize
    if not one_chunk or groups != 1 or k * per_channel <= _CHUNK_BYTES:
        return [(0, k)]
    step = max(1, _CHANNEL_STEP_BYTES // itemsize)
    size = max(step, _CHUNK_BYTES // per_channel // step * step)
    return [(k0, min(k, k0 + size)) for k0 in range(0, k, size)]


def product_blocks(geo: ConvGeometry, pass_name: str, tile: int, itemsize: int) -> tuple[int, int]:
    """(tiles per chunk, blocks of output channels) of the products of ``pass_name`` on an undilated ``geo``:
    what `_tiling` and `_channel_blocks` make of it, for the dispatcher's estimate."""
    # grad_input convolves grad_out with the channel-swapped kernels: its products make input channels.
    k_out, c_in = (geo.c, geo.k) if pass_name == "grad_input" else (geo.k, geo.c)
    _, tiles_w, total_rows, rows = _tiling(geo.oh, geo.ow, geo.n, geo.c + geo.k, tile, itemsize)
    blocks = _channel_blocks(
        k_out, c_in // geo.groups, geo.groups, rows * tiles_w, tile + 2, rows == total_rows, itemsize
    )
    return rows * tiles_w, len(blocks)


def _batched_product(u: np.ndarray, v: np.ndarray, prod: np.ndarray, groups: int) -> None:
    """prod[p, g] = u[p, g] @ v[p, g] for each transformed position p and group g.

    u: (a*a, k, cg), v: (a*a, c, T), prod: (a*a, k, T), viewed per group as (kg x cg) @ (cg x T).
    """
    a2, k, cg = u.shape
    kg = k // groups
    us = u.reshape(a2 * groups, kg, cg)
    vs = v.reshape(a2 * groups, cg, -1)
    ps = prod.reshape(a2 * groups, kg, -1)
    if cg == 1:
        # Depthwise / channel multiplier: an outer product, which BLAS would do one tiny call at a time.
        np.multiply(us, vs, out=ps)
    else:
        matmul(us, vs, out=ps)


def _convolve(x, weight, bias, out, pad_h, pad_w, groups, tile):
    """out = conv2d(x, weight) + bias: 3x3, stride 1, implicit zero padding.

    x: (n, c, h, w); weight: (k, c/groups, 3, 3); bias: (k,); out: (n, k, oh, ow), written in full.
    pad_h/pad_w: zero rows/cols before x (may be negative: the windows then start inside x).
    """
    n, c = x.shape[:2]
    k, oh, ow = out.shape[1:]
    plan = _plan(tile, x.dtype)
    a = tile + 2
    tiles_h, tiles_w, total_rows, rows = _tiling(oh, ow, n, c + k, tile, x.itemsize)
    rows_buf, tiles_buf = _scratch(tile, tiles_w, x.dtype)
    blocks = _channel_blocks(k, c // groups, groups, rows * tiles_w, a, rows == total_rows, x.itemsize)
    u = _transform_weight(weight, tile) if len(blocks) == 1 else None
    for row0 in range(0, total_rows, rows):
        t = min(rows, total_rows - row0) * tiles_w
        v = runtime.workspace("winograd.V", (a * a, c, t), x.dtype)
        plan.input_transform(x, 0, pad_h, pad_w, row0, tiles_h, tiles_w, v, rows_buf, tiles_buf)
        for k0, k1 in blocks:
            prod = runtime.workspace("winograd.M", (a * a, k1 - k0, t), x.dtype)
            _batched_product(_transform_weight(weight[k0:k1], tile) if u is None else u, v, prod, groups)
            plan.output_transform(prod, bias, row0, tiles_h, tiles_w, out, k0, rows_buf, tiles_buf)
    return out


def _convolve_windows(src, dst, kernels, bias, src_windows, dst_windows, src_hw, dst_hw, pads, groups, tile):
    """dst's windows (dst_hw each) = the stride-1 convolutions, padded by ``pads``, of src's windows (src_hw
    each) with ``kernels``: one polyphase group, stacked and convolved a slice of the batch at a time."""
    for batch in _batch_slices(src_windows, src, src_hw, dst, dst_hw):
        stacked = (len(src_windows) * (batch.stop - batch.start), dst.shape[1], *dst_hw)
        part = dst if src_windows == _WHOLE else runtime.workspace("winograd.parts_out", stacked, dst.dtype)
        parts_in = _stack(src[batch], src_windows, *src_hw, "winograd.parts_in")
        _convolve(parts_in, kernels, bias, part, *pads, groups, tile)
        _unstack(part, dst[batch], dst_windows)


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry, tile: int = 4):
    """conv2d(x, weight, bias) with 3x3 kernels, stride 1.

    x: (n, c, h, w); weight: (k, c/groups, 3, 3); bias: (k,) or None. Returns a new (n, k, oh, ow) array.
    """
    out = np.empty((geo.n, geo.k, geo.oh, geo.ow), dtype=x.dtype)
    if geo.n == 0:
        return out
    b = np.zeros(geo.k, dtype=x.dtype) if bias is None else bias
    for sub, parts in _phase_groups(geo):
        inputs, outputs = [(p.in_rows, p.in_cols) for p in parts], [(p.out_rows, p.out_cols) for p in parts]
        pads = (sub.pad_h, sub.pad_w)
        _convolve_windows(x, out, weight, b, inputs, outputs, (sub.h, sub.w), (sub.oh, sub.ow), pads, geo.groups, tile)
    return out


def grad_input(grad_out: np.ndarray, weight: np.ndarray, geo: ConvGeometry, tile: int = 4):
    """dL/dx of `forward`: grad_out (n, k, oh, ow), weight (k, c/groups, 3, 3) -> new (n, c, h, w) array.

    dx[ci] = sum_ko correlate(grad_out[ko], weight[ko, ci] rotated 180 degrees): a stride-1 forward
    convolution with per-group in/out channels swapped and top/left padding ``2 - pad`` (the bottom/right
    padding follows from the output size h x w).
    """
    # Each input phase is read by one output phase at most (r -> (r - pad) mod d is one-to-one), but an
    # output smaller than the dilation leaves some input phases unread: their gradient is zero.
    covered = len(_phases(geo)) == geo.dil_h * geo.dil_w
    dx = (np.empty if covered else np.zeros)((geo.n, geo.c, geo.h, geo.w), grad_out.dtype)
    if geo.n == 0:
        return dx
    g = geo.groups
    flipped = flipped_weight(weight, g)
    b = np.zeros(geo.c, dtype=grad_out.dtype)
    for sub, parts in _phase_groups(geo):
        if sub.h == 0 or sub.w == 0:
            continue
        inputs, outputs = [(p.in_rows, p.in_cols) for p in parts], [(p.out_rows, p.out_cols) for p in parts]
        pads = (2 - sub.pad_h, 2 - sub.pad_w)
        _convolve_windows(grad_out, dx, flipped, b, outputs, inputs, (sub.oh, sub.ow), (sub.h, sub.w), pads, g, tile)
    return dx


def grad_weight(x: np.ndarray, grad_out: np.ndarray, geo: ConvGeometry, tile: int = 4):
    """dL/dweight of `forward`: x (n, c, h, w), grad_out (n, k, oh, ow) -> new (k, c/groups, 3, 3) array:
    the sum over polyphase parts of `_undilated_grad_weight`."""
    total = None
    for sub, parts in _phase_groups(geo):
        if not (sub.h and sub.w):
            continue
        inputs, outputs = [(p.in_rows, p.in_cols) for p in parts], [(p.out_rows, p.out_cols) for p in parts]
        for batch in _batch_slices(inputs, x, (sub.h, sub.w), grad_out, (sub.oh, sub.ow)):
            x_parts = _stack(x[batch], inputs, sub.h, sub.w, "winograd.parts_in")
            g_parts = _stack(grad_out[batch], outputs, sub.oh, sub.ow, "winograd.parts_out")
            part = _undilated_grad_weight(x_parts, g_parts, sub._replace(n=x_parts.shape[0]), tile)
            total = part if total is None else np.add(total, part, out=total)
    return np.zeros((geo.k, geo.c // geo.groups, 3, 3), dtype=x.dtype) if total is None else total


def _undilated_grad_weight(x: np.ndarray, grad_out: np.ndarray, geo: ConvGeometry, tile: int):
    """`grad_weight` of an undilated ``geo``.

    Per tile, Y = A^T (U * V) A gives dU = (A dY A^T) * V; summed over tiles and channels that is, at each
    transformed position, dU^T[c, k] = V (c x tiles) @ dM^T (tiles x k); then dW = G^T dU G. Products go
    through `_channel_blocks` as in `_convolve`.
    """
    k, cg, g = geo.k, geo.c // geo.groups, geo.groups
    if geo.n == 0:
        return np.zeros((k, cg, 3, 3), dtype=x.dtype)
    plan = _plan(tile, x.dtype)
    a = tile + 2
    tiles_h, tiles_w, total_rows, rows = _tiling(geo.oh, geo.ow, geo.n, geo.c + k, tile, x.itemsize)
    rows_buf, tiles_buf = _scratch(tile, tiles_w, x.dtype)
    blocks = _channel_blocks(k, cg, g, rows * tiles_w, a, rows == total_rows, x.itemsize)
    dw = np.empty((k, cg, 3, 3), dtype=x.dtype)
    for row0 in range(0, total_rows, rows):
        t = min(rows, total_rows - row0) * tiles_w
        v = runtime.workspace("winograd.V", (a * a * g, cg, t), x.dtype)
        plan.input_transform(
            x, 0, geo.pad_h, geo.pad_w, row0, tiles_h, tiles_w, v.reshape(a * a, geo.c, t), rows_buf, tiles_buf
        )
        for k0, k1 in blocks:
            kg = (k1 - k0) // g
            dm = runtime.workspace("winograd.M", (a * a * g, kg, t), x.dtype)
            plan.grad_transform(
                grad_out, k0, 0, 0, row0, tiles_h, tiles_w, dm.reshape(a * a, k1 - k0, t), rows_buf, tiles_buf
            )
            # The passes that transform weights are not running: their buffer takes dU^T.
            du_t = runtime.workspace("winograd.U", (a * a * g, cg, kg), x.dtype)
            matmul(v, dm.transpose(0, 2, 1), out=du_t, accumulate=row0 > 0)
            if row0 + rows >= total_rows:
                _kernel_gradient(du_t, g, plan.kron_g, dw[k0:k1])
    return dw


def _kernel_gradient(du_t: np.ndarray, groups: int, kron_g: np.ndarray, dw: np.ndarray) -> None:
    """dw = G^T dU G of every kernel (`gradient_taps`). du_t: (a*a*groups, cg, kg), dU transposed per group;
    dw: (groups*kg, cg, 3, 3), C-contiguous. As a matrix product (dU's transposed view by kron_g: 9 columns,
    a reduction read across rows of dU) it took 5.4 ms of resnet7's 12 ms weight gradient."""
    cg, kg = du_t.shape[1:]
    a2 = kron_g.shape[0]
    gradient_taps(du_t.reshape(a2, groups, cg * kg), kron_g, dw.reshape(groups, kg, cg, 9), _taps_scratch(du_t.dtype))
