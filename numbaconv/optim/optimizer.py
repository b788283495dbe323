"""Optimizer: parameter groups, per-parameter state and PyTorch's state_dict structure.

Subclasses implement ``_update(group, params)`` as vectorised numpy arithmetic written in place into each
parameter's array (``p._array``) -- the same operations, in the same order, as PyTorch's single-tensor
(CPU) code path, so results agree to rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np

from ..autograd import Tensor, enable_grad

_REQUIRED = object()  # a default that every parameter group must supply (e.g. an lr without default)


def _as_state_value(value, like: Tensor | None, key: str):
    """A loaded state entry as a fresh Tensor (cast to the parameter's dtype, except ``step``), or as is."""
    if isinstance(value, Tensor):
        value = value._array
    if key == "step" and isinstance(value, int | float) and not isinstance(value, bool):
        value = np.float32(value)  # older checkpoints keep the step count as a Python number
    if isinstance(value, np.ndarray | np.generic):
        array = np.array(value)
        if like is not None and key != "step" and array.dtype.kind == "f":
            array = array.astype(like.dtype)
        return Tensor(array)
    return copy.deepcopy(value)


class Optimizer:
    """Base class: ``Optimizer(params, defaults)`` with ``params`` an iterable of Tensors or of dicts
    (parameter groups, each overriding some of ``defaults``)."""

    def __init__(self, params: Iterable, defaults: dict) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got a Tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Append a group: ``{"params": [...], "lr": ...}``; missing options take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")  # fmt: skip
        group["params"] = params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is _REQUIRED and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing & {id(p) for p in params}:
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad`` (to None, or to zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad._array[...] = 0

    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; ``closure`` (re-evaluating the loss) is optional."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)
        return loss

    def _update(self, group: dict, params: list[Tensor]) -> None:
        raise NotImplementedError

    # --- state_dict ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{options..., "params": [indices]}]}``.

        Parameters are numbered in group order, as in PyTorch; state values are the optimizer's own Tensors.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by :meth:`state_dict` (e.g. after ``numbaconv.load``).

        Validated first: a different number of groups or of parameters per group, or a state entry whose
        shape differs from its parameter's, raises ValueError and leaves the optimizer unchanged.
        """
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError("optimizer state_dict must contain 'state' and 'param_groups'") from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups, strict=True)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
            )
        id_map = {}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            for p, i in zip(group["params"], saved["params"], strict=True):
                id_map[int(i)] = p
        new_state: dict[Tensor, dict] = {}
        for key, entries in saved_state.items():
            p = id_map.get(int(key))
            if p is None:
                continue
            restored = {}
            for name, value in entries.items():
                v = _as_state_value(value, p, name)
                if isinstance(v, Tensor) and name != "step" and v.shape != p.shape:
                    raise ValueError(
                        f"loaded optimizer state {name!r} for parameter {key} has shape {v.shape}, "
                        f"but the parameter has shape {p.shape}"
                    )
                restored[name] = v
            new_state[p] = restored
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            merged = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            if "betas" in merged and isinstance(merged["betas"], list):
                merged["betas"] = tuple(merged["betas"])
            merged["params"] = group["params"]
            new_groups.append(merged)
        self.state, self.param_groups = new_state, new_groups

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        lines.append(")")
        return "\n".join(lines)


def _check_unsupported(**flags) -> None:
    """PyTorch options with no CPU/numpy meaning here (CUDA graphs, fused kernels, differentiable steps)."""
    for name, value in flags.items():
        if value:
            raise ValueError(f"{name}=True is not supported by numbaconv's optimizers")
