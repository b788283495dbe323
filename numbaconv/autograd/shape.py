"""Tensor's shape, view and indexing ops as the :class:`ShapeOps` mixin, and the ``dim``/``size`` argument
helpers they share with reductions and the factories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .grad_mode import _mode
from .tape import Node, _edge, _raw, record, unbroadcast

if TYPE_CHECKING:  # at run time tensor.py binds ``Tensor`` here: it imports this module, so no import back
    from .tensor import Tensor

_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."


def _index(index):
    """An indexing key with Tensors replaced by their arrays."""
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _is_basic(index) -> bool:
    """True when ``index`` uses only ints, slices, None and Ellipsis (numpy returns a view, no duplicates)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None
        or p is Ellipsis
        or isinstance(p, slice)
        or (isinstance(p, (int, np.integer)) and not isinstance(p, bool))
        for p in parts
    )


def _dims(dim, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, an int or a sequence, negatives allowed) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted(int(d) % max(ndim, 1) for d in dims))


def _size(size: tuple) -> tuple[int, ...]:
    """Sizes given as ``*ints`` or as one list/tuple."""
    if len(size) == 1 and isinstance(size[0], Sequence):
        size = size[0]
    return tuple(int(n) for n in size)


class ShapeOps:
    """Mixed into :class:`~numbaconv.autograd.tensor.Tensor`: reshapes, views, copies, ``[]`` read and write."""

    # --- shape ------------------------------------------------------------------------------------------------

    def _reshaped(self, shape: tuple[int, ...], name: str) -> Tensor:
        source = self.shape
        return record(self._array.reshape(shape), (self,), lambda g: (g.reshape(source),), name)

    def reshape(self, *shape) -> Tensor:
        """A tensor of the new shape (one size may be -1); a view when the layout allows, else a copy."""
        return self._reshaped(_size(shape), "Reshape")

    def view(self, *shape) -> Tensor:
        """Like ``reshape`` but always a view: raises when the strides do not allow one."""
        out = self._reshaped(_size(shape), "View")
        if out._array.size and not np.may_share_memory(out._array, self._array):
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride (at least one dimension spans "
                "across two contiguous subspaces). Use .reshape(...) instead."
            )
        return out

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Merge dims ``start_dim..end_dim`` into one: ``(N, C, H, W).flatten(1) -> (N, C*H*W)``."""
        if self.ndim == 0:
            return self._reshaped((1,), "Flatten")
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (math.prod(self.shape[start : end + 1]),) + self.shape[end + 1 :]
        return self._reshaped(shape, "Flatten")

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert a size-1 dimension at ``dim`` (negative counts from the end of the result)."""
        return self._reshaped(np.expand_dims(self._array, dim).shape, "Unsqueeze")

    def squeeze(self, dim=None) -> Tensor:
        """Drop size-1 dimensions (all, or those of ``dim`` (int or tuple) that have size 1)."""
        dims = _dims(dim, self.ndim)
        return self._reshaped(tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1)), "Squeeze")

    def permute(self, *dims) -> Tensor:
        """Reorder dimensions (a view): ``(N, C, H, W).permute(0, 2, 3, 1) -> (N, H, W, C)``."""
        order = tuple(d % max(self.ndim, 1) for d in _size(dims))
        inverse = tuple(np.argsort(order))
        return record(self._array.transpose(order), (self,), lambda g: (g.transpose(inverse),), "Permute")

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """Swap two dimensions (a view)."""
        return record(
            np.swapaxes(self._array, dim0, dim1), (self,), lambda g: (np.swapaxes(g, dim0, dim1),), "Transpose"
        )

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (the matrix transpose for 2-D)."""
        return self.permute(*reversed(range(self.ndim)))

    def contiguous(self) -> Tensor:
        """Self when C-contiguous, else a C-contiguous copy (gradient passes unchanged)."""
        if self._array.flags.c_contiguous:
            return self
        return record(np.ascontiguousarray(self._array), (self,), lambda g: (g,), "Contiguous")

    def clone(self) -> Tensor:
        """A copy with its own memory that stays in the graph."""
        return record(self._array.copy(), (self,), lambda g: (g,), "Clone")

    # --- indexing ---------------------------------------------------------------------------------------------

    def __getitem__(self, index) -> Tensor:
        """numpy indexing; basic indexing (ints, slices, None, ...) returns a view, as in PyTorch."""
        idx, x = _index(index), self._array
        basic = _is_basic(idx)

        def backward(g):
            gx = np.zeros_like(x)
            if basic:
                gx[idx] = g
            else:
                np.add.at(gx, idx, g)  # repeated indices accumulate
            return (gx,)

        return record(x[idx], (self,), backward, "Index")

    def __setitem__(self, index, value) -> None:
        """Write ``value`` (broadcast, cast) into ``self[index]`` in place: ``t[0, 0, 2:6, 2:6] = 1.0``.

        A leaf that requires grad refuses outside ``no_grad()`` (write into ``.data`` instead), as PyTorch.
        When a gradient is involved, ``self`` becomes the output of a CopySlices node -- the written region
        sends its gradient to ``value``, the rest to the tensor as it was -- and gets fresh memory, so arrays
        saved by earlier ops stay intact (tensors aliasing the old memory do not see this write).
        """
        idx = _index(index)
        value_grad = isinstance(value, Tensor) and value.requires_grad
        if _mode.enabled and self.is_leaf and self.requires_grad:
            raise RuntimeError(_LEAF_INPLACE)
        if not (_mode.enabled and (self.requires_grad or value_grad)):
            self._array[idx] = _raw(value)
            return
        inputs = (self._node, _edge(value)) if value_grad else (self._node,)
        self._array = self._array.copy()
        self._array[idx] = _raw(value)
        value_shape, value_dtype = np.shape(_raw(value)), np.asarray(_raw(value)).dtype

        def backward(g):
            rest = None
            if inputs[0] is not None and idx is not Ellipsis:
                rest = g.copy()
                rest[idx] = 0
            return (rest, unbroadcast(g[idx], value_shape).astype(value_dtype)) if value_grad else (rest,)

        self._node = Node(inputs, backward, "CopySlices", self.shape)
        self._requires_grad = True
