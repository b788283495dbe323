"""Which algorithm runs a convolution pass, and why: a cost model over the candidates, and `explain`.

Each candidate's time is estimated from its arithmetic (at a rate that depends on how well its matrix
shapes fill the machine) plus the memory it streams. The constants were fitted to measurements on a 2-core
AVX-512 machine with `benchmarks/compare.py`; the choice is a pure function of shape, dtype, thread count
and pass, so it is deterministic and `explain` can show it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import numpy as np

from .geometry import ConvGeometry, ConvSpec, IntPair, Padding, check_dtype, check_input_shape, check_shape
from .runtime import get_num_threads

ALGORITHMS = ("direct", "im2col", "winograd")
PASSES = ("forward", "grad_input", "grad_weight")
WINOGRAD_TILES = (2, 4)

# Per-thread rates (flop/s, bytes/s) fitted on the reference machine; see the module docstring.
GEMM_RATE = 100e9
DIRECT_RATE = 12e9
DEPTHWISE_RATE = 4e9
STREAM_RATE = 6e9
CALL_OVERHEAD = 20e-6
# Winograd's weight gradient sums transformed tiles, so a true zero comes out as a rounding residue (~1e-7
# in float32); Adam's normalised step would then move weights PyTorch leaves alone. Auto never picks it.
WINOGRAD_GRAD_WEIGHT_NOTE = " among exact-zero-preserving algorithms (not winograd)"
# im2col and Winograd process the batch in chunks whose workspace stays near this size.
WORKSPACE_CAP = 32 * 2**20


class Estimate(NamedTuple):
    """One candidate's predicted cost for one pass."""

    name: str
    algorithm: str
    options: dict
    flops: float
    workspace_bytes: int
    seconds: float


class Decision(NamedTuple):
    """The algorithm chosen for one pass, with the estimates of every candidate that could serve it."""

    pass_name: str
    algorithm: str
    options: dict
    driver: ModuleType
    reason: str
    estimates: tuple[Estimate, ...]


def driver(algorithm: str) -> ModuleType:
    """The driver module of ``algorithm``, imported on first use so start-up loads only what runs."""
    return importlib.import_module(f"{__package__}.algorithms.{algorithm}")


def winograd_unsupported(geo: ConvGeometry) -> str | None:
    """Why Winograd cannot serve ``geo``, or None when it can (3x3 kernel, stride 1, dilation 1)."""
    problems = []
    if (geo.kh, geo.kw) != (3, 3):
        problems.append(f"kernel size ({geo.kh}, {geo.kw}) is not (3, 3)")
    if (geo.stride_h, geo.stride_w) != (1, 1):
        problems.append(f"stride ({geo.stride_h}, {geo.stride_w}) is not (1, 1)")
    if (geo.dil_h, geo.dil_w) != (1, 1):
        problems.append(f"dilation ({geo.dil_h}, {geo.dil_w}) is not (1, 1)")
    return ", ".join(problems) or None


def _gemm_efficiency(rows: float, inner: float) -> float:
    """Fraction of peak GEMM rate reached with ``rows`` output rows and an ``inner`` reduction length."""
    return (rows / (rows + 24.0)) * (inner / (inner + 24.0))


