"""Elementwise kernels for the activation every conv layer of a CNN feeds: numpy's ufuncs run it on one core
without vector selects, about 7x slower than these (1M float32: 0.35 ms against 0.05 ms, 2 threads).

Arrays are flat and C-contiguous. The zero is made in the array's own dtype: a Python ``0`` would make Numba
compute in float64 and keep LLVM from vectorising the select.
"""

from numba import njit, prange

from . import FASTMATH


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def relu_forward(x, out):
    """out = max(x, 0), NaN kept (as PyTorch's relu). x, out: (size,)."""
    zero = out.dtype.type(0)
    for i in prange(x.shape[0]):
        value = x[i]
        out[i] = zero if value <= zero else value


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def relu_backward(result, grad, out):
    """out = 0 where result <= 0, else grad: PyTorch's ``threshold_backward(grad, result, 0)``, which passes
    the gradient of a NaN. result: relu's output; grad, out: (size,) like it."""
    zero = out.dtype.type(0)
    for i in prange(result.shape[0]):
        out[i] = zero if result[i] <= zero else grad[i]
