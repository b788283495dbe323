"""Batched matrix product ``c[i] (+)= a[i] @ b[i]`` on Numba's threads, with an AVX-512 or AVX2 register-tile kernel.

Why not numpy's BLAS: on AMD Zen 4 and 5 OpenBLAS is held to its AVX2 kernels (``OPENBLAS_CORETYPE``), which
reach about 210 GFLOP/s on 2 cores where the cores can do twice that; on a 2-core Intel Xeon (AVX-512) it
reaches about 300 GFLOP/s on large square products, but this kernel is still 1.1-1.7x faster on
Winograd's batched products. On a 2-core Zen 3 (AVX2 only) the 6 x 16 AVX2 tile reached 0.73-0.92x OpenBLAS's
speed on five of the benchmark's products and 1.25x on the sixth (one run), and it keeps the product on the
engine's one thread pool. Everywhere, OpenBLAS's own thread pool spins after every call, slowing the Numba
kernel that follows; this product runs on the one pool the rest of the engine uses.

Loops (after BLIS, without its packing where the operands allow): for each block of ``KC`` reduction steps
and ``MC`` rows of a, the micro-kernel multiplies an ``MR``-row sliver of a (broadcast one element at a time,
read in place through its strides) by an ``NR``-column sliver of b (two vector loads per step, read in place
when b's rows are contiguous) into an ``MR x NR`` tile of c held in 2 * MR vector registers for the whole
reduction (`_micro_kernel`, emitted as LLVM IR: Numba's vectoriser would keep the tile in memory, ~30x
slower); a last column sliver at most NR / 2 wide takes a one-vector tile, half the FMAs. Only what the
in-place reads cannot serve is copied to zero-padded scratch: a last partial row sliver of a (per task), and
b's last partial column sliver, or all of b when its columns are strided (once, by `pack_b`, before the
product). The work is split into tasks of (batch item, row range, column range);
each parallel block takes a contiguous run of tasks and owns its row of the scratch buffer, so nothing is
allocated inside the parallel loop.
"""

import functools
from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import HAS_AVX512, VECTOR_BYTES
from .llvm_ir import element_pointer, llvm_float

# Rows of the register tile, whose MR x 2 vectors of c stay in registers with b's two vectors and a's
# broadcast: 16 of AVX-512's 32 registers (channel counts are mostly multiples of 8), 12 of AVX2's 16
# (8 rows would need 19 and spill).
MR = 8 if HAS_AVX512 else 6
KC = 256  # reduction steps per packed panel: an a-sliver and a b-sliver stay in L1
MC = 96  # rows of a per block: the block's slivers stay in L2 while every b sliver passes


compiled_kernels: list = []
"""The dispatchers `_per_dtype` has made so far (`numbaconv info` lists them with the other kernels)."""


def _per_dtype(*kinds: str) -> Callable:
    """Decorator: ``kernel(dtype)`` is the parallel kernel compiled for that dtype, on first use, from an
    explicit signature of argument kinds: "in" (a read-only 3-D operand, any layout), "out" (a writable 3-D
    result, any layout), "flat"/"rows" (1-D/2-D C-contiguous scratch), "int", "bool". Numba then compiles it
    once per dtype instead of once per combination of operand layouts and read-only flags (about 25 s less
    at a first start-up), and only for the dtypes used."""

    def decorate(func: Callable) -> Callable:
        @functools.cache
        def compiled(dtype: np.dtype) -> Callable:
            element = types.float32 if np.dtype(dtype) == np.float32 else types.float64
            arg_types = {
                "in": types.Array(element, 3, "A", readonly=True),
                "out": types.Array(element, 3, "A"),
                "flat": types.Array(element, 1, "C"),
                "rows": types.Array(element, 2, "C"),
                "int": types.int64,
                "bool": types.boolean,
            }
            signature = types.void(*(arg_types[kind] for kind in kinds))
            kernel = njit([signature], parallel=True, cache=True)(func)
            compiled_kernels.append(kernel)
            return kernel

        compiled.__doc__ = func.__doc__
        return compiled

    return decorate


