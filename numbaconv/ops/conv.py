"""Convolutions and the linear layer on Tensors, through the array-level engine.

Each op validates what the engine does not see, calls the engine for the forward, and records a backward
that calls the engine's other two passes: a convolution's input gradient is ``conv2d_grad_input``, its
weight gradient ``conv2d_grad_weight``; a transposed convolution swaps the roles (its forward *is*
``conv2d_grad_input``, its input gradient ``conv2d``).
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..algorithms.gemm import matmul
from ..autograd import Tensor, record
from ..kernels.norm import channel_sums
from ..runtime import parallel_section
from ._args import batched, float_tensor, int_tuple, is_int, needs_grad, same_dtype


def _bias_grad(grad: np.ndarray) -> np.ndarray:
    """Sum of an (N, K, OH, OW) or unbatched (K, OH, OW) output gradient over everything but the channel axis,
    accumulated in float64 on the engine's threads (numpy's sum over axes (0, 2, 3) took 0.21 ms for
    SimpleCNN's first layer, a quarter of its convolution's forward)."""
    k = grad.shape[-3]
    sums = np.empty(k, np.float64)
    with parallel_section():
        channel_sums(np.ascontiguousarray(grad).reshape(-1, k, grad.shape[-2] * grad.shape[-1]), sums)
    return sums.astype(grad.dtype)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    input: (N, C, H, W) or (C, H, W); weight: (K, C/groups, kh, kw); bias: (K,) or None. Returns
    (N, K, OH, OW) with ``OH = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1`` (likewise OW).
    ``padding`` may be ``"same"`` or ``"valid"``; ``padding_mode`` ("zeros", "reflect", "replicate",
    "circular") is ``nn.Conv2d``'s: non-zero modes pad explicitly and fold the gradient back.
    """
    x_t, w_t = float_tensor("input", input, (3, 4)), float_tensor("weight", weight, (4,))
    b_t = None if bias is None else float_tensor("bias", bias, (1,))
    same_dtype(input=x_t, weight=w_t, bias=b_t)
    # The engine's checks, once: the backward runs its two passes on the same plan without repeating them
    # (the tape hands it a gradient of the output's shape and dtype).
    call = engine.check_conv2d(x_t._array, w_t._array, None if b_t is None else b_t._array, stride, padding,
                               dilation, groups, padding_mode)  # fmt: skip
    plan, x, w = call.plan, call.x, call.weight
    out = engine.planned_forward(plan, x, w, call.bias)
    need_x, need_w, need_b = needs_grad(x_t, w_t, b_t)

    def backward(g):
        g4 = batched(g, 4)
        gx = engine.planned_grad_input(plan, x.shape, w, g4).reshape(x_t.shape) if need_x else None
        gw = engine.planned_grad_weight(plan, w.shape, x, g4) if need_w else None
        return (gx, gw) if b_t is None else (gx, gw, _bias_grad(g) if need_b else None)

    parents = (x_t, w_t) if b_t is None else (x_t, w_t, b_t)
    return record(out.reshape(out.shape[1:]) if x_t.ndim == 3 else out, parents, backward, "Convolution")


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """1-D convolution, as ``torch.nn.functional.conv1d``: the 2-D engine on a unit-height image.

    input: (N, C, L) or (C, L); weight: (K, C/groups, k); bias: (K,) or None. Returns (N, K, OL) with
    ``OL = (L + 2 * padding - dilation * (k - 1) - 1) // stride + 1``.
    """
    x_t, w_t = float_tensor("input", input, (2, 3)), float_tensor("weight", weight, (3,))
    (s,) = int_tuple("stride", stride, 1, 1)
    (d,) = int_tuple("dilation", dilation, 1, 1)
    pad = padding if isinstance(padding, str) else (0, int_tuple("padding", padding, 1, 0)[0])
    out = conv2d(x_t.unsqueeze(-2), w_t.unsqueeze(-2), bias, (1, s), pad, (1, d), groups, padding_mode)
    return out.squeeze(-2)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    input: (N, Cin, H, W) or (Cin, H, W); weight: (Cin, Cout/groups, kh, kw); bias: (Cout,) or None.
    Returns (N, Cout, OH, OW) with
    ``OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1`` (likewise OW);
    ``output_padding`` must be smaller than ``stride`` or ``dilation``. The result is the input gradient
    of the convolution ``conv2d(y, weight, stride, padding, dilation, groups)`` that maps an OH x OW image
    back to H x W.
    """
    x_t, w_t = float_tensor("input", input, (3, 4)), float_tensor("weight", weight, (4,))
    b_t = None if bias is None else float_tensor("bias", bias, (1,))
    same_dtype(input=x_t, weight=w_t, bias=b_t)
    stride_ = int_tuple("stride", stride, 2, 1)
    padding_ = int_tuple("padding", padding, 2, 0)
    out_pad = int_tuple("output_padding", output_padding, 2, 0)
    dilation_ = int_tuple("dilation", dilation, 2, 1)
    if not is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    for op, s, d in zip(out_pad, stride_, dilation_, strict=True):
        if op >= max(s, d):
            raise ValueError(
                "output_padding must be smaller than either stride or dilation, got "
                f"output_padding={output_padding!r}, stride={stride!r}, dilation={dilation!r}"
            )
    x, w = batched(x_t._array, 4), w_t._array
    n, c_in, h, wid = x.shape
    if w.shape[0] != c_in or c_in % groups:
        raise ValueError(
            f"weight of shape {w.shape} with groups={groups} needs {c_in} input channels in its first dimension "
            f"(divisible by groups), to match input of shape {x_t.shape}"
        )
    c_out = w.shape[1] * groups
    if b_t is not None and b_t.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},) to match weight {w.shape}, got {b_t.shape}")
    sizes = [
        (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        for size, s, p, d, k, op in zip((h, wid), stride_, padding_, dilation_, w.shape[2:], out_pad, strict=True)
    ]
    if min(sizes) < 1:
        raise ValueError(
            f"conv_transpose2d output size {tuple(sizes)} is too small for input {x_t.shape}, weight {w.shape}, "
            f"stride={stride!r}, padding={padding!r}, dilation={dilation!r}, output_padding={output_padding!r}"
        )
    options = dict(stride=stride_, padding=padding_, dilation=dilation_, groups=groups)
    # The convolution being transposed maps (n, c_out, *sizes) to (n, c_in, h + op // s, w + op // s): when
    # output_padding >= stride (allowed for dilation > stride) its extra output rows get a zero gradient.
    extra = [op // s for op, s in zip(out_pad, stride_, strict=True)]
    x_conv = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1]))) if any(extra) else x
    out = engine.conv2d_grad_input((n, c_out, *sizes), w, x_conv, **options)
    if b_t is not None:
        out += b_t._array[:, None, None]
    need_x, need_w, need_b = needs_grad(x_t, w_t, b_t)

    def backward(g):
        g4 = batched(g, 4)
        gx = engine.conv2d(g4, w, None, **options)[:, :, :h, :wid].reshape(x_t.shape) if need_x else None
        gw = engine.conv2d_grad_weight(g4, w.shape, x_conv, **options) if need_w else None
        return (gx, gw) if b_t is None else (gx, gw, _bias_grad(g) if need_b else None)

    parents = (x_t, w_t) if b_t is None else (x_t, w_t, b_t)
    return record(out.reshape(out.shape[1:]) if x_t.ndim == 3 else out, parents, backward, "ConvolutionTranspose")


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for 2-D arrays of one dtype, on the engine's matrix product (so BLAS's thread pool is not left
    spinning on the cores the next Numba kernel needs)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    with parallel_section():
        return matmul(a, b, out)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``, as ``torch.nn.functional.linear``.

    input: (..., in_features); weight: (out_features, in_features); bias: (out_features,) or None.
    Returns (..., out_features).
    """
    x_t, w_t = float_tensor("input", input), float_tensor("weight", weight, (2,))
    b_t = None if bias is None else float_tensor("bias", bias, (1,))
    same_dtype(input=x_t, weight=w_t, bias=b_t)
    x, w = x_t._array, w_t._array
    out_features, in_features = w.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(f"input's last dimension must be in_features={in_features} (weight {w.shape}), got {x.shape}")
    if b_t is not None and b_t.shape != (out_features,):
        raise ValueError(f"bias must have shape ({out_features},) to match weight {w.shape}, got {b_t.shape}")
    rows = x.reshape(-1, in_features)
    out = _product(rows, w.T).reshape(*x.shape[:-1], out_features)
    if b_t is not None:
        out += b_t._array
    need_x, need_w, need_b = needs_grad(x_t, w_t, b_t)

    def backward(g):
        g2 = g.reshape(-1, out_features)
        gx = _product(g2, w).reshape(x.shape) if need_x else None
        gw = _product(g2.T, rows) if need_w else None
        return (gx, gw) if b_t is None else (gx, gw, g2.sum(axis=0) if need_b else None)

    parents = (x_t, w_t) if b_t is None else (x_t, w_t, b_t)
    return record(out, parents, backward, "Addmm" if b_t is not None else "Mm")


__all__ = ["conv1d", "conv2d", "conv_transpose2d", "linear"]
