"""Which algorithm runs a convolution pass, and why: a cost model over the candidates, and `explain`.

Each candidate's time is estimated from its arithmetic (at a rate that depends on how well its matrix
shapes fill the machine) plus the memory it streams. The constants were fitted to measurements on a 2-core
AVX-512 machine (`benchmarks/calibrate.py` times every candidate and scores the choices); the choice is a
pure function of shape, dtype, thread count and pass, so it is deterministic and `explain` can show it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import numpy as np

from .algorithms.gemm import tile_columns
from .geometry import ConvGeometry, ConvSpec, IntPair, Padding, check_dtype, check_input_shape, check_shape
from .kernels import HAS_AVX512
from .runtime import get_num_threads

ALGORITHMS = ("direct", "im2col", "winograd")
PASSES = ("forward", "grad_input", "grad_weight")
WINOGRAD_TILES = (2, 4)

# The cost model's constants, fitted to every algorithm x pass of the benchmark suite and the models' layers
# measured on the reference machine (2 cores, AVX-512; `benchmarks/calibrate.py`): least regret of the choices,
# then least squares on log time. Rates are per thread. The direct kernels' constants were refitted on a 2-core
# Intel Xeon (3 runs: summed regret 2.42 -> 0.26 ms), where their forward reached 45-79% of the old estimate on
# planes of 256+ pixels and their grad_weight ran 1.3-2.8x faster than their forward: a 3-channel layer's
# grad_weight is then direct's, its forward im2col's. With AVX2's half-width register tile (a 2-core Zen 3,
# 2 runs: summed regret 2.44 -> 0.06 ms), and without a register tile (numpy's BLAS), the GEMM rate is 100
# GFLOP/s.
GEMM_RATE = 180e9 if HAS_AVX512 else 100e9  # flop/s of a matrix product with large dimensions
GEMM_HALF_SIZE = 8.0  # a product dimension of this size halves the GEMM rate
DIRECT_RATE = 30e9  # flop/s of the direct kernels on large output planes
DIRECT_GRAD_WEIGHT_GAIN = 2.0  # how much faster grad_weight's direct kernel runs than forward's
DIRECT_HALF_PLANE = 100  # output-plane pixels at which the direct rate halves
DIRECT_WEIGHT_CACHE = 16e6  # weight bytes per group beyond which the direct kernels slow down
STREAM_RATE = 12e9  # bytes/s of memory-bound passes
CALL_OVERHEAD = 20e-6  # seconds per kernel or product launch
CACHED_FRACTION = 0.5  # cost of a pass over data that stays in L2, relative to one through memory


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
    """Why Winograd cannot serve ``geo``, or None when it can (3x3 kernel, stride 1)."""
    problems = []
    if (geo.kh, geo.kw) != (3, 3):
        problems.append(f"kernel size ({geo.kh}, {geo.kw}) is not (3, 3)")
    if (geo.stride_h, geo.stride_w) != (1, 1):
        problems.append(f"stride ({geo.stride_h}, {geo.stride_w}) is not (1, 1)")
    return ", ".join(problems) or None


def _gemm_efficiency(rows: float, inner: float) -> float:
    """Fraction of the peak GEMM rate reached with ``rows`` output rows and an ``inner`` reduction length."""
    return (rows / (rows + GEMM_HALF_SIZE)) * (inner / (inner + GEMM_HALF_SIZE))


class _Work(NamedTuple):
    """The quantities every candidate's estimate is built from."""

    flops: float  # direct-convolution flops of the pass
    io_bytes: float  # input and output read/written once
    rows: int  # GEMM rows: output channels (forward, grad_weight) or input taps (grad_input)
    inner: int  # GEMM reduction length
    itemsize: int
    threads: int


def _direct(geo: ConvGeometry, work: _Work, pass_name: str) -> Estimate:
    c_g, k_g = geo.c // geo.groups, geo.k // geo.groups
    plane = geo.oh * geo.ow
    weight_bytes = work.itemsize * k_g * c_g * geo.kh * geo.kw
    gain = DIRECT_GRAD_WEIGHT_GAIN if pass_name == "grad_weight" else 1.0
    plane_share = plane / (plane + DIRECT_HALF_PLANE)
    rate = DIRECT_RATE * gain * work.threads * plane_share * min(1.0, DIRECT_WEIGHT_CACHE / weight_bytes)
    seconds = max(work.flops / rate, work.io_bytes / (STREAM_RATE * work.threads)) + CALL_OVERHEAD
    # Each thread keeps its group's input planes zero-padded, and one output-plane row buffer per channel.
    padded_plane = (geo.h + 2 * geo.pad_h + geo.stride_h) * (geo.w + 2 * geo.pad_w + geo.stride_w)
    workspace = work.itemsize * work.threads * (c_g * padded_plane + k_g * plane)
    return Estimate("direct", "direct", {}, work.flops, workspace, seconds)


