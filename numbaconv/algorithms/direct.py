"""Direct convolution driver: sizes the per-thread scratch and hands plain arrays and ints to `kernels.direct`.

Serves every geometry; it is the algorithm of choice for depthwise, grouped and few-channel layers. The
engine guarantees C-contiguous inputs of one float dtype and a validated `ConvGeometry`, so nothing is
checked here. See `numbaconv.kernels.direct` for the padded/flat scratch layout.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from numbaconv.algorithms import flipped_weight
from numbaconv.geometry import ConvGeometry
from numbaconv.kernels import direct as kernels
from numbaconv.runtime import workspace


class _Layout(NamedTuple):
    """Scratch plane sizes (see `numbaconv.kernels.direct`): a padded input plane is ``phases`` phase planes
    of hq x wq, an output-shaped plane oh x wq."""

    hq: int
    wq: int
    phases: int

    @property
    def plane_in(self) -> int:
        return self.phases * self.hq * self.wq


def padded_layout(geo: ConvGeometry) -> _Layout:
    """Phase planes hold every input pixel an output reads (``oh + (kh-1)*dil_h // stride_h`` rows, likewise
    columns) plus one spare zero row for the last row's garbage reads in flat mode."""
    hq = geo.oh + (geo.kh - 1) * geo.dil_h // geo.stride_h + 1
    wq = geo.ow + (geo.kw - 1) * geo.dil_w // geo.stride_w
    return _Layout(hq, wq, geo.stride_h * geo.stride_w)


def conv_args(geo: ConvGeometry) -> tuple[int, ...]:
    """The ``conv`` tuple every direct kernel takes."""
    return (geo.stride_h, geo.stride_w, geo.pad_h, geo.pad_w, geo.dil_h, geo.dil_w, geo.groups)


def _chunks(units: int) -> int:
    """Static slices of ``units`` work items: one per thread, each owning its scratch."""
    return max(1, min(units, numba.get_num_threads()))


def _same_width(geo: ConvGeometry) -> bool:
    """Whether `kernels.forward_same_width` serves the forward: stride 1, output rows as wide as the input's,
    and its scalar edge columns (per output row: padding columns x taps x input channels) cheaper than the
    padded path's scalar copy-out (ow per row). One thread: depthwise 1.41 -> 1.24 ms; 3 -> 16 channels on
    32x32 maps 1.04 -> 1.32 ms and 8x8 maps 0.08 -> 0.10 ms, which the rule leaves on the padded path."""
    edge_work = (geo.kw - 1) * geo.dil_w * (geo.c // geo.groups) * geo.kh * geo.kw
    return geo.stride_h == geo.stride_w == 1 and geo.ow == geo.w and edge_work < geo.ow


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry) -> np.ndarray:
    """Convolution output (n, k, oh, ow) of x (n, c, h, w) with weight (k, c // groups, kh, kw) and bias (k,)
    or None."""
    out = np.empty((geo.n, geo.k, geo.oh, geo.ow), dtype=x.dtype)
    if geo.n == 0:
        return out
    if bias is None:
        bias = np.zeros(geo.k, dtype=x.dtype)
    chunks = _chunks(geo.n * geo.k)
    if _same_width(geo):
        kernels.forward_same_width(x, weight, bias, out, chunks, conv_args(geo))
        return out
    lay = padded_layout(geo)
    cpg = geo.c // geo.groups
    xpad = workspace("direct.xpad", (chunks * cpg * lay.plane_in,), x.dtype)
    acc = workspace("direct.acc", (chunks * geo.oh * lay.wq,), x.dtype)
    kernels.forward(x, weight, bias, out, xpad, acc, (chunks, lay.hq, lay.wq), conv_args(geo))
    return out


def grad_input(grad_out: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dL/dx (n, c, h, w) from grad_out (n, k, oh, ow) and weight (k, c // groups, kh, kw)."""
    if geo.n == 0:
        return np.empty((geo.n, geo.c, geo.h, geo.w), dtype=grad_out.dtype)
    # The gather form and the scatter's flat mode both multiply weights by zeros that stand for no output:
    # harmless unless a weight is NaN/Inf (0 * inf would reach pixels PyTorch leaves finite); then the
    # scatter walks rows.
    finite = bool(np.isfinite(weight).all())
    if geo.stride_h == 1 and geo.stride_w == 1 and finite:
        return _grad_input_gather(grad_out, weight, geo)
    dx = np.empty((geo.n, geo.c, geo.h, geo.w), dtype=grad_out.dtype)
    lay = padded_layout(geo)
    chunks = _chunks(geo.n * geo.c)
    kpg = geo.k // geo.groups
    gwide = workspace("direct.gwide", (chunks * kpg * geo.oh * lay.wq,), grad_out.dtype)
    dxpad = workspace("direct.dxpad", (chunks * lay.plane_in,), grad_out.dtype)
    kernels.grad_input_scatter(grad_out, weight, dx, gwide, dxpad, (chunks, lay.hq, lay.wq), finite, conv_args(geo))
    return dx


def _grad_input_gather(grad_out: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Stride-1 dL/dx as a forward convolution: grad_out (n, k, oh, ow) correlated with the weight turned
    around -- (c, k // groups, kh, kw), in and out channels swapped within each group, taps flipped -- and
    padded by ``(kernel - 1) * dilation - pad`` (negative: cropped)."""
    flipped = flipped_weight(weight, geo.groups)
    back = geo._replace(
        c=geo.k,
        h=geo.oh,
        w=geo.ow,
        k=geo.c,
        oh=geo.h,
        ow=geo.w,
        pad_h=(geo.kh - 1) * geo.dil_h - geo.pad_h,
        pad_w=(geo.kw - 1) * geo.dil_w - geo.pad_w,
    )
    return forward(grad_out, flipped, None, back)


def grad_weight(x: np.ndarray, grad_out: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dL/dweight (k, c // groups, kh, kw) from x (n, c, h, w) and grad_out (n, k, oh, ow); zeros when n == 0."""
    cpg, kpg = geo.c // geo.groups, geo.k // geo.groups
    if geo.n == 0:
        return np.zeros((geo.k, cpg, geo.kh, geo.kw), dtype=x.dtype)
    lay = padded_layout(geo)
    pairs = geo.n * geo.groups
    kblocks = min(kpg, -(-_chunks(pairs * kpg) // pairs))  # split groups only when pairs < threads
    chunks = _chunks(pairs * kblocks)
    partial = workspace("direct.partial", (chunks, geo.k, cpg, geo.kh, geo.kw), x.dtype)
    xpad = workspace("direct.xpad", (chunks * cpg * lay.plane_in,), x.dtype)
    gwide = workspace("direct.gwide", (chunks * kpg * geo.oh * lay.wq,), x.dtype)
    kernels.grad_weight(x, grad_out, partial, xpad, gwide, (chunks, lay.hq, lay.wq), kblocks, conv_args(geo))
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf from NaN/Inf data: silent, like the kernels
        return partial.sum(axis=0)
