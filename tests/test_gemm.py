"""The engine's matrix product (`numbaconv.algorithms.gemm.matmul`) against a float64 einsum oracle.

Sizes straddle every blocking edge of the kernel (MR rows, NR columns, KC reduction steps, MC row blocks, task
widths), operands come as transposed, broadcast and strided views, and ``out`` may be a strided view that
must be written in place.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbaconv import runtime
from numbaconv.algorithms import gemm
from numbaconv.kernels import gemm as kernels

DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True)
def kernel_for_every_size(monkeypatch):
    """The Numba kernel serves even the small products here (normally numpy's), so its edges are tested."""
    monkeypatch.setattr(gemm, "SMALL_FLOPS", 0)


TOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-13}


def oracle(a, b):
    """a @ b with numpy's broadcasting, in float64, by einsum."""
    return np.einsum("...ik,...kj->...ij", a.astype(np.float64), b.astype(np.float64))


def check(a, b, out, accumulate=False):
    expected = oracle(a, b) + (out.astype(np.float64) if accumulate else 0)
    with runtime.parallel_section():
        result = gemm.matmul(a, b, out, accumulate)
    assert result is out
    scale = max(1.0, np.abs(expected).max()) * max(1, a.shape[-1])
    error = np.abs(out - expected).max() / scale
    assert error <= TOL[out.dtype], f"relative error {error:.3g}"


NR = gemm.tile_columns(np.dtype(np.float32).itemsize)
EDGES = [
    (1, 1, 1),
    (kernels.MR - 1, 3, NR - 1),
    (kernels.MR + 1, kernels.KC + 1, NR + 1),
    (kernels.MR, 5, NR + NR // 2),  # the widest last sliver the one-vector tile takes
    (kernels.MR, 5, NR + NR // 2 + 1),  # the narrowest the full tile takes
    (kernels.MC + 3, 2 * kernels.KC - 1, 3 * NR + 5),
    (2 * kernels.MC, kernels.KC, 2 * NR),
    (17, 40, 1000),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", EDGES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_sizes_across_block_edges(m, k, n, accumulate, dtype):
    rng = np.random.default_rng(m * 1000 + k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    check(a, b, rng.standard_normal((m, n)).astype(dtype), accumulate)


@pytest.mark.parametrize("dtype", DTYPES)
def test_views_broadcasts_and_strided_out(dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 70, 33)).astype(dtype).transpose(0, 2, 1)  # columns strided
    b = rng.standard_normal((3, 90, 70)).astype(dtype).transpose(0, 2, 1)  # b's columns strided: packed
    out = np.zeros((3, 33, 120), dtype)[:, :, 10:100]  # rows strided, written in place
    check(a, b, out)
    weights = rng.standard_normal((2, 20, 30)).astype(dtype)  # broadcast over a leading axis of 4
    cols = rng.standard_normal((2, 30, 4, 50)).astype(dtype).transpose(2, 0, 1, 3)
    check(weights, cols, np.empty((4, 2, 20, 50), dtype))
    check(weights[0], rng.standard_normal((30, 50)).astype(dtype)[:, ::2], np.empty((20, 25), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [kernels.KC + 3, 2 * kernels.KC])
def test_packed_slivers_of_every_reduction_block(k, dtype):
    """b packed whole (a transposed view) and in place with a ragged last sliver, over batch items and
    reduction blocks, the last one short (KC + 3) or full: every sliver lands in its own slot."""
    rng = np.random.default_rng(k)
    a = rng.standard_normal((2, 4 * kernels.MR + 3, k)).astype(dtype)
    b_t = rng.standard_normal((2, 2 * NR + 5, k)).astype(dtype).transpose(0, 2, 1)
    check(a, b_t, np.empty((2, 4 * kernels.MR + 3, 2 * NR + 5), dtype))
    check(a, np.ascontiguousarray(b_t), np.empty((2, 4 * kernels.MR + 3, 2 * NR + 5), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", range(1, kernels.MR))
@pytest.mark.parametrize("accumulate", [False, True])
def test_partial_row_sliver_writes_only_its_rows(rows, accumulate, dtype):
    """A last sliver of ``rows`` < MR rows is stored in place, full-width tiles and narrow ones alike: the
    rows of out's buffer past each item's last row (another item's, in a real batch) keep their values."""
    rng = np.random.default_rng(rows)
    m, k, n = 2 * kernels.MR + rows, 7, 2 * NR + 3
    a, b = rng.standard_normal((3, m, k)).astype(dtype), rng.standard_normal((3, k, n)).astype(dtype)
    buffer = np.full((3, m + kernels.MR, n), 7.0, dtype)
    out = buffer[:, :m]
    out[...] = rng.standard_normal(out.shape)
    check(a, b, out, accumulate)
    assert (buffer[:, m:] == 7.0).all()


def test_empty_reduction_gives_zeros_and_small_products_are_right(monkeypatch):
    check(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32), np.full((3, 4), np.nan, np.float32))
    monkeypatch.setattr(gemm, "SMALL_FLOPS", 1 << 22)
    rng = np.random.default_rng(5)
    check(rng.standard_normal((8, 9)).astype(np.float32), rng.standard_normal((9, 7)).astype(np.float32),
          np.empty((8, 7), np.float32))  # fmt: skip


def test_other_dtypes_and_layouts_fall_back_to_numpy():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 7))
    check(a.astype(np.float16), b.astype(np.float16), np.empty((5, 7), np.float16))
    out = np.empty((7, 5)).T  # out's columns strided: numpy writes it
    check(a, b, out)


@pytest.mark.parametrize("accumulate", [False, True])
def test_cpu_without_register_tile_uses_numpy(monkeypatch, accumulate):
    """Without AVX-512 or AVX2 (`HAS_REGISTER_TILE` false) every product, accumulating ones too, is numpy's."""
    monkeypatch.setattr(gemm, "HAS_REGISTER_TILE", False)
    monkeypatch.setattr(kernels, "batched_matmul", None)  # calling the kernel would fail
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((3, 40, 70)).astype(np.float32), rng.standard_normal((3, 70, 50)).astype(np.float32)
    check(a, b, rng.standard_normal((3, 40, 50)).astype(np.float32), accumulate)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", EDGES)
def test_transposed_b_across_block_edges(m, k, n, dtype):
    """b as the transpose of a (n, k) matrix, as Winograd's weight gradient passes it: `pack_b` moves whole
    vector-sized blocks through registers and the ragged rows and columns element by element."""
    rng = np.random.default_rng(m * 1000 + k + n + 1)
    a, b_t = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    check(a, b_t.T, np.empty((m, n), dtype))
    check(a, np.ascontiguousarray(b_t[:, ::-1])[:, ::-1].T, np.empty((m, n), dtype))  # rows read backwards


@given(
    m=st.integers(1, 40),
    k=st.integers(1, 300),
    n=st.integers(1, 150),
    batch=st.integers(1, 3),
    accumulate=st.booleans(),
    transposed_b=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_random_sizes(m, k, n, batch, accumulate, transposed_b, dtype):
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    a = rng.standard_normal((batch, m, k)).astype(dtype)
    b = rng.standard_normal((batch, n, k) if transposed_b else (batch, k, n)).astype(dtype)
    b = b.transpose(0, 2, 1) if transposed_b else b
    check(a, b, rng.standard_normal((batch, m, n)).astype(dtype), accumulate)
