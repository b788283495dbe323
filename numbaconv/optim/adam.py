"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW`` (single-tensor CPU path)."""

from __future__ import annotations

import itertools
import operator
from typing import NamedTuple

import numpy as np

from ..autograd import Tensor
from ..kernels.optim import adam_update
from ..runtime import parallel_section
from .optimizer import Optimizer, _check_unsupported


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's algorithm step by step:

    - ``t += 1``; ``p *= 1 - lr * weight_decay`` (decoupled, AdamW) or ``g += weight_decay * p``;
    - ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g``;
    - ``v_hat = max(v_hat, v)`` with ``amsgrad``, else ``v``;
    - ``p -= lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)``.

    State per parameter: ``step`` (a float32 0-d Tensor), ``exp_avg``, ``exp_avg_sq`` (+ ``max_exp_avg_sq``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_unsupported(capturable=capturable, differentiable=differentiable, fused=fused)
        self._flat: dict[int, _FlatState] = {}  # id(param group) -> its state laid out flat
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip
        super().__init__(params, defaults)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._flat.clear()  # the loaded state is not laid out flat

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_flat": {}}  # a copy's (or unpickled) state Tensors are no views: not flat

    def _update(self, group: dict, params: list[Tensor]) -> None:
        flat = self._flat_state(group, params)
        if flat is not None:
            flat.step(group, params)
            return
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                zeros = [np.zeros_like(p._array) for _ in range(3 if group["amsgrad"] else 2)]
                state.update(_state(np.array(0.0, dtype=np.float32), zeros))
            state["step"]._array += 1
            moments = [state[key]._array for key in _KEYS[1 : 4 if group["amsgrad"] else 3]]
            _adam(group, p._array, p.grad._array, *moments, float(state["step"]._array))

    def _flat_state(self, group: dict, params: list[Tensor]) -> _FlatState | None:
        """The group's state laid out flat, if it holds exactly ``params``' state (made now when they have
        none yet); None for the per-parameter loop."""
        flat = self._flat.pop(id(group), None)
        if flat is not None and not flat.serves(self.state, params, group["amsgrad"]):
            flat = None
        if flat is None and not any(p in self.state for p in params):
            flat = _FlatState.build(self.state, params, group["amsgrad"])
        if flat is not None:
            self._flat[id(group)] = flat
        return flat


_KEYS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _state(step: np.ndarray, moments: list[np.ndarray]) -> dict:
    """A parameter's state Tensors: the (float32, as PyTorch's) 0-d ``step`` and its moments, in key order."""
    return dict(zip(_KEYS, map(Tensor, [step, *moments]), strict=False))


def _adam(group: dict, x: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *rest) -> None:
    """One Adam step of ``x`` in place, moments ``m``, ``v`` (and ``v_max`` with amsgrad) updated in place;
    ``rest`` is ``([v_max,] step)`` with ``step`` already counted. The same for one parameter or a group's
    parameters concatenated (elementwise, so the numbers are the same). One pass of
    `numbaconv.kernels.optim.adam_update`, which rounds as the elementwise numpy formula does."""
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    weight_decay, step = group["weight_decay"], rest[-1]
    real = x.dtype.type
    w = real(1 - beta1)  # the lerp weight of m towards g, and its complement computed in the dtype
    scalars = np.array(
        [1 - lr * weight_decay, weight_decay, w, real(1) - w, beta2, 1 - beta2, (1 - beta2**step) ** 0.5, eps,
         -lr / (1 - beta1**step)],
        dtype=x.dtype,
    )  # fmt: skip
    decoupled = weight_decay != 0 and group["decoupled_weight_decay"]
    flags = (bool(group["maximize"]), decoupled, weight_decay != 0 and not decoupled, abs(w) < 0.5, len(rest) == 2)
    states = [x, m, v, *rest[:-1]]
    flat = [np.ascontiguousarray(a).reshape(-1) for a in states]  # a copy only of a non-contiguous array
    v_max = flat[3] if len(rest) == 2 else flat[2]  # without amsgrad the kernel never touches it
    with parallel_section():
        adam_update(flat[0], np.ascontiguousarray(g).reshape(-1), *flat[1:3], v_max, scalars, flags)
    for a, f in zip(states, flat, strict=True):
        if not a.flags.c_contiguous:  # stepped in a copy: write it back
            a[...] = f.reshape(a.shape)


class _FlatState(NamedTuple):
    """A group's Adam state in flat arrays, each parameter's state Tensors being views into them, so that a
    step is a dozen numpy calls for the whole group instead of a dozen per parameter (tiny layers make the
    per-call cost dominate).

    Used while it provably holds the state: the same parameters (same arrays, one dtype, no two sharing
    memory), their state dicts and Tensors the ones made here, and every step count equal. Anything else --
    ``load_state_dict``, a copy, a parameter without a gradient this step -- falls back to the per-parameter
    loop, for good.
    """

    params: tuple[Tensor, ...]
    arrays: tuple[np.ndarray, ...]  # each parameter's array when the state was made
    states: tuple[dict, ...]
    views: tuple[np.ndarray, ...]  # each parameter's step and moment arrays in turn, views of ``flat``
    flat: tuple[np.ndarray, ...]  # steps (one per parameter), then each moment over all parameters
    bounds: tuple[tuple[int, int], ...]  # each parameter's slice of the moments

    @classmethod
    def build(cls, states: dict, params: list[Tensor], amsgrad: bool) -> _FlatState | None:
        """Fresh state for ``params`` (which have none) laid out flat, registered in ``states``; None when the
        parameters mix dtypes or share memory (then each is stepped on its own)."""
        arrays = tuple(p._array for p in params)
        dtype = arrays[0].dtype
        if any(a.dtype != dtype for a in arrays) or _overlapping(arrays):
            return None
        ends = np.cumsum([a.size for a in arrays]).tolist()
        bounds = tuple(zip([0, *ends[:-1]], ends, strict=True))
        moments = tuple(np.zeros(ends[-1], dtype) for _ in range(3 if amsgrad else 2))
        flat = (np.zeros(len(arrays), np.float32), *moments)
        views, made = [], []
        for i, (p, a, (lo, hi)) in enumerate(zip(params, arrays, bounds, strict=True)):
            state = states[p] = _state(flat[0][i : i + 1].reshape(()), [m[lo:hi].reshape(a.shape) for m in flat[1:]])
            made.append(state)
            views.extend(t._array for t in state.values())
        return cls(tuple(params), arrays, tuple(made), tuple(views), flat, bounds)

    def serves(self, states: dict, params: list[Tensor], amsgrad: bool) -> bool:
        """Whether this layout still holds exactly the state of ``params`` (see the class docstring)."""
        keys = _KEYS[: 4 if amsgrad else 3]
        if len(params) != len(self.params) or len(self.flat) != len(keys):
            return False
        dtype = self.flat[1].dtype
        return (
            all(map(operator.is_, params, self.params))
            and all(map(operator.is_, [p._array for p in params], self.arrays))
            and all(p.grad._array.dtype == dtype for p in params)
            and all(map(operator.is_, map(states.get, params), self.states))
            and all(map(operator.is_, [state[key]._array for state in self.states for key in keys], self.views))
            and bool((self.flat[0] == self.flat[0][0]).all())  # every step count equal
        )

    def step(self, group: dict, params: list[Tensor]) -> None:
        """One Adam step of every parameter, on the concatenated parameters, gradients and moments."""
        steps = self.flat[0]
        steps += 1
        x = np.concatenate([a.reshape(-1) for a in self.arrays])
        g = np.concatenate([p.grad._array.reshape(-1) for p in params])
        _adam(group, x, g, *self.flat[1:], float(steps[0]))
        for a, (lo, hi) in zip(self.arrays, self.bounds, strict=True):
            np.copyto(a, x[lo:hi].reshape(a.shape))


_byte_bounds = getattr(np, "byte_bounds", None) or np.lib.array_utils.byte_bounds  # moved in numpy 2


def _overlapping(arrays: tuple[np.ndarray, ...]) -> bool:
    """Whether the memory ranges of any two arrays overlap (np.may_share_memory's test, sorted: n log n)."""
    spans = sorted(_byte_bounds(a) for a in arrays)
    ends = itertools.accumulate((high for _, high in spans), max)
    return any(low < end for (low, _), end in zip(spans[1:], ends, strict=False))


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the Adam step); default 1e-2."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
        )  # fmt: skip
