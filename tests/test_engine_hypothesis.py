"""A hypothesis sweep of random valid convolutions: every algorithm that serves one, all three passes.

Configurations are built valid by construction (the input is drawn large enough for the kernel, the padding
mode's limits and "same"), so nothing is filtered away. The number of examples comes from the hypothesis
profile in conftest.py ("ci" by default; HYPOTHESIS_PROFILE=thorough for a long hunt).
"""

from __future__ import annotations

import numpy as np
import oracle
from conftest import assert_close
from hypothesis import given, note
from hypothesis import strategies as st

import numbaconv

MODES = ("zeros", "reflect", "replicate", "circular")


def _int_or_pair(draw, low, high):
    a = draw(st.integers(low, high))
    if draw(st.booleans()):
        return a, (a, a)
    b = draw(st.integers(low, high))
    return (a, b), (a, b)


@st.composite
def configs(draw):
    """(x shape, weight shape, options, with bias) for one valid convolution."""
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    c = groups * draw(st.integers(1, 3))
    k = groups * draw(st.integers(1, 3))
    winograd_shaped = draw(st.booleans())
    if winograd_shaped:
        kernel, stride, stride_arg = (3, 3), (1, 1), 1
        dilation_arg, dilation = _int_or_pair(draw, 1, 3)
    else:
        kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
        stride_arg, stride = _int_or_pair(draw, 1, 3)
        dilation_arg, dilation = _int_or_pair(draw, 1, 3)
    kind = draw(st.sampled_from(("int", "pair", "valid", "same") if stride == (1, 1) else ("int", "pair", "valid")))
    if kind == "int":
        padding = draw(st.integers(0, 3))
    elif kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    else:
        padding = kind
    mode = draw(st.sampled_from(MODES))
    (top, bottom), (left, right) = oracle.resolve_padding(padding, kernel, dilation)

    def size(before, after, k_len, d):
        need = max(1, d * (k_len - 1) + 1 - before - after)
        if mode == "reflect":
            need = max(need, before + 1, after + 1)
        elif mode == "circular":
            need = max(need, before, after)
        return draw(st.integers(need, need + 6))

    h = size(top, bottom, kernel[0], dilation[0])
    w = size(left, right, kernel[1], dilation[1])
    n = draw(st.sampled_from((0, 1, 1, 2, 2, "unbatched")))
    x_shape = (c, h, w) if n == "unbatched" else (n, c, h, w)
    options = dict(stride=stride_arg, padding=padding, dilation=dilation_arg, groups=groups, padding_mode=mode)
    return x_shape, (k, c // groups, *kernel), options, draw(st.booleans())


DTYPES = st.sampled_from((np.float32, np.float64))
SEEDS = st.integers(0, 2**32 - 1)


@given(config=configs(), dtype=DTYPES, seed=SEEDS)
def test_random_configurations_match_oracle(config, dtype, seed):
    x_shape, w_shape, options, _ = config
    serves_winograd = w_shape[2:] == (3, 3) and oracle.pair(options["stride"]) == (1, 1)
    _check_against_oracle(config, dtype, seed, ["auto", "direct", "im2col"] + (["winograd"] if serves_winograd else []))


@given(config=configs(), dtype=DTYPES, seed=SEEDS, one_row=st.booleans(), gathered=st.booleans())
def test_fused_im2col_blocks_match_oracle(config, dtype, seed, one_row, gathered):
    """im2col's fused path (`numbaconv.algorithms.im2col.FUSED`) with its size threshold lifted, so these
    small layers take it too: blocks of one output row, or of whole samples; forward lowering its blocks, or
    reading padded input planes at any row width."""
    from numbaconv.algorithms import im2col

    saved = im2col.FUSED_MIN_PIXELS, im2col.BLOCK_BYTES, im2col.GATHERED_WASTE
    im2col.FUSED_MIN_PIXELS, im2col.BLOCK_BYTES = 1, (1 if one_row else saved[1])
    im2col.GATHERED_WASTE = 100 if gathered else -1
    try:
        _check_against_oracle(config, dtype, seed, ["im2col"])
    finally:
        im2col.FUSED_MIN_PIXELS, im2col.BLOCK_BYTES, im2col.GATHERED_WASTE = saved


def _check_against_oracle(config, dtype, seed, algorithms):
    """Every pass of every algorithm in ``algorithms`` against the oracle, all failures reported at once."""
    x_shape, w_shape, options, with_bias = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    out_shape = oracle.output_shape(x_shape, w_shape, options["stride"], options["padding"], options["dilation"])
    grad_output = rng.standard_normal(out_shape).astype(dtype)
    expected = {
        "forward": oracle.conv2d(x, weight, bias, **options),
        "grad_input": oracle.conv2d_grad_input(x_shape, weight, grad_output, **options),
        "grad_weight": oracle.conv2d_grad_weight(x, w_shape, grad_output, **options),
    }
    failures = []
    for algorithm in algorithms:
        for pass_name in expected:
            try:
                if pass_name == "forward":
                    actual = numbaconv.conv2d(x, weight, bias, algorithm=algorithm, **options)
                elif pass_name == "grad_input":
                    actual = numbaconv.conv2d_grad_input(x_shape, weight, grad_output, algorithm=algorithm, **options)
                else:
                    actual = numbaconv.conv2d_grad_weight(x, w_shape, grad_output, algorithm=algorithm, **options)
                assert_close(actual, expected[pass_name], dtype, algorithm)
            except Exception as error:  # collect every failing (algorithm, pass), not just the first
                failures.append(f"{algorithm} {pass_name}: {type(error).__name__}: {error}")
    note(f"x {x_shape} weight {w_shape} {options} bias={with_bias} {np.dtype(dtype).name}")
    assert not failures, "\n".join(failures)
