"""The functional ops (numbaconv.ops): float64 finite-difference gradient checks for every op, forward values
against deliberately naive numpy twins, and argument validation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from numbaconv import autograd as ag
from numbaconv import ops
from numbaconv.autograd import Tensor

RNG = np.random.default_rng(20240603)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def gradcheck(fn, *arrays, eps=1e-6, tol=1e-6):
    """Compare the tape's gradient of ``sum(fn(*inputs) * v)`` with central differences, for every input."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    v = RNG.standard_normal(out.shape)
    out.backward(v)
    for k, (t, a) in enumerate(zip(tensors, arrays, strict=True)):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            values = []
            for step in (eps, -eps):
                shifted = [b.copy() for b in arrays]
                shifted[k][idx] += step
                with ag.no_grad():
                    values.append(np.sum(fn(*[Tensor(b) for b in shifted])._array * v))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        assert t.grad is not None, f"input {k} got no gradient"
        scale = max(1.0, np.abs(numeric).max())
        error = np.abs(t.grad._array - numeric).max() / scale
        assert error < tol, f"input {k}: gradient error {error:.3g}"


# ---------------------------------------------------------------------------------------------- naive twins


def naive_conv_transpose2d(x, w, bias, stride, padding, output_padding, groups, dilation):
    """Scatter each input pixel through the kernel onto the output (the definition), per group."""
    n, c_in, h, wid = x.shape
    _, c_out_g, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wid - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    out = np.zeros((n, c_out_g * groups, oh, ow))
    c_in_g = c_in // groups
    for b, ci, i, j, ki, kj in np.ndindex(n, c_in, h, wid, kh, kw):
        r, c = i * sh - ph + ki * dh, j * sw - pw + kj * dw
        if 0 <= r < oh and 0 <= c < ow:
            g = ci // c_in_g
            out[b, g * c_out_g : (g + 1) * c_out_g, r, c] += x[b, ci, i, j] * w[ci, :, ki, kj]
    if bias is not None:
        out += bias[:, None, None]
    return out


def naive_pool_starts(size, k, s, p, d, ceil_mode):
    """Window starts (in unpadded coordinates) PyTorch keeps, enumerated rather than computed."""
    span, padded = d * (k - 1) + 1, size + 2 * p
    starts = []
    i = 0
    while True:
        fits = i * s + span <= padded
        overhangs_by_less_than_a_stride = ceil_mode and i * s + span < padded + s and i * s < size + p
        if not (fits or overhangs_by_less_than_a_stride):
            return starts
        starts.append(i * s - p)
        i += 1


def naive_max_pool2d(x, k, s, p, d, ceil_mode):
    rows = naive_pool_starts(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    cols = naive_pool_starts(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    out = np.full(x.shape[:2] + (len(rows), len(cols)), -np.inf)
    for b, c, i, j in np.ndindex(out.shape):
        for u, v in np.ndindex(*k):
            r, col = rows[i] + u * d[0], cols[j] + v * d[1]
            if 0 <= r < x.shape[2] and 0 <= col < x.shape[3]:
                out[b, c, i, j] = max(out[b, c, i, j], x[b, c, r, col])
    return out


def naive_avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override):
    h, w = x.shape[2:]
    rows = naive_pool_starts(h, k[0], s[0], p[0], 1, ceil_mode)
    cols = naive_pool_starts(w, k[1], s[1], p[1], 1, ceil_mode)
    out = np.zeros(x.shape[:2] + (len(rows), len(cols)))
    for b, c, i, j in np.ndindex(out.shape):
        total, inside, in_padded = 0.0, 0, 0
        for u, v in np.ndindex(*k):
            r, col = rows[i] + u, cols[j] + v
            in_padded += (-p[0] <= r < h + p[0]) and (-p[1] <= col < w + p[1])
            if 0 <= r < h and 0 <= col < w:
                total += x[b, c, r, col]
                inside += 1
        divisor = divisor_override or (in_padded if count_include_pad else inside)
        out[b, c, i, j] = total / divisor
    return out


def naive_adaptive_avg_pool2d(x, size):
    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + size)
    for b, c, i, j in np.ndindex(out.shape):
        r0, r1 = int(np.floor(i * h / size[0])), int(np.ceil((i + 1) * h / size[0]))
        c0, c1 = int(np.floor(j * w / size[1])), int(np.ceil((j + 1) * w / size[1]))
        out[b, c, i, j] = x[b, c, r0:r1, c0:c1].mean()
    return out


