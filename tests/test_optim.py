"""numbaconv.optim: update rules against naive float64 references written from PyTorch's documented
algorithms, parameter groups, zero_grad, state_dict round trips and errors, and the LR schedulers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import numbaconv.autograd as ag
from numbaconv import nn, optim
from numbaconv.optim import adam as adam_module
from numbaconv.optim import lr_scheduler

RNG = np.random.default_rng(7)
SHAPES = [(3, 4), (5,)]
CURVATURE = [RNG.uniform(0.5, 2.0, s) for s in SHAPES]
OFFSET = [RNG.standard_normal(s) for s in SHAPES]
START = [RNG.standard_normal(s) for s in SHAPES]


def gradient(i: int, theta: np.ndarray) -> np.ndarray:
    """The gradient of sum(c * theta**2 / 2 + d * theta) for parameter ``i``: a deterministic test problem."""
    return CURVATURE[i] * theta + OFFSET[i]


def run_ours(make_optimizer, steps: int, dtype=np.float64):
    params = [nn.Parameter(ag.tensor(s, dtype=dtype)) for s in START]
    opt = make_optimizer(params)
    for _ in range(steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            p.grad = ag.tensor(gradient(i, p.detach().numpy().astype(np.float64)), dtype=dtype)
        opt.step()
    return [p.detach().numpy() for p in params], opt


# --- naive references (one parameter at a time, PyTorch's algorithm as written in its docs/code) ---------


def sgd_reference(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    out = []
    for i, start in enumerate(START):
        theta, buf = start.copy(), None
        for t in range(1, steps + 1):
            g = gradient(i, theta)
            if maximize:
                g = -g
            if weight_decay:
                g = g + weight_decay * theta
            if momentum:
                buf = g.copy() if t == 1 else momentum * buf + (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            theta = theta - lr * g
        out.append(theta)
    return out


def adam_reference(steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                   decoupled=False):  # fmt: skip
    beta1, beta2 = betas
    out = []
    for i, start in enumerate(START):
        theta = start.copy()
        m, v, v_max = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
        for t in range(1, steps + 1):
            g = gradient(i, theta)
            if maximize:
                g = -g
            if weight_decay and decoupled:
                theta = theta - lr * weight_decay * theta
            elif weight_decay:
                g = g + weight_decay * theta
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1**t)
            if amsgrad:
                v_max = np.maximum(v_max, v)
                v_hat = v_max / (1 - beta2**t)
            else:
                v_hat = v / (1 - beta2**t)
            theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(lr=0.02, momentum=0.5, weight_decay=0.1, nesterov=True, maximize=True),
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_sgd_matches_reference(kwargs):
    got, _ = run_ours(lambda ps: optim.SGD(ps, **kwargs), steps=7)
    for g, e in zip(got, sgd_reference(7, **kwargs), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


ADAM_CASES = [
    dict(lr=0.01),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, maximize=True, weight_decay=0.05),
]


@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_adam_matches_reference(kwargs):
    got, opt = run_ours(lambda ps: optim.Adam(ps, **kwargs), steps=9)
    for g, e in zip(got, adam_reference(9, **kwargs), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    state = opt.state[opt.param_groups[0]["params"][0]]
    assert state["step"].item() == 9.0 and state["step"].dtype == np.float32
    assert ("max_exp_avg_sq" in state) == kwargs.get("amsgrad", False)


@pytest.mark.parametrize("kwargs", [dict(lr=0.01), dict(lr=0.02, weight_decay=0.3, amsgrad=True)])
def test_adamw_matches_reference(kwargs):
    got, opt = run_ours(lambda ps: optim.AdamW(ps, **kwargs), steps=9)
    expected = adam_reference(9, **{"weight_decay": 1e-2, **kwargs}, decoupled=True)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    assert opt.param_groups[0]["weight_decay"] == kwargs.get("weight_decay", 1e-2)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


ADAM_VARIANTS = [
    dict(lr=0.01),
    dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
]


def per_parameter(monkeypatch):
    """Adam without its flat layout: every step through the per-parameter loop."""
    monkeypatch.setattr(adam_module._FlatState, "build", classmethod(lambda cls, *args: None))


@pytest.mark.parametrize("kwargs", ADAM_VARIANTS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_flat_state_matches_the_per_parameter_loop_exactly(kwargs, dtype, monkeypatch):
    """A group's state laid out flat gives bit-for-bit the per-parameter loop's parameters and state."""
    flat, opt = run_ours(lambda ps: optim.Adam(ps, **kwargs), steps=7, dtype=dtype)
    assert opt._flat  # the flat layout was used
    per_parameter(monkeypatch)
    loop, reference = run_ours(lambda ps: optim.Adam(ps, **kwargs), steps=7, dtype=dtype)
    assert not reference._flat
    for a, b in zip(flat, loop, strict=True):
        np.testing.assert_array_equal(a, b)
    for key in opt.state_dict()["state"][0]:
        for i in range(len(SHAPES)):
            got, want = opt.state_dict()["state"][i][key], reference.state_dict()["state"][i][key]
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_adam_state_tensors_are_updated_in_place():
    """A state Tensor fetched before a step sees the step (PyTorch updates its state in place)."""
    params = [nn.Parameter(ag.tensor(s)) for s in START]
    opt = optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = ag.ones_like(p)
    opt.step()
    held = opt.state[params[0]]
    step, exp_avg = held["step"], held["exp_avg"].numpy().copy()
    opt.step()
    assert step.item() == 2.0 and not np.array_equal(held["exp_avg"].numpy(), exp_avg)


@pytest.mark.parametrize("event", ["a parameter without a gradient", "a replaced parameter array", "a deep copy"])
def test_adam_leaves_the_flat_layout_when_it_no_longer_holds_the_state(event, monkeypatch):
    """After the event the loop takes over, with the numbers the loop alone gives."""
    import copy

    def scenario(flat: bool):
        params = [nn.Parameter(ag.tensor(s)) for s in START]
        opt = optim.Adam(params, lr=0.05)
        for t in range(6):
            if t == 3 and event == "a deep copy":
                opt = copy.deepcopy(opt)
                params = opt.param_groups[0]["params"]
            if t == 3 and event == "a replaced parameter array":
                params[0].data = params[0].detach().numpy().copy()
            for i, p in enumerate(params):
                skip = t == 3 and i == 1 and event == "a parameter without a gradient"
                p.grad = None if skip else ag.tensor(gradient(i, p.detach().numpy()))
            opt.step()
            assert bool(opt._flat) == (flat and t < 3)
        return [p.detach().numpy() for p in params]

    got = scenario(flat=True)
    per_parameter(monkeypatch)
    for a, b in zip(got, scenario(flat=False), strict=True):
        np.testing.assert_array_equal(a, b)


def test_adam_steps_parameters_sharing_memory_one_after_the_other(monkeypatch):
    """Two Parameters over one array (``Parameter(t)`` shares t's memory): no flat layout, which would read
    both before writing either; the loop's numbers."""

    def run():
        shared = np.array(START[0])
        params = [nn.Parameter(shared), nn.Parameter(shared), nn.Parameter(ag.tensor(START[1]))]
        opt = optim.Adam(params, lr=0.05)
        for _ in range(3):
            for i, p in zip((0, 0, 1), params, strict=True):
                p.grad = ag.tensor(gradient(i, p.detach().numpy()))
            opt.step()
        assert not opt._flat
        return [p.detach().numpy().copy() for p in params]

    got = run()
    per_parameter(monkeypatch)
    for a, b in zip(got, run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float32_parameters_stay_float32_in_place():
    params = [nn.Parameter(ag.tensor(s, dtype=ag.float32)) for s in START]
    arrays = [p._array for p in params]
    for opt in (optim.SGD(params, lr=0.1, momentum=0.9), optim.Adam(params, lr=0.1)):
        for i, p in enumerate(params):
            p.grad = ag.tensor(gradient(i, p.detach().numpy()), dtype=ag.float32)
        opt.step()
    assert all(p._array is a and p.dtype == np.float32 for p, a in zip(params, arrays, strict=True))
    got, _ = run_ours(lambda ps: optim.Adam(ps, lr=0.01), steps=5, dtype=np.float32)
    for g, e in zip(got, adam_reference(5, lr=0.01), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_default_hyperparameters():
    p = [nn.Parameter(ag.zeros(2))]
    sgd = optim.SGD(p)
    assert {
        k: sgd.defaults[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    } == dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    adam = optim.Adam(p)
    assert (adam.defaults["lr"], adam.defaults["betas"], adam.defaults["eps"]) == (1e-3, (0.9, 0.999), 1e-8)
    assert adam.defaults["weight_decay"] == 0 and adam.defaults["amsgrad"] is False
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: optim.SGD(p, lr=-1), "Invalid learning rate"),
        (lambda p: optim.SGD(p, momentum=-0.1), "Invalid momentum"),
        (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0"),
        (lambda p: optim.Adam(p, eps=-1), "Invalid epsilon"),
        (lambda p: optim.AdamW(p, weight_decay=-1), "Invalid weight_decay"),
        (lambda p: optim.SGD([]), "empty parameter list"),
        (lambda p: optim.SGD([p[0], p[0]]), "duplicate parameters"),
        (lambda p: optim.SGD([{"params": p}, {"params": p}]), "more than one parameter group"),
        (lambda p: optim.SGD([p[0] * 2]), "non-leaf"),
        (lambda p: optim.Adam(p, fused=True), "not supported"),
    ],
)
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make([nn.Parameter(ag.zeros(2))])


def test_param_groups_and_skipped_parameters():
    a, b, c = (nn.Parameter(ag.ones(2, dtype=ag.float64)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0, "momentum": 0.5}, {"params": [c]}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0, 0.1]
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[0]["momentum"] == 0
    a.grad = ag.ones(2, dtype=ag.float64)
    b.grad = ag.ones(2, dtype=ag.float64)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), 0.9)
    np.testing.assert_allclose(b.detach().numpy(), 0.0)
    np.testing.assert_allclose(c.detach().numpy(), 1.0)  # no grad: untouched, no state
    assert c not in opt.state and "momentum_buffer" in opt.state[b]
    opt.add_param_group({"params": [nn.Parameter(ag.zeros(1))], "lr": 3.0})
    assert len(opt.param_groups) == 4 and opt.param_groups[3]["momentum"] == 0


