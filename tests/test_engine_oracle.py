"""Every algorithm x every option, forward and both gradients, against the float64 oracle.

Cases are tiny (Numba compiles once per dtype and layout, so shape variety is cheap) and use odd sizes,
so tiles, vector loops and chunks all get ragged edges. Winograd runs only where it can (3x3, stride 1,
dilation 1), but there with every padding, padding mode and grouping. The Winograd driver is also called
directly with both tiles (F(2x2) and F(4x4)) on geometries with asymmetric implicit zero padding.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import oracle
import pytest
from conftest import assert_close

import numbaconv
from numbaconv.geometry import ConvGeometry
from numbaconv.kernels import direct as direct_kernels

PASSES = ("forward", "grad_input", "grad_weight")
DTYPES = (np.float32, np.float64)
MODES = ("zeros", "reflect", "replicate", "circular")


class Case(NamedTuple):
    """One convolution: shapes and PyTorch-style options."""

    id: str
    x_shape: tuple
    w_shape: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    padding_mode: str = "zeros"
    bias: bool = True

    @property
    def options(self) -> dict:
        return dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
        )

    @property
    def winograd_serves(self) -> bool:
        return self.w_shape[2:] == (3, 3) and oracle.pair(self.stride) == (1, 1)

    @property
    def algorithms(self) -> tuple:
        return ("direct", "im2col", "winograd", "auto") if self.winograd_serves else ("direct", "im2col", "auto")


# Kernels Winograd cannot serve: 1x1, even, rectangular, large; strides; dilations.
GENERAL = [
    Case("k1x1", (2, 3, 5, 7), (4, 3, 1, 1)),
    Case("k1x1-s2", (2, 3, 7, 6), (4, 3, 1, 1), stride=2, bias=False),
    Case("k1x1-p1", (1, 3, 4, 5), (2, 3, 1, 1), padding=1),
    Case("k1x1-s(1,2)-p(0,1)", (2, 2, 5, 7), (3, 2, 1, 1), stride=(1, 2), padding=(0, 1)),
    Case("k5x5-p2", (2, 2, 9, 8), (3, 2, 5, 5), padding=2),
    Case("k2x4-p(1,2)", (1, 3, 6, 9), (2, 3, 2, 4), padding=(1, 2), bias=False),
    Case("k3x1-s(2,1)", (2, 2, 9, 5), (3, 2, 3, 1), stride=(2, 1)),
    Case("k1x3-s(1,3)-p(0,2)", (1, 2, 4, 9), (2, 2, 1, 3), stride=(1, 3), padding=(0, 2)),
    Case("k3-s2-p1", (2, 3, 9, 9), (4, 3, 3, 3), stride=2, padding=1),
    Case("k3-s3-p2", (2, 2, 8, 7), (3, 2, 3, 3), stride=3, padding=2, bias=False),
    Case("k3-s(2,3)-p(1,0)", (1, 3, 9, 8), (2, 3, 3, 3), stride=(2, 3), padding=(1, 0)),
    Case("k3-d2", (1, 2, 9, 8), (3, 2, 3, 3), dilation=2),
    Case("k3-d(2,1)-p(2,1)", (2, 2, 7, 6), (3, 2, 3, 3), dilation=(2, 1), padding=(2, 1)),
    Case("k3-d3-s2-p3", (1, 2, 9, 9), (2, 2, 3, 3), dilation=3, stride=2, padding=3),
    Case("k2-d3-same", (1, 2, 7, 8), (3, 2, 2, 2), dilation=3, padding="same"),  # total 3: top 1, bottom 2
    Case("k2-same", (2, 3, 5, 6), (4, 3, 2, 2), padding="same"),  # total 1: all on bottom/right
    Case("k4x3-same", (1, 2, 7, 5), (3, 2, 4, 3), padding="same", bias=False),
    Case("k3-d2-same", (1, 2, 7, 7), (2, 2, 3, 3), dilation=2, padding="same"),
    Case("k2x3-d(1,2)-same", (2, 2, 6, 9), (2, 2, 2, 3), dilation=(1, 2), padding="same"),
    Case("k4-d(3,2)-same", (1, 1, 9, 8), (2, 1, 4, 4), dilation=(3, 2), padding="same"),  # totals 9 and 6
    Case("k5-valid", (1, 2, 7, 9), (2, 2, 5, 5), padding="valid"),
    Case("k7-s2-p3", (1, 3, 9, 9), (4, 3, 7, 7), stride=2, padding=3),
    Case("k5-full-window", (1, 2, 5, 5), (3, 2, 5, 5)),  # a 1x1 output
    Case("k4-s3-p1-ragged", (2, 1, 9, 8), (2, 1, 4, 4), stride=3, padding=1),  # stride leaves input unread
    Case("g2-k2-s2", (2, 4, 7, 7), (6, 2, 2, 2), stride=2, groups=2),
    Case("g3-k1x1", (1, 6, 5, 4), (3, 2, 1, 1), groups=3),
    Case("depthwise-k5-p2", (1, 4, 9, 9), (4, 1, 5, 5), padding=2, groups=4),
    Case("depthwise-x2-s2-p1", (2, 3, 8, 7), (6, 1, 3, 3), stride=2, padding=1, groups=3),
    Case("g2-d2-p2", (1, 4, 8, 9), (4, 2, 3, 3), dilation=2, padding=2, groups=2, bias=False),
    Case("unbatched-k2-s2", (3, 7, 6), (4, 3, 2, 2), stride=2),
    Case("unbatched-k1x1", (2, 3, 5), (3, 2, 1, 1)),
    Case("n0-k2-s2", (0, 2, 6, 5), (3, 2, 2, 2), stride=2),
]
for _mode in MODES[1:]:
    GENERAL += [
        Case(f"k5-p2-{_mode}", (1, 2, 6, 7), (3, 2, 5, 5), padding=2, padding_mode=_mode),
        Case(f"k2-same-{_mode}", (2, 2, 5, 6), (3, 2, 2, 2), padding="same", padding_mode=_mode),
        Case(
            f"k4-d(1,2)-same-{_mode}",
            (1, 2, 7, 8),
            (2, 2, 4, 4),
            dilation=(1, 2),
            padding="same",
            padding_mode=_mode,
            bias=False,
        ),
        Case(f"k3-s2-p(1,2)-{_mode}", (2, 3, 7, 8), (2, 3, 3, 3), stride=2, padding=(1, 2), padding_mode=_mode),
        Case(f"dw-d2-p2-{_mode}", (1, 3, 6, 5), (3, 1, 3, 3), dilation=2, padding=2, groups=3, padding_mode=_mode),
        Case(f"unbatched-k2x3-p1-{_mode}", (2, 5, 4), (3, 2, 2, 3), padding=1, padding_mode=_mode),
        Case(f"n0-k2-p1-{_mode}", (0, 2, 4, 4), (2, 2, 2, 2), padding=1, padding_mode=_mode),
    ]

# 3x3, stride 1, dilation 1: every algorithm including Winograd.
WINOGRAD_SHAPES = [
    Case("3x3-p0", (2, 3, 7, 9), (4, 3, 3, 3)),
    Case("3x3-p1-aligned", (1, 4, 8, 8), (5, 4, 3, 3), padding=1),
    Case("3x3-p1-odd", (2, 3, 9, 7), (2, 3, 3, 3), padding=1, bias=False),
    Case("3x3-p2", (2, 2, 5, 6), (3, 2, 3, 3), padding=2),
    Case("3x3-p(0,1)", (1, 2, 6, 5), (3, 2, 3, 3), padding=(0, 1)),
    Case("3x3-p(2,0)", (1, 3, 5, 9), (2, 3, 3, 3), padding=(2, 0)),
    Case("3x3-p3", (2, 2, 4, 5), (3, 2, 3, 3), padding=3),  # output larger than the input
    Case("3x3-p(4,3)-g2", (1, 4, 3, 6), (2, 2, 3, 3), padding=(4, 3), groups=2),
    Case("3x3-same", (2, 2, 7, 6), (3, 2, 3, 3), padding="same"),
    Case("3x3-valid", (1, 3, 6, 7), (2, 3, 3, 3), padding="valid"),
    Case("3x3-1x1-output", (1, 1, 3, 3), (1, 1, 3, 3)),
    Case("3x3-smaller-than-tile", (2, 2, 4, 5), (3, 2, 3, 3)),  # 2x3 output
    Case("3x3-one-row", (1, 2, 3, 9), (2, 2, 3, 3)),
    Case("3x3-g2-p1", (2, 4, 6, 7), (4, 2, 3, 3), padding=1, groups=2),
    Case("3x3-d2-p2", (2, 3, 11, 10), (4, 3, 3, 3), dilation=2, padding=2),
    Case("3x3-d(3,2)-p(1,4)", (1, 2, 10, 9), (3, 2, 3, 3), dilation=(3, 2), padding=(1, 4)),
    Case("3x3-d4-p(4,2)-tiny", (2, 2, 3, 6), (2, 2, 3, 3), dilation=4, padding=(4, 2)),  # input phases unread
    Case("3x3-g2-k6-p(1,0)", (1, 4, 5, 5), (6, 2, 3, 3), padding=(1, 0), groups=2, bias=False),
    Case("3x3-depthwise-p1", (2, 4, 7, 6), (4, 1, 3, 3), padding=1, groups=4),
    Case("3x3-depthwise-x3-p1", (1, 2, 6, 6), (6, 1, 3, 3), padding=1, groups=2),
    Case("3x3-unbatched-p1", (3, 5, 6), (2, 3, 3, 3), padding=1),
    Case("3x3-n0-p1", (0, 3, 5, 5), (2, 3, 3, 3), padding=1),
]
for _mode in MODES[1:]:
    WINOGRAD_SHAPES += [
        Case(f"3x3-p1-{_mode}", (2, 3, 7, 6), (4, 3, 3, 3), padding=1, padding_mode=_mode),
        Case(f"3x3-same-g2-{_mode}", (1, 4, 5, 7), (2, 2, 3, 3), padding="same", groups=2, padding_mode=_mode),
        Case(
            f"3x3-p(2,1)-dw-{_mode}",
            (1, 3, 6, 5),
            (3, 1, 3, 3),
            padding=(2, 1),
            groups=3,
            padding_mode=_mode,
            bias=False,
        ),
        Case(f"3x3-unbatched-p1-{_mode}", (2, 4, 5), (3, 2, 3, 3), padding=1, padding_mode=_mode),
        Case(f"3x3-n0-p1-{_mode}", (0, 2, 4, 4), (2, 2, 3, 3), padding=1, padding_mode=_mode),
    ]
# PyTorch's padding limits, at the limit: reflect pad = size - 1, circular pad = size, replicate beyond size.
WINOGRAD_SHAPES += [
    Case("3x3-reflect-pad-size-1", (1, 2, 3, 4), (2, 2, 3, 3), padding=(2, 3), padding_mode="reflect"),
    Case("3x3-circular-pad-size", (1, 2, 3, 4), (2, 2, 3, 3), padding=(3, 4), padding_mode="circular"),
    Case("3x3-replicate-pad-beyond", (1, 2, 2, 3), (2, 2, 3, 3), padding=4, padding_mode="replicate"),
]

# A few layers of realistic size: enough output pixels per sample for im2col's per-sample products and
# many Winograd tiles per image (still milliseconds each).
MEDIUM = [
    Case("medium-3x3-p1", (2, 16, 23, 21), (24, 16, 3, 3), padding=1),
    Case("medium-3x3-depthwise", (2, 24, 19, 20), (24, 1, 3, 3), padding=1, groups=24),
    Case("medium-3x3-reflect-g2", (1, 16, 18, 17), (16, 8, 3, 3), padding=1, groups=2, padding_mode="reflect"),
    Case("medium-stem-k7-s2-p3", (1, 3, 33, 30), (8, 3, 7, 7), stride=2, padding=3),
    Case("medium-k3-s2-p1-g2", (2, 8, 19, 18), (12, 4, 3, 3), stride=2, padding=1, groups=2),  # fused, phased
    Case("medium-dilated-d2-p2", (1, 12, 21, 22), (12, 12, 3, 3), dilation=2, padding=2),
    Case("medium-1x1", (2, 32, 17, 16), (48, 32, 1, 1)),
    # rows of whole register tiles, forward from padded planes; 289 rows: two reduction blocks of the tile
    Case("medium-3x3-c32-w32", (1, 32, 5, 32), (8, 32, 3, 3), padding=1),
]

# Rows wide enough for the direct forward's unpadded kernel (`numbaconv.kernels.direct.forward_same_width`):
# stride 1, output as wide as the input; asymmetric 'same', single taps after the triples, rows without
# valid taps, and more than one input channel per group.
SAME_WIDTH = [
    Case("same-width-dw-p1", (2, 3, 5, 23), (3, 1, 3, 3), padding=1, groups=3),
    Case("same-width-dw-k2-d3-same", (1, 2, 6, 21), (2, 1, 2, 2), dilation=3, padding="same", groups=2),
    Case("same-width-dw-x2-k1x5-d2", (2, 2, 3, 43), (4, 1, 1, 5), dilation=2, padding="same", groups=2, bias=False),
    Case("same-width-dw-p(3,1)", (1, 2, 4, 20), (2, 1, 3, 3), padding=(3, 1), groups=2),
    Case("same-width-dw-p(0,1)", (1, 3, 7, 20), (3, 1, 3, 3), padding=(0, 1), groups=3),
    Case("same-width-g2-p1", (1, 4, 5, 40), (4, 2, 3, 3), padding=1, groups=2),
]

CASES = GENERAL + WINOGRAD_SHAPES + MEDIUM + SAME_WIDTH


def _seed(text: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text))


class Data(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    grad_output: np.ndarray
    expected: dict


@functools.cache
def case_data(case: Case) -> Data:
    """Random float32-representable inputs (so both dtypes see the same numbers) and the oracle's results."""
    rng = np.random.default_rng(_seed(case.id))

    def draw(shape):
        return rng.standard_normal(shape).astype(np.float32).astype(np.float64)

    x, weight = draw(case.x_shape), draw(case.w_shape)
    bias = draw(case.w_shape[0]) if case.bias else None
    out_shape = oracle.output_shape(case.x_shape, case.w_shape, case.stride, case.padding, case.dilation)
    grad_output = draw(out_shape)
    opts = case.options
    expected = {
        "forward": oracle.conv2d(x, weight, bias, **opts),
        "grad_input": oracle.conv2d_grad_input(x.shape, weight, grad_output, **opts),
        "grad_weight": oracle.conv2d_grad_weight(x, weight.shape, grad_output, **opts),
    }
    return Data(x, weight, bias, grad_output, expected)