def naive_cross_entropy(x, target, weight, ignore_index, reduction, smoothing):
    """Per-sample loops over (N, C) logits; PyTorch's normalisation by the summed target weights."""
    n, c = x.shape
    w = np.ones(c) if weight is None else weight
    losses, denominator = np.zeros(n), 0.0
    for i in range(n):
        if target[i] == ignore_index:
            continue
        logp = x[i] - np.log(np.sum(np.exp(x[i])))
        nll = -w[target[i]] * logp[target[i]]
        smooth = -np.sum(w * logp) / c
        losses[i] = (1 - smoothing) * nll + smoothing * smooth
        denominator += w[target[i]]
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / denominator


# ------------------------------------------------------------------------------------------- convolutions


@pytest.mark.parametrize(
    "options",
    [dict(), dict(stride=2, padding=1), dict(padding=(1, 2), dilation=(2, 1)), dict(groups=2, padding="same"),
     dict(padding=1, padding_mode="reflect"), dict(padding=(2, 1), padding_mode="circular")],
)  # fmt: skip
def test_conv2d_gradients(options):
    groups = options.get("groups", 1)
    x, w, b = rand(2, 4, 5, 6), rand(3 * groups, 4 // groups, 3, 2), rand(3 * groups)
    gradcheck(lambda x, w, b: ops.conv2d(x, w, b, **options), x, w, b)


def test_conv2d_unbatched_and_no_bias():
    gradcheck(lambda x, w: ops.conv2d(x, w, padding=1), rand(2, 4, 4), rand(3, 2, 3, 3))


@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=1, dilation=2), dict(groups=2, padding="same")])
def test_conv1d_gradients(options):
    groups = options.get("groups", 1)
    gradcheck(lambda x, w, b: ops.conv1d(x, w, b, **options), rand(2, 4, 7), rand(2 * groups, 4 // groups, 3),
              rand(2 * groups))  # fmt: skip


TRANSPOSE_CASES = [
    ((1, 1), (0, 0), (0, 0), 1, (1, 1)),
    ((2, 2), (1, 0), (1, 0), 1, (1, 1)),
    ((2, 3), (0, 1), (1, 2), 2, (1, 2)),
    ((1, 1), (1, 1), (1, 0), 1, (2, 1)),  # output_padding >= stride, allowed because dilation > stride
    ((3, 2), (2, 1), (2, 1), 2, (2, 2)),
]


@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation", TRANSPOSE_CASES)
def test_conv_transpose2d_forward_and_gradients(stride, padding, output_padding, groups, dilation):
    x, w, b = rand(2, 4, 3, 4), rand(4, 3, 3, 2), rand(3 * groups)
    expected = naive_conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    out = ops.conv_transpose2d(Tensor(x), Tensor(w), Tensor(b), stride, padding, output_padding, groups, dilation)
    np.testing.assert_allclose(out._array, expected, rtol=1e-10, atol=1e-12)
    gradcheck(lambda x, w, b: ops.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation),
              x, w, b)  # fmt: skip


