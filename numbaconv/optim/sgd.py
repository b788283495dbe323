"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize, as ``torch.optim.SGD``."""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from .optimizer import Optimizer, _check_unsupported


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's algorithm step by step:

    - ``g = grad`` (negated if ``maximize``) ``+ weight_decay * p``;
    - when ``momentum != 0``: ``b = g`` on the first step, else ``b = momentum * b + (1 - dampening) * g``;
      then ``g = g + momentum * b`` with ``nesterov``, else ``g = b``;
    - ``p = p - lr * g``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_unsupported(differentiable=differentiable, fused=fused)
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, group: dict, params: list[Tensor]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for p in params:
            x = p._array
            g = p.grad._array
            if group["maximize"]:
                g = -g
            if weight_decay != 0:
                g = g + weight_decay * x
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = Tensor(np.array(g, dtype=x.dtype, copy=True))
                else:
                    b = buf._array
                    b *= momentum
                    b += (1 - dampening) * g
                g = g + momentum * buf._array if nesterov else buf._array
            x -= lr * g