def _micro_kernel_codegen(overwrite: bool, vectors: int, row_table: bool):
    """LLVM IR of ``c[c_off + i*ldc + j] (+)= sum_p a[a_off + i*lda + p*a_step] * b[b_off + p*ldb + j]``
    over the MR x (vectors * lanes) tile, p < kc; a, b, c are data addresses. Every row of a's sliver is
    read, but only c's first ``rows`` (1 .. MR) are written: a last partial sliver is stored in place. With
    ``row_table``, ldb is the address of an int64 table and b's row p starts at ``b_off + table[p]``: the
    rows of an implicit column matrix, read straight from the padded input planes."""

    def codegen(context, builder, signature, args):
        a, a_off, lda, a_step, b, b_off, ldb, kc, c, c_off, ldc, rows, _ = args
        ftype, bits = llvm_float(signature.args[-1].dtype)
        width = VECTOR_BYTES * 8 // bits
        vec = ir.VectorType(ftype, width)
        i64 = ir.IntType(64)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{width}f{bits}"
        )

        a_base, b_base, c_base = (
            element_pointer(builder, x, off, ftype) for x, off in ((a, a_off), (b, b_off), (c, c_off))
        )
        a_rows = [builder.gep(a_base, [builder.mul(ir.Constant(i64, i), lda)]) for i in range(MR)]
        undef = ir.Constant(vec, ir.Undefined)
        broadcast = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)

        entry = builder.basic_block
        loop = builder.append_basic_block("tile.loop")
        done = builder.append_basic_block("tile.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        p = builder.phi(i64)
        p.add_incoming(ir.Constant(i64, 0), entry)
        tile = []
        for _ in range(vectors * MR):
            acc = builder.phi(vec)
            acc.add_incoming(ir.Constant(vec, [0.0] * width), entry)
            tile.append(acc)
        if row_table:
            table = builder.inttoptr(ldb, i64.as_pointer())
            b_row = builder.gep(b_base, [builder.load(builder.gep(table, [p]))])
        else:
            b_row = builder.gep(b_base, [builder.mul(p, ldb)])
        b_vecs = [
            builder.load(builder.bitcast(builder.gep(b_row, [ir.Constant(i64, h * width)]), vec.as_pointer()), align=4)
            for h in range(vectors)
        ]
        a_col = builder.mul(p, a_step)
        updated = []
        for i in range(MR):
            scalar = builder.load(builder.gep(a_rows[i], [a_col]))
            a_vec = builder.shuffle_vector(
                builder.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0)), undef, broadcast
            )
            updated += [builder.call(fma, [a_vec, b_vecs[h], tile[vectors * i + h]]) for h in range(vectors)]
        for acc, value in zip(tile, updated, strict=True):
            acc.add_incoming(value, loop)
        p_next = builder.add(p, ir.Constant(i64, 1))
        p.add_incoming(p_next, loop)
        builder.cbranch(builder.icmp_signed("<", p_next, kc), loop, done)

        builder.position_at_end(done)
        stored = builder.append_basic_block("tile.stored")
        for i in range(MR):
            c_row = builder.gep(c_base, [builder.mul(ir.Constant(i64, i), ldc)])
            for h in range(vectors):
                ptr = builder.bitcast(builder.gep(c_row, [ir.Constant(i64, h * width)]), vec.as_pointer())
                value = updated[vectors * i + h]
                if not overwrite:
                    value = builder.fadd(builder.load(ptr, align=4), value)
                builder.store(value, ptr, align=4)
            if i + 1 < MR:  # row i + 1 only when the tile has it
                next_row = builder.append_basic_block(f"tile.row{i + 1}")
                builder.cbranch(builder.icmp_signed(">", rows, ir.Constant(i64, i + 1)), next_row, stored)
                builder.position_at_end(next_row)
        builder.branch(stored)
        builder.position_at_end(stored)
        return context.get_dummy_value()

    return codegen


def _micro_kernel(overwrite: bool, vectors: int = 2, row_table: bool = False):
    """The intrinsic ``kernel(a, a_off, lda, a_step, b, b_off, ldb, kc, c, c_off, ldc, rows, like)`` (see the
    codegen): a, b, c are data addresses (``array.ctypes.data``), so one compiled kernel serves operands of
    any layout; ``like`` is an array of their float dtype, for typing only. kc >= 1, 1 <= rows <= MR; offsets
    and strides in elements (with ``row_table``, ldb is the table's address)."""

    @intrinsic
    def kernel(typingctx, a, a_off, lda, a_step, b, b_off, ldb, kc, c, c_off, ldc, rows, like):
        address, integer = types.uintp, types.int64
        a_args = b_args = (address, integer, integer, integer)  # (a, a_off, lda, a_step), (b, b_off, ldb, kc)
        signature = types.void(*a_args, *b_args, address, integer, integer, integer, like)
        return signature, _micro_kernel_codegen(overwrite, vectors, row_table)

    return kernel