def run_engine(pass_name, x, weight, bias, grad_output, options, algorithm):
    """One pass of the public API."""
    if pass_name == "forward":
        return numbaconv.conv2d(x, weight, bias, algorithm=algorithm, **options)
    if pass_name == "grad_input":
        return numbaconv.conv2d_grad_input(tuple(x.shape), weight, grad_output, algorithm=algorithm, **options)
    return numbaconv.conv2d_grad_weight(x, tuple(weight.shape), grad_output, algorithm=algorithm, **options)


def _case_params(cases):
    return [pytest.param(c, a, id=f"{c.id}-{a}") for c in cases for a in c.algorithms]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case, algorithm", _case_params(CASES))
@pytest.mark.parametrize("pass_name", PASSES)
def test_matches_oracle(pass_name, case, algorithm, dtype):
    data = case_data(case)
    cast = [None if a is None else a.astype(dtype) for a in (data.x, data.weight, data.bias, data.grad_output)]
    actual = run_engine(pass_name, *cast, case.options, algorithm)
    assert_close(actual, data.expected[pass_name], dtype, algorithm)


@pytest.mark.parametrize("case", SAME_WIDTH, ids=lambda c: c.id)
def test_same_width_cases_take_the_unpadded_kernel(case, monkeypatch):
    calls = []
    kernel = direct_kernels.forward_same_width
    monkeypatch.setattr(direct_kernels, "forward_same_width", lambda *args: calls.append(1) or kernel(*args))
    data = case_data(case)
    # grad_input runs the forward kernel on grad_output; its rule sees the weight's output channels per group.
    passes = ("forward", "grad_input") if case.w_shape[0] == case.groups else ("forward",)
    for pass_name in passes:
        run_engine(pass_name, data.x, data.weight, data.bias, data.grad_output, case.options, "direct")
    assert len(calls) == len(passes)


