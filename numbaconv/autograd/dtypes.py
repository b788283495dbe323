"""Dtypes and PyTorch's type promotion.

The default float dtype is float32, Python scalars do not widen a tensor's dtype (``float32_tensor * 2.0``
stays float32), an int tensor combined with a float scalar becomes float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # at run time tensor.py binds ``Tensor`` here: it imports this module, so no import back
    from .tensor import Tensor

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
DEFAULT_FLOAT = float32

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}


def _promote(a: np.dtype | None, b: np.dtype | None) -> np.dtype | None:
    """PyTorch's promotion of two dtypes: the higher kind (bool < int < float) wins, then the wider type."""
    if a is None or b is None:
        return a if b is None else b
    ra, rb = _KIND_RANK[a.kind], _KIND_RANK[b.kind]
    if ra != rb:
        return a if ra > rb else b
    return np.promote_types(a, b)


def _scalar_dtype(value) -> np.dtype:
    """The dtype a Python/numpy scalar takes next to a tensor: bool, int64 or the default float."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT
    raise TypeError(f"unsupported operand type for a Tensor op: {type(value).__name__}")


def result_type(*operands) -> np.dtype:
    """The dtype of an op on ``operands`` (Tensors, arrays, scalars), as ``torch.result_type``.

    Three priority classes -- tensors with dimensions, 0-d tensors, Python scalars -- are promoted separately;
    a lower class only changes the result when it is of a higher kind (e.g. an int tensor times 2.5).
    """
    dims = zero_dim = scalars = None
    for x in operands:
        if isinstance(x, (Tensor, np.ndarray)):
            if x.ndim:
                dims = _promote(dims, x.dtype)
            else:
                zero_dim = _promote(zero_dim, x.dtype)
        else:
            scalars = _promote(scalars, _scalar_dtype(x))
    return _combine(dims, _combine(zero_dim, scalars))


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    if higher is None or lower is None:
        return lower if higher is None else higher
    return higher if _KIND_RANK[higher.kind] >= _KIND_RANK[lower.kind] else _promote(higher, lower)


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"