def _transpose_codegen(context, builder, signature, args):
    """LLVM IR of ``dst[d_off + p*d_ld + j] = src[s_off + j*s_ld + p]`` for p, j < lanes: one vector load per
    column j, then log2(lanes) rounds of two-vector shuffles, each swapping the off-diagonal blocks of every
    2s x 2s block (s = lanes/2, ..., 1), then one vector store per row p."""
    src, s_off, s_ld, dst, d_off, d_ld, _ = args
    ftype, bits = llvm_float(signature.args[-1].dtype)
    lanes = VECTOR_BYTES * 8 // bits
    vec = ir.VectorType(ftype, lanes)
    i64 = ir.IntType(64)

    def vector_at(address, offset, ld, index):
        return element_pointer(
            builder, address, builder.add(offset, builder.mul(ir.Constant(i64, index), ld)), ftype, vec
        )

    def mask(lanes_taken):
        return ir.Constant(ir.VectorType(ir.IntType(32), lanes), lanes_taken)

    rows = [builder.load(vector_at(src, s_off, s_ld, j), align=4) for j in range(lanes)]
    s = lanes // 2
    while s:
        top = mask([lane if not lane & s else lanes + lane - s for lane in range(lanes)])
        bottom = mask([lane + s if not lane & s else lanes + lane for lane in range(lanes)])
        for i in range(lanes):
            if not i & s:
                pair = rows[i], rows[i + s]
                rows[i], rows[i + s] = builder.shuffle_vector(*pair, top), builder.shuffle_vector(*pair, bottom)
        s //= 2
    for p in range(lanes):
        builder.store(rows[p], vector_at(dst, d_off, d_ld, p), align=4)
    return context.get_dummy_value()


@intrinsic
def _transpose_block(typingctx, src, s_off, s_ld, dst, d_off, d_ld, like):
    """The intrinsic ``_transpose_block(src, s_off, s_ld, dst, d_off, d_ld, like)``: a lanes x lanes block
    (one vector register of ``like``'s float dtype a side) transposed, from columns s_ld elements apart to rows
    d_ld apart (see the codegen); src and dst are data addresses, offsets and strides in elements."""
    address, integer = types.uintp, types.int64
    return types.void(address, integer, integer, address, integer, integer, like), _transpose_codegen


_tile_store = _micro_kernel(overwrite=True)
_tile_add = _micro_kernel(overwrite=False)
_half_tile_store = _micro_kernel(overwrite=True, vectors=1)  # for a last sliver at most NR / 2 wide
_gathered_tile_store = _micro_kernel(overwrite=True, row_table=True)
_gathered_tile_add = _micro_kernel(overwrite=False, row_table=True)
_gathered_half_tile_store = _micro_kernel(overwrite=True, vectors=1, row_table=True)


@njit(cache=True)
def multiply_tile(overwrite, a, a_off, lda, a_step, b, b_off, ldb, kc, c, target, scratch, blk, gathered=False):
    """c[item, row:row+rows, col:col+cols] (+)= the micro-kernel's tile, ``target = (item, row, col, rows,
    cols)``; a and b are data addresses, and a's sliver has MR readable rows (those past ``rows`` are
    multiplied, never stored); with ``gathered``, ldb is the address of b's row table (`_micro_kernel`).
    Full-width tiles are written in place, a partial row sliver's too (through scratch, a 28-deep tile of 2
    rows took 130 ns against 80 ns for a full one on a Zen 3; in place, 75 ns); narrower tiles go through the
    tile part of scratch."""
    item, row, col, rows, cols = target
    nr = (scratch.shape[1] - MR * KC) // MR
    cs = c.strides[1] // c.itemsize
    c_address = c.ctypes.data
    if cols == nr:
        c_off = item * (c.strides[0] // c.itemsize) + row * cs + col
        if overwrite and gathered:
            _gathered_tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, c_address, c_off, cs, rows, scratch)
        elif overwrite:
            _tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, c_address, c_off, cs, rows, scratch)
        elif gathered:
            _gathered_tile_add(a, a_off, lda, a_step, b, b_off, ldb, kc, c_address, c_off, cs, rows, scratch)
        else:
            _tile_add(a, a_off, lda, a_step, b, b_off, ldb, kc, c_address, c_off, cs, rows, scratch)
        return
    tile_address, tile_off = scratch.ctypes.data, blk * scratch.shape[1] + MR * KC
    half = 2 * cols <= nr  # half the FMAs: a 1x1 layer's 196 pixels leave a sliver of 4
    if half and gathered:
        _gathered_half_tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, tile_address, tile_off, nr, MR, scratch)
    elif half:
        _half_tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, tile_address, tile_off, nr, MR, scratch)
    elif gathered:
        _gathered_tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, tile_address, tile_off, nr, MR, scratch)
    else:
        _tile_store(a, a_off, lda, a_step, b, b_off, ldb, kc, tile_address, tile_off, nr, MR, scratch)
    for i in range(rows):
        for j in range(cols):
            value = scratch[blk, MR * KC + i * nr + j]
            c[item, row + i, col + j] = value if overwrite else c[item, row + i, col + j] + value


