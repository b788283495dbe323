"""Batch normalisation on Tensors, over the channel axis 1 of (N, C, ...) inputs.

The passes over the activations run in ``numbaconv.kernels.norm`` (statistics, the affine map, and the
backward's channel sums then input gradient); the per-channel arithmetic here is on (C,) float64 arrays.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, record
from ..kernels import norm as kernels
from ..runtime import parallel_section
from ._args import check_probability, float_tensor, needs_grad, same_dtype


def _channel_vector(name: str, value: Tensor | None, channels: int) -> Tensor | None:
    if value is None:
        return None
    t = float_tensor(name, value)
    if t.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},) for an input with {channels} channels, got {t.shape}")
    return t


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation, as ``torch.nn.functional.batch_norm``.

    input: (N, C, ...); running_mean, running_var, weight, bias: (C,) or None.
    ``out = (x - mean) / sqrt(var + eps) * weight + bias`` per channel, with the batch's mean and biased
    variance when ``training`` (the running buffers, when given, are then updated in place:
    ``r = (1 - momentum) * r + momentum * stat``, with the *unbiased* variance), else the running ones.
    """
    t = float_tensor("input", input)
    if t.ndim < 2:
        raise ValueError(f"input must be (N, C, ...) with at least 2 dimensions, got shape {t.shape}")
    n, c = t.shape[:2]
    length = int(np.prod(t.shape[2:], dtype=np.int64))
    rm, rv = _channel_vector("running_mean", running_mean, c), _channel_vector("running_var", running_var, c)
    w_t, b_t = _channel_vector("weight", weight, c), _channel_vector("bias", bias, c)
    same_dtype(input=t, weight=w_t, bias=b_t)
    momentum = check_probability("momentum", momentum)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x = np.ascontiguousarray(t._array).reshape(n, c, length)
    count = n * length
    if training:
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {t.shape}")
        mean, var = np.empty(c), np.empty(c)
        with parallel_section():
            kernels.channel_stats(x, mean, var)
        if rm is not None:
            rm._array[...] = (1 - momentum) * rm._array + momentum * mean
        if rv is not None:
            rv._array[...] = (1 - momentum) * rv._array + momentum * var * (count / (count - 1))
    else:
        if rm is None or rv is None:
            raise ValueError("running_mean and running_var must be given when training=False")
        mean, var = rm._array.astype(np.float64), rv._array.astype(np.float64)
    invstd = 1.0 / np.sqrt(var + eps)
    gamma = np.ones(c) if w_t is None else w_t._array.astype(np.float64)
    beta = np.zeros(c) if b_t is None else b_t._array.astype(np.float64)
    scale = gamma * invstd
    out = np.empty_like(x)
    with parallel_section():
        kernels.affine(x, mean, scale, beta, out)
    need_x, need_w, need_b = needs_grad(t, w_t, b_t)

    def backward(g):
        dy = np.ascontiguousarray(g).reshape(n, c, length)
        sum_dy, sum_dy_xmu = np.empty(c), np.empty(c)
        gx = None if not need_x else np.empty_like(x)
        with parallel_section():
            if need_w or need_b or (need_x and training):
                kernels.grad_sums(dy, x, mean, sum_dy, sum_dy_xmu)
            if need_x and training:  # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd
                xmu_scale = -scale * invstd * invstd * sum_dy_xmu / count
                kernels.grad_input(dy, x, mean, scale, xmu_scale, -scale * sum_dy / count, gx)
            elif need_x:  # the statistics are constants: dx = scale * dy
                kernels.affine(dy, np.zeros(c), scale, np.zeros(c), gx)
        grads = [None if gx is None else gx.reshape(t.shape)]
        if w_t is not None:
            grads.append((sum_dy_xmu * invstd).astype(w_t.dtype) if need_w else None)
        if b_t is not None:
            grads.append(sum_dy.astype(b_t.dtype) if need_b else None)
        return tuple(grads)

    parents = tuple(p for p in (t, w_t, b_t) if p is not None)
    return record(out.reshape(t.shape), parents, backward, "NativeBatchNorm")


__all__ = ["batch_norm"]
