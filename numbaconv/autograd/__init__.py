"""Tensor and the autograd tape: a numpy array that remembers how it was made.

Every differentiable op computes its output array and a small ``backward`` closure, then calls
:func:`record`, which wraps the output in a :class:`Tensor` holding a :class:`Node` (input edges + closure)
when grad mode is on and a parent requires grad. ``Tensor.backward()`` sorts the graph topologically and walks it
in reverse, summing gradients per tensor and accumulating them into the leaves' ``.grad``. Each op's backward
rule sits right next to its forward, micrograd-style.

Dtype promotion follows PyTorch: the default float dtype is float32, Python scalars do not widen a tensor's
dtype (``float32_tensor * 2.0`` stays float32), an int tensor combined with a float scalar becomes float32.

Modules, each importing only those above it:

- ``grad_mode``: ``no_grad``, ``enable_grad``, ``is_grad_enabled`` (per thread).
- ``dtypes``: ``float32``/``float64``/``int64``, the default float dtype, ``result_type`` (PyTorch's promotion).
- ``tape``: :class:`Node`, :func:`record`, :func:`unbroadcast`, the backward walk.
- ``shape``, ``reductions``, ``arithmetic``: the Tensor's ops, as mixins.
- ``tensor``: the :class:`Tensor` class itself (storage, attributes, conversions, ``backward``).
- ``creation``: ``tensor``, ``from_numpy``, ``zeros``, ``ones``, ``rand``, ``randn``, ``arange``, ``manual_seed``,
  ``generator``.
"""

from .creation import (
    arange,
    from_numpy,
    generator,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .dtypes import DEFAULT_FLOAT, float32, float64, int64, result_type
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .reductions import MaxResult
from .tape import Node, record, unbroadcast
from .tensor import Tensor

__all__ = [
    "DEFAULT_FLOAT",
    "MaxResult",
    "Node",
    "Tensor",
    "arange",
    "enable_grad",
    "float32",
    "float64",
    "from_numpy",
    "generator",
    "int64",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "record",
    "result_type",
    "tensor",
    "unbroadcast",
    "zeros",
    "zeros_like",
]