def _estimates(pass_name: str, geo: ConvGeometry, itemsize: int, threads: int) -> list[Estimate]:
    """Cost estimates of every candidate able to serve ``geo`` for ``pass_name``."""
    c_g, k_g = geo.c // geo.groups, geo.k // geo.groups
    pixels = geo.n * geo.oh * geo.ow
    taps = geo.kh * geo.kw
    flops = 2.0 * pixels * geo.k * c_g * taps
    io_bytes = itemsize * (geo.n * geo.c * geo.h * geo.w + pixels * geo.k)
    # The GEMM's rows are output channels (forward, grad_weight) or input taps (grad_input).
    rows = c_g * taps if pass_name == "grad_input" else k_g
    inner = k_g if pass_name == "grad_input" else c_g * taps
    estimates = []

    direct_rate = DEPTHWISE_RATE if c_g * taps < 16 else DIRECT_RATE
    estimates.append(Estimate("direct", "direct", {}, flops, 0,
                              flops / (direct_rate * threads) + io_bytes / (STREAM_RATE * threads)))

    cols_bytes = itemsize * c_g * taps * geo.groups * pixels
    skip_cols = taps == 1 and (geo.stride_h, geo.stride_w, geo.pad_h, geo.pad_w) == (1, 1, 0, 0)
    streamed = io_bytes + (0 if skip_cols else 2 * cols_bytes)
    gemm_seconds = flops / (GEMM_RATE * threads * _gemm_efficiency(rows, inner))
    estimates.append(Estimate("im2col", "im2col", {}, flops,
                              0 if skip_cols else min(cols_bytes, WORKSPACE_CAP),
                              gemm_seconds + streamed / (STREAM_RATE * threads) + CALL_OVERHEAD * geo.groups))

    if winograd_unsupported(geo) is None:
        for tile in WINOGRAD_TILES:
            alpha = tile + 2
            tiles = geo.n * -(-geo.oh // tile) * -(-geo.ow // tile)
            wino_flops = 2.0 * tiles * alpha * alpha * geo.k * c_g
            transformed = itemsize * alpha * alpha * tiles * (geo.c + geo.k)
            seconds = (wino_flops / (GEMM_RATE * threads * _gemm_efficiency(rows, c_g if pass_name != "grad_input" else k_g))
                       + (io_bytes + 2 * transformed) / (STREAM_RATE * threads)
                       + CALL_OVERHEAD * geo.groups)
            estimates.append(Estimate(f"winograd F({tile}x{tile},3x3)", "winograd", {"tile": tile}, wino_flops,
                                      min(transformed, WORKSPACE_CAP), seconds))
    return estimates


def choose(pass_name: str, geo: ConvGeometry, dtype: np.dtype, requested: str) -> Decision:
    """The algorithm for one pass: ``requested`` if it can serve ``geo``, else the cheapest estimate."""
    if requested != "auto" and requested not in ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto' or one of {ALGORITHMS}, got {requested!r}")
    if requested == "winograd":
        why_not = winograd_unsupported(geo)
        if why_not:
            raise ValueError(f"algorithm='winograd' serves 3x3 kernels with stride 1 and dilation 1: {why_not}")
    estimates = tuple(_estimates(pass_name, geo, np.dtype(dtype).itemsize, get_num_threads()))
    if requested == "auto":
        pool = tuple(e for e in estimates if pass_name != "grad_weight" or e.algorithm != "winograd")
        rule = "cheapest estimate" + (WINOGRAD_GRAD_WEIGHT_NOTE if pass_name == "grad_weight" else "")
    else:
        pool = tuple(e for e in estimates if e.algorithm == requested)
        rule = "requested"
    best = min(pool, key=lambda e: e.seconds)
    reason = f"{rule}: {best.name}, {best.seconds * 1e3:.3g} ms estimated"
    return Decision(pass_name, best.algorithm, best.options, driver(best.algorithm), reason, estimates)


def finite_fallback(decision: Decision, *arrays: np.ndarray, is_finite: Callable[[np.ndarray], bool]) -> Decision:
    """Winograd's transforms mix a whole tile, so NaN/Inf would leak into outputs whose windows lack them;
    on non-finite data the pass runs on im2col instead (which keeps PyTorch's propagation exactly)."""
    if decision.algorithm != "winograd" or all(is_finite(a) for a in arrays):
        return decision
    reason = "non-finite values in the data: im2col keeps NaN/Inf inside their windows"
    return decision._replace(algorithm="im2col", options={}, driver=driver("im2col"), reason=reason)


class Explanation(NamedTuple):
    """The dispatcher's choice for the forward pass and both gradients of one convolution; print it."""

    geometry: ConvGeometry
    dtype: np.dtype
    threads: int
    forward: Decision
    grad_input: Decision
    grad_weight: Decision

    def __str__(self) -> str:
        g = self.geometry
        lines = [
            f"conv2d input ({g.n}, {g.c}, {g.h}, {g.w}) weight ({g.k}, {g.c // g.groups}, {g.kh}, {g.kw}) "
            f"-> output ({g.n}, {g.k}, {g.oh}, {g.ow}); stride ({g.stride_h}, {g.stride_w}), "
            f"dilation ({g.dil_h}, {g.dil_w}), groups {g.groups}; {self.dtype}, {self.threads} threads",
        ]
        for decision in (self.forward, self.grad_input, self.grad_weight):
            lines.append(f"{decision.pass_name}: {decision.algorithm}  ({decision.reason})")
            for e in sorted(decision.estimates, key=lambda e: e.seconds):
                mark = "*" if e.algorithm == decision.algorithm and e.options == decision.options else " "
                lines.append(f"  {mark} {e.name:<24} {e.flops / 1e9:8.3f} GFLOP  workspace "
                             f"{e.workspace_bytes / 2**20:8.2f} MiB  est. {e.seconds * 1e3:9.3f} ms")
        return "\n".join(lines)


def explain(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    dtype: str | np.dtype = "float32",
) -> Explanation:
    """What ``algorithm="auto"`` runs for each pass of this convolution, why, and what the rest would cost.

    input_shape: (N, C, H, W) or (C, H, W); weight_shape: (K, C/groups, kh, kw). ``str()`` of the result
    lists, per pass, the choice and every candidate's FLOPs, workspace and estimated time.
    """
    spec = ConvSpec.from_args(stride, padding, dilation, groups, padding_mode)
    shape, _ = check_input_shape(input_shape)
    geo = spec.plan(shape, check_shape("weight_shape", weight_shape, (4,), minimum=1)).geometry
    np_dtype = check_dtype("dtype", dtype)
    decisions = (choose(p, geo, np_dtype, "auto") for p in PASSES)
    return Explanation(geo, np_dtype, get_num_threads(), *decisions)
