"""The functional ops against torch.nn.functional: forward values and every gradient, float32 and float64,
across the options; and the pooling / transposed-convolution size rules (and their errors) over sweeps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from numbaconv import ops  # noqa: E402
from numbaconv.autograd import Tensor  # noqa: E402

RNG = np.random.default_rng(7)
DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def close(actual: np.ndarray, expected: np.ndarray, dtype, factor: float = 1.0) -> None:
    """Same shape and dtype, error relative to max |expected| within the dtype's tolerance."""
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    if expected.size == 0:
        return
    scale = max(np.abs(expected).max(), 1e-30)
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max() / scale
    assert error <= TOL[np.dtype(dtype)] * factor, f"relative error {error:.3g}"


def compare(ours, theirs, arrays, dtype, grad_of=None, factor=1.0):
    """Run both with the same inputs, compare outputs, backpropagate the same random cotangent and compare
    the gradients of the inputs whose positions are in ``grad_of`` (default: all)."""
    grad_of = range(len(arrays)) if grad_of is None else grad_of
    mine = [Tensor(np.array(a, dtype), requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    ref = [torch.tensor(np.array(a, dtype), requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out, expected = ours(*mine), theirs(*ref)
    close(out._array, expected.detach().numpy(), dtype, factor)
    v = RNG.standard_normal(out.shape).astype(dtype)
    out.backward(v)
    expected.backward(torch.from_numpy(v))
    for i in grad_of:
        close(mine[i].grad._array, ref[i].grad.numpy(), dtype, factor * 10)


def rand(*shape):
    return RNG.standard_normal(shape)


# ------------------------------------------------------------------------------------------- convolutions

CONV_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 1), dilation=(1, 2)),
    dict(padding="same", dilation=2),
    dict(padding="valid", groups=2),
    dict(padding=1, groups=4),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CONV_CASES)
def test_conv2d(options, dtype):
    groups = options.get("groups", 1)
    arrays = rand(2, 4, 7, 8), rand(4, 4 // groups, 3, 3), rand(4)
    compare(lambda x, w, b: ops.conv2d(x, w, b, **options), lambda x, w, b: F.conv2d(x, w, b, **options),
            arrays, dtype, factor=10)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode, dtype):
    arrays = rand(2, 3, 6, 7), rand(4, 3, 3, 2), rand(4)

    def reference(x, w, b):
        return F.conv2d(F.pad(x, (1, 1, 2, 2), mode=mode), w, b, stride=(2, 1))

    compare(lambda x, w, b: ops.conv2d(x, w, b, stride=(2, 1), padding=(2, 1), padding_mode=mode), reference,
            arrays, dtype, factor=10)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=2, dilation=2), dict(groups=2, padding="same")])
