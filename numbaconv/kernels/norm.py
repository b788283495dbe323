"""Batch-normalisation kernels on (n, c, l) arrays: channel statistics, the per-channel affine map, and the
two passes of the training-mode backward (channel sums, then the input gradient); and plain channel sums
(a convolution's bias gradient).

Statistics and sums run one channel per parallel iteration and accumulate in float64 scalars; the
elementwise passes run one (n, c) row per iteration over contiguous memory. Per-channel arrays (mean,
scale, ...) are small and computed by the caller.
"""

from numba import njit, prange

from . import FASTMATH


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _channel_total(x, ch):
    """The sum of x[:, ch, :], in float64."""
    total = 0.0
    for b in range(x.shape[0]):
        for i in range(x.shape[2]):
            total += x[b, ch, i]
    return total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def channel_stats(x, mean, var):
    """Per-channel mean and biased variance of x over the batch and spatial axes (two passes, for accuracy).

    x: (n, c, l) with n * l >= 1; mean, var: (c,) float64, overwritten.
    """
    n, c, length = x.shape
    count = n * length
    for ch in prange(c):
        mu = _channel_total(x, ch) / count
        squares = 0.0
        for b in range(n):
            for i in range(length):
                d = x[b, ch, i] - mu
                squares += d * d
        mean[ch] = mu
        var[ch] = squares / count


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def channel_sums(x, sums):
    """sums[ch] = the sum of x[:, ch, :]. x: (n, c, l); sums: (c,) float64, overwritten."""
    for ch in prange(x.shape[1]):
        sums[ch] = _channel_total(x, ch)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def affine(x, shift, scale, bias, out):
    """out[b, ch, i] = (x[b, ch, i] - shift[ch]) * scale[ch] + bias[ch].

    x, out: (n, c, l); shift, scale, bias: (c,). The normalisation itself (shift = mean, scale = weight *
    invstd) and the eval-mode input gradient (shift = bias = 0).
    """
    n, c, length = x.shape
    for row in prange(n * c):
        b, ch = row // c, row % c
        m, s, t = shift[ch], scale[ch], bias[ch]
        for i in range(length):
            out[b, ch, i] = (x[b, ch, i] - m) * s + t


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_sums(grad_out, x, mean, sum_dy, sum_dy_xmu):
    """Per channel: sum of dy, and sum of dy * (x - mean), in one pass over both arrays.

    grad_out, x: (n, c, l); mean: (c,); sum_dy, sum_dy_xmu: (c,) float64, overwritten.
    """
    n, c, length = x.shape
    for ch in prange(c):
        m = mean[ch]
        total = 0.0
        weighted = 0.0
        for b in range(n):
            for i in range(length):
                dy = grad_out[b, ch, i]
                total += dy
                weighted += dy * (x[b, ch, i] - m)
        sum_dy[ch] = total
        sum_dy_xmu[ch] = weighted


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def grad_input(grad_out, x, mean, dy_scale, xmu_scale, offset, grad_in):
    """grad_in = dy_scale[ch] * dy + xmu_scale[ch] * (x - mean[ch]) + offset[ch]: batch norm's input gradient.

    grad_out, x, grad_in: (n, c, l); the per-channel coefficients come from `grad_sums` (see ops.norm).
    """
    n, c, length = x.shape
    for row in prange(n * c):
        b, ch = row // c, row % c
        m, a, k, d = mean[ch], dy_scale[ch], xmu_scale[ch], offset[ch]
        for i in range(length):
            grad_in[b, ch, i] = a * grad_out[b, ch, i] + k * (x[b, ch, i] - m) + d
