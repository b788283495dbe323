"""2-D pooling on Tensors: max (with argmax for the backward), average and adaptive average.

Arguments and output sizes follow PyTorch exactly (``ceil_mode``, padding at most half the kernel,
``count_include_pad``, ``divisor_override``); the work runs in the Numba kernels of
``numbaconv.kernels.pooling``, one (n, c) plane per thread.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..autograd import Tensor, record
from ..geometry import remember_valid
from ..kernels.pooling import (
    max_pool_2x2_forward,
    max_pool_backward,
    max_pool_forward,
    window_mean_backward,
    window_mean_forward,
)
from ..runtime import parallel_section
from ._args import batched, float_tensor, int_tuple, is_int

IntPair = int | tuple[int, int]


def _pool_input(input: Tensor) -> tuple[Tensor, np.ndarray]:
    """The input Tensor and its array as a C-contiguous (N, C, H, W) (a (C, H, W) input gets N = 1)."""
    t = float_tensor("input", input, (3, 4))
    if min(t.shape[-3:]) < 1:
        raise ValueError(f"input must have non-empty channel and spatial dimensions, got shape {t.shape}")
    return t, np.ascontiguousarray(batched(t._array, 4))


@remember_valid
def _window_args(kernel_size, stride, padding, dilation=1):
    """kernel, stride (defaulting to the kernel), padding and dilation as pairs, with PyTorch's checks
    (remembered: a layer passes the same ones on every call)."""
    kernel = int_tuple("kernel_size", kernel_size, 2, 1)
    empty = isinstance(stride, Sequence) and not isinstance(stride, str) and len(stride) == 0
    steps = kernel if stride is None or empty else int_tuple("stride", stride, 2, 1)
    pads = int_tuple("padding", padding, 2, 0)
    dilations = int_tuple("dilation", dilation, 2, 1)
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        raise ValueError(
            f"padding must be at most half of kernel_size, got padding={padding!r} and kernel_size={kernel_size!r}"
        )
    return kernel, steps, pads, dilations


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length: floor (or ceil) of the window count; a window must start inside
    the input or its left padding."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@functools.lru_cache(maxsize=1024)
def _output_hw(shape: tuple[int, ...], kernel, steps, pads, dilations, ceil_mode: bool) -> tuple[int, int]:
    """(OH, OW) for an input of ``shape`` and the checked window arguments (remembered per shape)."""
    h, w = shape[-2:]
    oh, ow = (pool_output_size(s, k, st, p, d, ceil_mode)
              for s, k, st, p, d in zip((h, w), kernel, steps, pads, dilations, strict=True))  # fmt: skip
    if oh < 1 or ow < 1:
        raise ValueError(
            f"Given input size {shape[-3:]}, the calculated output size ({oh}, {ow}) is too small "
            f"(kernel_size={kernel}, stride={steps}, padding={pads}, dilation={dilations}, ceil_mode={ceil_mode})"
        )
    return oh, ow


def max_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    input: (N, C, H, W) or (C, H, W). Output (N, C, OH, OW) with
    ``OH = floor_or_ceil((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`` (a last window
    starting in the right padding is dropped). ``padding <= kernel_size // 2``. With ``return_indices``
    also returns the int64 flat index ``row * W + col`` of each maximum in its plane. The gradient goes to
    the maximum of each window.
    """
    t, x = _pool_input(input)
    kernel, steps, pads, dilations = _window_args(kernel_size, stride, padding, dilation)
    oh, ow = _output_hw(t.shape, kernel, steps, pads, dilations, bool(ceil_mode))
    out = np.empty((*x.shape[:2], oh, ow), x.dtype)
    argmax = np.empty(out.shape, np.int64)
    halving = kernel == steps == (2, 2) and pads == (0, 0) and dilations == (1, 1)
    with parallel_section():
        if halving and 2 * oh <= x.shape[2] and 2 * ow <= x.shape[3]:
            max_pool_2x2_forward(x, out, argmax)
        else:
            max_pool_forward(x, *kernel, *steps, *pads, *dilations, out, argmax)

    def backward(g):
        gx = np.empty(x.shape, x.dtype)
        planes = x.shape[0] * x.shape[1]
        with parallel_section():
            max_pool_backward(
                np.ascontiguousarray(g).reshape(planes, -1), argmax.reshape(planes, -1), gx.reshape(planes, -1)
            )
        return (gx.reshape(t.shape),)

    shape = (*t.shape[:-2], oh, ow)
    result = record(out.reshape(shape), (t,), backward, "MaxPool2DWithIndices")
    return (result, Tensor(argmax.reshape(shape))) if return_indices else result


