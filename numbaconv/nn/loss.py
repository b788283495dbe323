"""Loss modules: CrossEntropyLoss and MSELoss."""

from __future__ import annotations

import warnings

from . import functional as F
from .module import Module


def _legacy_reduction(size_average, reduce) -> str:
    """PyTorch's mapping of the deprecated ``size_average``/``reduce`` flags to ``reduction``."""
    warnings.warn(
        "size_average and reduce args will be deprecated, please use reduction='mean' (or 'sum', 'none') instead.",
        stacklevel=3,
    )
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "mean" if size_average and reduce else "sum" if reduce else "none"


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Cross entropy between logits ``(N, C)`` (or ``(N, C, d1, ...)``) and class indices ``(N,)``.

    ``weight`` (a Tensor of C class weights) is registered as a buffer, as in PyTorch; targets equal to
    ``ignore_index`` contribute nothing; ``label_smoothing`` mixes the target with the uniform distribution.
    """

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(
            input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )  # fmt: skip


class MSELoss(_Loss):
    """Mean (or summed, or elementwise) squared error between ``input`` and ``target``."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