def test_zero_grad_and_closure():
    p = nn.Parameter(ag.tensor([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.5)
    p.grad = ag.tensor([1.0, 1.0])
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and np.all(p.grad.numpy() == 0)
    opt.zero_grad()
    assert p.grad is None

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.detach().numpy(), [0.0, 0.0])


def test_optimizer_state_dict_structure():
    _, opt = run_ours(lambda ps: optim.Adam(ps, lr=0.01), steps=2)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0, 1] and set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    group = sd["param_groups"][0]
    assert group["params"] == [0, 1] and group["lr"] == 0.01 and group["betas"] == (0.9, 0.999)
    _, sgd = run_ours(lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9), steps=1)
    assert set(sgd.state_dict()["state"][1]) == {"momentum_buffer"}
    assert "Parameter Group 0" in repr(sgd) and "    momentum: 0.9" in repr(sgd)


@pytest.mark.parametrize(
    "make",
    [lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), lambda ps: optim.Adam(ps, lr=0.02, amsgrad=True)],
)
def test_state_dict_round_trip_resumes_exactly(make, tmp_path):
    import numbaconv.serialization as serialization

    full, _ = run_ours(make, steps=6)
    half, opt = run_ours(make, steps=3)
    path = tmp_path / "opt.npz"
    serialization.save(opt.state_dict(), path)
    params = [nn.Parameter(ag.tensor(h.copy())) for h in half]
    resumed = make(params)
    resumed.load_state_dict(serialization.load(path))
    for _ in range(3):
        for i, p in enumerate(params):
            p.grad = ag.tensor(gradient(i, p.detach().numpy()))
        resumed.step()
    for p, f in zip(params, full, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), f, rtol=1e-13)
    state = resumed.state[params[0]]
    assert all(isinstance(v, ag.Tensor) for v in state.values())
    assert not any(np.shares_memory(v.numpy(), opt.state[opt.param_groups[0]["params"][0]][k].numpy())
                   for k, v in state.items())  # fmt: skip


