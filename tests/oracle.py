"""The float64 oracle: PyTorch's conv2d and its two gradients, written to be obviously right, not fast.

Everything here is independent of numbaconv. The input is padded explicitly (``np.pad``), the forward pass
is an ``np.einsum`` over sliding windows per group, the weight gradient is the same einsum with the output
gradient in place of the weight, and the input gradient scatter-adds every kernel tap into the padded input
and then folds the padded border back onto the input cells it copied (an explicit index map per axis and
``np.add.at``). Inputs of any dtype and layout are read as float64; results are float64.
"""

from __future__ import annotations

import numpy as np

NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pair(value):
    """An int or a 2-sequence as a tuple of two ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    a, b = value
    return int(a), int(b)


def resolve_padding(padding, kernel, dilation):
    """((top, bottom), (left, right)) for an int, a pair, ``"valid"`` or ``"same"``.

    ``"same"`` pads ``dilation * (k - 1)`` in total per axis; an odd total puts the extra row/column at the
    bottom/right, as PyTorch does. Explicit ``((top, bottom), (left, right))`` is returned as given (PyTorch
    has no such argument; the tests use it to describe the drivers' asymmetric zero padding).
    """
    if not isinstance(padding, (str, int, np.integer)) and not isinstance(padding[0], (int, np.integer)):
        (top, bottom), (left, right) = padding
        return (int(top), int(bottom)), (int(left), int(right))
    kh, kw = pair(kernel)
    dh, dw = pair(dilation)
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        sides = []
        for k, d in ((kh, dh), (kw, dw)):
            total = d * (k - 1)
            top = total // 2
            sides.append((top, total - top))
        return tuple(sides)
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def output_size(size, before, after, kernel, stride, dilation):
    """PyTorch's output length along one axis."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1):
    """The shape conv2d returns for these shapes (3-D input gives a 3-D result)."""
    *lead, h, w = input_shape
    k, _, kh, kw = weight_shape
    (top, bottom), (left, right) = resolve_padding(padding, (kh, kw), dilation)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    oh = output_size(h, top, bottom, kh, sh, dh)
    ow = output_size(w, left, right, kw, sw, dw)
    return (*lead[:-1], k, oh, ow)


def pad_index_map(size, before, after, mode):
    """For each position of the padded axis, the input index it copies (-1: a zero)."""
    positions = np.arange(-before, size + after)
    inside = (positions >= 0) & (positions < size)
    if mode == "zeros":
        return np.where(inside, positions, -1)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        return positions % size
    if mode == "reflect":
        reflected = np.abs(positions)
        reflected = np.where(reflected > size - 1, 2 * (size - 1) - reflected, reflected)
        return reflected
    raise ValueError(f"unknown padding mode {mode!r}")


def pad(x, pads, mode):
    """``x`` (N, C, H, W) padded by ((top, bottom), (left, right)) with ``np.pad``."""
    (top, bottom), (left, right) = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NP_PAD_MODES[mode])


def fold(padded_grad, size_hw, pads, mode):
    """Adjoint of `pad`: add the gradient of each padded cell onto the input cell it copies."""
    result = padded_grad
    for axis, size, (before, after) in ((2, size_hw[0], pads[0]), (3, size_hw[1], pads[1])):
        index = pad_index_map(size, before, after, mode)
        keep = index >= 0
        moved = np.moveaxis(result, axis, 0)
        folded = np.zeros((size,) + moved.shape[1:])
        np.add.at(folded, index[keep], moved[keep])
        result = np.moveaxis(folded, 0, axis)
    return result


def _batched(x):
    x = np.asarray(x, dtype=np.float64)
    return (x[None], True) if x.ndim == 3 else (x, False)


def _windows(xp, kernel, stride, dilation):
    """(N, C, OH, OW, kh, kw) view of the padded input: the taps each output reads."""
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """PyTorch's ``F.conv2d`` (with ``nn.Conv2d``'s padding modes) in float64."""
    x, unbatched = _batched(x)
    weight = np.asarray(weight, dtype=np.float64)
    k, cg, kh, kw = weight.shape
    pads = resolve_padding(padding, (kh, kw), dilation)
    windows = _windows(pad(x, pads, padding_mode), (kh, kw), pair(stride), pair(dilation))
    n, _, oh, ow = windows.shape[:4]
    kg = k // groups
    out = np.zeros((n, k, oh, ow))
    for g in range(groups):
        out[:, g * kg : (g + 1) * kg] = np.einsum(
            "ncijab,kcab->nkij", windows[:, g * cg : (g + 1) * cg], weight[g * kg : (g + 1) * kg]
        )
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return out[0] if unbatched else out


def conv2d_grad_weight(x, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """dL/dweight given dL/dout: the forward's einsum with the output gradient contracted instead."""
    x, unbatched = _batched(x)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    if unbatched:
        grad_output = grad_output[None]
    k, cg, kh, kw = weight_shape
    pads = resolve_padding(padding, (kh, kw), dilation)
    windows = _windows(pad(x, pads, padding_mode), (kh, kw), pair(stride), pair(dilation))
    kg = k // groups
    grad = np.zeros((k, cg, kh, kw))
    for g in range(groups):
        grad[g * kg : (g + 1) * kg] = np.einsum(
            "ncijab,nkij->kcab", windows[:, g * cg : (g + 1) * cg], grad_output[:, g * kg : (g + 1) * kg]
        )
    return grad


def conv2d_grad_input(
    input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
):
    """dL/dx given dL/dout: scatter each tap into the padded input, then fold the border back."""
    unbatched = len(input_shape) == 3
    n, c, h, w = (1, *input_shape) if unbatched else input_shape
    weight = np.asarray(weight, dtype=np.float64)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    if unbatched:
        grad_output = grad_output[None]
    k, cg, kh, kw = weight.shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pads = resolve_padding(padding, (kh, kw), dilation)
    (top, bottom), (left, right) = pads
    _, _, oh, ow = grad_output.shape
    kg = k // groups
    padded = np.zeros((n, c, h + top + bottom, w + left + right))
    for g in range(groups):
        go = grad_output[:, g * kg : (g + 1) * kg]
        for a in range(kh):
            for b in range(kw):
                tap = np.einsum("nkij,kc->ncij", go, weight[g * kg : (g + 1) * kg, :, a, b])
                rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
                cols = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
                padded[:, g * cg : (g + 1) * cg, rows, cols] += tap
    grad = fold(padded, (h, w), pads, padding_mode)
    return grad[0] if unbatched else grad
