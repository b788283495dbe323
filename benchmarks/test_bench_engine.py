"""pytest-benchmark suite of the engine: algorithm x shape x pass x threads, float32. Measured, never asserted.

Run from the repository root (the project's plain ``pytest`` only collects ``tests/``):

    pytest benchmarks/                                   # everything (a few minutes)
    pytest benchmarks/ -k "resnet56 and auto"            # a slice
    pytest benchmarks/ --benchmark-min-rounds=1 -k cifar_c2

Ids read ``test_conv2d[<algorithm>-<shape>-<pass>-<threads>]``, e.g. ``[winograd-resnet28-forward-2threads]``;
results are grouped per (shape, pass, threads) so the algorithms of one layer sit side by side. Each test
calls its pass once before timing: the first call compiles (or loads) the Numba kernels and must not count.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numba
import pytest

pytest.importorskip("pytest_benchmark")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import PASSES, SUITE, ConvShape, random_inputs  # noqa: E402

import numbaconv  # noqa: E402

ALGORITHMS = ("auto", *numbaconv.ALGORITHMS)
THREADS = sorted({1, numba.config.NUMBA_NUM_THREADS})


def thread_id(threads: int) -> str:
    return f"{threads}thread" if threads == 1 else f"{threads}threads"


def cases() -> list:
    """Every (algorithm, shape, pass, threads), Winograd on the shapes it cannot serve marked skipped."""
    skip = pytest.mark.skip(reason="winograd serves 3x3 stride-1 layers only")
    params = []
    for shape in SUITE:  # a group's algorithms run back to back, on the same inputs
        for pass_ in PASSES:
            for threads in THREADS:
                for algorithm in ALGORITHMS:
                    unserved = algorithm == "winograd" and not shape.winograd_eligible
                    case_id = f"{algorithm}-{shape.name}-{pass_}-{thread_id(threads)}"
                    marks = [skip] if unserved else []
                    params.append(pytest.param(algorithm, shape, pass_, threads, id=case_id, marks=marks))
    return params


@lru_cache(maxsize=1)
def inputs(shape: ConvShape) -> dict:
    """The arrays of ``shape`` (kept for the consecutive tests that share it)."""
    return random_inputs(shape, seed=0)


def make_call(algorithm: str, shape: ConvShape, pass_: str):
    """A no-argument function running ``pass_`` of ``shape`` with ``algorithm``."""
    arrays = inputs(shape)
    x, w, b, g = arrays["x"], arrays["weight"], arrays["bias"], arrays["grad_output"]
    kw = dict(shape.conv_kwargs, algorithm=algorithm)
    if pass_ == "forward":
        return lambda: numbaconv.conv2d(x, w, b, **kw)

    def forward_backward():
        numbaconv.conv2d(x, w, b, **kw)
        numbaconv.conv2d_grad_input(x.shape, w, g, **kw)
        numbaconv.conv2d_grad_weight(x, w.shape, g, **kw)

    return forward_backward


def chosen_algorithms(algorithm: str, shape: ConvShape) -> str:
    """What runs for forward, grad_input and grad_weight: the forced algorithm, or auto's choices."""
    if algorithm != "auto":
        return algorithm
    plan = numbaconv.explain(shape.input_shape, shape.weight_shape, dtype="float32", **shape.conv_kwargs)
    decisions = (plan.forward, plan.grad_input, plan.grad_weight)
    return " | ".join(f"{d.algorithm} {d.options}" if d.options else d.algorithm for d in decisions)


@pytest.fixture
def restore_threads():
    before = numbaconv.get_num_threads()
    yield
    numbaconv.set_num_threads(before)


@pytest.mark.parametrize(("algorithm", "shape", "pass_", "threads"), cases())
def test_conv2d(benchmark, restore_threads, algorithm, shape, pass_, threads):
    numbaconv.set_num_threads(threads)
    call = make_call(algorithm, shape, pass_)
    call()  # warm-up: compiles or loads the Numba kernels, allocates workspaces
    benchmark.group = f"{shape.name} {pass_} {thread_id(threads)}"
    benchmark.extra_info["layer"] = shape.describe()
    benchmark.extra_info["gflop"] = shape.flops(pass_) / 1e9
    benchmark.extra_info["algorithms"] = chosen_algorithms(algorithm, shape)
    benchmark(call)
