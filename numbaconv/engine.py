"""The array-level engine: numpy in, numpy out, with PyTorch's ``conv2d`` semantics and both gradients.

Each call validates everything through `ConvSpec` and the array checks here, asks `dispatch` for an
algorithm, then runs that algorithm's driver under the runtime's parallel section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import dispatch
from .geometry import (
    ConvPlan,
    ConvSpec,
    IntPair,
    Padding,
    check_activation,
    check_array,
    check_grad_output,
    check_input_shape,
    check_shape,
    common_dtype,
    padding_source_index,
)
from .kernels.padding import all_finite, fold_padded, gather_padded
from .runtime import parallel_section


class Conv2dCall(NamedTuple):
    """A validated `conv2d` call: its plan and its arrays, x batched (N first)."""

    plan: ConvPlan
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    unbatched: bool


def check_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Conv2dCall:
    """Every check `conv2d` makes of its arguments (the same errors, in the same order), and its plan."""
    spec = ConvSpec.from_args(stride, padding, dilation, groups, padding_mode)
    x, unbatched = check_activation("x", x)
    weight = check_array("weight", weight, 4)
    arrays = {"x": x, "weight": weight}
    if bias is not None:
        arrays["bias"] = bias = check_array("bias", bias, 1)
    common_dtype(arrays)
    plan = spec.plan(x.shape, weight.shape)
    k = plan.geometry.k
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"bias must have shape ({k},) to match weight {weight.shape}, got {bias.shape}")
    return Conv2dCall(plan, x, weight, bias, unbatched)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> np.ndarray:
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d`` / ``nn.Conv2d`` compute it.

    x: (N, C, H, W) or unbatched (C, H, W); weight: (K, C/groups, kh, kw); bias: (K,) or None.
    Returns (N, K, OH, OW) (or (K, OH, OW)) in x's dtype, with
    ``OH = (H + pad_top + pad_bottom - dilation_h * (kh - 1) - 1) // stride_h + 1`` and likewise OW.
    ``padding`` is an int, a pair, ``"valid"`` or ``"same"``; ``padding_mode`` is ``"zeros"``, ``"reflect"``,
    ``"replicate"`` or ``"circular"``; ``algorithm`` is ``"auto"`` or one of `ALGORITHMS`.
    """
    call = check_conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    return _unbatch(planned_forward(call.plan, call.x, call.weight, call.bias, algorithm), call.unbatched)


