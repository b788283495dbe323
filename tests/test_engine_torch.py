"""Parity with PyTorch (skipped when torch does not import): forward and both gradients.

PyTorch computes each configuration the way ``nn.Conv2d`` does: ``F.conv2d`` for zero padding (with its own
asymmetric "same"), ``F.pad`` in the padding mode followed by an unpadded ``F.conv2d`` otherwise. The
gradients come from autograd. float32 is compared with PyTorch's float32 and float64 with its float64.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import oracle  # noqa: E402
from conftest import assert_close  # noqa: E402

import numbaconv  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

PASSES = ("forward", "grad_input", "grad_weight")
DTYPES = (np.float32, np.float64)

# name: (x shape, weight shape, stride, padding, dilation, groups, padding_mode, bias)
CONFIGS = {
    "3x3-p1": ((2, 3, 8, 7), (4, 3, 3, 3), 1, 1, 1, 1, "zeros", True),
    "3x3-same-g2": ((1, 4, 7, 9), (6, 2, 3, 3), 1, "same", 1, 2, "zeros", False),
    "3x3-valid-dw": ((2, 4, 6, 6), (4, 1, 3, 3), 1, "valid", 1, 4, "zeros", True),
    "k2-same": ((2, 2, 6, 5), (3, 2, 2, 2), 1, "same", 1, 1, "zeros", True),
    "k4x3-d(2,3)-same": ((1, 2, 9, 9), (3, 2, 4, 3), 1, "same", (2, 3), 1, "zeros", True),
    "k5-s2-p(2,1)": ((2, 3, 9, 8), (4, 3, 5, 5), 2, (2, 1), 1, 1, "zeros", True),
    "k3-s(1,2)-d2-g3": ((1, 6, 9, 9), (6, 2, 3, 3), (1, 2), 2, 2, 3, "zeros", False),
    "k1x1-s2": ((2, 5, 7, 6), (3, 5, 1, 1), 2, 0, 1, 1, "zeros", True),
    "k7-s2-p3": ((1, 3, 11, 11), (4, 3, 7, 7), 2, 3, 1, 1, "zeros", True),
    "unbatched-3x3-p1": ((3, 6, 5), (2, 3, 3, 3), 1, 1, 1, 1, "zeros", True),
}
for _mode in ("reflect", "replicate", "circular"):
    CONFIGS.update(
        {
            f"3x3-p1-{_mode}": ((2, 3, 6, 7), (4, 3, 3, 3), 1, 1, 1, 1, _mode, True),
            f"3x3-p(2,1)-g2-{_mode}": ((1, 4, 5, 6), (4, 2, 3, 3), 1, (2, 1), 1, 2, _mode, False),
            f"k2-same-{_mode}": ((2, 2, 5, 6), (3, 2, 2, 2), 1, "same", 1, 1, _mode, True),
            f"k3-d2-s2-p2-dw-{_mode}": ((1, 3, 8, 9), (6, 1, 3, 3), 2, 2, 2, 3, _mode, True),
            f"unbatched-k3x2-same-{_mode}": ((2, 5, 4), (3, 2, 3, 2), 1, "same", 1, 1, _mode, True),
        }
    )


def _serves_winograd(config):
    _, w_shape, stride, *_ = config
    return w_shape[2:] == (3, 3) and oracle.pair(stride) == (1, 1)


@functools.cache
def torch_results(name: str, dtype_name: str):
    """Inputs, grad_output and PyTorch's forward output and both gradients, as numpy arrays."""
    x_shape, w_shape, stride, padding, dilation, groups, mode, with_bias = CONFIGS[name]
    rng = np.random.default_rng(len(name) * 7919 + sum(map(ord, name)))
    x = rng.standard_normal(x_shape).astype(dtype_name)
    weight = rng.standard_normal(w_shape).astype(dtype_name)
    bias = rng.standard_normal(w_shape[0]).astype(dtype_name) if with_bias else None
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias)
    if mode == "zeros":
        out = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    else:
        (top, bottom), (left, right) = oracle.resolve_padding(padding, w_shape[2:], dilation)
        out = F.conv2d(F.pad(xt, (left, right, top, bottom), mode=mode), wt, bt, stride, 0, dilation, groups)
    grad_output = rng.standard_normal(tuple(out.shape)).astype(dtype_name)
    out.backward(torch.tensor(grad_output))
    expected = {
        "forward": out.detach().numpy().astype(np.float64),
        "grad_input": xt.grad.numpy().astype(np.float64),
        "grad_weight": wt.grad.numpy().astype(np.float64),
    }
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    return x, weight, bias, grad_output, options, expected


def _params():
    for name, config in CONFIGS.items():
        algorithms = (
            ("direct", "im2col", "winograd", "auto") if _serves_winograd(config) else ("direct", "im2col", "auto")
        )
        for algorithm in algorithms:
            yield pytest.param(name, algorithm, id=f"{name}-{algorithm}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, algorithm", list(_params()))
@pytest.mark.parametrize("pass_name", PASSES)
def test_matches_pytorch(pass_name, name, algorithm, dtype):
    x, weight, bias, grad_output, options, expected = torch_results(name, np.dtype(dtype).name)
    if pass_name == "forward":
        actual = numbaconv.conv2d(x, weight, bias, algorithm=algorithm, **options)
    elif pass_name == "grad_input":
        actual = numbaconv.conv2d_grad_input(x.shape, weight, grad_output, algorithm=algorithm, **options)
    else:
        actual = numbaconv.conv2d_grad_weight(x, weight.shape, grad_output, algorithm=algorithm, **options)
    assert_close(actual, expected[pass_name], dtype, algorithm)


@pytest.mark.parametrize("name", ["3x3-p1", "k5-s2-p(2,1)", "k3-s(1,2)-d2-g3"])
def test_nn_grad_helpers_agree(name):
    """torch.nn.grad's conv2d_input/conv2d_weight (zero padding) give the same gradients as autograd here."""
    x, weight, bias, grad_output, options, expected = torch_results(name, "float64")
    args = (options["stride"], options["padding"], options["dilation"], options["groups"])
    gi = torch.nn.grad.conv2d_input(x.shape, torch.tensor(weight), torch.tensor(grad_output), *args)
    gw = torch.nn.grad.conv2d_weight(torch.tensor(x), weight.shape, torch.tensor(grad_output), *args)
    assert_close(numbaconv.conv2d_grad_input(x.shape, weight, grad_output, **options), gi.numpy(), np.float64, "auto")
    assert_close(numbaconv.conv2d_grad_weight(x, weight.shape, grad_output, **options), gw.numpy(), np.float64, "auto")