def test_conv1d(options, dtype):
    groups = options.get("groups", 1)
    arrays = rand(3, 4, 11), rand(6, 4 // groups, 3), rand(6)
    compare(lambda x, w, b: ops.conv1d(x, w, b, **options), lambda x, w, b: F.conv1d(x, w, b, **options),
            arrays, dtype, factor=10)  # fmt: skip


TRANSPOSE_CASES = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(0, 1), output_padding=(1, 2), groups=2, dilation=(1, 2)),
    dict(stride=1, padding=1, output_padding=1, dilation=2),
    dict(stride=3, padding=2, output_padding=(2, 0), dilation=(1, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", TRANSPOSE_CASES)
def test_conv_transpose2d(options, dtype):
    groups = options.get("groups", 1)
    arrays = rand(2, 4, 5, 4), rand(4, 6 // groups, 3, 2), rand(6)
    compare(lambda x, w, b: ops.conv_transpose2d(x, w, b, **options),
            lambda x, w, b: F.conv_transpose2d(x, w, b, **options), arrays, dtype, factor=10)  # fmt: skip


def test_conv_transpose2d_size_rules_match_torch():
    """Every small configuration: the same output shape, or both refuse."""
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    for s, p, op, d in itertools.product(range(1, 4), range(0, 4), range(0, 4), range(1, 4)):
        try:
            expected = F.conv_transpose2d(torch.tensor(x), torch.tensor(w), None, s, p, op, 1, d).shape
        except RuntimeError:
            with pytest.raises(ValueError):
                ops.conv_transpose2d(Tensor(x), Tensor(w), None, s, p, op, 1, d)
            continue
        assert ops.conv_transpose2d(Tensor(x), Tensor(w), None, s, p, op, 1, d).shape == tuple(expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(dtype):
    compare(ops.linear, F.linear, (rand(2, 3, 5), rand(4, 5), rand(4)), dtype)
    compare(lambda x, w: ops.linear(x, w), lambda x, w: F.linear(x, w), (rand(5), rand(4, 5)), dtype)


# -------------------------------------------------------------------------------------- activations, softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_activations(name, dtype):
    x = rand(3, 5) * 4
    x[0, 0] = 0.0
    compare(getattr(ops, name), getattr(F, name), (x,), dtype)
    if name == "leaky_relu":
        compare(lambda t: ops.leaky_relu(t, 0.3), lambda t: F.leaky_relu(t, 0.3), (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_passes_nan_and_its_gradient(dtype):
    """A NaN stays NaN and receives its gradient (PyTorch's threshold_backward), at a size that splits over
    threads."""
    x = rand(4, 8, 33, 35).astype(dtype)
    x.flat[::97] = np.nan
    x.flat[1::97] = 0.0
    v = rand(*x.shape).astype(dtype)
    mine, ref = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ops.relu(mine), F.relu(ref)
    out.backward(v)
    expected.backward(torch.from_numpy(v))
    np.testing.assert_array_equal(out._array, expected.detach().numpy())
    np.testing.assert_array_equal(mine.grad._array, ref.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim, dtype):
    x = rand(3, 4, 5) * 10
    compare(lambda t: ops.softmax(t, dim), lambda t: F.softmax(t, dim), (x,), dtype)
    compare(lambda t: ops.log_softmax(t, dim), lambda t: F.log_softmax(t, dim), (x,), dtype)


def test_dropout_identity_cases_match_torch():
    x = rand(4, 5)
    for p, training in ((0.5, False), (0.0, True)):
        np.testing.assert_array_equal(ops.dropout(Tensor(x), p, training)._array,
                                      F.dropout(torch.tensor(x), p, training).numpy())  # fmt: skip


# ------------------------------------------------------------------------------------------------- pooling

MAX_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(3, 2), padding=(0, 1), dilation=(1, 2), ceil_mode=True),
    dict(kernel_size=4, stride=3, padding=2, dilation=2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", MAX_POOL_CASES)
def test_max_pool2d(options, dtype):
    compare(lambda t: ops.max_pool2d(t, **options), lambda t: F.max_pool2d(t, **options), (rand(2, 3, 9, 10),),
            dtype)  # fmt: skip
    x = rand(2, 3, 9, 10).astype(dtype)
    _, idx = ops.max_pool2d(Tensor(x), **options, return_indices=True)
    _, expected = F.max_pool2d(torch.tensor(x), **options, return_indices=True)
    np.testing.assert_array_equal(idx._array, expected.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_2x2_ties_and_nans_pick_torchs_index(dtype):
    """The 2x2 stride-2 fast path: ties keep the first cell, a NaN wins, of two NaNs the later one."""
    x = np.round(rand(3, 5, 8, 12) * 2).astype(dtype)  # many ties
    x.flat[::7] = np.nan
    x.flat[1::13] = np.nan
    for ceil_mode in (False, True):
        for t in (x, x[..., :7, :11]):
            out, idx = ops.max_pool2d(Tensor(np.ascontiguousarray(t)), 2, ceil_mode=ceil_mode, return_indices=True)
            expected, expected_idx = F.max_pool2d(torch.tensor(t), 2, ceil_mode=ceil_mode, return_indices=True)
            np.testing.assert_array_equal(out._array, expected.numpy())
            np.testing.assert_array_equal(idx._array, expected_idx.numpy())


AVG_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 1), ceil_mode=True, divisor_override=4),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), ceil_mode=False, count_include_pad=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", AVG_POOL_CASES)
def test_avg_pool2d(options, dtype):
    compare(lambda t: ops.avg_pool2d(t, **options), lambda t: F.avg_pool2d(t, **options), (rand(2, 3, 9, 10),),
            dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, (3, 4), (5, 7), (9, 2), (None, 3)])
def test_adaptive_avg_pool2d(size, dtype):
    compare(lambda t: ops.adaptive_avg_pool2d(t, size), lambda t: F.adaptive_avg_pool2d(t, size),
            (rand(2, 3, 9, 10),), dtype)  # fmt: skip


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_size_rules_match_torch(pool):
    """Every small configuration: the same output shape, or both refuse (ours with ValueError)."""
    x = np.ones((1, 1, 5, 6), np.float32)
    ours, theirs = (ops.max_pool2d, F.max_pool2d) if pool == "max" else (ops.avg_pool2d, F.avg_pool2d)
    dilations = range(1, 4) if pool == "max" else [None]
    for k, s, p, d, ceil in itertools.product(range(1, 7), range(1, 4), range(0, 4), dilations, (False, True)):
        extra = {} if d is None else {"dilation": d}
        try:
            expected = theirs(torch.tensor(x), k, s, p, ceil_mode=ceil, **extra).shape
        except RuntimeError:
            with pytest.raises(ValueError):
                ours(Tensor(x), k, s, p, ceil_mode=ceil, **extra)
            continue
        assert ours(Tensor(x), k, s, p, ceil_mode=ceil, **extra).shape == tuple(expected), (k, s, p, d, ceil)


# ---------------------------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 3), (2, 3, 7)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(shape, training, dtype):
    rm, rv = rand(3).astype(dtype), (np.abs(rand(3)) + 0.5).astype(dtype)
    mine_stats, ref_stats = (Tensor(rm.copy()), Tensor(rv.copy())), (torch.tensor(rm), torch.tensor(rv))

    def ours(x, w, b):
        return ops.batch_norm(x, *mine_stats, w, b, training=training, momentum=0.2, eps=1e-4)

    def theirs(x, w, b):
        return F.batch_norm(x, *ref_stats, w, b, training=training, momentum=0.2, eps=1e-4)

    compare(ours, theirs, (rand(*shape) * 2 + 3, rand(3), rand(3)), dtype, factor=10)
    for mine, ref in zip(mine_stats, ref_stats, strict=True):
        close(mine._array, ref.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_without_affine_or_running_stats(dtype):
    compare(lambda x: ops.batch_norm(x, None, None, training=True),
            lambda x: F.batch_norm(x, None, None, training=True), (rand(3, 2, 4, 4),), dtype, factor=10)  # fmt: skip


# -------------------------------------------------------------------------------------------------- losses

CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, ignore_index=1),
    dict(ignore_index=2, reduction="sum"),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, weight=True, ignore_index=0),
    dict(label_smoothing=0.3, weight=True, reduction="sum"),
    dict(label_smoothing=0.3, weight=True, reduction="none", ignore_index=3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CE_CASES)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 2)])
