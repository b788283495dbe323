"""The tape: :class:`Node`, :func:`record` and the backward walk.

Every differentiable op computes its output array and a small ``backward`` closure, then calls :func:`record`,
which wraps the output in a Tensor holding a :class:`Node` (input edges + closure) when grad mode is on and a
parent requires grad. ``Tensor.backward()`` hands the root to :func:`_run_backward`, which sorts the graph
topologically and walks it in reverse, summing gradients per tensor and accumulating them into the leaves'
``.grad``. :func:`_raw` is the way back from a Tensor argument to its array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .grad_mode import _mode

if TYPE_CHECKING:  # at run time tensor.py binds ``Tensor`` here: it imports this module, so no import back
    from .tensor import Tensor

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward(). "
    "Specify retain_graph=True if you need to backward through the graph a second time."
)


class Node:
    """One recorded op (a tensor's ``grad_fn``): the closure mapping its output gradient to its inputs'.

    ``inputs`` holds, per parent, the parent's own Node, the parent itself when it is a leaf that requires
    grad, or None. Edges point at nodes rather than tensors, so an in-place write that gives a tensor a new
    node leaves the graphs already built from it untouched, as in PyTorch.
    """

    __slots__ = ("inputs", "backward", "name", "shape")

    def __init__(self, inputs: tuple, backward: Callable, name: str, shape: tuple[int, ...]):
        self.inputs, self.backward, self.name, self.shape = inputs, backward, name, shape

    def __repr__(self) -> str:
        return f"<{self.name}Backward0>"


def _edge(t: Tensor) -> Node | Tensor | None:
    """Where a gradient for ``t`` goes: its node, itself (a leaf requiring grad), or nowhere."""
    if t._node is not None:
        return t._node
    return t if t.requires_grad else None


def record(
    array: np.ndarray,
    parents: tuple[Tensor, ...],
    backward: Callable[[np.ndarray], tuple[np.ndarray | None, ...]],
    name: str,
) -> Tensor:
    """Wrap an op's output ``array``; put a tape node on it when grad mode is on and a parent requires grad.

    ``backward(grad_out)`` receives the gradient of the output (shaped like ``array``) and returns one
    gradient per parent (shaped like that parent) or None where a parent needs none.
    """
    out = Tensor(np.asarray(array))
    if _mode.enabled:
        for p in parents:
            if p._requires_grad:
                out._node = Node(tuple([_edge(q) for q in parents]), backward, name, out._array.shape)
                out._requires_grad = True
                break
    return out


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes numpy broadcasting added or stretched, so it takes ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _topological_order(root: Node | Tensor) -> list[Node | Tensor]:
    """Nodes and leaves reachable from ``root``, every input before its consumers (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        item, finished = stack.pop()
        if finished:
            order.append(item)
            continue
        if id(item) in visited:
            continue
        visited.add(id(item))
        stack.append((item, True))
        if type(item) is Node:
            stack.extend([(i, False) for i in item.inputs if i is not None and id(i) not in visited])
    return order


def _run_backward(root: Node | Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    """Walk the tape from ``root`` in reverse topological order, accumulating leaf gradients."""
    grads = {id(root): grad}
    for item in reversed(_topological_order(root)):
        g = grads.pop(id(item), None)
        if g is None:
            continue
        if type(item) is not Node:  # a leaf
            item._accumulate_grad(g)
            continue
        if item.backward is None:
            raise RuntimeError(_FREED)
        for target, tg in zip(item.inputs, item.backward(g), strict=True):
            if target is None or tg is None:
                continue
            if tg.shape != target.shape:
                raise RuntimeError(f"{item!r} returned a gradient of shape {tg.shape} for an input of {target.shape}")
            key = id(target)
            earlier = grads.get(key)
            grads[key] = tg if earlier is None else earlier + tg
        if not retain_graph:
            item.backward, item.inputs = None, ()


def _raw(value):
    """The numpy payload of a Tensor; anything else unchanged."""
    return value._array if isinstance(value, Tensor) else value
