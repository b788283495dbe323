"""numbaconv.optim against torch.optim: parameter trajectories, state, state_dict layout and LR schedules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import numbaconv.autograd as ag
from numbaconv import nn, optim
from numbaconv.optim import lr_scheduler

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(3)
STARTS = [RNG.standard_normal(s).astype(np.float32) for s in [(4, 3, 3, 3), (4,), (10, 7)]]
TARGETS = [RNG.standard_normal(s.shape).astype(np.float32) for s in STARTS]


def _grad(i, theta):
    """A nonlinear gradient (so that momentum/second moments matter), computed in float32."""
    return (np.tanh(theta - TARGETS[i]) * 3 + 0.1 * theta**3).astype(np.float32)


def trajectories(ours_factory, torch_factory, steps=6, groups=None):
    ours = [nn.Parameter(ag.tensor(s.copy())) for s in STARTS]
    theirs = [torch.nn.Parameter(torch.tensor(s.copy())) for s in STARTS]

    def grouped(ps):
        return ps if groups is None else [dict(g, params=[ps[i] for i in g["params"]]) for g in groups]

    o_opt, t_opt = ours_factory(grouped(ours)), torch_factory(grouped(theirs))
    for step in range(steps):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            if step == 2 and i == 1:  # a parameter without a gradient this step is skipped
                p.grad, q.grad = None, None
                continue
            p.grad = ag.tensor(_grad(i, p.detach().numpy()))
            q.grad = torch.tensor(_grad(i, q.detach().numpy()))
        o_opt.step()
        t_opt.step()
        for p, q in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
    return o_opt, t_opt


CASES = {
    "sgd": dict(lr=0.05),
    "sgd_momentum": dict(lr=0.05, momentum=0.9),
    "sgd_dampening_wd": dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=1e-2),
    "sgd_nesterov": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "sgd_maximize": dict(lr=0.01, momentum=0.5, maximize=True, weight_decay=0.1),
}
ADAM_CASES = {
    "adam": dict(lr=1e-2),
    "adam_betas": dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6),
    "adam_wd": dict(lr=1e-2, weight_decay=0.05),
    "adam_amsgrad": dict(lr=1e-2, amsgrad=True),
    "adam_maximize": dict(lr=1e-2, maximize=True),
    "adam_decoupled": dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
}


def _state_equal(o_opt, t_opt):
    o_sd, t_sd = o_opt.state_dict(), t_opt.state_dict()
    assert list(o_sd["state"]) == list(t_sd["state"])
    for key, t_state in t_sd["state"].items():
        assert list(o_sd["state"][key]) == list(t_state)
        for name, value in t_state.items():
            np.testing.assert_allclose(o_sd["state"][key][name].numpy(), value.numpy(), rtol=1e-5, atol=1e-7)
            assert o_sd["state"][key][name].dtype == np.dtype(str(value.dtype).replace("torch.", ""))
    assert [set(g) for g in o_sd["param_groups"]] == [set(g) for g in t_sd["param_groups"]]
    for og, tg in zip(o_sd["param_groups"], t_sd["param_groups"], strict=True):
        assert {k: v for k, v in og.items() if k in tg} == tg


@pytest.mark.parametrize("name", sorted(CASES))
def test_sgd_matches_torch(name):
    kwargs = CASES[name]
    o, t = trajectories(lambda ps: optim.SGD(ps, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs))
    _state_equal(o, t)


@pytest.mark.parametrize("name", sorted(ADAM_CASES))
def test_adam_matches_torch(name):
    kwargs = ADAM_CASES[name]
    o, t = trajectories(lambda ps: optim.Adam(ps, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs))
    _state_equal(o, t)


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=5e-3, weight_decay=0.2, amsgrad=True)])
def test_adamw_matches_torch(kwargs):
    o, t = trajectories(lambda ps: optim.AdamW(ps, **kwargs), lambda ps: torch.optim.AdamW(ps, **kwargs), steps=8)
    _state_equal(o, t)


def test_param_groups_match_torch():
    groups = [{"params": [0, 2], "lr": 0.01}, {"params": [1], "momentum": 0.5, "weight_decay": 0.1}]
    o, t = trajectories(
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        groups=groups,
    )
    _state_equal(o, t)


def test_torch_optimizer_state_loads_into_ours():
    """A PyTorch optimizer's state_dict (tensors converted with .numpy()) resumes identically here."""
    ours = [nn.Parameter(ag.tensor(s.copy())) for s in STARTS]
    theirs = [torch.nn.Parameter(torch.tensor(s.copy())) for s in STARTS]
    t_opt = torch.optim.Adam(theirs, lr=1e-2, amsgrad=True)
    for _ in range(3):
        for i, q in enumerate(theirs):
            q.grad = torch.tensor(_grad(i, q.detach().numpy()))
        t_opt.step()
    for p, q in zip(ours, theirs, strict=True):
        p.data = q.detach().numpy().copy()
    sd = t_opt.state_dict()
    o_opt = optim.Adam(ours, lr=1.0, amsgrad=True)
    o_opt.load_state_dict(
        {"state": {k: {n: v.numpy() for n, v in s.items()} for k, s in sd["state"].items()},
         "param_groups": sd["param_groups"]}
    )  # fmt: skip
    assert o_opt.param_groups[0]["lr"] == 1e-2
    for _ in range(3):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            p.grad = ag.tensor(_grad(i, p.detach().numpy()))
            q.grad = torch.tensor(_grad(i, q.detach().numpy()))
        o_opt.step()
        t_opt.step()
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def _schedule(module_optim, module_sched, make, epochs):
    opt = module_optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(_params(module_optim), (0.1, 0.03), strict=True)], lr=1.0
    )
    sched = make(module_sched, opt)
    lrs = [sched.get_last_lr()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr())
    return np.array(lrs, dtype=np.float64), sched


def _params(module_optim):
    if module_optim is optim:
        return [nn.Parameter(ag.zeros(1)), nn.Parameter(ag.zeros(1))]
    return [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]


SCHEDULES = {
    "step": lambda m, o: m.StepLR(o, step_size=3),
    "step_gamma": lambda m, o: m.StepLR(o, 2, gamma=0.7),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "cosine_eta_min": lambda m, o: m.CosineAnnealingLR(o, T_max=4, eta_min=0.005),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_match_torch(name):
    ours, o_sched = _schedule(optim, lr_scheduler, SCHEDULES[name], 20)
    theirs, t_sched = _schedule(torch.optim, torch.optim.lr_scheduler, SCHEDULES[name], 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    o_state, t_state = o_sched.state_dict(), t_sched.state_dict()
    for key in ("base_lrs", "last_epoch", "_step_count", "_last_lr", "step_size", "gamma", "T_max", "eta_min"):
        if key in t_state:
            assert o_state[key] == pytest.approx(t_state[key]), key