@njit(cache=True, inline="always")
def _pack_a_sliver(a, item, row0, rows, col0, cols, scratch, blk):
    """scratch[blk, :MR * cols] <- a[item, row0:row0+rows, col0:col0+cols] as (MR, cols), zero rows below."""
    for i in range(rows):
        for p in range(cols):  # unsigned indices: no negative-index wraparound in the copy
            scratch[blk, np.uint64(i * cols + p)] = a[np.uint64(item), np.uint64(row0 + i), np.uint64(col0 + p)]
    for q in range(rows * cols, MR * cols):
        scratch[blk, q] = 0


def packed_b_size(batch: int, k: int, n: int, nr: int, in_place: bool) -> int:
    """Elements of `pack_b`'s output for a (batch, k, n) operand."""
    return batch * k * packed_b_slots(n, nr, in_place) * nr


def packed_b_slots(n: int, nr: int, in_place: bool) -> int:
    """Slivers of b per (batch item, KC block) that `pack_b` copies: all of them, or when b's rows are read in
    place just the last one, if it is partial."""
    return -(-n // nr) if not in_place else int(n % nr != 0)


@_per_dtype("in", "int", "int", "flat")
def pack_b(b, nr, slots, bpack):
    """Copy the slivers of b the product cannot read in place into bpack, zero-padded to nr columns.

    b: (batch, k, n). Slot ``(item, block, s)`` (``s < slots``; with one slot per block it holds the last
    sliver) holds the (kc, nr) sliver of rows ``block * KC .. + kc`` row-major, kc = min(KC, k - block * KC),
    at `_slot_offset`: a last block shorter than KC takes only its own rows. Reads run along b's shorter
    stride (a transposed view of a reduction-contiguous operand would otherwise cost one cache line per value).
    """
    batch, k, n = b.shape
    blocks = (k + KC - 1) // KC
    first = (n + nr - 1) // nr - slots
    along_rows = b.strides[1] < b.strides[2]
    lanes = VECTOR_BYTES // b.itemsize
    cs = b.strides[2] // b.itemsize
    for parallel_job in prange(batch * blocks * slots):
        job = np.int64(parallel_job)  # the parfor index may be unsigned: keep the arithmetic in int64
        item, rest = job // (blocks * slots), job % (blocks * slots)
        block, s = rest // slots, rest % slots
        row0, col0 = block * KC, (first + s) * nr
        rows, width = min(KC, k - row0), min(nr, n - col0)
        base = _slot_offset(item, k, row0, rows, s, slots, nr)
        for p in range(rows):
            for j in range(width, nr):
                bpack[base + p * nr + j] = 0
        # Unsigned indices: Numba then emits no negative-index wraparound in these copy loops.
        i0, r0, c0 = np.uint64(item), np.uint64(row0), np.uint64(col0)
        if along_rows:
            blocked_rows, blocked_cols = 0, 0
            if b.strides[1] == b.itemsize:  # columns contiguous: whole vector blocks, transposed in registers
                blocked_rows, blocked_cols = rows - rows % lanes, width - width % lanes
                source = item * (b.strides[0] // b.itemsize) + row0 + col0 * cs
                for p0 in range(0, blocked_rows, lanes):
                    for j0 in range(0, blocked_cols, lanes):
                        _transpose_block(
                            b.ctypes.data, source + p0 + j0 * cs, cs, bpack.ctypes.data, base + p0 * nr + j0, nr, bpack
                        )
            for j in range(width):
                for p in range(blocked_rows if j < blocked_cols else 0, rows):
                    bpack[np.uint64(base + p * nr + j)] = b[i0, r0 + np.uint64(p), c0 + np.uint64(j)]
        else:
            for p in range(rows):
                for j in range(width):
                    bpack[np.uint64(base + p * nr + j)] = b[i0, r0 + np.uint64(p), c0 + np.uint64(j)]


@njit(cache=True, inline="always")
def _slot_offset(item, k, row0, kc, slot, slots, nr):
    """Where `pack_b` puts sliver ``slot`` of b's rows row0 .. row0 + kc of batch item ``item``."""
    return (item * k + row0) * slots * nr + slot * kc * nr


@njit(cache=True)
def _panel(a, b, c, item, m0, m1, n0, n1, pc, kc, overwrite, bpack, scratch, blk):
    """c[item, m0:m1, n0:n1] (+)= a[item, m0:m1, pc:pc+kc] @ b[item, pc:pc+kc, n0:n1]: one task's share of
    one reduction block; each MC-row block of a meets every b sliver, read in place or from `pack_b`'s copy."""
    nr = (scratch.shape[1] - MR * KC) // MR
    n = b.shape[2]
    in_place = b.strides[2] == b.itemsize
    slots = (n % nr != 0) if in_place else (n + nr - 1) // nr
    as0, as1, as2 = a.strides[0] // a.itemsize, a.strides[1] // a.itemsize, a.strides[2] // a.itemsize
    bs0, bs1 = b.strides[0] // b.itemsize, b.strides[1] // b.itemsize
    for ic in range(m0, m1, MC):
        ragged = min(MC, m1 - ic) % MR  # rows in the block's last sliver when it is partial
        if ragged:
            _pack_a_sliver(a, item, min(m1, ic + MC) - ragged, ragged, pc, kc, scratch, blk)
        for jr in range(n0, n1, nr):
            cols = min(nr, n - jr)
            direct = in_place and cols == nr  # b's sliver read in place, else its packed copy
            slot = slots - 1 if in_place else jr // nr
            b_off = item * bs0 + pc * bs1 + jr if direct else _slot_offset(item, b.shape[1], pc, kc, slot, slots, nr)
            ldb = bs1 if direct else nr
            b_address = b.ctypes.data if direct else bpack.ctypes.data
            for row in range(ic, min(m1, ic + MC), MR):
                target = (item, row, jr, min(MR, m1 - row), cols)
                if row + MR <= m1:  # a's sliver in place
                    a_off = item * as0 + row * as1 + pc * as2
                    multiply_tile(
                        overwrite, a.ctypes.data, a_off, as1, as2, b_address, b_off, ldb, kc, c, target, scratch, blk
                    )
                else:  # the block's last sliver, packed above
                    a_address, a_off = scratch.ctypes.data, blk * scratch.shape[1]
                    multiply_tile(
                        overwrite, a_address, a_off, kc, np.int64(1), b_address, b_off, ldb, kc, c, target, scratch, blk
                    )


@_per_dtype("in", "in", "out", "bool", "int", "int", "flat", "rows")
def batched_matmul(a, b, c, accumulate, task_rows, task_cols, bpack, scratch):
    """c[i] = a[i] @ b[i] (or c[i] += ... when ``accumulate``) for every batch item i.

    a: (batch, m, k), b: (batch, k, n), c: (batch, m, n) with unit stride along n; any other strides.
    task_rows, task_cols: rows (a multiple of MR) and columns (of NR) of c per task. bpack: `pack_b`'s
    output (flat). scratch: (parallel blocks, MR * KC + MR * NR), a packed partial a-sliver then a partial tile.
    """
    batch, k, n = b.shape
    m = a.shape[1]
    row_tasks = (m + task_rows - 1) // task_rows
    col_tasks = (n + task_cols - 1) // task_cols
    tasks = batch * row_tasks * col_tasks
    blocks = scratch.shape[0]
    for parallel_blk in prange(blocks):
        blk = np.int64(parallel_blk)  # one signature for the callees, whatever type the parfor index gets
        for task in range(tasks * blk // blocks, tasks * (blk + 1) // blocks):
            item, place = divmod(task, row_tasks * col_tasks)
            m0, n0 = (place // col_tasks) * task_rows, (place % col_tasks) * task_cols
            m1, n1 = min(m, m0 + task_rows), min(n, n0 + task_cols)
            for pc in range(0, k, KC):
                overwrite = pc == 0 and not accumulate
                _panel(a, b, c, item, m0, m1, n0, n1, pc, min(KC, k - pc), overwrite, bpack, scratch, blk)