def test_conv_transpose2d_unbatched():
    x, w = rand(2, 3, 3), rand(2, 1, 2, 2)
    out = ops.conv_transpose2d(Tensor(x), Tensor(w), stride=2)
    np.testing.assert_allclose(
        out._array, naive_conv_transpose2d(x[None], w, None, (2, 2), (0, 0), (0, 0), 1, (1, 1))[0]
    )
    gradcheck(lambda x, w: ops.conv_transpose2d(x, w, stride=2), x, w)


def test_linear_gradients():
    gradcheck(ops.linear, rand(2, 3, 4), rand(5, 4), rand(5))
    gradcheck(lambda x, w: ops.linear(x, w), rand(4), rand(3, 4))


# -------------------------------------------------------------------------------------- elementwise, softmax


@pytest.mark.parametrize("op", [ops.relu, ops.sigmoid, ops.tanh, ops.leaky_relu,
                                lambda x: ops.leaky_relu(x, negative_slope=0.2)])  # fmt: skip
def test_activation_gradients(op):
    gradcheck(op, rand(3, 4))


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(ops.relu(Tensor(x))._array, [0, 0, 0, 0.5, 3])
    np.testing.assert_allclose(ops.leaky_relu(Tensor(x), 0.1)._array, [-0.2, -0.05, 0, 0.5, 3])
    np.testing.assert_allclose(ops.sigmoid(Tensor(x))._array, 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(ops.sigmoid(Tensor(np.array([-1000.0, 1000.0])))._array, [0, 1])


def test_relu_inplace_writes_into_the_input():
    t = Tensor(np.array([-1.0, 2.0]))
    assert ops.relu(t, inplace=True) is t
    np.testing.assert_array_equal(t._array, [0, 2])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(dim):
    x = rand(3, 4, 2)
    e = np.exp(x)
    expected = e / e.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(ops.softmax(Tensor(x), dim)._array, expected, rtol=1e-12)
    np.testing.assert_allclose(ops.log_softmax(Tensor(x), dim)._array, np.log(expected), rtol=1e-12)
    gradcheck(lambda t: ops.softmax(t, dim), x)
    gradcheck(lambda t: ops.log_softmax(t, dim), x)


def test_softmax_is_stable_for_large_logits():
    out = ops.log_softmax(Tensor(np.array([[1000.0, 0.0], [-1000.0, -1000.0]])), 1)._array
    np.testing.assert_allclose(out, [[0.0, -1000.0], [np.log(0.5), np.log(0.5)]])


def test_dropout_scaling_mask_and_gradient():
    x = np.ones((200, 50))
    ag.manual_seed(3)
    out = ops.dropout(Tensor(x), p=0.3)._array
    assert set(np.unique(out)) <= {0.0, 1 / 0.7}
    assert abs((out == 0).mean() - 0.3) < 0.02
    assert ops.dropout(Tensor(x), p=0.3, training=False)._array is x

    def fixed_mask(t):
        ag.manual_seed(5)
        return ops.dropout(t, p=0.4)

    gradcheck(fixed_mask, rand(3, 4))
    np.testing.assert_array_equal(ops.dropout(Tensor(x), p=1.0)._array, 0)


# ----------------------------------------------------------------------------------------------- pooling

MAX_POOL_CASES = [
    ((2, 2), None, (0, 0), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 3), (2, 1), (1, 0), (2, 1), True),
    ((3, 2), (3, 2), (0, 1), (1, 2), True),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode", MAX_POOL_CASES)
def test_max_pool2d(kernel, stride, padding, dilation, ceil_mode):
    x = rand(2, 3, 7, 8)
    out, idx = ops.max_pool2d(Tensor(x), kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    expected = naive_max_pool2d(x, kernel, stride or kernel, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(out._array, expected)
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, -1), idx._array.reshape(2, 3, -1), 2),
                                  expected.reshape(2, 3, -1))  # fmt: skip
    gradcheck(lambda t: ops.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode), x)


