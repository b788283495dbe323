"""Tensor's reductions (``sum``, ``mean``, ``max``, ``argmax``) as the :class:`ReductionOps` mixin."""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING

import numpy as np

from .dtypes import _is_float, int64
from .shape import _dims
from .tape import record

if TYPE_CHECKING:  # at run time tensor.py binds ``Tensor`` here: it imports this module, so no import back
    from .tensor import Tensor

MaxResult = namedtuple("max", ["values", "indices"])


def _expand(grad: np.ndarray, shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> np.ndarray:
    """The gradient of a reduction over ``dims``, broadcast back to the input ``shape`` (a fresh array)."""
    if not keepdim:
        grad = np.expand_dims(grad, dims)
    return np.broadcast_to(grad, shape).copy()


class ReductionOps:
    """Mixed into :class:`~numbaconv.autograd.tensor.Tensor`: reductions over all or some dimensions."""

    def sum(self, dim=None, keepdim: bool = False) -> Tensor:
        """Sum over ``dim`` (None: all; an int or a tuple of ints)."""
        dims, shape = _dims(dim, self.ndim), self.shape
        out = self._array.sum(axis=dims, keepdims=keepdim)
        return record(out, (self,), lambda g: (_expand(g, shape, dims, keepdim),), "Sum")

    def mean(self, dim=None, keepdim: bool = False) -> Tensor:
        """Mean over ``dim`` (None: all; an int or a tuple of ints); float tensors only, as PyTorch."""
        if not _is_float(self.dtype):
            raise RuntimeError(
                f"mean(): could not infer output dtype. Input dtype must be floating point, got {self.dtype}"
            )
        dims, shape = _dims(dim, self.ndim), self.shape
        count = int(np.prod([shape[d] for d in dims]))
        out = self._array.mean(axis=dims, keepdims=keepdim)
        return record(out, (self,), lambda g: (_expand(g / count, shape, dims, keepdim),), "Mean")

    def max(self, dim: int | None = None, keepdim: bool = False):
        """The maximum value; with ``dim``, a ``(values, indices)`` namedtuple along that dimension.

        Without ``dim`` the gradient is shared evenly among tied maxima; with ``dim`` it goes to ``indices``.
        """
        x = self._array
        if dim is None:
            out = x.max()

            def backward(g):
                ties = x == out
                return ((g * ties / ties.sum()).astype(x.dtype),)

            return record(out, (self,), backward, "Max")
        (d,) = _dims(dim, self.ndim)
        kept = np.argmax(x, axis=d, keepdims=True)

        def backward(g):
            gx = np.zeros_like(x)
            np.put_along_axis(gx, kept, g if keepdim else np.expand_dims(g, d), axis=d)
            return (gx,)

        values, indices = np.take_along_axis(x, kept, axis=d), kept
        if not keepdim:
            values, indices = values.squeeze(d), kept.squeeze(d)
        return MaxResult(record(values, (self,), backward, "Max"), Tensor(indices.astype(int64)))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the maximum (over the flattened tensor when ``dim`` is None)."""
        if dim is None:
            return Tensor(np.asarray(np.argmax(self._array), dtype=int64))
        return Tensor(np.argmax(self._array, axis=int(dim), keepdims=keepdim).astype(int64))
