"""numbaconv.autograd against PyTorch: composite expressions' values and gradients, and dtype promotion."""

import itertools

import numpy as np
import pytest

import numbaconv.autograd as ag

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(1)


def run_both(fn, arrays, dtype):
    """``fn`` applied with numbaconv and with torch to leaves made from ``arrays``: (outputs, grads) of each."""
    results = []
    for lib, make in (
        (ag, lambda a: ag.tensor(a, dtype=np.dtype(dtype), requires_grad=True)),
        (torch, lambda a: torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True)),
    ):
        leaves = [make(a) for a in arrays]
        out = fn(lib, *leaves)
        out.backward(lib.ones_like(out))
        results.append((np.asarray(out.detach()), [np.asarray(t.grad) for t in leaves]))
    return results


def _nll(lib, z):
    m = z.max(dim=1, keepdim=True).values
    log_p = z - m - (z - m).exp().sum(1, keepdim=True).log()
    labels = lib.tensor([0, 3, 1, 1, 2, 0])
    return -log_p[lib.arange(6), labels].mean()


def _inplace(lib, x, v):
    y = x * 2
    y[1] = v.tanh()
    y += x
    y *= 0.5
    buf = lib.zeros(3, 4, dtype=x.dtype)
    buf[:, 1:3] = y[:, :2]
    return buf + y


EXPRESSIONS = {
    "mlp": (
        lambda lib, x, w, b: ((x @ w + b).relu() ** 2).mean() + (x.sigmoid() * 3 - 1).tanh().sum(dim=1).max(),
        [(4, 5), (5, 3), (3,)],
    ),
    "log_softmax_nll": (
        _nll,
        [(6, 4)],
    ),
    "shapes": (
        lambda lib, x, y: (x.permute(0, 2, 1).reshape(2, -1) / (1 + y.abs())).clamp(-0.5, 0.8).exp().sum(0),
        [(2, 3, 4), (12,)],
    ),
    "powers": (
        lambda lib, x, y: (x.abs() + 0.5) ** y + 2.0**x - 1 / (x * x + 1) - (3 - y).sqrt().log(),
        [(3, 4), (4,)],
    ),
    "reductions": (
        lambda lib, x: x.mean(dim=(0, 2), keepdim=True) * x.max(dim=1, keepdim=True).values - x.sum(-1).unsqueeze(-1),
        [(3, 4, 5)],
    ),
    "batched_matmul": (
        lambda lib, a, b: (a @ b).transpose(1, 2).flatten(1) @ a[0, :, :2].flatten(),
        [(2, 3, 4), (2, 4, 2)],
    ),
    "indexing": (
        lambda lib, x: x[[0, 2, 0]][:, 1:] * x[x > 0].sum() + x[..., None][1, 2],
        [(3, 4)],
    ),
    "inplace_and_setitem": (
        _inplace,
        [(3, 4), (4,)],
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", EXPRESSIONS)
def test_matches_torch(name, dtype):
    fn, shapes = EXPRESSIONS[name]
    arrays = [RNG.standard_normal(shape) for shape in shapes]
    (ours, our_grads), (theirs, their_grads) = run_both(fn, arrays, dtype)
    tol = {"float32": 2e-5, "float64": 1e-10}[dtype]
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    for ours_g, theirs_g in zip(our_grads, their_grads, strict=True):
        assert ours_g.dtype == theirs_g.dtype
        np.testing.assert_allclose(ours_g, theirs_g, rtol=10 * tol, atol=10 * tol)


def test_max_ties_match_torch():
    ours = ag.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    theirs = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    (ours.max() + ours.max(1).values.sum()).backward()
    (theirs.max() + theirs.max(1).values.sum()).backward()
    np.testing.assert_allclose(ours.grad._array, theirs.grad.numpy())


OPERANDS = {
    "f32": (lambda: ag.ones(2), lambda: torch.ones(2)),
    "f64": (lambda: ag.ones(2, dtype=ag.float64), lambda: torch.ones(2, dtype=torch.float64)),
    "i64": (lambda: ag.tensor([1, 2]), lambda: torch.tensor([1, 2])),
    "bool": (lambda: ag.tensor([True, True]), lambda: torch.tensor([True, True])),
    "f32_0d": (lambda: ag.tensor(1.0), lambda: torch.tensor(1.0)),
    "f64_0d": (lambda: ag.tensor(1.0, dtype=ag.float64), lambda: torch.tensor(1.0, dtype=torch.float64)),
    "i64_0d": (lambda: ag.tensor(3), lambda: torch.tensor(3)),
    "float": (lambda: 2.5, lambda: 2.5),
    "int": (lambda: 3, lambda: 3),
    "bool_scalar": (lambda: True, lambda: True),
}


SCALARS = {"float", "int", "bool_scalar"}


@pytest.mark.parametrize(
    "left, right", [pair for pair in itertools.product(OPERANDS, repeat=2) if not SCALARS.issuperset(pair)]
)
def test_promotion_matches_torch(left, right):
    (a, ta), (b, tb) = OPERANDS[left], OPERANDS[right]
    for op in (lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x / y):
        ours, theirs = op(a(), b()), op(ta(), tb())
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (left, right)