def test_max_pool2d_propagates_nan_and_unbatched():
    x = rand(1, 4, 4)
    x[0, 1, 1] = np.nan
    out = ops.max_pool2d(Tensor(x), 2)._array
    assert out.shape == (1, 2, 2) and np.isnan(out[0, 0, 0]) and np.isfinite(out[0, 1:, 1:]).all()


AVG_POOL_CASES = [
    ((2, 2), None, (0, 0), False, True, None),
    ((3, 3), (2, 2), (1, 1), False, True, None),
    ((3, 3), (2, 2), (1, 1), True, True, None),
    ((3, 3), (2, 2), (1, 1), True, False, None),
    ((3, 2), (2, 3), (1, 1), True, False, 5),
    ((2, 3), (3, 1), (1, 0), False, False, None),
]


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, include_pad, divisor", AVG_POOL_CASES)
def test_avg_pool2d(kernel, stride, padding, ceil_mode, include_pad, divisor):
    x = rand(2, 3, 7, 8)
    out = ops.avg_pool2d(Tensor(x), kernel, stride, padding, ceil_mode, include_pad, divisor)
    expected = naive_avg_pool2d(x, kernel, stride or kernel, padding, ceil_mode, include_pad, divisor)
    np.testing.assert_allclose(out._array, expected, rtol=1e-12)
    gradcheck(lambda t: ops.avg_pool2d(t, kernel, stride, padding, ceil_mode, include_pad, divisor), x)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (5, 7), (7, 3)])
def test_adaptive_avg_pool2d(size):
    x = rand(2, 3, 5, 7)
    np.testing.assert_allclose(ops.adaptive_avg_pool2d(Tensor(x), size)._array, naive_adaptive_avg_pool2d(x, size),
                               rtol=1e-12)  # fmt: skip
    gradcheck(lambda t: ops.adaptive_avg_pool2d(t, size), x)


def test_adaptive_avg_pool2d_none_keeps_size():
    assert ops.adaptive_avg_pool2d(Tensor(rand(3, 5, 7)), (None, 2)).shape == (3, 5, 2)
    assert ops.adaptive_avg_pool2d(Tensor(rand(1, 3, 5, 7)), 1).shape == (1, 3, 1, 1)