def test_load_state_dict_errors_change_nothing():
    _, opt = run_ours(lambda ps: optim.Adam(ps, lr=0.01), steps=2)
    sd = opt.state_dict()
    other = optim.Adam([nn.Parameter(ag.zeros(3, 4, dtype=ag.float64)), nn.Parameter(ag.zeros(5, dtype=ag.float64))])
    before_groups = [dict(g) for g in other.param_groups]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        other.load_state_dict({"state": sd["state"], "param_groups": sd["param_groups"] * 2})
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict({"state": {}, "param_groups": [dict(sd["param_groups"][0], params=[0])]})
    bad = {"state": {0: {**sd["state"][0], "exp_avg": ag.zeros(4, 3)}}, "param_groups": sd["param_groups"]}
    with pytest.raises(ValueError, match="has shape"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="must contain"):
        other.load_state_dict({"param_groups": []})
    assert other.state == {} and [dict(g) for g in other.param_groups] == before_groups
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.01 and len(other.state) == 2


# ---------------------------------------------------------------------------------------------- schedulers


def _opt(lr=0.1, groups=1):
    return optim.SGD([{"params": [nn.Parameter(ag.zeros(1))]} for _ in range(groups)], lr=lr)


def test_step_lr():
    opt = _opt(0.1)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and sched.get_last_lr() == [0.1]
    lrs = []
    for _ in range(8):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    expected = [0.1 * 0.5 ** (e // 3) for e in range(1, 9)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    assert opt.param_groups[0]["lr"] == lrs[-1]


def test_cosine_annealing_follows_the_closed_form_and_is_periodic():
    opt = _opt(0.2, groups=2)
    opt.param_groups[1]["lr"] = 0.05
    opt = optim.SGD([{"params": [nn.Parameter(ag.zeros(1))], "lr": lr} for lr in (0.2, 0.05)], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
    for epoch in range(1, 21):
        opt.step()
        sched.step()
        for base, lr in zip((0.2, 0.05), sched.get_last_lr(), strict=True):
            assert lr == pytest.approx(0.01 + (base - 0.01) * (1 + math.cos(math.pi * epoch / 5)) / 2, abs=1e-12)


def test_scheduler_state_dict_round_trip():
    opt = _opt(0.1)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 4 and state["T_max"] == 10
    opt2 = _opt(0.1)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(3):
        sched.step()
        sched2.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr(), abs=1e-15)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), 2)


