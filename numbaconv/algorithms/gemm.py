"""``matmul(a, b, out)``: the engine's matrix products, on `numbaconv.kernels.gemm` where the CPU has AVX-512 or
AVX2 with FMA.

Takes numpy's matmul operands (2-D, or stacks of matrices whose leading dimensions broadcast to ``out``'s)
and writes ``out = a @ b``, or adds to it with ``accumulate=True``. The Numba kernel serves float32/float64
outputs with unit stride along their last axis, except small products (`SMALL_FLOPS`); anything else, and
CPUs with neither (no vector FMA for its register tile), goes to numpy's BLAS.
"""

from __future__ import annotations

import numpy as np

from .. import runtime
from ..kernels import VECTOR_BYTES

HAS_REGISTER_TILE = VECTOR_BYTES > 0
"""Whether the Numba kernel serves products here (its register tile is 2 * MR AVX-512 or AVX2 vectors);
without it the kernels of `numbaconv.kernels.gemm` are never compiled."""

SMALL_FLOPS = 1 << 22
"""Products below this many flops whose every matrix is below OpenBLAS's multithreading threshold
(m * n * k < `BLAS_SINGLE_THREAD_MNK`) go to numpy: OpenBLAS runs them on the calling thread, faster than the
~20 us that setting up a parallel product costs (64x64x64: 6 us against 20 us), and without waking its
thread pool, which would then spin on the cores the next Numba kernel needs."""
BLAS_SINGLE_THREAD_MNK = 4 * 65536
TASKS_PER_THREAD = 4  # tasks per thread, for load balance on a busy machine
MIN_TASK_COLS = 128  # narrower tasks re-read their rows of a too often


def _batch_view(array: np.ndarray, rows: int, cols: int) -> np.ndarray | None:
    """``array`` viewed as (batch, rows, cols) without copying, or None when its strides do not allow it."""
    view = array.view()
    try:
        view.shape = (-1, rows, cols)
    except AttributeError:
        return None
    return view


def _broadcast(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.broadcast_to(array, shape)``, or the array itself when it has that shape already (the usual case:
    np.broadcast_to costs about 7 us, and a training step makes hundreds of products)."""
    return array if array.shape == shape else np.broadcast_to(array, shape)


def _task_shape(batch: int, m: int, n: int, nr: int, threads: int, mr: int, mc: int) -> tuple[int, int]:
    """(rows, columns) of c per task, aiming at TASKS_PER_THREAD tasks per thread: columns are split first
    (down to MIN_TASK_COLS), then rows (down to mc, in multiples of mr), since a row split makes tasks copy
    the same b slivers."""
    per_item = max(1, -(-TASKS_PER_THREAD * threads // batch))
    cols = max(MIN_TASK_COLS, -(-n // per_item))
    col_tasks = -(-n // cols)
    rows = max(mc, -(-m // max(1, -(-per_item // col_tasks))))
    return -(-rows // mr) * mr, -(-cols // nr) * nr


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False) -> np.ndarray:
    """out = a @ b (numpy's matmul rules, leading dimensions broadcast to out's), or out += a @ b.

    a: (..., m, k), b: (..., k, n), out: (..., m, n), all of out's dtype. Returns out. Call inside
    `runtime.parallel_section` (the scratch is shared).
    """
    m, n = out.shape[-2:]
    k = a.shape[-1]
    small = 2 * out.size * k < SMALL_FLOPS and m * n * k < BLAS_SINGLE_THREAD_MNK
    served = HAS_REGISTER_TILE and out.dtype in (np.float32, np.float64) and k > 0 and not small
    out3 = _batch_view(out, m, n) if served else None
    if out3 is None or out.strides[-1] != out.itemsize:
        if accumulate:
            out += np.matmul(a, b)
        else:
            np.matmul(a, b, out=out)
        return out
    from ..kernels import gemm as kernels  # imported here: never without a register tile

    batch_shape = out.shape[:-2]
    a_full, b_full = _broadcast(a, (*batch_shape, m, k)), _broadcast(b, (*batch_shape, k, n))
    a3, b3 = _batch_view(a_full, m, k), _batch_view(b_full, k, n)
    if a3 is None or b3 is None:  # leading axes that do not merge (a broadcast weight over groups > 1)
        for i in range(out.shape[0]):
            matmul(a_full[i], b_full[i], out[i], accumulate)
        return out
    scratch, nr = tile_scratch(out.dtype)
    threads = scratch.shape[0]
    task_rows, task_cols = _task_shape(out3.shape[0], m, n, nr, threads, kernels.MR, kernels.MC)
    in_place = b3.strides[2] == b3.itemsize
    slots = kernels.packed_b_slots(n, nr, in_place)
    bpack = runtime.workspace("gemm.b", (max(1, kernels.packed_b_size(*b3.shape, nr, in_place)),), out.dtype)
    if slots:
        kernels.pack_b(out.dtype)(b3, nr, slots, bpack)
    kernels.batched_matmul(out.dtype)(a3, b3, out3, accumulate, task_rows, task_cols, bpack, scratch)
    return out


def tile_scratch(dtype: np.dtype) -> tuple[np.ndarray, int]:
    """The micro-kernel's per-thread scratch, (threads, MR * (KC + NR)), and NR, the register tile's columns
    in ``dtype``: every kernel that multiplies tiles (`matmul`, `numbaconv.kernels.lowered`) takes it. With
    `HAS_REGISTER_TILE` only; call inside `runtime.parallel_section`."""
    from ..kernels import gemm as kernels

    nr = tile_columns(np.dtype(dtype).itemsize)
    return runtime.workspace("gemm.scratch", (runtime.get_num_threads(), kernels.MR * (kernels.KC + nr)), dtype), nr


def tile_columns(itemsize: int) -> int:
    """NR, the register tile's columns (two vector registers) for elements of ``itemsize`` bytes. With
    `HAS_REGISTER_TILE` only."""
    return 2 * VECTOR_BYTES // itemsize
