"""Explicit padding for the non-zero padding modes, its gradient fold-back, and a finiteness scan.

Padding is described per axis by a source-index map (padded position -> input index), so one gather and
one scatter-add serve reflect, replicate and circular alike.
"""

from numba import njit, prange

from . import FASTMATH


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def gather_padded(x, row_source, col_source, out):
    """out[n, c, i, j] = x[n, c, row_source[i], col_source[j]].

    x: (n, c, h, w); row_source: (ph,) and col_source: (pw,) int64 maps; out: (n, c, ph, pw).
    """
    n, c = x.shape[0], x.shape[1]
    for plane in prange(n * c):
        b, ch = plane // c, plane % c
        for i in range(row_source.shape[0]):
            source_row = row_source[i]
            for j in range(col_source.shape[0]):
                out[b, ch, i, j] = x[b, ch, source_row, col_source[j]]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def fold_padded(grad_padded, row_source, col_source, grad):
    """Sum the gradient of each padded cell onto the input cell it copied (the adjoint of `gather_padded`).

    grad_padded: (n, c, ph, pw); row_source: (ph,), col_source: (pw,); grad: (n, c, h, w), overwritten.
    One thread owns a whole (n, c) plane, so the scatter-add has no races.
    """
    n, c = grad.shape[0], grad.shape[1]
    for plane in prange(n * c):
        b, ch = plane // c, plane % c
        for i in range(grad.shape[2]):
            for j in range(grad.shape[3]):
                grad[b, ch, i, j] = 0.0
        for i in range(row_source.shape[0]):
            target_row = row_source[i]
            for j in range(col_source.shape[0]):
                grad[b, ch, target_row, col_source[j]] += grad_padded[b, ch, i, j]


@njit(cache=True, fastmath={"reassoc"})
def all_finite(a):
    """True when no element of the contiguous array ``a`` is NaN or infinite."""
    flat = a.ravel()
    total = 0.0
    for i in range(flat.shape[0]):
        total += flat[i] * 0.0
    return total == 0.0