# ------------------------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 3), (2, 3, 7)])
def test_batch_norm_training(shape):
    x, w, b = rand(*shape) * 3 + 1, rand(3), rand(3)
    rm, rv = Tensor(rand(3)), Tensor(np.abs(rand(3)) + 0.5)
    rm0, rv0 = rm._array.copy(), rv._array.copy()
    out = ops.batch_norm(Tensor(x), rm, rv, Tensor(w), Tensor(b), training=True, momentum=0.3, eps=1e-3)
    axes = tuple(i for i in range(len(shape)) if i != 1)
    view = (1, 3) + (1,) * (len(shape) - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    expected = (x - mean.reshape(view)) / np.sqrt(var.reshape(view) + 1e-3) * w.reshape(view) + b.reshape(view)
    np.testing.assert_allclose(out._array, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm._array, 0.7 * rm0 + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv._array, 0.7 * rv0 + 0.3 * x.var(axis=axes, ddof=1), rtol=1e-12)
    gradcheck(lambda t, w, b: ops.batch_norm(t, None, None, w, b, training=True), x, w, b)
    gradcheck(lambda t: ops.batch_norm(t, None, None, training=True), x)


def test_batch_norm_eval():
    x, w, b, rm, rv = rand(3, 2, 4, 4), rand(2), rand(2), rand(2), np.abs(rand(2)) + 0.1
    out = ops.batch_norm(Tensor(x), Tensor(rm), Tensor(rv), Tensor(w), Tensor(b))
    view = (1, 2, 1, 1)
    expected = (x - rm.reshape(view)) / np.sqrt(rv.reshape(view) + 1e-5) * w.reshape(view) + b.reshape(view)
    np.testing.assert_allclose(out._array, expected, rtol=1e-12)
    gradcheck(lambda t, w, b: ops.batch_norm(t, Tensor(rm), Tensor(rv), w, b), x, w, b)


# ----------------------------------------------------------------------------------------------- losses

CE_CASES = [
    (None, -100, "mean", 0.0),
    (None, -100, "sum", 0.0),
    (None, -100, "none", 0.0),
    ("weight", -100, "mean", 0.0),
    ("weight", 2, "mean", 0.0),
    (None, 1, "mean", 0.25),
    ("weight", 0, "mean", 0.1),
    ("weight", 0, "sum", 0.1),
    ("weight", 3, "none", 0.3),
]


@pytest.mark.parametrize("weight, ignore_index, reduction, smoothing", CE_CASES)
def test_cross_entropy(weight, ignore_index, reduction, smoothing):
    x, target = rand(6, 4), np.array([0, 1, 2, 3, 1, 2])
    w = np.abs(rand(4)) + 0.5 if weight else None
    options = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    out = ops.cross_entropy(Tensor(x), Tensor(target), None if w is None else Tensor(w), **options)
    expected = naive_cross_entropy(x, target, w, ignore_index, reduction, smoothing)
    np.testing.assert_allclose(out._array, expected, rtol=1e-12)
    gradcheck(lambda t: ops.cross_entropy(t, Tensor(target), None if w is None else Tensor(w), **options), x)


def test_cross_entropy_spatial_and_unbatched():
    x, target = rand(2, 3, 2, 2), RNG.integers(0, 3, (2, 2, 2))
    flat_x, flat_t = np.moveaxis(x, 1, -1).reshape(-1, 3), target.reshape(-1)
    out = ops.cross_entropy(Tensor(x), Tensor(target), reduction="none")
    np.testing.assert_allclose(out._array, naive_cross_entropy(flat_x, flat_t, None, -100, "none", 0).reshape(2, 2, 2))
    gradcheck(lambda t: ops.cross_entropy(t, Tensor(target)), x)
    one = ops.cross_entropy(Tensor(x[:, :, 0, 0][0]), Tensor(np.array(target[0, 0, 0])))
    assert one.shape == () and np.isclose(one.item(), naive_cross_entropy(x[:1, :, 0, 0], target[:1, 0, 0], None,
                                                                          -100, "mean", 0))  # fmt: skip


def test_cross_entropy_probability_targets():
    x, p = rand(4, 3), np.abs(rand(4, 3))
    p /= p.sum(axis=1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    out = ops.cross_entropy(Tensor(x), Tensor(p), label_smoothing=0.2)
    np.testing.assert_allclose(out._array, -((0.8 * p + 0.2 / 3) * logp).sum(axis=1).mean(), rtol=1e-12)
    gradcheck(lambda t, q: ops.cross_entropy(t, q, label_smoothing=0.2), x, p)


def test_nll_loss_matches_cross_entropy():
    x, target = rand(5, 4), np.array([0, 3, 3, 1, 2])
    logp = ops.log_softmax(Tensor(x), 1)
    a = ops.nll_loss(logp, Tensor(target), reduction="sum")
    assert np.isclose(a.item(), ops.cross_entropy(Tensor(x), Tensor(target), reduction="sum").item())
    gradcheck(lambda t: ops.nll_loss(t, Tensor(target)), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    x, y = rand(3, 4), rand(3, 4)
    out = ops.mse_loss(Tensor(x), Tensor(y), reduction=reduction)
    squared = (x - y) ** 2
    expected = {"mean": squared.mean(), "sum": squared.sum(), "none": squared}[reduction]
    np.testing.assert_allclose(out._array, expected, rtol=1e-12)
    gradcheck(lambda a, b: ops.mse_loss(a, b, reduction=reduction), x, y)
    gradcheck(lambda a, b: ops.mse_loss(a, b, reduction=reduction), rand(3, 4), rand(4))


# -------------------------------------------------------------------------------------------------- pad

NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, widths", [((2, 3, 4, 5), (1, 2, 3, 0)), ((3, 4, 5), (2, 0, 1, 3)),
                                           ((2, 3, 5), (2, 1)), ((3, 5), (0, 3))])  # fmt: skip
def test_pad(mode, shape, widths):
    x = rand(*shape)
    spec = [(0, 0)] * (len(shape) - len(widths) // 2) + [tuple(widths[i : i + 2]) for i in
                                                         range(len(widths) - 2, -1, -2)]  # fmt: skip
    if mode == "constant":
        expected = np.pad(x, spec, constant_values=1.5)
        out = ops.pad(Tensor(x), widths, value=1.5)
    else:
        expected = np.pad(x, spec, mode=NP_MODES[mode])
        out = ops.pad(Tensor(x), widths, mode=mode)
    np.testing.assert_array_equal(out._array, expected)
    gradcheck(lambda t: ops.pad(t, widths, mode=mode), x)


def test_constant_pad_negative_crops():
    x = rand(2, 3, 4)
    out = ops.pad(Tensor(x), (-1, 2, 1, -2))
    np.testing.assert_array_equal(out._array, np.pad(x[:, :1, 1:], ((0, 0), (1, 0), (0, 2))))
    gradcheck(lambda t: ops.pad(t, (-1, 2, 1, -2)), x)


# ----------------------------------------------------------------------------------------- float32, errors


def test_float32_stays_float32():
    x = Tensor(rand(2, 3, 6, 6, dtype=np.float32), requires_grad=True)
    w, rm, rv = (
        Tensor(rand(4, 3, 3, 3, dtype=np.float32)),
        Tensor(np.zeros(4, np.float32)),
        Tensor(np.ones(4, np.float32)),
    )
    y = ops.batch_norm(ops.conv2d(x, w, padding=1), rm, rv, training=True)
    y = ops.avg_pool2d(ops.max_pool2d(ops.relu(y), 2), 3, 1, 1)
    loss = ops.cross_entropy(ops.linear(y.flatten(1), Tensor(rand(5, 36, dtype=np.float32))), Tensor(np.array([0, 4])))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32 and rm.dtype == np.float32


def test_remembered_pooling_arguments_do_not_admit_equal_values_of_other_types():
    """Pooling remembers validated window arguments; True (== 1) and 2.0 (== 2) must still be refused after
    the int versions were accepted, and a refused value is refused every time."""
    x = Tensor(rand(1, 1, 4, 4))
    for good, bad in [((2,), (2.0,)), ((2, 1), (2, True)), ((2, (1, 1)), (2, (1, True)))]:
        ops.max_pool2d(x, *good)
        for _ in range(2):
            with pytest.raises(TypeError, match=re.escape(repr(bad[-1]))):
                ops.max_pool2d(x, *bad)


def test_pooling_output_size_checked_per_input_shape():
    """The output size is remembered per input shape: a shape too small for the window still raises."""
    assert ops.max_pool2d(Tensor(rand(1, 1, 4, 4)), 3).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="too small"):
        ops.max_pool2d(Tensor(rand(1, 1, 2, 2)), 3)