def conv2d_grad_input(
    input_shape: Sequence[int],
    weight: np.ndarray,
    grad_output: np.ndarray,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> np.ndarray:
    """dL/dx of `conv2d` for an input of ``input_shape``, given dL/dy ``grad_output``.

    input_shape: (N, C, H, W) or (C, H, W); weight: (K, C/groups, kh, kw); grad_output: (N, K, OH, OW)
    (or (K, OH, OW) for an unbatched input). Returns an array of ``input_shape`` in the weight's dtype.
    With a non-zero ``padding_mode`` the gradient that lands on padded cells is added to the input cells
    they copy.
    """
    spec = ConvSpec.from_args(stride, padding, dilation, groups, padding_mode)
    shape, unbatched = check_input_shape(input_shape)
    weight = check_array("weight", weight, 4)
    grad_output = check_array("grad_output", grad_output, 3 if unbatched else 4)
    common_dtype({"weight": weight, "grad_output": grad_output})
    plan = spec.plan(shape, weight.shape)
    grad_output = check_grad_output(grad_output, plan, unbatched)
    return _unbatch(planned_grad_input(plan, shape, weight, grad_output, algorithm), unbatched)


def conv2d_grad_weight(
    x: np.ndarray,
    weight_shape: Sequence[int],
    grad_output: np.ndarray,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> np.ndarray:
    """dL/dweight of `conv2d` for a weight of ``weight_shape``, given the input ``x`` and dL/dy.

    x: (N, C, H, W) or (C, H, W); weight_shape: (K, C/groups, kh, kw); grad_output: (N, K, OH, OW)
    (or (K, OH, OW)). Returns an array of ``weight_shape`` in x's dtype.
    """
    spec = ConvSpec.from_args(stride, padding, dilation, groups, padding_mode)
    x, unbatched = check_activation("x", x)
    shape = check_shape("weight_shape", weight_shape, (4,), minimum=1)
    grad_output = check_array("grad_output", grad_output, 3 if unbatched else 4)
    common_dtype({"x": x, "grad_output": grad_output})
    plan = spec.plan(x.shape, shape)
    grad_output = check_grad_output(grad_output, plan, unbatched)
    return planned_grad_weight(plan, shape, x, grad_output, algorithm)


# The planned passes: what the three calls above run once everything is validated. Callers that have
# validated the arrays against ``plan`` themselves (the autograd ops, whose backward reuses the forward's
# plan) call them directly. Arrays are batched (N first); dtypes match.


def planned_forward(
    plan: ConvPlan, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, algorithm: str = "auto"
) -> np.ndarray:
    """`conv2d` of a batched ``x`` already validated against ``plan``: (N, K, OH, OW)."""
    geo = plan.geometry
    decision = dispatch.choose("forward", geo, x.dtype, algorithm)
    if geo.n == 0:
        return np.zeros((0, geo.k, geo.oh, geo.ow), x.dtype)
    with parallel_section():
        x = _apply_padding(_kernel_ready(x), plan)
        weight = _kernel_ready(weight)
        bias = None if bias is None else _kernel_ready(bias)
        decision = dispatch.finite_fallback(decision, x, weight, is_finite=all_finite)
        return decision.driver.forward(x, weight, bias, geo, **decision.options)


def planned_grad_input(
    plan: ConvPlan, shape: tuple[int, ...], weight: np.ndarray, grad_output: np.ndarray, algorithm: str = "auto"
) -> np.ndarray:
    """`conv2d_grad_input` for the batched input ``shape`` and (N, K, OH, OW) ``grad_output`` of ``plan``."""
    geo = plan.geometry
    decision = dispatch.choose("grad_input", geo, weight.dtype, algorithm)
    if geo.n == 0:
        return np.zeros(shape, weight.dtype)
    with parallel_section():
        grad_output = _kernel_ready(grad_output)
        weight = _kernel_ready(weight)
        decision = dispatch.finite_fallback(decision, grad_output, weight, is_finite=all_finite)
        grad = decision.driver.grad_input(grad_output, weight, geo, **decision.options)
        return _fold_padding(grad, shape, plan)


def planned_grad_weight(
    plan: ConvPlan, weight_shape: tuple[int, ...], x: np.ndarray, grad_output: np.ndarray, algorithm: str = "auto"
) -> np.ndarray:
    """`conv2d_grad_weight` for a batched ``x`` and (N, K, OH, OW) ``grad_output`` of ``plan``."""
    geo = plan.geometry
    decision = dispatch.choose("grad_weight", geo, x.dtype, algorithm)
    if geo.n == 0:
        return np.zeros(weight_shape, x.dtype)
    with parallel_section():
        x = _apply_padding(_kernel_ready(x), plan)
        grad_output = _kernel_ready(grad_output)
        decision = dispatch.finite_fallback(decision, x, grad_output, is_finite=all_finite)
        return decision.driver.grad_weight(x, grad_output, geo, **decision.options)


def _kernel_ready(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, writeable array (copied only when needed): kernels compile once per array type, and a
    read-only or strided array would cost a second compilation."""
    flags = array.flags  # checked first: np.require costs a microsecond even when it returns ``array``
    return array if flags.c_contiguous and flags.writeable else np.require(array, requirements=("C", "W"))


def _unbatch(array: np.ndarray, unbatched: bool) -> np.ndarray:
    return array[0] if unbatched else array


def _source_maps(plan: ConvPlan, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    top, bottom, left, right = plan.explicit_padding
    return (
        padding_source_index(h, top, bottom, plan.padding_mode),
        padding_source_index(w, left, right, plan.padding_mode),
    )


def _apply_padding(x: np.ndarray, plan: ConvPlan) -> np.ndarray:
    """x padded explicitly for the non-zero padding modes; x itself for "zeros" (padded implicitly)."""
    if plan.explicit_padding is None:
        return x
    rows, cols = _source_maps(plan, x.shape[2], x.shape[3])
    padded = np.empty((x.shape[0], x.shape[1], rows.size, cols.size), x.dtype)
    gather_padded(x, rows, cols, padded)
    return padded


def _fold_padding(grad: np.ndarray, shape: tuple[int, int, int, int], plan: ConvPlan) -> np.ndarray:
    """The gradient of the explicitly padded input folded back onto the input of ``shape``."""
    if plan.explicit_padding is None:
        return grad
    rows, cols = _source_maps(plan, shape[2], shape[3])
    folded = np.empty(shape, grad.dtype)
    fold_padded(grad, rows, cols, folded)
    return folded
