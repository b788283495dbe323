"""Padding on Tensors, as ``torch.nn.functional.pad``.

Constant padding (any rank, negative widths crop) is a slice copy. The other modes gather through a
per-axis source-index map (``geometry.padding_source_index``, shared with the engine's padding modes) with
the kernels of ``numbaconv.kernels.padding``, whose fold-back sums a padded cell's gradient onto the input
cell it copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autograd import Tensor, record
from ..geometry import padding_source_index
from ..kernels.padding import fold_padded, gather_padded
from ..runtime import parallel_section
from ._args import as_tensor, is_int

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions: ``pad = (left, right)`` pads the last one,
    ``(left, right, top, bottom)`` the last two, and so on.

    ``mode="constant"`` fills with ``value`` (default 0) and accepts any rank and negative widths (which
    crop). ``"reflect"`` (mirror without repeating the edge; width < size), ``"replicate"`` (repeat the
    edge) and ``"circular"`` (wrap; width <= size) pad the last one or two dimensions of a 2-D to 4-D input
    (``pad`` of 2 or 4 ints on an input with one or two more dimensions than it pads).
    """
    t = as_tensor("input", input)
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence) or len(pad) % 2 or not all(map(is_int, pad)):
        raise TypeError(f"pad must be a sequence of an even number of ints, got {pad!r}")
    widths = tuple(int(p) for p in pad)
    if len(widths) // 2 > t.ndim:
        raise ValueError(f"pad {widths} pads {len(widths) // 2} dimensions but the input has shape {t.shape}")
    if mode == "constant":
        return _constant(t, widths, 0.0 if value is None else value)
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    if value is not None and value != 0:
        raise ValueError(f'padding mode "{mode}" does not take a value argument, got value={value!r}')
    return _indexed(t, widths, mode)


def _constant(t: Tensor, widths: tuple[int, ...], value: float) -> Tensor:
    shape, source, target = list(t.shape), [slice(None)] * t.ndim, [slice(None)] * t.ndim
    empty = False
    for i in range(len(widths) // 2):
        axis, (before, after) = t.ndim - 1 - i, widths[2 * i : 2 * i + 2]
        size = t.shape[axis]
        shape[axis] = size + before + after
        if shape[axis] < 0:
            raise ValueError(f"pad {widths} gives a negative size {shape[axis]} for dimension {axis} of {t.shape}")
        kept = size + min(before, 0) + min(after, 0)  # input cells that survive negative (cropping) widths
        empty |= kept <= 0
        source[axis] = slice(max(-before, 0), max(-before, 0) + max(kept, 0))
        target[axis] = slice(max(before, 0), max(before, 0) + max(kept, 0))
    source, target = tuple(source), tuple(target)
    x = t._array
    out = np.full(shape, value, x.dtype)
    if not empty:
        out[target] = x[source]

    def backward(g):
        gx = np.zeros(x.shape, g.dtype)
        if not empty:
            gx[source] = g[target]
        return (gx,)

    return record(out, (t,), backward, "ConstantPadNd")


def _indexed(t: Tensor, widths: tuple[int, ...], mode: str) -> Tensor:
    spatial = len(widths) // 2
    if spatial not in (1, 2) or t.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(
            f'padding mode "{mode}" pads the last 1 or 2 dimensions of a (N, C, ...) or (C, ...) input: pad '
            f"{widths} needs an input with {spatial + 1} or {spatial + 2} dimensions, got shape {t.shape}"
        )
    x = np.ascontiguousarray(t._array)
    lead = x.shape[:-spatial]
    planes = x.reshape((1,) * (2 - len(lead)) + lead + (1,) * (2 - spatial) + x.shape[-spatial:])
    left, right = widths[:2]
    top, bottom = widths[2:] if spatial == 2 else (0, 0)
    for before, after, size, axis in (
        (top, bottom, planes.shape[2], "height"),
        (left, right, planes.shape[3], "width"),
    ):
        if min(before, after) < 0:
            raise ValueError(f'padding mode "{mode}" needs non-negative pad widths, got pad={widths}')
        widest = max(before, after)
        if mode == "reflect" and widest >= size:
            raise ValueError(f'padding mode "reflect" needs pad < input {axis} ({size}), got pad={widths}')
        if mode == "circular" and widest > size:
            raise ValueError(f'padding mode "circular" needs pad <= input {axis} ({size}), got pad={widths}')
    rows = padding_source_index(planes.shape[2], top, bottom, mode)
    cols = padding_source_index(planes.shape[3], left, right, mode)
    out = np.empty((*planes.shape[:2], rows.size, cols.size), x.dtype)
    with parallel_section():
        gather_padded(planes, rows, cols, out)

    def backward(g):
        gx = np.empty(planes.shape, g.dtype)
        with parallel_section():
            fold_padded(np.ascontiguousarray(g).reshape(out.shape), rows, cols, gx)
        return (gx.reshape(t.shape),)

    out_shape = lead + ((rows.size, cols.size) if spatial == 2 else (cols.size,))
    name = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}[mode]
    return record(out.reshape(out_shape), (t,), backward, f"{name}{spatial}D")


__all__ = ["pad"]
