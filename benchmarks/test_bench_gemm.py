"""pytest-benchmark of the engine's matrix product against numpy's on the products the convolutions make.

    pytest benchmarks/test_bench_gemm.py

Ids read ``test_matmul[<library>-<batch>x<m>x<k>x<n>]``; results are grouped per product so the two libraries
sit side by side. Both run in this process, each on its own pool (numpy's BLAS and Numba's threads), one at a
time. Measured, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbaconv import runtime
from numbaconv.algorithms.gemm import matmul

pytest.importorskip("pytest_benchmark")

# (batch, m, k, n, b transposed): im2col forward (tutorial, resnet7, resnet1x1), its weight gradient (resnet56,
# b = dY^T), Winograd's batched products (resnet56, resnet28, resnet14 forward; resnet56 weight gradient).
PRODUCTS = [
    (1, 100, 360, 12960, False),
    (1, 512, 4608, 392, False),
    (8, 1024, 256, 196, False),
    (1, 576, 3136, 64, True),
    (36, 64, 64, 518, False),
    (36, 128, 128, 392, False),
    (36, 256, 256, 128, False),
    (36, 64, 518, 64, True),
]


def operands(batch, m, k, n, transposed):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, m, k), dtype=np.float32)
    b = rng.standard_normal((batch, n, k), dtype=np.float32).transpose(0, 2, 1) if transposed else None
    b = rng.standard_normal((batch, k, n), dtype=np.float32) if b is None else b
    return a, b, np.empty((batch, m, n), np.float32)


def numbaconv_matmul(a, b, out):
    with runtime.parallel_section():
        matmul(a, b, out)


@pytest.mark.parametrize("library", ["numbaconv", "numpy"])
@pytest.mark.parametrize("product", PRODUCTS, ids=lambda p: "x".join(map(str, p[:4])) + ("T" if p[4] else ""))
def test_matmul(benchmark, library, product):
    a, b, out = operands(*product)
    call = (lambda: numbaconv_matmul(a, b, out)) if library == "numbaconv" else (lambda: np.matmul(a, b, out=out))
    call()
    benchmark.group = "x".join(map(str, product[:4]))
    benchmark.extra_info["gflops"] = 2 * np.prod(product[:4]) / 1e9
    benchmark(call)