# Memory layouts the user may hand in; the engine must read them correctly (it may copy them).
def _fortran(a):
    return np.asfortranarray(a)


def _strided(a):
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _reversed(a):
    flipped = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
    return flipped[tuple(slice(None, None, -1) for _ in a.shape)]


def _channels_last(a):
    if a.ndim < 3:
        return _strided(a)
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1)


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "fortran": _fortran,
    "strided": _strided,
    "reversed": _reversed,
    "channels_last": _channels_last,
    "readonly": _readonly,
}
LAYOUT_CASES = [
    Case("layout-g2-s2-p(1,2)", (2, 4, 7, 6), (4, 2, 2, 3), stride=2, padding=(1, 2), groups=2),
    Case("layout-3x3-p1-reflect", (2, 3, 6, 7), (4, 3, 3, 3), padding=1, padding_mode="reflect"),
]


# Read-only arrays are a separate Numba type (one more compilation of each kernel): float64 only.
LAYOUT_DTYPES = [
    pytest.param(layout, dtype, id=f"{layout}-{np.dtype(dtype).name}")
    for layout in LAYOUTS
    for dtype in DTYPES
    if (layout, dtype) != ("readonly", np.float32)
]


@pytest.mark.parametrize("layout, dtype", LAYOUT_DTYPES)
@pytest.mark.parametrize("case, algorithm", _case_params(LAYOUT_CASES))
@pytest.mark.parametrize("pass_name", PASSES)
def test_memory_layouts(pass_name, case, algorithm, layout, dtype):
    """x, weight, bias and grad_output all in a non-C-contiguous (or read-only) layout at once."""
    data = case_data(case)
    arrays = [
        None if a is None else LAYOUTS[layout](a.astype(dtype))
        for a in (data.x, data.weight, data.bias, data.grad_output)
    ]
    assert all(a is None or a.ndim == 1 or layout == "readonly" or not a.flags.c_contiguous for a in arrays)
    x, weight, bias, grad_output = arrays
    snapshot = [None if a is None else a.copy() for a in arrays]
    actual = run_engine(pass_name, x, weight, bias, grad_output, case.options, algorithm)
    assert_close(actual, data.expected[pass_name], dtype, algorithm)
    for before, after in zip(snapshot, arrays, strict=True):
        assert before is None or np.array_equal(before, after), "the engine modified an input array"