def test_cross_entropy(options, shape, dtype):
    target = RNG.integers(0, 4, (shape[0],) + shape[2:])
    weight = (np.abs(rand(4)) + 0.5).astype(dtype) if options.get("weight") else None
    kwargs = {k: v for k, v in options.items() if k != "weight"}
    compare(lambda x: ops.cross_entropy(x, Tensor(target), None if weight is None else Tensor(weight), **kwargs),
            lambda x: F.cross_entropy(x, torch.tensor(target), None if weight is None else torch.tensor(weight),
                                      **kwargs), (rand(*shape) * 3,), dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [dict(), dict(label_smoothing=0.2, reduction="sum"), dict(reduction="none")])
def test_cross_entropy_probability_targets(options, dtype):
    p = np.abs(rand(5, 3))
    p /= p.sum(axis=1, keepdims=True)
    compare(lambda x, q: ops.cross_entropy(x, q, **options), lambda x, q: F.cross_entropy(x, q, **options),
            (rand(5, 3), p), dtype)  # fmt: skip


NEG_INF_CASES = [  # (function, target, keyword arguments); the logits/log-probabilities are [[0, -inf, 1], [1, 2, 3]]
    ("cross_entropy", [0, 2], {}),  # -inf on classes the loss does not pick: finite
    ("cross_entropy", [1, 2], {}),  # -inf on a target: inf
    ("cross_entropy", [1, 0], {"ignore_index": 1}),  # -inf only in an ignored row: finite
    ("cross_entropy", [0, 2], {"label_smoothing": 0.1}),  # smoothing reaches every class: inf
    ("cross_entropy", [1, 2], {"weight": [1.0, 0.0, 1.0], "reduction": "sum"}),  # 0 * -inf: NaN in both
    ("nll_loss", [0, 2], {"reduction": "none"}),
]