def _im2col(geo: ConvGeometry, work: _Work, pass_name: str) -> Estimate:
    taps = geo.kh * geo.kw
    cols_bytes = work.itemsize * geo.c * taps * geo.n * geo.oh * geo.ow
    skip_cols = taps == 1 and (geo.stride_h, geo.stride_w, geo.pad_h, geo.pad_w) == (1, 1, 0, 0)
    im2col = driver("im2col")
    block_rows = 0 if skip_cols else im2col.fused_block_rows(geo, work.itemsize, work.threads, pass_name)
    if block_rows:  # lowered block by block in cache; the register tile's last column sliver is part-filled
        pixels = block_rows * geo.ow
        nr = tile_columns(work.itemsize)
        filled = pixels / (-(-pixels // nr) * nr)
        streamed = work.io_bytes + 2 * cols_bytes * CACHED_FRACTION
        workspace = work.threads * (geo.c // geo.groups * taps + 1) * pixels * work.itemsize
    else:
        filled = 1.0
        streamed = work.io_bytes + (0 if skip_cols else 2 * cols_bytes)
        workspace = 0 if skip_cols else min(cols_bytes, im2col.CHUNK_BYTES)
    seconds = (
        work.flops / (GEMM_RATE * work.threads * filled * _gemm_efficiency(work.rows, work.inner))
        + streamed / (STREAM_RATE * work.threads)
        + CALL_OVERHEAD * geo.groups
    )
    return Estimate("im2col", "im2col", {}, work.flops, workspace, seconds)


def _winograd(geo: ConvGeometry, work: _Work, pass_name: str, tile: int) -> Estimate:
    c_g = geo.c // geo.groups
    alpha = tile + 2
    tiles = geo.n * -(-geo.oh // tile) * -(-geo.ow // tile)
    flops = 2.0 * tiles * alpha * alpha * geo.k * c_g
    transformed = work.itemsize * alpha * alpha * tiles * (geo.c + geo.k)
    weights = work.itemsize * alpha * alpha * geo.k * c_g
    winograd = driver("winograd")
    chunk_tiles, blocks = winograd.product_blocks(geo, pass_name, tile, work.itemsize)
    # In channel blocks forward and grad_input make each block's transformed weights from the 3x3 kernels
    # and use them while they are in cache; grad_weight's blocks of dU, written by one product and read by
    # the next, still go through memory (resnet7's F(4x4) grad_weight is the slower tile there).
    in_cache = blocks > 1 and pass_name != "grad_weight"
    weights_streamed = 2 * weights * (CACHED_FRACTION if in_cache else 1.0)
    if pass_name == "grad_weight":  # (c x tiles) @ (tiles x k) per chunk
        gemm_rows, inner = c_g, chunk_tiles
    elif pass_name == "grad_input":  # products make input channels from output channels
        gemm_rows, inner = c_g, geo.k // geo.groups
    else:
        gemm_rows, inner = geo.k // geo.groups, c_g
    seconds = (
        flops / (GEMM_RATE * work.threads * _gemm_efficiency(gemm_rows, inner))
        + (work.io_bytes + 2 * transformed + weights_streamed) / (STREAM_RATE * work.threads)
        + CALL_OVERHEAD * geo.groups * blocks
    )
    workspace = min(transformed, winograd._CHUNK_BYTES)
    return Estimate(f"winograd F({tile}x{tile},3x3)", "winograd", {"tile": tile}, flops, workspace, seconds)


def _estimates(pass_name: str, geo: ConvGeometry, itemsize: int, threads: int) -> list[Estimate]:
    """Cost estimates of every candidate able to serve ``geo`` for ``pass_name``."""
    c_g, k_g = geo.c // geo.groups, geo.k // geo.groups
    taps = geo.kh * geo.kw
    pixels = geo.n * geo.oh * geo.ow
    rows, inner = (c_g * taps, k_g) if pass_name == "grad_input" else (k_g, c_g * taps)
    work = _Work(
        2.0 * pixels * geo.k * c_g * taps,
        itemsize * (geo.n * geo.c * geo.h * geo.w + pixels * geo.k),
        rows,
        inner,
        itemsize,
        threads,
    )
    estimates = [_direct(geo, work, pass_name), _im2col(geo, work, pass_name)]
    if winograd_unsupported(geo) is None:
        estimates += [_winograd(geo, work, pass_name, tile) for tile in WINOGRAD_TILES]
    return estimates


def choose(pass_name: str, geo: ConvGeometry, dtype: np.dtype, requested: str) -> Decision:
    """The algorithm for one pass: ``requested`` if it can serve ``geo``, else the cheapest estimate."""
    if requested != "auto" and requested not in ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto' or one of {ALGORITHMS}, got {requested!r}")
    if requested == "winograd":
        why_not = winograd_unsupported(geo)
        if why_not:
            raise ValueError(f"algorithm='winograd' serves 3x3 kernels with stride 1: {why_not}")
    return _decide(pass_name, geo, np.dtype(dtype).itemsize, requested, get_num_threads())


@functools.lru_cache(maxsize=1024)
def _decide(pass_name: str, geo: ConvGeometry, itemsize: int, requested: str, threads: int) -> Decision:
    """`choose` after validation; cached, since a training loop asks the same question every step."""
    estimates = tuple(_estimates(pass_name, geo, itemsize, threads))
    pool = estimates if requested == "auto" else tuple(e for e in estimates if e.algorithm == requested)
    rule = "cheapest estimate" if requested == "auto" else "requested"
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
                lines.append(
                    f"  {mark} {e.name:<24} {e.flops / 1e9:8.3f} GFLOP  workspace "
                    f"{e.workspace_bytes / 2**20:8.2f} MiB  est. {e.seconds * 1e3:9.3f} ms"
                )
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
