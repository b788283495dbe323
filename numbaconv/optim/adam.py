"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW`` (single-tensor CPU path)."""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from .optimizer import Optimizer, _check_unsupported


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's algorithm step by step:

    - ``t += 1``; ``p *= 1 - lr * weight_decay`` (decoupled, AdamW) or ``g += weight_decay * p``;
    - ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g``;
    - ``v_hat = max(v_hat, v)`` with ``amsgrad``, else ``v``;
    - ``p -= lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)``.

    State per parameter: ``step`` (a float32 0-d Tensor), ``exp_avg``, ``exp_avg_sq`` (+ ``max_exp_avg_sq``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_unsupported(capturable=capturable, differentiable=differentiable, fused=fused)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, group: dict, params: list[Tensor]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        for p in params:
            x = p._array
            g = p.grad._array
            if group["maximize"]:
                g = -g
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = Tensor(np.array(0.0, dtype=np.float32))
                state["exp_avg"] = Tensor(np.zeros_like(x))
                state["exp_avg_sq"] = Tensor(np.zeros_like(x))
                if amsgrad:
                    state["max_exp_avg_sq"] = Tensor(np.zeros_like(x))
            m, v = state["exp_avg"]._array, state["exp_avg_sq"]._array
            state["step"]._array += 1
            step = float(state["step"]._array)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    x *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * x
            _lerp_(m, g, 1 - beta1)
            v *= beta2
            v += (1 - beta2) * g * g
            bias_correction1 = 1 - beta1**step
            bias_correction2_sqrt = (1 - beta2**step) ** 0.5
            step_size = lr / bias_correction1
            if amsgrad:
                v_max = state["max_exp_avg_sq"]._array
                np.maximum(v_max, v, out=v_max)
                v = v_max
            denom = np.sqrt(v) / bias_correction2_sqrt
            denom += eps
            x += (-step_size * m) / denom  # addcdiv's (value * t1) / t2 order


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start += weight * (end - start)`` in place, with PyTorch's formula choice for accuracy."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the Adam step); default 1e-2."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
        )  # fmt: skip