def test_inputs_not_modified_and_results_are_fresh():
    """Results are new arrays the user owns; the inputs are left as they were."""
    case = WINOGRAD_SHAPES[0]
    data = case_data(case)
    for algorithm in case.algorithms:
        originals = (data.x, data.weight, data.bias, data.grad_output)
        x, weight, bias, grad_output = (a.copy() for a in originals)
        outs = [run_engine(p, x, weight, bias, grad_output, case.options, algorithm) for p in PASSES]
        for original, now in zip(originals, (x, weight, bias, grad_output), strict=True):
            assert np.array_equal(original, now), algorithm
        again = [run_engine(p, x, weight, bias, grad_output, case.options, algorithm) for p in PASSES]
        for first, second, p in zip(outs, again, PASSES, strict=True):
            assert not np.shares_memory(first, second), f"{algorithm} {p} returned a reused buffer"
            assert_close(first, data.expected[p], np.float64, algorithm)


@pytest.mark.parametrize("algorithm", numbaconv.ALGORITHMS)
def test_dead_channels_get_exactly_zero_weight_gradient(algorithm):
    """A zero output-gradient channel (a dead ReLU unit) or a zero input channel gives an exactly zero weight
    gradient, as in PyTorch, so a normalising optimizer (Adam) leaves those weights where they are."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 9, 11)).astype(np.float32)
    grad_output = rng.standard_normal((3, 5, 9, 11)).astype(np.float32)
    x[:, 1] = 0
    grad_output[:, 2] = 0
    grad = numbaconv.conv2d_grad_weight(x, (5, 4, 3, 3), grad_output, padding=1, algorithm=algorithm)
    live = np.ones(grad.shape, dtype=bool)
    live[:, 1] = live[2] = False
    assert np.all(grad[~live] == 0)
    assert np.all(grad[live] != 0)


# ---- The drivers called directly, with a ConvGeometry: both Winograd tiles, asymmetric zero padding ----


class DriverCase(NamedTuple):
    id: str
    x_shape: tuple  # (n, c, h, w)
    w_shape: tuple  # (k, c // groups, 3, 3)
    pads: tuple  # ((top, bottom), (left, right)), zeros
    groups: int = 1


DRIVER_CASES = [
    DriverCase("p0", (2, 3, 7, 9), (4, 3, 3, 3), ((0, 0), (0, 0))),
    DriverCase("p1", (1, 2, 8, 8), (3, 2, 3, 3), ((1, 1), (1, 1))),
    DriverCase("p(1,2)x(0,1)", (2, 2, 6, 7), (3, 2, 3, 3), ((1, 2), (0, 1))),
    DriverCase("p(2,0)x(1,2)", (1, 3, 5, 9), (2, 3, 3, 3), ((2, 0), (1, 2))),
    DriverCase("p(0,1)x(2,2)-g2", (2, 4, 9, 5), (6, 2, 3, 3), ((0, 1), (2, 2)), groups=2),
    DriverCase("p1-depthwise", (1, 4, 7, 7), (4, 1, 3, 3), ((1, 1), (1, 1)), groups=4),
    DriverCase("1x1-output", (1, 2, 3, 3), (2, 2, 3, 3), ((0, 0), (0, 0))),
    DriverCase("p(0,2)-3x3-input", (1, 1, 3, 3), (2, 1, 3, 3), ((0, 2), (2, 0))),
    DriverCase("p2-large-tiles", (1, 3, 13, 11), (5, 3, 3, 3), ((2, 2), (2, 2))),
    DriverCase("p(3,4)x(4,0)", (2, 2, 5, 4), (3, 2, 3, 3), ((3, 4), (4, 0))),
    DriverCase("n0", (0, 2, 5, 5), (3, 2, 3, 3), ((1, 1), (1, 1))),
]

DRIVERS = {
    "direct": ("direct", {}),
    "im2col": ("im2col", {}),
    "winograd-F2": ("winograd", {"tile": 2}),
    "winograd-F4": ("winograd", {"tile": 4}),
}


def _geometry(case: DriverCase) -> ConvGeometry:
    n, c, h, w = case.x_shape
    k, _, kh, kw = case.w_shape
    (top, bottom), (left, right) = case.pads
    oh = oracle.output_size(h, top, bottom, kh, 1, 1)
    ow = oracle.output_size(w, left, right, kw, 1, 1)
    return ConvGeometry(
        n=n,
        c=c,
        h=h,
        w=w,
        k=k,
        kh=kh,
        kw=kw,
        oh=oh,
        ow=ow,
        stride_h=1,
        stride_w=1,
        pad_h=top,
        pad_w=left,
        dil_h=1,
        dil_w=1,
        groups=case.groups,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("case", DRIVER_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("pass_name", PASSES)
def test_driver_with_geometry(pass_name, case, driver, dtype):
    """algorithms.<name>.forward/grad_input/grad_weight on C-contiguous arrays and a ConvGeometry."""
    import importlib

    module_name, options = DRIVERS[driver]
    module = importlib.import_module(f"numbaconv.algorithms.{module_name}")
    geo = _geometry(case)
    rng = np.random.default_rng(_seed(case.id))
    x = rng.standard_normal(case.x_shape).astype(dtype)
    weight = rng.standard_normal(case.w_shape).astype(dtype)
    bias = rng.standard_normal(case.w_shape[0]).astype(dtype)
    grad_output = rng.standard_normal((geo.n, geo.k, geo.oh, geo.ow)).astype(dtype)
    opts = dict(padding=case.pads, groups=case.groups)
    if pass_name == "forward":
        actual = module.forward(x, weight, bias, geo, **options)
        expected = oracle.conv2d(x, weight, bias, **opts)
    elif pass_name == "grad_input":
        actual = module.grad_input(grad_output, weight, geo, **options)
        expected = oracle.conv2d_grad_input(x.shape, weight, grad_output, **opts)
    else:
        actual = module.grad_weight(x, grad_output, geo, **options)
        expected = oracle.conv2d_grad_weight(x, weight.shape, grad_output, **opts)
    assert_close(actual, expected, dtype, module_name)


# ---- explain and the algorithm set ----


def test_algorithms_tuple():
    assert numbaconv.ALGORITHMS == ("direct", "im2col", "winograd")


@pytest.mark.parametrize("case", [c for c in CASES if c.x_shape[0] != 0][::3], ids=lambda c: c.id)
def test_explain_picks_a_serving_algorithm(case):
    """explain names an algorithm per pass; Winograd only where it can serve; the text names every pass."""
    report = numbaconv.explain(case.x_shape, case.w_shape, **case.options, dtype="float64")
    text = str(report)
    for pass_name in PASSES:
        chosen = getattr(report, pass_name).algorithm
        assert chosen in numbaconv.ALGORITHMS, (pass_name, chosen)
        assert case.winograd_serves or chosen != "winograd", (pass_name, chosen)
        assert pass_name in text
    assert text == str(numbaconv.explain(case.x_shape, case.w_shape, **case.options, dtype="float64"))


# ---- Paths tiny shapes never reach on their own: several batch chunks, im2col's per-sample products and
# fused blocks ----

CHUNK_CASES = [
    Case("chunk-3x3-p1-g2", (5, 4, 7, 6), (6, 2, 3, 3), padding=1, groups=2),
    Case("chunk-3x3-p1", (3, 4, 7, 6), (5, 4, 3, 3), padding=1),
    Case("chunk-3x3-p2-d2", (2, 3, 9, 8), (5, 3, 3, 3), padding=2, dilation=2),
    Case("chunk-3x3-p1-d(2,3)-g2", (3, 4, 9, 10), (6, 2, 3, 3), padding=1, dilation=(2, 3), groups=2),
    Case("chunk-3x3-same-dw-reflect", (3, 3, 6, 9), (3, 1, 3, 3), padding="same", groups=3, padding_mode="reflect"),
    Case("chunk-k2-s2-p1", (5, 3, 8, 7), (4, 3, 2, 2), stride=2, padding=1),
    Case("chunk-k1x1", (3, 4, 5, 6), (5, 4, 1, 1), bias=False),
]
CHUNKINGS = {
    # im2col: one sample per chunk, two per chunk (uneven last chunk), one product per sample
    "im2col-chunk-1": ("im2col", {"CHUNK_BYTES": "one sample", "FUSED": False}),
    "im2col-chunk-2": ("im2col", {"CHUNK_BYTES": "two samples", "FUSED": False}),
    "im2col-per-sample": ("im2col", {"PER_SAMPLE_MIN_PIXELS": 1, "CHUNK_BYTES": "two samples", "FUSED": False}),
    # im2col fused with its product (where the GEMM has its register tile): whole samples per block, then one
    # output row per block, then whole samples in panels of one column sliver
    # (forward lowering its blocks, not reading padded planes), then forward from padded planes at any width
    "im2col-fused": ("im2col", {"FUSED_MIN_PIXELS": 1, "GATHERED_WASTE": -1}),
    "im2col-fused-rows": ("im2col", {"FUSED_MIN_PIXELS": 1, "BLOCK_BYTES": 1, "GATHERED_WASTE": -1}),
    "im2col-fused-panels": ("im2col", {"FUSED_MIN_PIXELS": 1, "PANEL_BYTES": 1, "GATHERED_WASTE": -1}),
    "im2col-gathered": ("im2col", {"GATHERED_WASTE": 100}),
    # Winograd: one tile row per chunk, so chunks cross sample boundaries and grad_weight accumulates; or one
    # chunk in blocks of one output channel (one group only); or a dilated layer's parts one sample at a time
    "winograd-chunk-1-row": ("winograd", {"_CHUNK_BYTES": 1, "_MIN_CHUNK_TILES": 1}),
    "winograd-channel-blocks": ("winograd", {"_CHUNK_BYTES": 1, "_CHANNEL_STEP_BYTES": 1}),
    "winograd-phase-slices": ("winograd", {"_PARTS_BYTES": 1}),
}


def _im2col_sample_bytes(case: Case, itemsize: int) -> int:
    n, c, h, w = case.x_shape
    k, cg, kh, kw = case.w_shape
    oh, ow = oracle.output_shape(case.x_shape, case.w_shape, case.stride, case.padding, case.dilation)[-2:]
    return (c * kh * kw + k + 1) * oh * ow * itemsize


CHUNK_PARAMS = [
    pytest.param(case, chunking, id=f"{case.id}-{chunking}")
    for case in CHUNK_CASES
    for chunking, (algorithm, _) in CHUNKINGS.items()
    if algorithm != "winograd" or case.winograd_serves
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case, chunking", CHUNK_PARAMS)
@pytest.mark.parametrize("pass_name", PASSES)
def test_chunked_batches(pass_name, case, chunking, dtype, monkeypatch):
    """The drivers' chunk sizes shrunk (module constants) so a tiny batch takes the multi-chunk paths."""
    import importlib

    algorithm, settings = CHUNKINGS[chunking]
    module = importlib.import_module(f"numbaconv.algorithms.{algorithm}")
    sample = _im2col_sample_bytes(case, np.dtype(dtype).itemsize)
    sizes = {"one sample": 1, "two samples": int(2.5 * sample)}
    for name, value in settings.items():
        monkeypatch.setattr(module, name, sizes.get(value, value))
    data = case_data(case)
    cast = [None if a is None else a.astype(dtype) for a in (data.x, data.weight, data.bias, data.grad_output)]
    actual = run_engine(pass_name, *cast, case.options, algorithm)
    assert_close(actual, data.expected[pass_name], dtype, algorithm)


