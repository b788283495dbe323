"""Losses on Tensors: cross-entropy (and its nll_loss half) over class indices or probabilities, and MSE.

Cross-entropy and nll_loss share one formulation: for each sample i (a row of the (M, C) logits, after
moving the class axis last), ``loss_i = -sum_c A[i, c] * logp[i, c]``, where the coefficient matrix A holds
the class weights, the one-hot (or soft) target, label smoothing and the ignore_index mask. ``mean``
divides the sum by ``denominator`` (the summed target weights for class indices, M for probabilities),
exactly as PyTorch normalises.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, record, result_type, unbroadcast
from ._args import as_tensor, check_probability, check_reduction, float_tensor, is_int, needs_grad
from .activation import log_softmax_array


def _rows(x: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N * d1 * ..., C): one row per sample, classes last (an (N, C) input as it is)."""
    return x if x.ndim == 2 else np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `_rows` for an (N, C, d1, ...) ``shape``."""
    return rows if len(shape) == 2 else np.moveaxis(rows.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)


def _class_weight(weight, classes: int, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    w = float_tensor("weight", weight)
    if w.shape != (classes,):
        raise ValueError(f"weight must have shape ({classes},) for {classes} classes, got {w.shape}")
    if w.dtype != dtype:
        raise TypeError(f"weight must have the input's dtype {dtype}, got {w.dtype}")
    return w._array


def _index_coefficients(target: np.ndarray, sample_shape, classes: int, weight, ignore_index: int,
                        smoothing: float, dtype: np.dtype) -> tuple[np.ndarray, float, np.ndarray]:  # fmt: skip
    """A (M, C), the ``mean`` denominator and the (M,) target class of each row (-1 where ignored) for int
    class-index targets of ``sample_shape``."""
    if target.shape != sample_shape:
        raise ValueError(f"target must have shape {sample_shape} (the input's without the class axis), "
                         f"got {target.shape}")  # fmt: skip
    labels = target.reshape(-1).astype(np.int64, copy=False)
    valid = labels != ignore_index
    bad = labels[valid & ((labels < 0) | (labels >= classes))]
    if bad.size:
        raise ValueError(f"target values must be in [0, {classes}) or ignore_index={ignore_index}, got {bad[0]}")
    safe = np.where(valid, labels, 0)
    picked = valid.astype(dtype) if weight is None else weight[safe] * valid
    coefficients = np.zeros((labels.size, classes), dtype)
    coefficients[np.arange(labels.size), safe] = (1 - smoothing) * picked if smoothing else picked
    if smoothing:
        spread = np.ones(classes, dtype) if weight is None else weight
        coefficients += (smoothing / classes) * spread[None, :] * valid[:, None]
    return coefficients, picked.sum(dtype=np.float64), np.where(valid, labels, -1)


def _index_losses(coefficients: np.ndarray, logp: np.ndarray, labels: np.ndarray, smoothing: float) -> np.ndarray:
    """``-sum_c A * logp`` per row for class-index targets, formed as PyTorch forms it: only the target's term
    (all classes' with label smoothing), and nothing for ignored rows (``labels`` -1), so a -inf
    log-probability the loss does not pick leaves it finite rather than making 0 * -inf."""
    valid = labels >= 0
    with np.errstate(invalid="ignore"):  # 0 * -inf on ignored rows: discarded by the where
        if smoothing:
            terms = (coefficients * logp).sum(axis=1)
        else:
            rows, picked = np.arange(labels.size), np.maximum(labels, 0)
            terms = coefficients[rows, picked] * logp[rows, picked]
    return np.where(valid, -terms, 0).astype(logp.dtype, copy=False)


def _soft_coefficients(target: np.ndarray, input_shape, weight, smoothing: float) -> np.ndarray:
    """A (M, C) for class-probability targets of the input's shape."""
    if target.shape != input_shape:
        raise ValueError(f"a float (class-probability) target must have the input's shape {input_shape}, "
                         f"got {target.shape}")  # fmt: skip
    probs = _rows(target)
    if smoothing:
        probs = probs * (1 - smoothing) + smoothing / input_shape[1]
    return probs if weight is None else probs * weight


def _class_loss(name: str, input, target, weight, ignore_index: int, reduction: str, smoothing: float,
                from_logits: bool) -> Tensor:  # fmt: skip
    """``-sum_c A * logp`` per sample, reduced; logp is log_softmax(input) or input itself (nll_loss)."""
    x_t = float_tensor("input", input)
    if x_t.ndim == 0:
        raise ValueError("input must have a class dimension (C,) or (N, C, ...), got a 0-d tensor")
    y_t = as_tensor("target", target)
    check_reduction(reduction)
    if not is_int(ignore_index):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    unbatched = x_t.ndim == 1
    x = x_t._array[np.newaxis] if unbatched else x_t._array
    y = y_t._array[np.newaxis] if unbatched else y_t._array
    classes, dtype = x.shape[1], x.dtype
    w = _class_weight(weight, classes, dtype)
    soft = y.dtype.kind == "f"
    if soft:
        if y.dtype != dtype:
            raise TypeError(f"a float target must have the input's dtype {dtype}, got {y.dtype}")
        coefficients, denominator = _soft_coefficients(y, x.shape, w, smoothing), x.size // classes
    elif y.dtype.kind in "iu":
        sample_shape = x.shape[:1] + x.shape[2:]
        coefficients, denominator, labels = _index_coefficients(
            y, sample_shape, classes, w, ignore_index, smoothing, dtype
        )
    else:
        raise TypeError(f"target must hold int64 class indices or float class probabilities, got dtype {y.dtype}")
    logp = log_softmax_array(_rows(x), 1) if from_logits else _rows(x)
    if soft:
        with np.errstate(invalid="ignore"):  # 0 * -inf is NaN, silently, as in PyTorch
            per_sample = -(coefficients * logp).sum(axis=1)
    else:
        per_sample = _index_losses(coefficients, logp, labels, smoothing)
    if reduction == "none":
        loss = per_sample.reshape(() if unbatched else x.shape[:1] + x.shape[2:])
    elif reduction == "sum":
        loss = per_sample.sum()
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # all targets ignored: NaN, as PyTorch
            loss = (per_sample.sum(dtype=np.float64) / denominator).astype(dtype)
    need_x, need_y = needs_grad(x_t, y_t if soft else None)

    def backward(g):
        if reduction == "none":
            row_grad = g.reshape(-1, 1)
        else:
            row_grad = np.full((per_sample.size, 1), g if reduction == "sum" else g / denominator, dtype)
        gx = gy = None
        if need_x:
            if from_logits:  # d(-sum_c A logp)/dx = softmax * sum_c A - A
                rows = np.exp(logp) * coefficients.sum(axis=1, keepdims=True) - coefficients
            else:
                rows = -coefficients
            gx = _unrows(row_grad * rows, x.shape).reshape(x_t.shape)
        if need_y:
            spread = (1 - smoothing) * (1 if w is None else w)
            gy = _unrows(-row_grad * spread * logp, x.shape).reshape(y_t.shape)
        return (gx, gy) if soft else (gx,)

    parents = (x_t, y_t) if soft else (x_t,)
    return record(np.asarray(loss, dtype), parents, backward, name)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits against class indices or class probabilities, as ``F.cross_entropy``.

    input: (C,), (N, C) or (N, C, d1, ...) logits; target: int class indices of shape (), (N) or
    (N, d1, ...) (``ignore_index`` entries contribute nothing), or float probabilities of the input's
    shape. ``weight``: (C,) class weights. ``reduction``: "mean" (divided by the summed weights of the
    non-ignored targets; by the sample count for probabilities), "sum" or "none". ``label_smoothing`` mixes
    the target with the uniform distribution. The options after ``weight`` are keyword-only here.
    """
    smoothing = check_probability("label_smoothing", label_smoothing)
    return _class_loss("NllLoss" if not smoothing else "CrossEntropyLoss", input, target, weight, ignore_index,
                       reduction, smoothing, from_logits=True)  # fmt: skip


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at int class indices, as ``F.nll_loss``."""
    t = as_tensor("target", target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must hold int64 class indices, got dtype {t.dtype}")
    return _class_loss("NllLoss", input, t, weight, ignore_index, reduction, 0.0, from_logits=False)


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target) ** 2``, reduced by ``reduction`` ("mean", "sum", "none").

    Shapes broadcast (PyTorch warns when they differ); the target may require grad too.
    """
    x_t, y_t = float_tensor("input", input), as_tensor("target", target)
    check_reduction(reduction)
    dtype = result_type(x_t, y_t)
    diff = x_t._array.astype(dtype, copy=False) - y_t._array.astype(dtype, copy=False)
    squared = diff * diff
    loss = squared if reduction == "none" else squared.sum() if reduction == "sum" else squared.mean()
    scale = 1.0 if reduction != "mean" else 1.0 / max(squared.size, 1)
    need_x, need_y = needs_grad(x_t, y_t)

    def backward(g):
        grad = (2 * scale) * g * diff
        gx = unbroadcast(grad, x_t.shape).astype(x_t.dtype, copy=False) if need_x else None
        gy = unbroadcast(-grad, y_t.shape).astype(y_t.dtype, copy=False) if need_y else None
        return gx, gy

    return record(np.asarray(loss, dtype), (x_t, y_t), backward, "MseLoss")


__all__ = ["cross_entropy", "mse_loss", "nll_loss"]
