"""numbaconv.autograd: every op's gradient against central finite differences (float64), and the Tensor's
behaviour (accumulation, freed graphs, no_grad, .data, views, in-place writes, dtypes, devices)."""

import threading

import numpy as np
import pytest

import numbaconv.autograd as ag
from numbaconv.autograd import Tensor, float32, float64, int64, no_grad, tensor

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------- finite differences


def numerical_grads(fn, arrays, weights, eps=1e-6):
    """Central differences of ``sum(fn(*arrays) * weights)`` with respect to every element of every array."""

    def objective():
        with no_grad():
            return float((fn(*[Tensor(a) for a in arrays])._array * weights).sum())

    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            saved = a[i]
            a[i] = saved + eps
            plus = objective()
            a[i] = saved - eps
            minus = objective()
            a[i] = saved
            g[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def check_grads(fn, *arrays, rtol=1e-5, atol=1e-7):
    """Autograd's gradients of a random projection of ``fn``'s output equal the finite differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    inputs = [tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    assert out.dtype == float64
    weights = RNG.standard_normal(out.shape)
    (out * Tensor(weights)).sum().backward()
    for t, expected in zip(inputs, numerical_grads(fn, arrays, weights), strict=True):
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == float64
        np.testing.assert_allclose(t.grad._array, expected, rtol=rtol, atol=atol)


def randn(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    """Values with |x| >= 0.1, so kinks at 0 (relu, abs) are never straddled by the differences."""
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.1, 2.0, shape)


def distinct(*shape):
    """A permutation of spread-out values: no ties for max."""
    return RNG.permutation(np.arange(int(np.prod(shape))) * 0.37 - 1.0).reshape(shape)


# ------------------------------------------------------------------------------------------ arithmetic

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((1, 3, 1), (2, 1, 4)),
    ((3, 4), ()),
    ((), (2, 3)),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a**b,
    ],
    ids=["add", "sub", "mul", "div", "pow"],
)
def test_binary_ops_broadcasting(op, shapes):
    check_grads(op, positive(*shapes[0]), positive(*shapes[1]))


@pytest.mark.parametrize(
    "op",
    [
        lambda a: a + 2.5,
        lambda a: 2.5 + a,
        lambda a: a - 1.5,
        lambda a: 1.5 - a,
        lambda a: a * 3,
        lambda a: 3 * a,
        lambda a: a / 4.0,
        lambda a: 4.0 / a,
        lambda a: a**2,
        lambda a: a**0.5,
        lambda a: a**-1.5,
        lambda a: 2.0**a,
        lambda a: -a,
    ],
    ids=["add", "radd", "sub", "rsub", "mul", "rmul", "div", "rdiv", "sq", "pow.5", "pow-1.5", "rpow", "neg"],
)
def test_scalar_ops(op):
    check_grads(op, positive(3, 4))


def test_pow_zero_exponent_and_zero_base():
    x = tensor([0.0, 1.0, 2.0], dtype=float64, requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad._array, [0.0, 0.0, 0.0])
    y = tensor([0.0, 2.0], dtype=float64, requires_grad=True)
    base = tensor([0.0, 3.0], dtype=float64)
    (base**y).sum().backward()
    np.testing.assert_allclose(y.grad._array, [0.0, 9 * np.log(3)])


def test_same_tensor_twice():
    check_grads(lambda a: a * a + a / (a + 1), positive(5))


@pytest.mark.parametrize("combine", [lambda b, a: b * a, lambda b, a: a * b])
def test_diamond_graph_order(combine):
    # r consumes b directly and through a = exp(b): b's gradient must be complete before it is propagated.
    check_grads(lambda x: (lambda b: combine(b, b.exp()))(x * 2), randn(4))


# --------------------------------------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 5)),
        ((2, 3, 4), (4, 5)),
        ((3, 4), (2, 4, 5)),
        ((1, 3, 4), (2, 4, 2)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((4,), (2, 4, 3)),
    ],
)
def test_matmul(shapes):
    check_grads(lambda a, b: a @ b, randn(*shapes[0]), randn(*shapes[1]))


def test_matmul_method():
    check_grads(lambda a, b: a.matmul(b), randn(2, 3), randn(3, 2))


# ------------------------------------------------------------------------------------------ unary ops


@pytest.mark.parametrize(
    "op, make",
    [
        (lambda a: a.exp(), randn),
        (lambda a: a.log(), positive),
        (lambda a: a.sqrt(), positive),
        (lambda a: a.abs(), away_from_zero),
        (lambda a: abs(a), away_from_zero),
        (lambda a: a.relu(), away_from_zero),
        (lambda a: a.sigmoid(), randn),
        (lambda a: (a * 20).sigmoid(), randn),
        (lambda a: a.tanh(), randn),
        (lambda a: a.clamp(-0.55, 0.45), lambda *s: distinct(*s) * 0.5 + 0.01),
        (lambda a: a.clamp(min=0.05), away_from_zero),
        (lambda a: a.clamp(max=0.05), away_from_zero),
    ],
    ids=["exp", "log", "sqrt", "abs", "builtin-abs", "relu", "sigmoid", "sigmoid-wide", "tanh", "clamp", "min", "max"],
)
@pytest.mark.parametrize("shape", [(5,), (2, 3, 2)])
def test_unary(op, make, shape):
    check_grads(op, make(*shape))


def test_sigmoid_extremes_are_finite():
    out = tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    np.testing.assert_array_equal(out._array, [0.0, 0.5, 1.0])
    assert out.dtype == float32


# ------------------------------------------------------------------------------------------ reductions


@pytest.mark.parametrize("dim", [None, 0, -1, 1, (0, 2), (-1, 0, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean(name, dim, keepdim):
    check_grads(lambda a: getattr(a, name)(dim=dim, keepdim=keepdim), randn(2, 3, 4))


def test_sum_mean_positional_dim():
    check_grads(lambda a: a.sum(1) + a.mean(1, True).squeeze(1), randn(3, 4))


def test_max_without_dim():
    check_grads(lambda a: a.max(), distinct(3, 4))


def test_max_ties_share_the_gradient():
    x = tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad._array, [0.0, 0.5, 0.5])


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_over_dim(dim, keepdim):
    check_grads(lambda a: a.max(dim, keepdim=keepdim).values, distinct(3, 4, 2))


def test_max_returns_values_and_indices():
    x = tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    result = x.max(dim=1)
    values, indices = result
    np.testing.assert_array_equal(values._array, [5.0, 7.0])
    np.testing.assert_array_equal(result.indices._array, [1, 0])
    assert indices.dtype == int64 and not indices.requires_grad
    assert x.max(1, keepdim=True).values.shape == (2, 1)
    assert isinstance(x.max(), Tensor) and x.max().item() == 7.0


def test_argmax():
    x = tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert x.argmax().item() == 3 and x.argmax().dtype == int64
    np.testing.assert_array_equal(x.argmax(dim=1)._array, [1, 0])
    assert x.argmax(0, keepdim=True).shape == (1, 3)


def test_mean_of_int_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        tensor([1, 2]).mean()


# ------------------------------------------------------------------------------------------ shape ops


@pytest.mark.parametrize(
    "op",
    [
        lambda a: a.view(6, 4),
        lambda a: a.view(-1),
        lambda a: a.view((4, -1)),
        lambda a: a.reshape(3, -1, 2),
        lambda a: a.flatten(),
        lambda a: a.flatten(1),
        lambda a: a.flatten(0, 1),
        lambda a: a.unsqueeze(0),
        lambda a: a.unsqueeze(-1),
        lambda a: a.unsqueeze(1).squeeze(),
        lambda a: a.unsqueeze(1).squeeze(1),
        lambda a: a.permute(2, 0, 1),
        lambda a: a.permute((1, 2, 0)).reshape(-1),
        lambda a: a.transpose(0, 2),
        lambda a: a.transpose(-1, 1).contiguous(),
        lambda a: a.T,
        lambda a: a.clone(),
    ],
)
def test_shape_ops(op):
    check_grads(op, randn(2, 3, 4))


def test_shapes_and_sizes():
    x = ag.zeros(2, 1, 3)
    assert x.view(-1).shape == (6,)
    assert x.reshape([3, 2]).shape == (3, 2)
    assert x.flatten(1).shape == (2, 3)
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(0).shape == (2, 1, 3)  # not size 1: unchanged, as PyTorch
    assert x.squeeze((0, 1)).shape == (2, 3)
    assert x.unsqueeze(3).shape == (2, 1, 3, 1)
    assert x.permute(2, 0, 1).shape == (3, 2, 1)
    assert x.transpose(0, 2).shape == (3, 1, 2)
    assert x.size() == (2, 1, 3) and x.size(-1) == 3 and x.size(0) == 2
    assert isinstance(x.shape, tuple) and x.ndim == 3 and x.dim() == 3 and x.numel() == 6
    assert ag.tensor(3.0).flatten().shape == (1,)


def test_view_shares_memory_and_refuses_incompatible_strides():
    x = ag.zeros(2, 3)
    v = x.view(6)
    v[4] = 7.0
    assert x[1, 1].item() == 7.0
    with pytest.raises(RuntimeError, match="reshape"):
        x.T.view(6)
    assert x.T.reshape(6).shape == (6,)
    assert x.T.contiguous()._array.flags.c_contiguous
    assert x.contiguous() is x


# ------------------------------------------------------------------------------------------ indexing


@pytest.mark.parametrize(
    "index",
    [
        (0,),
        (slice(1, 3),),
        (Ellipsis, 1),
        (slice(None), None, slice(0, 4, 2)),
        (-1, slice(None, None, -1)),
        ([0, 0, 2],),  # repeated rows accumulate
        (slice(None), [3, 1, 3]),
        ([0, 2], [1, 1]),
    ],
)
def test_getitem(index):
    check_grads(lambda a: a[index], randn(3, 4))


def test_getitem_with_tensors_and_masks():
    check_grads(lambda a: a[tensor([2, 0, 2])], randn(3, 4))
    check_grads(lambda a: a[a > 0], away_from_zero(3, 4))
    check_grads(lambda a: a[np.array([True, False, True])], randn(3, 4))


def test_basic_getitem_is_a_view():
    x = ag.zeros(3, 4)
    row = x[1]
    row[2] = 5.0
    assert x[1, 2].item() == 5.0


def test_iter_and_len():
    check_grads(lambda a: sum(row * (i + 1) for i, row in enumerate(a)), randn(3, 2))
    assert len(ag.zeros(5, 2)) == 5
    with pytest.raises(TypeError):
        len(tensor(1.0))


# ----------------------------------------------------------------------------------- setitem / in place


def test_setitem_tutorial_pattern():
    t = ag.zeros(1, 1, 8, 8)
    t[0, 0, 2:6, 2:6] = 1.0
    assert t.sum().item() == 16.0 and t[0, 0, 2, 2].item() == 1.0 and t[0, 0, 1, 1].item() == 0.0
    t[0, 0, 0] = tensor([float(i) for i in range(8)])
    assert t[0, 0, 0, 7].item() == 7.0
    t[t > 5] = -1.0
    assert t.max().item() == 5.0


def test_setitem_records_gradients():
    def fn(x, v):
        y = x * 3
        y[0, 1:3] = v * 2
        return y

    check_grads(fn, randn(3, 4), randn(2))
    check_grads(fn, randn(3, 4), randn(1))  # broadcast value


def test_setitem_into_constant_buffer():
    def fn(w):
        buf = ag.zeros(3, 2, dtype=float64)
        for i in range(3):
            buf[i] = w * (i + 1)
        return buf

    check_grads(fn, randn(2))


def test_setitem_keeps_earlier_consumers_intact():
    x = tensor([1.0, 2.0, 3.0], dtype=float64, requires_grad=True)
    y = x * 3
    z = y.exp()  # saves exp(y); y's memory must not change under it
    y[0] = 0.0
    (z.sum() + y.sum()).backward()
    np.testing.assert_allclose(x.grad._array, 3 * np.exp(3 * np.array([1.0, 2.0, 3.0])) + [0.0, 3.0, 3.0])


def test_setitem_on_leaf_requiring_grad():
    w = ag.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w.zero_()
    with no_grad():
        w[0, 0] = 5.0
    w.data[1, 1] = 7.0
    assert w[0, 0].item() == 5.0 and w[1, 1].item() == 7.0 and w.requires_grad and w.is_leaf


def test_inplace_arithmetic_under_no_grad_like_an_optimizer():
    p = tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    array = p._array
    with no_grad():
        p -= 0.1 * p.grad
        p *= 2
        p += 1
        p /= 2
    assert p._array is array and p.is_leaf and p.requires_grad
    np.testing.assert_allclose(p._array, ((np.array([1.0, 2.0]) * 0.8) * 2 + 1) / 2, rtol=1e-6)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        p += 1


def test_inplace_on_non_leaf_is_recorded():
    def fn(x, w):
        y = x * 2
        y += w
        y *= x
        y -= 1
        y /= w
        return y

    check_grads(fn, positive(3), positive(3))


def test_inplace_without_grad_writes_in_place():
    x = ag.zeros(3)
    alias = x.data
    x += 1
    x *= tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(alias._array, [1.0, 2.0, 3.0])
    i = tensor([1, 2])
    with pytest.raises(TypeError):  # an int tensor cannot hold a float result, as PyTorch
        i += 0.5


def test_zero_fill_copy():
    x = ag.ones(2, 3)
    assert x.zero_() is x and x.sum().item() == 0
    x.fill_(2.5)
    assert x.sum().item() == 15.0
    x.copy_(tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x._array, [[1, 2, 3], [1, 2, 3]])
    x.copy_(np.arange(6).reshape(2, 3))
    assert x.dtype == float32 and x[1, 2].item() == 5.0


# ------------------------------------------------------------------------------------------ the tape


def test_leaf_grads_accumulate():
    x = tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    grad = x.grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad._array, [3 + 2, 3 + 4])
    assert x.grad is grad  # accumulated in place, as PyTorch


def test_second_backward_through_freed_graph():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_second_backward_through_a_shared_freed_subgraph():
    x = tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()


def test_retain_graph():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad._array, [4.0, 8.0])


def test_backward_with_gradient_argument():
    x = tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(tensor([1.0, -1.0]))
    np.testing.assert_allclose(x.grad._array, [3.0, -3.0])
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 3).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor([1.0]).sum().backward()


def test_backward_from_a_leaf():
    x = tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_deep_graph_does_not_recurse():
    x = tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**5000, rel=1e-3)


def test_graph_is_freed_after_backward():
    x = tensor([1.0], requires_grad=True)
    y = (x * 2).exp()
    y.sum().backward()
    assert y.grad_fn.backward is None and y.grad_fn.inputs == ()


def test_grad_fn_and_is_leaf():
    x = tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and x.grad_fn is None
    assert not y.is_leaf and repr(y.grad_fn) == "<MulBackward0>" and y.requires_grad
    assert ag.zeros(2).is_leaf and not ag.zeros(2).requires_grad
    assert (ag.zeros(2) * 2).grad_fn is None


def test_ops_with_constants_only_do_not_record():
    x = tensor([1.0, 2.0])
    assert not (x * 2 + x.exp()).requires_grad


def test_record_api_for_new_ops():
    """The contract other ops are written against: record(out, parents, backward, name)."""

    def cube(t):
        x = t._array
        return ag.record(x**3, (t,), lambda g: (3 * x * x * g,), "Cube")

    check_grads(cube, randn(4))
    assert repr(cube(tensor([1.0], requires_grad=True)).grad_fn) == "<CubeBackward0>"


def test_bad_gradient_shape_from_an_op_is_reported():
    t = tensor([1.0, 2.0], requires_grad=True)
    out = ag.record(t._array.sum(), (t,), lambda g: (g,), "Broken")
    with pytest.raises(RuntimeError, match="BrokenBackward0"):
        out.backward()


def test_unbroadcast():
    g = np.ones((2, 3, 4))
    assert ag.unbroadcast(g, (3, 4)).shape == (3, 4) and ag.unbroadcast(g, (3, 4))[0, 0] == 2
    assert ag.unbroadcast(g, (3, 1))[0, 0] == 8
    assert ag.unbroadcast(g, ()).item() == 24
    assert ag.unbroadcast(g, (2, 3, 4)) is g


# ---------------------------------------------------------------------------------- grad mode, detach


def test_no_grad_context_manager():
    x = tensor([1.0], requires_grad=True)
    with no_grad():
        y = x * 2
        assert not ag.is_grad_enabled()
        with ag.enable_grad():
            assert (x * 2).requires_grad
    assert not y.requires_grad and y.grad_fn is None
    assert ag.is_grad_enabled()


def test_no_grad_decorator():
    x = tensor([1.0], requires_grad=True)

    @no_grad()
    def double(t):
        return t * 2

    @no_grad
    def triple(t):
        return t * 3

    assert not double(x).requires_grad and not triple(x).requires_grad
    assert double.__name__ == "double"
    assert (x * 2).requires_grad


def test_no_grad_restores_after_exception():
    with pytest.raises(ValueError), no_grad():
        raise ValueError
    assert ag.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with no_grad():
        thread = threading.Thread(target=lambda: seen.append(ag.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_requires_grad_settable():
    x = ag.ones(2)
    x.requires_grad = True
    assert (x * 2).requires_grad
    x.requires_grad_(False)
    assert not (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tensor([1, 2]).requires_grad = True
    with pytest.raises(RuntimeError, match="leaf"):
        (tensor([1.0], requires_grad=True) * 2).requires_grad = False


def test_detach():
    x = tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x.detach()
    y[0] = 9.0
    assert x[0].item() == 9.0  # shares memory


def test_data_sharing():
    t = tensor([1.0, 2.0, 3.0], requires_grad=True)
    t.data[0] = 5
    assert t[0].item() == 5.0 and not t.data.requires_grad
    t.data = tensor([[1.0, 2.0]])  # may change the shape, as PyTorch
    assert t.shape == (1, 2) and t.requires_grad
    t.data = np.zeros(3, dtype=np.float32)
    assert t.shape == (3,)


def test_grad_assignment():
    t = ag.zeros(2, requires_grad=True)
    t.grad = np.ones(2)
    assert isinstance(t.grad, Tensor) and t.grad.dtype == float32
    t.grad = None
    assert t.grad is None
    with pytest.raises(RuntimeError, match="shape"):
        t.grad = ag.zeros(3)


# ------------------------------------------------------------------------------------------ dtypes


def test_default_dtypes():
    assert tensor([1.0, 2.0]).dtype == float32
    assert tensor(1.0).dtype == float32
    assert tensor([1, 2]).dtype == int64
    assert tensor([True]).dtype == np.dtype(bool)
    assert tensor(np.zeros(2)).dtype == float64  # arrays keep their dtype
    assert tensor([1, 2], dtype=float64).dtype == float64
    assert ag.zeros(2).dtype == float32 and ag.ones(2, dtype=int64).dtype == int64
    assert ag.rand(2).dtype == float32 and ag.randn(2, dtype=float64).dtype == float64
    assert ag.arange(3).dtype == int64 and ag.arange(0, 1, 0.25).dtype == float32
    assert ag.from_numpy(np.zeros(2, np.float64)).dtype == float64
    assert ag.zeros_like(tensor([1, 2])).dtype == int64 and ag.ones_like(ag.zeros(2), dtype=float64).dtype == float64


@pytest.mark.parametrize(
    "expr, dtype",
    [
        (lambda f, d, i: f * 2.0, float32),
        (lambda f, d, i: 2 * f, float32),
        (lambda f, d, i: f / 3, float32),
        (lambda f, d, i: f**2.0, float32),
        (lambda f, d, i: 1.0 - f, float32),
        (lambda f, d, i: f + np.float64(1.0), float32),
        (lambda f, d, i: i * 2.5, float32),
        (lambda f, d, i: i * 2, int64),
        (lambda f, d, i: i / i, float32),
        (lambda f, d, i: i / 2, float32),
        (lambda f, d, i: i + f, float32),
        (lambda f, d, i: f + d, float64),
        (lambda f, d, i: f + tensor(1.0, dtype=float64), float32),  # 0-d tensors do not widen
        (lambda f, d, i: i + tensor(1.0, dtype=float64), float64),  # ...unless of a higher kind
        (lambda f, d, i: (f > 0) + (f > 1), np.dtype(bool)),
        (lambda f, d, i: (f > 0).sum(), int64),
        (lambda f, d, i: i.exp(), float32),
        (lambda f, d, i: f @ d, float64),
    ],
)
def test_dtype_promotion(expr, dtype):
    f, d, i = ag.ones(2), ag.ones(2, dtype=float64), tensor([1, 2])
    assert expr(f, d, i).dtype == dtype


def test_casts_and_their_gradients():
    x = tensor([1.5, 2.5], requires_grad=True)
    assert x.float() is x and x.to(float32) is x
    d = x.double()
    assert d.dtype == float64
    (d * d).sum().backward()
    assert x.grad.dtype == float32
    np.testing.assert_allclose(x.grad._array, [3.0, 5.0])
    assert x.long().dtype == int64 and not x.long().requires_grad
    np.testing.assert_array_equal(x.long()._array, [1, 2])
    assert tensor([1, 2]).float().dtype == float32
    assert x.to(np.float64).dtype == float64 and x.to(tensor([1])).dtype == int64
    y = tensor([1.0], dtype=float64, requires_grad=True)
    (x[:1] * y).sum().backward()
    assert y.grad.dtype == float64


def test_comparisons():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert (x > 1.5).dtype == np.dtype(bool) and not (x > 1.5).requires_grad
    np.testing.assert_array_equal((x >= 2)._array, [False, True, True])
    np.testing.assert_array_equal((x < tensor([2.0, 2.0, 2.0]))._array, [True, False, False])
    np.testing.assert_array_equal((x <= 2)._array, [True, True, False])
    np.testing.assert_array_equal((x == 2)._array, [False, True, False])
    np.testing.assert_array_equal((x != 2)._array, [True, False, True])
    np.testing.assert_array_equal((1.5 < x)._array, [False, True, True])
    assert (x == None) is False  # noqa: E711 -- the Python fallback, as PyTorch
    assert len({x, x * 1}) == 2  # hashable by identity


# ------------------------------------------------------------------------------------------ devices


def test_devices():
    x = tensor([1.0], requires_grad=True)
    assert x.to("cpu") is x and x.cpu() is x and x.to(device="cpu") is x and x.to("cpu:0") is x
    assert x.to("cpu", float64).dtype == float64
    for device in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ValueError, match='"cpu"'):
            x.to(device)
    with pytest.raises(ValueError, match="cpu"):
        x.to(device="cuda", dtype=float64)


# ------------------------------------------------------------------------------------------ conversion


def test_python_and_numpy_conversion():
    x = tensor([[1.0, 2.0]])
    assert x.numpy() is x._array
    assert np.asarray(x) is x._array and np.asarray(x, dtype=np.float64).dtype == np.float64
    assert np.array(x, copy=True) is not x._array
    assert tensor(2.5).item() == 2.5 and isinstance(tensor(3).item(), int)
    assert float(tensor([2.5])) == 2.5 and int(tensor(3.7)) == 3 and bool(tensor([1.0]))
    assert not bool(tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="2 elements"):
        tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="detach"):
        tensor([1.0], requires_grad=True).numpy()
    assert isinstance(np.ones(2) + tensor([1.0, 2.0]), Tensor)  # numpy defers to the Tensor
    assert [t.item() for t in tensor([1.0, 2.0])] == [1.0, 2.0]


def test_from_numpy_shares_memory():
    a = np.zeros(3, dtype=np.float32)
    t = ag.from_numpy(a)
    t[1] = 4.0
    assert a[1] == 4.0
    with pytest.raises(TypeError):
        ag.from_numpy([1.0, 2.0])
    b = np.zeros(2)
    assert tensor(b)._array is not b  # tensor() copies


def test_repr():
    assert repr(tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(tensor([0.1234567, 1.0], requires_grad=True)) == "tensor([0.1235, 1.0000], requires_grad=True)"
    assert repr(tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"
    assert repr(tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tensor([1.0], dtype=float64)) == "tensor([1.], dtype=numbaconv.float64)"
    assert repr(tensor(2.0, requires_grad=True) * 3) == "tensor(6., grad_fn=<MulBackward0>)"


def test_creation_sizes_and_seed():
    assert ag.zeros(2, 3).shape == ag.zeros((2, 3)).shape == ag.zeros([2, 3]).shape == (2, 3)
    assert ag.ones(()).shape == () and ag.randn([4]).shape == (4,)
    assert ag.zeros(2, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ag.arange(1, 7, 2)._array, [1, 3, 5])
    ag.manual_seed(7)
    a, n = ag.rand(5), ag.randn(3)
    assert ag.manual_seed(7) is ag.generator()
    np.testing.assert_array_equal(a._array, ag.rand(5)._array)
    np.testing.assert_array_equal(n._array, ag.randn(3)._array)
    assert 0 <= a._array.min() and a._array.max() < 1