def test_load_state_with_a_plain_number_step():
    _, opt = run_ours(lambda ps: optim.Adam(ps, lr=0.01), steps=2)
    sd = opt.state_dict()
    sd = {"state": {k: dict(v, step=2) for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}
    params = [nn.Parameter(ag.tensor(s.copy())) for s in START]
    resumed = optim.Adam(params, lr=0.01)
    resumed.load_state_dict(sd)
    assert resumed.state[params[0]]["step"].dtype == np.float32
    for i, p in enumerate(params):
        p.grad = ag.tensor(gradient(i, p.detach().numpy()))
    resumed.step()
    assert resumed.state[params[0]]["step"].item() == 3.0


def _adam_numpy(group, x, g, m, v, *rest):
    """The Adam step as elementwise numpy, each operation rounded in the dtype (torch's single-tensor order)."""
    lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    step = rest[-1]
    if group["maximize"]:
        g = -g
    if weight_decay != 0 and group["decoupled_weight_decay"]:
        x *= 1 - lr * weight_decay
    elif weight_decay != 0:
        g = g + weight_decay * x
    w = m.dtype.type(1 - beta1)
    if abs(w) < 0.5:
        m += w * (g - m)
    else:
        m[...] = g - (g - m) * (1 - w)
    v *= beta2
    v += (1 - beta2) * g * g
    if len(rest) == 2:
        np.maximum(rest[0], v, out=rest[0])
        v = rest[0]
    denom = np.sqrt(v) / (1 - beta2**step) ** 0.5
    denom += eps
    x += (-lr / (1 - beta1**step) * m) / denom


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(maximize=True, weight_decay=0.1),
        dict(weight_decay=0.05, decoupled_weight_decay=True, amsgrad=True),
        dict(betas=(0.3, 0.9), amsgrad=True),  # lerp weight 0.7: the other formula
    ],
    ids=["plain", "maximize-decay", "decoupled-amsgrad", "beta1-0.3"],
)
def test_adam_kernel_rounds_as_the_numpy_formula(options, dtype):
    from numbaconv.optim.adam import _adam

    group = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False,
                 decoupled_weight_decay=False, amsgrad=False) | options  # fmt: skip
    rng = np.random.default_rng(3)
    base = [rng.standard_normal((5, 37)).astype(dtype) for _ in range(5)]  # x, g, m, v, v_max
    base[3], base[4] = np.abs(base[3]), np.abs(base[4])
    base[2][0, 0], base[3][2, 2], base[4][1, 1] = np.nan, np.nan, np.nan  # NaN moments propagate as in numpy
    ours, numpy_ = [a.copy() for a in base], [a.copy() for a in base]
    # Non-contiguous arrays (a Fortran-ordered parameter, and its zeros_like moments) are stepped in copies
    # and written back.
    ours = [np.asfortranarray(a) for a in ours]
    count = 5 if group["amsgrad"] else 4
    _adam(group, *ours[:count], 4.0)
    _adam_numpy(group, *numpy_[:count], 4.0)
    for a, b in zip(ours, numpy_, strict=True):
        np.testing.assert_array_equal(a, b)
