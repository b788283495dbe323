"""Tensor's arithmetic (with broadcasting and dtype promotion), in-place updates, comparisons and
elementwise functions, as the :class:`ArithmeticOps` mixin; each backward rule sits next to its forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..kernels.elementwise import relu_backward, relu_forward
from ..runtime import parallel_section
from .dtypes import DEFAULT_FLOAT, _is_float, result_type
from .grad_mode import _mode
from .tape import _raw, record, unbroadcast

_KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _flat_kernel(kernel: Callable, *arrays: np.ndarray) -> np.ndarray:
    """``kernel(*flat arrays, flat result)`` for same-shape arrays; the result is a new array of that shape."""
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = np.empty(arrays[0].shape, arrays[0].dtype)
    with parallel_section():
        kernel(*flat, out.reshape(-1))
    return out


if TYPE_CHECKING:  # at run time tensor.py binds ``Tensor`` here: it imports this module, so no import back
    from .tensor import Tensor


def _as_tensor(value, dtype: np.dtype) -> Tensor:
    """``value`` (Tensor, array or scalar) as a Tensor of ``dtype``; a cast of a Tensor is recorded."""
    if isinstance(value, Tensor):
        return value if value.dtype == dtype else value.to(dtype)
    return Tensor(np.asarray(value, dtype=dtype))


def _operands(a: Tensor, b, true_divide: bool = False) -> tuple[Tensor, Tensor]:
    """Both operands of a binary op as Tensors of their common (PyTorch-promoted) dtype."""
    dtype = result_type(a, b)
    if true_divide and not _is_float(dtype):
        dtype = DEFAULT_FLOAT
    return _as_tensor(a, dtype), _as_tensor(b, dtype)


def _is_operand(value) -> bool:
    return isinstance(value, (Tensor, np.ndarray, int, float, np.number, np.bool_))


class ArithmeticOps:
    """Mixed into :class:`~numbaconv.autograd.tensor.Tensor`: operators, in-place updates, elementwise math."""

    # --- arithmetic (backward rules next to forwards) -------------------------------------------------------

    def __add__(self, other) -> Tensor:
        a, b = _operands(self, other)

        def backward(g):
            return (unbroadcast(g, a.shape) if a.requires_grad else None,
                    unbroadcast(g, b.shape) if b.requires_grad else None)  # fmt: skip

        return record(a._array + b._array, (a, b), backward, "Add")

    def __sub__(self, other) -> Tensor:
        a, b = _operands(self, other)

        def backward(g):
            return (unbroadcast(g, a.shape) if a.requires_grad else None,
                    unbroadcast(-g, b.shape) if b.requires_grad else None)  # fmt: skip

        return record(a._array - b._array, (a, b), backward, "Sub")

    def __mul__(self, other) -> Tensor:
        a, b = _operands(self, other)
        x, y = a._array, b._array

        def backward(g):
            return (unbroadcast(g * y, a.shape) if a.requires_grad else None,
                    unbroadcast(g * x, b.shape) if b.requires_grad else None)  # fmt: skip

        return record(x * y, (a, b), backward, "Mul")

    def __truediv__(self, other) -> Tensor:
        a, b = _operands(self, other, true_divide=True)
        x, y = a._array, b._array

        def backward(g):
            return (unbroadcast(g / y, a.shape) if a.requires_grad else None,
                    unbroadcast(-g * x / (y * y), b.shape) if b.requires_grad else None)  # fmt: skip

        return record(x / y, (a, b), backward, "Div")

    def __pow__(self, other) -> Tensor:
        a, b = _operands(self, other)
        x, y = a._array, b._array
        out = x**y

        @np.errstate(divide="ignore", invalid="ignore")
        def backward(g):
            ga = gb = None
            if a.requires_grad:  # d/dx x^y = y x^(y-1), and 0 where y == 0 (x^-1 may be inf there)
                ga = unbroadcast(np.where(y == 0, 0, g * y * x ** np.where(y == 0, 1, y - 1)), a.shape)
            if b.requires_grad:  # d/dy x^y = x^y log x, and 0 where x == 0 and y >= 0, as PyTorch
                gb = unbroadcast(np.where((x == 0) & (y >= 0), 0, g * out * np.log(x)), b.shape)
            return ga, gb

        return record(out, (a, b), backward, "Pow")

    def __radd__(self, other) -> Tensor:
        return self + other

    def __rsub__(self, other) -> Tensor:
        return _as_tensor(other, result_type(self, other)) - self

    def __rmul__(self, other) -> Tensor:
        return self * other

    def __rtruediv__(self, other) -> Tensor:
        return _as_tensor(other, result_type(self, other)) / self

    def __rpow__(self, other) -> Tensor:
        return _as_tensor(other, result_type(self, other)) ** self

    def __neg__(self) -> Tensor:
        return record(-self._array, (self,), lambda g: (-g,), "Neg")

    def __matmul__(self, other) -> Tensor:
        """``(..., n, k) @ (..., k, m) -> (..., n, m)`` with broadcast batch dims; 1-D operands as numpy."""
        a, b = _operands(self, other)
        x, y = a._array, b._array

        def backward(g):
            x2 = x[None, :] if x.ndim == 1 else x  # (..., n, k)
            y2 = y[:, None] if y.ndim == 1 else y  # (..., k, m)
            g2 = g[..., None] if y.ndim == 1 else g
            g2 = g2[..., None, :] if x.ndim == 1 else g2  # (..., n, m)
            ga = unbroadcast(g2 @ np.swapaxes(y2, -1, -2), x2.shape).reshape(x.shape) if a.requires_grad else None
            gb = unbroadcast(np.swapaxes(x2, -1, -2) @ g2, y2.shape).reshape(y.shape) if b.requires_grad else None
            return ga, gb

        return record(x @ y, (a, b), backward, "Mm")

    matmul = __matmul__

    # --- in place (optimizers, under no_grad) ------------------------------------------------------------------

    def _inplace(self, other, ufunc: np.ufunc, out_of_place: Callable) -> Tensor:
        """``self op= other``, written into ``self`` (recorded as ``self[...] = self op other`` with grads)."""
        if _mode.enabled and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)):
            self[...] = out_of_place(other)
        else:
            ufunc(self._array, _raw(other), out=self._array, casting="same_kind")
        return self

    def __iadd__(self, other) -> Tensor:
        return self._inplace(other, np.add, self.__add__)

    def __isub__(self, other) -> Tensor:
        return self._inplace(other, np.subtract, self.__sub__)

    def __imul__(self, other) -> Tensor:
        return self._inplace(other, np.multiply, self.__mul__)

    def __itruediv__(self, other) -> Tensor:
        return self._inplace(other, np.true_divide, self.__truediv__)

    def zero_(self) -> Tensor:
        self[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self[...] = value
        return self

    def copy_(self, src) -> Tensor:
        """Copy ``src`` (broadcast, cast to this dtype) into this tensor."""
        self[...] = src
        return self

    # --- comparisons (bool tensors, no gradient) ---------------------------------------------------------------

    def _compare(self, other, ufunc: np.ufunc):
        return Tensor(ufunc(self._array, _raw(other))) if _is_operand(other) else NotImplemented

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    # --- elementwise functions ---------------------------------------------------------------------------------

    def exp(self) -> Tensor:
        t = self._as_float()
        out = np.exp(t._array)
        return record(out, (t,), lambda g: (g * out,), "Exp")

    def log(self) -> Tensor:
        t = self._as_float()
        x = t._array
        return record(np.log(x), (t,), lambda g: (g / x,), "Log")

    def sqrt(self) -> Tensor:
        t = self._as_float()
        out = np.sqrt(t._array)
        return record(out, (t,), lambda g: (g / (2 * out),), "Sqrt")

    def abs(self) -> Tensor:
        x = self._array
        return record(np.abs(x), (self,), lambda g: (g * np.sign(x),), "Abs")

    __abs__ = abs

    def clamp(self, min=None, max=None) -> Tensor:
        """Values limited to ``[min, max]``; the gradient passes where ``min <= x <= max``."""
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        x = self._array
        inside = np.ones(x.shape, dtype=bool)
        if min is not None:
            inside &= x >= min
        if max is not None:
            inside &= x <= max
        return record(np.clip(x, min, max), (self,), lambda g: (g * inside,), "Clamp")

    def relu(self) -> Tensor:
        x = self._array
        if x.dtype not in _KERNEL_FLOATS:
            return record(np.maximum(x, 0), (self,), lambda g: (g * (x > 0),), "Relu")
        out = _flat_kernel(relu_forward, x)
        return record(
            out, (self,), lambda g: (_flat_kernel(relu_backward, out, g.astype(out.dtype, copy=False)),), "Relu"
        )

    def sigmoid(self) -> Tensor:
        t = self._as_float()
        x = t._array
        e = np.exp(-np.abs(x))  # never overflows
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return record(out, (t,), lambda g: (g * out * (1 - out),), "Sigmoid")

    def tanh(self) -> Tensor:
        t = self._as_float()
        out = np.tanh(t._array)
        return record(out, (t,), lambda g: (g * (1 - out * out),), "Tanh")