@pytest.mark.parametrize("name, target, options", NEG_INF_CASES)
def test_class_losses_with_minus_infinity_as_pytorch(name, target, options):
    """A -inf logit or log-probability gives PyTorch's loss and gradient: finite wherever the loss does not
    pick it (no 0 * -inf), inf or NaN where PyTorch's are."""
    x = np.array([[0.0, -np.inf, 1.0], [1.0, 2.0, 3.0]])
    weight = options.get("weight")
    kwargs = {k: v for k, v in options.items() if k != "weight"}
    mine = Tensor(x, requires_grad=True)
    ref = torch.tensor(x, requires_grad=True)
    ours = getattr(ops, name)(mine, Tensor(np.array(target)), None if weight is None else Tensor(np.array(weight)),
                              **kwargs)  # fmt: skip
    theirs = getattr(F, name)(
        ref, torch.tensor(target), None if weight is None else torch.tensor(weight).double(), **kwargs
    )
    np.testing.assert_allclose(ours._array, theirs.detach().numpy(), rtol=1e-12)
    if np.isfinite(theirs.detach().numpy()).all():
        ours.sum().backward()
        theirs.sum().backward()
        np.testing.assert_allclose(mine.grad._array, ref.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cross_entropy_unbatched():
    x = rand(5)
    compare(lambda t: ops.cross_entropy(t, Tensor(np.array(3))), lambda t: F.cross_entropy(t, torch.tensor(3)),
            (x,), np.float64)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, dtype):
    target = np.array([0, 2, 1, 2])
    compare(lambda x: ops.nll_loss(x, Tensor(target), ignore_index=1, reduction=reduction),
            lambda x: F.nll_loss(x, torch.tensor(target), ignore_index=1, reduction=reduction),
            (rand(4, 3),), dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, dtype):
    compare(lambda a, b: ops.mse_loss(a, b, reduction=reduction),
            lambda a, b: F.mse_loss(a, b, reduction=reduction), (rand(3, 4), rand(3, 4)), dtype)  # fmt: skip


# ----------------------------------------------------------------------------------------------------- pad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, widths", [((2, 3, 5, 6), (1, 2, 3, 4)), ((3, 5, 6), (0, 2, 1, 0)),
                                           ((2, 3, 6), (3, 1)), ((3, 6), (2, 2))])  # fmt: skip
def test_pad(mode, shape, widths, dtype):
    compare(lambda t: ops.pad(t, widths, mode=mode), lambda t: F.pad(t, widths, mode=mode), (rand(*shape),), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_pad_value_and_negative_widths(dtype):
    widths = (-1, 2, 2, -1, 1, 0)
    compare(lambda t: ops.pad(t, widths, value=2.5), lambda t: F.pad(t, widths, value=2.5), (rand(2, 3, 4, 5),),
            dtype)  # fmt: skip
