"""The :class:`Tensor` class: storage, attributes, conversions, dtype casts and ``backward()``.

Its ops come from mixins, each op's backward rule right next to its forward: arithmetic, in-place updates,
comparisons and elementwise functions (:mod:`.arithmetic`), reductions (:mod:`.reductions`), shape, view and
indexing ops (:mod:`.shape`).
"""

from __future__ import annotations

import numpy as np

from . import arithmetic, dtypes, reductions, shape, tape
from .arithmetic import ArithmeticOps
from .dtypes import DEFAULT_FLOAT, _is_float, float32, float64, int64
from .reductions import ReductionOps
from .shape import ShapeOps
from .tape import Node, _raw, _run_backward, record


def check_device(device) -> None:
    """A ValueError unless ``device`` is None or the CPU ("cpu", "cpu:0", ...): the only device there is."""
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(f'numbaconv runs on the CPU only: device must be "cpu", got {str(device)!r}')


def to_target_dtype(args: tuple, dtype=None, device=None) -> np.dtype | None:
    """The dtype ``.to(*args, dtype=, device=)`` asks for (None: keep it), from PyTorch's forms ``to(dtype)``,
    ``to(device)``, ``to(device, dtype)`` and ``to(tensor)``; the device must be the CPU."""
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, (np.dtype, type)):
            dtype = arg
        else:
            device = arg
    check_device(device)
    return None if dtype is None else np.dtype(dtype)


class Tensor(ArithmeticOps, ReductionOps, ShapeOps):
    """An n-dimensional array (``self._array``, a numpy ndarray) with PyTorch's Tensor API and autograd.

    ``Tensor(array)`` wraps an array without copying; use :func:`tensor` for ``torch.tensor`` semantics.
    """

    __array_priority__ = 1000  # numpy operators defer to ours: ndarray + Tensor -> Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        self._array = data._array if isinstance(data, Tensor) else np.asarray(data)
        self._node: Node | None = None
        self._grad: Tensor | None = None
        self._requires_grad = False
        if requires_grad:  # the setter checks; a fresh tensor may be False without them
            self.requires_grad = requires_grad

    # --- attributes ---------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def dim(self) -> int:
        return self._array.ndim

    def size(self, dim: int | None = None):
        """The shape tuple, or the length of one dimension."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return self._array.size

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and not _is_float(self.dtype):
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if not value and self._node is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed "
                "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
            )
        self._requires_grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient of a leaf (same shape and dtype), or None."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value, dtype=self.dtype))
        if value is not None and value.shape != self.shape:
            raise RuntimeError(f"assigned grad has shape {value.shape} but the tensor has shape {self.shape}")
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    @property
    def data(self) -> Tensor:
        """A Tensor sharing this one's array, outside the graph: writing into it writes into ``self``."""
        return Tensor(self._array)

    @data.setter
    def data(self, value) -> None:
        self._array = value._array if isinstance(value, Tensor) else np.asarray(value)

    # --- conversion -------------------------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The underlying array itself (shares memory), like ``torch.Tensor.numpy``."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._array

    def item(self):
        """The single element as a Python number."""
        if self._array.size != 1:
            raise RuntimeError(f"a Tensor with {self._array.size} elements cannot be converted to Scalar")
        return self._array.item()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy:
            return np.array(self._array, dtype=dtype, copy=True)
        return self._array if dtype is None else self._array.astype(dtype, copy=False)

    def __bool__(self) -> bool:
        if self._array.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._array.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        a = self._array
        fixed = _is_float(a.dtype) and a.size and not np.all(np.isfinite(a) & (a == np.round(a)))
        body = np.array2string(
            a, separator=", ", prefix="tensor(", precision=4, floatmode="fixed" if fixed else "maxprec"
        )
        extras = [] if a.dtype in (float32, int64, np.dtype(bool)) else [f"dtype=numbaconv.{a.dtype}"]
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # --- dtype and device -----------------------------------------------------------------------------------

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False) -> Tensor:
        """``to(dtype)``, ``to("cpu")``, ``to(device, dtype)`` or ``to(other_tensor)``; only "cpu" exists."""
        dtype = to_target_dtype(args, dtype, device)
        out = self if dtype is None else self._cast(dtype)
        return out.clone() if copy and out is self else out

    def _cast(self, dtype: np.dtype) -> Tensor:
        """This tensor as ``dtype``; float-to-float casts carry the gradient back (cast to the source dtype)."""
        if dtype == self.dtype:
            return self
        if not _is_float(dtype):
            return Tensor(self._array.astype(dtype))
        source = self.dtype
        return record(self._array.astype(dtype), (self,), lambda g: (g.astype(source),), "ToCopy")

    def cpu(self) -> Tensor:
        return self

    def float(self) -> Tensor:
        return self._cast(float32)

    def double(self) -> Tensor:
        return self._cast(float64)

    def long(self) -> Tensor:
        return self._cast(int64)

    def _as_float(self) -> Tensor:
        """Self, or self cast to the default float dtype when it is an int/bool tensor (for exp, log, ...)."""
        return self if _is_float(self.dtype) else self._cast(DEFAULT_FLOAT)

    # --- graph ----------------------------------------------------------------------------------------------

    def detach(self) -> Tensor:
        """A Tensor sharing this array that is cut from the graph."""
        return Tensor(self._array)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; ``gradient`` defaults to 1 for scalars."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self._array.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grad = np.ones_like(self._array)
        else:
            grad = np.asarray(_raw(gradient), dtype=self.dtype)
            if grad.shape != self.shape:
                raise RuntimeError(f"gradient has shape {grad.shape} but the output has shape {self.shape}")
        _run_backward(self._node or self, grad, retain_graph)

    def _accumulate_grad(self, grad: np.ndarray) -> None:
        if self._grad is None:
            self._grad = Tensor(np.array(grad, dtype=self.dtype, copy=True))
        else:
            self._grad._array += grad


# dtypes, tape and the mixin modules create and recognise Tensors, but this module imports them (the mixins are
# its bases), so they cannot import it back: they name the class for type checkers only and get it here, once it
# exists. Imports stay one-way and the lookups cost nothing per op.
for _module in (dtypes, tape, arithmetic, reductions, shape):
    _module.Tensor = Tensor
del _module
