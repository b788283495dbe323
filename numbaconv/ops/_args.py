"""Argument checks shared by the functional ops: each raises TypeError/ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autograd import Tensor

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")


def as_tensor(name: str, value: object) -> Tensor:
    """``value`` as a Tensor (numpy arrays are wrapped without copying)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")


def float_tensor(name: str, value: object, ndims: Sequence[int] | None = None) -> Tensor:
    """A float32/float64 Tensor with one of ``ndims`` dimensions (any when None)."""
    t = as_tensor(name, value)
    array = t._array
    if array.dtype not in FLOATS:
        raise TypeError(f"{name} must be a float32 or float64 tensor, got dtype {t.dtype}")
    if ndims is not None and array.ndim not in ndims:
        wanted = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {wanted}, got shape {t.shape}")
    return t


def same_dtype(**tensors: Tensor | None) -> None:
    """Raise TypeError unless every given (non-None) tensor has the same dtype."""
    if len({t._array.dtype for t in tensors.values() if t is not None}) > 1:
        given = {name: t for name, t in tensors.items() if t is not None}
        listed = ", ".join(f"{name} {t.dtype}" for name, t in given.items())
        raise TypeError(f"{', '.join(given)} must share one dtype, got {listed}")


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_tuple(name: str, value: object, length: int, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of ``length`` ints, each at least ``minimum``, as a tuple of ``length`` ints."""
    items = (value,) * length if is_int(value) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) != length:
        raise TypeError(f"{name} must be an int or a tuple of {length} ints, got {value!r}")
    if not all(is_int(v) for v in items):
        raise TypeError(f"{name} must be an int or a tuple of {length} ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def check_reduction(reduction: object) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_dim(name: str, dim: object, ndim: int) -> int:
    """A dimension index in [-ndim, ndim) (a 0-d tensor accepts 0 and -1) as a non-negative int."""
    if not is_int(dim):
        raise TypeError(f"{name} must be an int, got {dim!r}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ValueError(f"{name} must be in [{-size}, {size - 1}] for a {ndim}-D input, got {dim}")
    return int(dim) % size


def check_probability(name: str, p: object) -> float:
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


def batched(x: np.ndarray, ndim: int) -> np.ndarray:
    """``x`` with a leading batch axis of one when it has ``ndim - 1`` dimensions (an unbatched input)."""
    return x[np.newaxis] if x.ndim == ndim - 1 else x


def needs_grad(*tensors: Tensor | None) -> tuple[bool, ...]:
    """Per tensor, whether the backward must produce its gradient (fixed when the op is recorded)."""
    return tuple([t is not None and t._requires_grad for t in tensors])