BAD_CALLS = [
    (lambda: ops.max_pool2d(Tensor(rand(1, 1, 4, 4)), 5), ValueError, "too small"),
    (lambda: ops.max_pool2d(Tensor(rand(1, 1, 4, 4)), 2, padding=2), ValueError, "padding"),
    (lambda: ops.max_pool2d(Tensor(rand(1, 1, 4, 4)), 0), ValueError, "kernel_size"),
    (lambda: ops.max_pool2d(Tensor(rand(4, 4)), 2), ValueError, "input"),
    (lambda: ops.avg_pool2d(Tensor(rand(1, 1, 4, 4)), 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: ops.avg_pool2d(Tensor(rand(1, 1, 4, 4)), (2, 2, 2)), TypeError, "kernel_size"),
    (lambda: ops.adaptive_avg_pool2d(Tensor(rand(1, 1, 4, 4)), 0), ValueError, "output_size"),
    (lambda: ops.dropout(Tensor(rand(3)), p=1.5), ValueError, "p must be in"),
    (lambda: ops.dropout(Tensor(rand(3)), p=-0.1), ValueError, "p must be in"),
    (lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([0.0, 1.0]))), ValueError, "target"),
    (lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([True, False]))), TypeError, "target"),
    (lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([0, 1, 2]))), ValueError, "target"),
    (lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([0, 3]))), ValueError, "target values"),
    (lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([0, 1])), reduction="avg"), ValueError, "reduction"),
    (
        lambda: ops.cross_entropy(Tensor(rand(2, 3)), Tensor(np.array([0, 1])), label_smoothing=2),
        ValueError,
        "label_smoothing",
    ),
    (lambda: ops.batch_norm(Tensor(rand(1, 3)), None, None, training=True), ValueError, "more than 1 value"),
    (lambda: ops.batch_norm(Tensor(rand(2, 3)), None, None), ValueError, "running_mean"),
    (lambda: ops.batch_norm(Tensor(rand(2, 3)), Tensor(rand(4)), Tensor(rand(3))), ValueError, "running_mean"),
    (lambda: ops.conv2d(Tensor(rand(1, 2, 4, 4)), Tensor(rand(1, 3, 3, 3))), ValueError, "channels"),
    (lambda: ops.conv2d(Tensor(rand(1, 2, 4, 4)), Tensor(rand(1, 2, 3, 3, dtype=np.float32))), TypeError, "dtype"),
    (lambda: ops.conv2d(Tensor(np.ones((1, 2, 4, 4), np.int64)), Tensor(rand(1, 2, 3, 3))), TypeError, "input"),
    (
        lambda: ops.conv_transpose2d(Tensor(rand(1, 2, 4, 4)), Tensor(rand(2, 1, 3, 3)), stride=2, output_padding=2),
        ValueError,
        "output_padding",
    ),
    (
        lambda: ops.conv_transpose2d(Tensor(rand(1, 2, 1, 1)), Tensor(rand(2, 1, 1, 1)), padding=1),
        ValueError,
        "too small",
    ),
    (lambda: ops.conv_transpose2d(Tensor(rand(1, 3, 4, 4)), Tensor(rand(2, 1, 3, 3))), ValueError, "channels"),
    (lambda: ops.linear(Tensor(rand(2, 3)), Tensor(rand(4, 5))), ValueError, "in_features"),
    (lambda: ops.softmax(Tensor(rand(2, 3)), 2), ValueError, "dim"),
    (lambda: ops.pad(Tensor(rand(1, 1, 3, 3)), (3, 0), mode="reflect"), ValueError, "reflect"),
    (lambda: ops.pad(Tensor(rand(1, 1, 3, 3)), (4, 0), mode="circular"), ValueError, "circular"),
    (lambda: ops.pad(Tensor(rand(1, 1, 3, 3)), (1, 0, 1), mode="constant"), TypeError, "pad"),
    (lambda: ops.pad(Tensor(rand(1, 1, 3, 3)), (1, 1), mode="mirror"), ValueError, "mode"),
    (lambda: ops.pad(Tensor(rand(3, 3)), (1, 1, 1, 1), mode="reflect"), ValueError, "dimensions"),
    (lambda: ops.mse_loss(Tensor(rand(2, 3)), Tensor(rand(2, 3)), reduction="all"), ValueError, "reduction"),
    (lambda: ops.relu([1.0, 2.0]), TypeError, "input"),
]


@pytest.mark.parametrize("call, error, text", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_functional_module_reexports_the_ops():
    from numbaconv.nn import functional as F

    for name in ops.__all__:
        assert getattr(F, name) is getattr(ops, name)
