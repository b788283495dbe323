"""Creating Tensors: ``tensor``, ``from_numpy``, ``zeros``/``ones`` (and ``_like``), ``arange``, and the random
state behind ``rand``/``randn`` (``manual_seed``, ``generator``).
"""

from __future__ import annotations

import numpy as np

from .dtypes import DEFAULT_FLOAT, int64
from .shape import _size
from .tape import _raw
from .tensor import Tensor

_generator = np.random.default_rng(67280421310721)  # PyTorch's default CPU seed: deterministic by default


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator behind ``rand``, ``randn`` and ``nn.init``; returns it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The module-level numpy Generator (reseeded by :func:`manual_seed`)."""
    return _generator


def _creation_dtype(dtype) -> np.dtype:
    return DEFAULT_FLOAT if dtype is None else np.dtype(dtype)


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copying ``data`` (nested lists, scalars, arrays, Tensors), like ``torch.tensor``.

    Without ``dtype``: Python floats give float32, ints int64, bools bool; arrays keep their dtype.
    """
    if dtype is None:
        array = np.array(_raw(data))
        if not isinstance(data, (Tensor, np.ndarray, np.generic)):
            array = array.astype({"f": DEFAULT_FLOAT, "i": int64, "u": int64}.get(array.dtype.kind, array.dtype))
    else:
        array = np.array(_raw(data), dtype=np.dtype(dtype))
    return Tensor(array, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor(array)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_size(size), dtype=_creation_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_size(size), dtype=_creation_dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(t.shape, dtype=t.dtype if dtype is None else np.dtype(dtype)), requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(t.shape, dtype=t.dtype if dtype is None else np.dtype(dtype)), requires_grad)


def rand(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1) drawn from :func:`generator`."""
    return Tensor(_generator.random(_size(size), dtype=_creation_dtype(dtype)), requires_grad)


def randn(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples drawn from :func:`generator`."""
    return Tensor(_generator.standard_normal(_size(size), dtype=_creation_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """``[start, end)`` by ``step``; int64 when all three are ints, else float32 (unless ``dtype``)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = int64 if integral else DEFAULT_FLOAT
    return Tensor(np.arange(start, end, step, dtype=np.dtype(dtype)), requires_grad)
