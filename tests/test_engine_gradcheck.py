"""Finite-difference checks of both gradients, in float64, per algorithm and padding mode.

With L(x, w) = <g, conv2d(x, w)> for a random g, the directional derivative of L along v is
<conv2d_grad_input(g), v> for x and <conv2d_grad_weight(g), v> for w. A central difference of L along a few
directions (random ones and single pixels at the corners, where padding modes fold) must agree with it.
The forward pass is run with the same algorithm, so each algorithm's gradients are checked against its
own forward pass, independently of the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

import numbaconv

EPS = 1e-3
RTOL = 1e-7

CONFIGS = {
    "3x3-p1-g2": dict(x_shape=(2, 4, 6, 7), w_shape=(6, 2, 3, 3), stride=1, padding=1, dilation=1, groups=2),
    "3x3-same-dw": dict(x_shape=(1, 3, 5, 6), w_shape=(3, 1, 3, 3), stride=1, padding="same", dilation=1, groups=3),
    "k2x3-s2-d(1,2)-p(1,2)": dict(
        x_shape=(2, 3, 7, 9), w_shape=(4, 3, 2, 3), stride=2, padding=(1, 2), dilation=(1, 2), groups=1
    ),
    "k2-d3-same": dict(x_shape=(1, 2, 7, 8), w_shape=(3, 2, 2, 2), stride=1, padding="same", dilation=3, groups=1),
    "3x3-d(2,3)-p(1,3)": dict(
        x_shape=(2, 2, 7, 8), w_shape=(3, 2, 3, 3), stride=1, padding=(1, 3), dilation=(2, 3), groups=1
    ),
}
WINOGRAD_CONFIGS = ("3x3-p1-g2", "3x3-same-dw", "3x3-d(2,3)-p(1,3)")


def _params():
    for name in CONFIGS:
        algorithms = ("direct", "im2col", "winograd") if name in WINOGRAD_CONFIGS else ("direct", "im2col")
        for algorithm in algorithms:
            for mode in ("zeros", "reflect", "replicate", "circular"):
                yield pytest.param(name, algorithm, mode, id=f"{name}-{algorithm}-{mode}")


def _directions(rng, shape):
    """Two random directions and a single entry at each end (the corners, where padding folds)."""
    first, last = np.zeros(shape), np.zeros(shape)
    first.flat[0] = 1.0
    last.flat[-1] = 1.0
    return [rng.standard_normal(shape), rng.standard_normal(shape), first, last]


@pytest.mark.parametrize("name, algorithm, mode", list(_params()))
def test_finite_differences(name, algorithm, mode, rng):
    config = dict(CONFIGS[name])
    x_shape, w_shape = config.pop("x_shape"), config.pop("w_shape")
    options = dict(config, padding_mode=mode, algorithm=algorithm)
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal(w_shape)
    g = rng.standard_normal(numbaconv.conv2d(x, weight, **options).shape)

    def loss(x_, w_):
        return float(np.sum(g * numbaconv.conv2d(x_, w_, **options)))

    grad_x = numbaconv.conv2d_grad_input(x_shape, weight, g, **options)
    grad_w = numbaconv.conv2d_grad_weight(x, w_shape, g, **options)
    scale_x, scale_w = np.abs(grad_x).max(), np.abs(grad_w).max()
    for which, grad, scale in (("x", grad_x, scale_x), ("weight", grad_w, scale_w)):
        base = x if which == "x" else weight
        for i, v in enumerate(_directions(rng, base.shape)):
            if which == "x":
                numeric = (loss(x + EPS * v, weight) - loss(x - EPS * v, weight)) / (2 * EPS)
            else:
                numeric = (loss(x, weight + EPS * v) - loss(x, weight - EPS * v)) / (2 * EPS)
            analytic = float(np.sum(grad * v))
            size = np.abs(v).sum() * scale
            assert abs(numeric - analytic) <= RTOL * size, (
                f"d/d{which} along direction {i}: finite difference {numeric!r}, gradient {analytic!r}"
            )
