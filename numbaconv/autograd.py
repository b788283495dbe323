"""Tensor and the autograd tape: a numpy array that remembers how it was made.

Every differentiable op computes its output array and a small ``backward`` closure, then calls
:func:`record`, which wraps the output in a :class:`Tensor` holding a :class:`Node` (input edges + closure)
when grad mode is on and a parent requires grad. ``Tensor.backward()`` sorts the graph topologically and walks it
in reverse, summing gradients per tensor and accumulating them into the leaves' ``.grad``. Each op's backward
rule sits right next to its forward, micrograd-style.

Dtype promotion follows PyTorch: the default float dtype is float32, Python scalars do not widen a tensor's
dtype (``float32_tensor * 2.0`` stays float32), an int tensor combined with a float scalar becomes float32.
"""

from __future__ import annotations

import functools
import threading
from collections import namedtuple
from collections.abc import Callable, Sequence

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
DEFAULT_FLOAT = float32

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}
_LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."
_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward(). "
    "Specify retain_graph=True if you need to backward through the graph a second time."
)

MaxResult = namedtuple("max", ["values", "indices"])

# ----------------------------------------------------------------------------------------------- grad mode


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether new ops are recorded on the tape (per thread, like PyTorch)."""
    return _mode.enabled


class no_grad:
    """Disable recording: ``with no_grad(): ...``, ``@no_grad()`` or ``@no_grad``."""

    _enabled = False

    def __new__(cls, func=None):
        self = super().__new__(cls)
        return self(func) if callable(func) else self

    def __enter__(self):
        self._previous = _mode.enabled
        _mode.enabled = self._enabled

    def __exit__(self, *exc_info):
        _mode.enabled = self._previous

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Re-enable recording inside a ``no_grad`` region; a context manager and a decorator."""

    _enabled = True


# ------------------------------------------------------------------------------------------- random state

_generator = np.random.default_rng(67280421310721)  # PyTorch's default CPU seed: deterministic by default


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator behind ``rand``, ``randn`` and ``nn.init``; returns it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The module-level numpy Generator (reseeded by :func:`manual_seed`)."""
    return _generator


# ------------------------------------------------------------------------------------------------- dtypes


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


# ---------------------------------------------------------------------------------------------- the tape


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
    if _mode.enabled and any(p.requires_grad for p in parents):
        out._node = Node(tuple(_edge(p) for p in parents), backward, name, out.shape)
        out._requires_grad = True
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
        if isinstance(item, Node):
            stack.extend((i, False) for i in item.inputs if i is not None and id(i) not in visited)
    return order


def _run_backward(root: Node | Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    """Walk the tape from ``root`` in reverse topological order, accumulating leaf gradients."""
    grads = {id(root): grad}
    for item in reversed(_topological_order(root)):
        g = grads.pop(id(item), None)
        if g is None:
            continue
        if isinstance(item, Tensor):
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
            grads[key] = tg if key not in grads else grads[key] + tg
        if not retain_graph:
            item.backward, item.inputs = None, ()


# ------------------------------------------------------------------------------------------------ helpers


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


def _raw(value):
    """The numpy payload of a Tensor; anything else unchanged."""
    return value._array if isinstance(value, Tensor) else value


def _is_operand(value) -> bool:
    return isinstance(value, (Tensor, np.ndarray, int, float, np.number, np.bool_))


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


def _expand(grad: np.ndarray, shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> np.ndarray:
    """The gradient of a reduction over ``dims``, broadcast back to the input ``shape`` (a fresh array)."""
    if not keepdim:
        grad = np.expand_dims(grad, dims)
    return np.broadcast_to(grad, shape).copy()


# ------------------------------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array (``self._array``, a numpy ndarray) with PyTorch's Tensor API and autograd.

    ``Tensor(array)`` wraps an array without copying; use :func:`tensor` for ``torch.tensor`` semantics.
    """

    __array_priority__ = 1000  # numpy operators defer to ours: ndarray + Tensor -> Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        self._array = data._array if isinstance(data, Tensor) else np.asarray(data)
        self._node: Node | None = None
        self._grad: Tensor | None = None
        self._requires_grad = False
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
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, (np.dtype, type)):
                dtype = arg
            else:
                device = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f'numbaconv runs on the CPU only: device must be "cpu", got {str(device)!r}')
        out = self if dtype is None else self._cast(np.dtype(dtype))
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
        return record(np.maximum(x, 0), (self,), lambda g: (g * (x > 0),), "Relu")

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

    # --- reductions ------------------------------------------------------------------------------------------

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
        shape = self.shape[:start] + (int(np.prod(self.shape[start : end + 1])),) + self.shape[end + 1 :]
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


# ------------------------------------------------------------------------------------------------ creation


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