@pytest.mark.parametrize("order", ("C", "F"))
@pytest.mark.parametrize(
    "w_shape, groups", [((7, 5, 3, 3), 1), ((6, 1, 3, 3), 6), ((8, 3, 5, 2), 4), ((6, 4, 1, 1), 2), ((3, 37, 3, 3), 1)]
)
def test_flipped_weight(w_shape, groups, order):
    """The adjoint's weight, element by element: within each group out and in channels swapped, taps rotated
    180 degrees (37 input channels: a ragged block of the kernel's channel blocks)."""
    from numbaconv import runtime
    from numbaconv.algorithms import flipped_weight

    weight = np.asarray(np.random.default_rng(0).standard_normal(w_shape), order=order)
    k, cg, kh, kw = w_shape
    kg = k // groups
    expected = np.empty((groups * cg, kg, kh, kw))
    for g in range(groups):
        for ko in range(kg):
            for ci in range(cg):
                for i in range(kh):
                    for j in range(kw):
                        expected[g * cg + ci, ko, kh - 1 - i, kw - 1 - j] = weight[g * kg + ko, ci, i, j]
    with runtime.parallel_section():
        actual = flipped_weight(weight, groups)
    assert actual.flags.c_contiguous
    np.testing.assert_array_equal(actual, expected)


