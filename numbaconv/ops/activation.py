"""Elementwise activations, softmax / log-softmax and dropout (plain numpy: one pass each is enough)."""

from __future__ import annotations

import warnings

import numpy as np

from ..autograd import Tensor, generator, record
from ._args import as_tensor, check_dim, check_probability, float_tensor


def _inplace(input: Tensor, out: Tensor) -> Tensor:
    """Write ``out`` into ``input`` as PyTorch's in-place variants do, and return ``input``.

    Goes through ``Tensor.__setitem__``: without a graph it writes into ``input``'s memory; with one,
    ``input`` takes ``out``'s history (and a leaf that requires grad refuses, as in PyTorch).
    """
    input[...] = out
    return input


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)``; the gradient is 1 where input > 0, else 0."""
    t = as_tensor("input", input)
    out = t.relu()
    return _inplace(t, out) if inplace else out


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``input`` where input > 0, else ``negative_slope * input`` (the gradient at 0 is ``negative_slope``)."""
    t = float_tensor("input", input)
    x = t._array
    slope = x.dtype.type(negative_slope)
    positive = x > 0
    out = np.where(positive, x, x * slope)
    result = record(out, (t,), lambda g: (np.where(positive, g, g * slope),), "LeakyRelu")
    return _inplace(t, result) if inplace else result


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-input))``, computed without overflow."""
    return as_tensor("input", input).sigmoid()


def tanh(input: Tensor) -> Tensor:
    return as_tensor("input", input).tanh()


def _softmax_dim(dim: int | None, ndim: int, name: str) -> int:
    """``dim``, or PyTorch's legacy implicit choice (with its warning) when it is None."""
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                      "as an argument.", stacklevel=3)  # fmt: skip
        dim = 0 if ndim in (0, 1, 3) else 1
    return check_dim("dim", dim, ndim)


def _float_input(input: Tensor, dtype) -> Tensor:
    t = as_tensor("input", input)
    if dtype is not None:
        t = t.to(np.dtype(dtype))
    return float_tensor("input", t)


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the maximum so nothing overflows.

    The gradient: ``y * (g - sum(g * y, dim))``.
    """
    t = _float_input(input, dtype)
    axis = _softmax_dim(dim, t.ndim, "softmax")
    x = t._array
    if x.ndim == 0:
        return record(np.ones_like(x), (t,), lambda g: (np.zeros_like(g),), "Softmax")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return record(y, (t,), lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),), "Softmax")


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` along ``dim``. The gradient: ``g - exp(y) * sum(g, dim)``."""
    t = _float_input(input, dtype)
    axis = _softmax_dim(dim, t.ndim, "log_softmax")
    x = t._array
    if x.ndim == 0:
        return record(np.zeros_like(x), (t,), lambda g: (np.zeros_like(g),), "LogSoftmax")
    y = log_softmax_array(x, axis)
    return record(y, (t,), lambda g: (g - np.exp(y) * g.sum(axis=axis, keepdims=True),), "LogSoftmax")


def log_softmax_array(x: np.ndarray, axis: int) -> np.ndarray:
    """The numerically stable log-softmax of an array along ``axis`` (shared with the losses)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (inverted dropout).

    The identity when ``training`` is False or ``p`` is 0. Randomness comes from
    ``numbaconv.autograd.generator()``, so ``manual_seed`` makes it reproducible.
    """
    p = check_probability("p", p)
    t = float_tensor("input", input)
    if not training or p == 0.0:
        return t
    x = t._array
    if p == 1.0:
        mask = np.zeros(x.shape, x.dtype)
    else:
        keep = generator().random(x.shape) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    out = record(x * mask, (t,), lambda g: (g * mask,), "Dropout")
    return _inplace(t, out) if inplace else out


__all__ = ["dropout", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]