def _window_mean(t: Tensor, x: np.ndarray, rows, cols, divisor: np.ndarray, name: str) -> Tensor:
    """Average over per-output windows ``rows = (start, end)`` x ``cols = (start, end)``, / ``divisor``."""
    oh, ow = divisor.shape
    out = np.empty((*x.shape[:2], oh, ow), x.dtype)
    with parallel_section():
        window_mean_forward(x, *rows, *cols, divisor, out)

    def backward(g):
        gx = np.empty(x.shape, x.dtype)
        with parallel_section():
            window_mean_backward(np.ascontiguousarray(batched(g, 4)), *rows, *cols, divisor, gx)
        return (gx.reshape(t.shape),)

    return record(out.reshape(*t.shape[:-2], oh, ow), (t,), backward, name)


def avg_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Output size as `max_pool2d` (without dilation). Each window's sum is divided by ``divisor_override``
    if given, else by the window's size including padding (``count_include_pad``) -- a window that
    overhangs the right padding (``ceil_mode``) counts only up to the padding's edge -- else by the number
    of input cells it covers.
    """
    t, x = _pool_input(input)
    kernel, steps, pads, dilations = _window_args(kernel_size, stride, padding)
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"divisor_override must be a non-zero int, got {divisor_override!r}")
    oh, ow = _output_hw(t.shape, kernel, steps, pads, dilations, bool(ceil_mode))
    rows, cols = (_avg_windows(size, k, s, p, out)
                  for size, k, s, p, out in zip(x.shape[2:], kernel, steps, pads, (oh, ow), strict=True))  # fmt: skip
    if divisor_override is not None:
        divisor = np.full((oh, ow), float(divisor_override))
    elif count_include_pad:
        divisor = np.outer(rows[2], cols[2]).astype(np.float64)
    else:  # an empty window sums to 0; any non-zero divisor keeps it 0
        divisor = np.maximum(np.outer(rows[1] - rows[0], cols[1] - cols[0]), 1).astype(np.float64)
    return _window_mean(t, x, rows[:2], cols[:2], divisor, "AvgPool2D")


def _avg_windows(size: int, kernel: int, stride: int, pad: int, count: int):
    """(start, end) of each window clipped to the input, and its size clipped to the padded input."""
    start = np.arange(count, dtype=np.int64) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    lo, hi = np.maximum(start, 0), np.minimum(end, size)
    return lo, np.maximum(hi, lo), end - start


def adaptive_avg_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output cell i along an axis of length L averages input cells ``floor(i * L / out)`` to
    ``ceil((i + 1) * L / out)`` (exclusive). ``output_size`` is an int or a pair; None keeps that size.
    """
    t, x = _pool_input(input)
    sizes = (output_size, output_size) if is_int(output_size) or output_size is None else output_size
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) != 2:
        raise TypeError(f"output_size must be an int or a pair of ints (or None), got {output_size!r}")
    sizes = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if not all(is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"output_size must hold positive ints (or None), got {output_size!r}")
    windows = []
    for size, out in zip(x.shape[2:], sizes, strict=True):
        i = np.arange(out, dtype=np.int64)
        windows.append(((i * size) // out, ((i + 1) * size + out - 1) // out))
    rows, cols = windows
    divisor = np.outer(rows[1] - rows[0], cols[1] - cols[0]).astype(np.float64)
    return _window_mean(t, x, rows, cols, divisor, "AdaptiveAvgPool2D")


__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "pool_output_size"]