def test_undilated_winograd_copies_no_parts(monkeypatch):
    """An undilated layer is its own single polyphase part: Winograd reads and writes it in place."""
    from numbaconv.algorithms import winograd

    def no_copy(*args):
        raise AssertionError("move_phases called on an undilated layer")

    monkeypatch.setattr(winograd, "move_phases", no_copy)
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3))
    grad_output = rng.standard_normal((2, 4, 9, 8))
    numbaconv.conv2d(x, weight, padding=1, algorithm="winograd")
    numbaconv.conv2d_grad_input(x.shape, weight, grad_output, padding=1, algorithm="winograd")
    numbaconv.conv2d_grad_weight(x, weight.shape, grad_output, padding=1, algorithm="winograd")


def test_dilated_winograd_copies_parts_a_batch_slice_at_a_time(monkeypatch):
    """With one sample's copies a slice (_PARTS_BYTES tiny), a dilated layer's stacked parts hold one sample of
    each pass's windows, not the whole batch: the workspaces stay bounded however large the batch."""
    from numbaconv import runtime
    from numbaconv.algorithms import winograd

    monkeypatch.setattr(winograd, "_PARTS_BYTES", 1)
    rng = np.random.default_rng(0)
    n, c, k = 6, 3, 4
    x, weight = rng.standard_normal((n, c, 12, 12)), rng.standard_normal((k, c, 3, 3))
    grad_output = rng.standard_normal((n, k, 12, 12))
    runtime.release_workspaces()
    numbaconv.conv2d(x, weight, padding=2, dilation=2, algorithm="winograd")
    numbaconv.conv2d_grad_input(x.shape, weight, grad_output, padding=2, dilation=2, algorithm="winograd")
    numbaconv.conv2d_grad_weight(x, weight.shape, grad_output, padding=2, dilation=2, algorithm="winograd")
    parts = {
        name: buffer.size for (name, _), buffer in runtime._workspaces.items() if name.startswith("winograd.parts")
    }
    one_sample = 4 * max(c, k) * 6 * 6  # four 6x6 phases of the larger channel count
    assert parts and max(parts.values()) == one_sample, parts


def test_fused_forward_zeroes_the_columns_its_last_tile_reads():
    """im2col's fused forward multiplies whole register tiles, so a block's last tile reads columns past the
    block's pixels and discards them: they are zeroed, not left holding what the reused buffer held (denormal
    floats there made the tutorial layer's forward 3x slower)."""
    from numbaconv import runtime
    from numbaconv.algorithms import gemm, im2col
    from numbaconv.geometry import ConvSpec

    if not im2col.FUSED:
        pytest.skip("the fused path needs the GEMM's register tile (AVX-512 or AVX2 with FMA)")
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((4, 8, 18, 18)).astype(np.float32), rng.standard_normal((8, 8, 3, 3))
    geo = ConvSpec.from_args(2, 1, 1, 1, "zeros").plan(x.shape, weight.shape).geometry
    threads = runtime.get_num_threads()
    block_rows = im2col.fused_block_rows(geo, x.itemsize, threads, "forward")
    rows, pixels = geo.c * 9, block_rows * geo.ow
    ldb = im2col.column_pitch(pixels, gemm.tile_columns(x.itemsize), x.itemsize)
    assert block_rows and pixels < ldb  # a partial last tile
    runtime.release_workspaces()
    with runtime.parallel_section():
        runtime.workspace("im2col.cols", (threads * (rows + 1) * ldb,), np.float32)[:] = 1e-40
    numbaconv.conv2d(x, weight.astype(np.float32), np.zeros(8, np.float32), stride=2, padding=1, algorithm="im2col")
    cols = runtime._workspaces[("im2col.cols", np.dtype(np.float32))][: threads * (rows + 1) * ldb]
    assert (cols.reshape(threads, rows + 1, ldb)[:, :rows, pixels:] == 0).all()


@pytest.mark.parametrize("tile", [2, 4])
def test_kernel_gradient_over_several_blocks_of_kernels(tile):
    """dW = G^T dU G (`gradient_taps`) against einsum, two groups whose kernels span several blocks of the
    scratch, block edges falling inside runs of one input channel's kernels (kg = 37 does not divide them)."""
    from numbaconv import runtime
    from numbaconv.algorithms import winograd

    kron = winograd._plan(tile, np.float64).kron_g
    a2, groups, cg, kg = kron.shape[0], 2, 29, 37
    du_t = np.random.default_rng(tile).standard_normal((a2 * groups, cg, kg))
    dw = np.empty((groups * kg, cg, 3, 3))
    with runtime.parallel_section():
        winograd._kernel_gradient(du_t, groups, kron, dw)
    expected = np.einsum("pgck,pq->gkcq", du_t.reshape(a2, groups, cg, kg), kron)
    np.testing.assert_allclose(dw.reshape(groups, kg, cg, 9), expected, rtol=1e-12, atol=1e-12)


def test_fused_forward_pitch_skips_multiples_of_1kb():
    """The fused forward's column rows are never a multiple of 1 KB apart (they would share a few L1 sets),
    and a block whose pixels alone would make them so (16x16 float32 samples: 256 columns, 1 KB) still
    matches the oracle."""
    from numbaconv.algorithms import gemm, im2col

    if not im2col.FUSED:
        pytest.skip("the fused path needs the GEMM's register tile (AVX-512 or AVX2 with FMA)")
    nr = gemm.tile_columns(4)
    assert im2col.column_pitch(256, nr, 4) == 256 + nr
    assert im2col.column_pitch(100, nr, 4) == -(-100 // nr) * nr
    rng = np.random.default_rng(1)
    x, weight, bias = rng.standard_normal((3, 5, 16, 16)), rng.standard_normal((7, 5, 3, 3)), rng.standard_normal(7)
    actual = numbaconv.conv2d(*(a.astype(np.float32) for a in (x, weight, bias)), padding=1, algorithm="im2col")
    np.testing.assert_allclose(actual, oracle.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-4)
