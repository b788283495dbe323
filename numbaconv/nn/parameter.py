"""Parameter: a Tensor that a Module registers as learnable when it is assigned as an attribute."""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; ``module.name = Parameter(t)`` registers it.

    ``Parameter(t)`` shares ``t``'s memory, as ``torch.nn.Parameter`` does. Operations on a Parameter
    return plain Tensors.
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data._array if isinstance(data, Tensor) else np.asarray(data), requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(self._array.copy(), self.requires_grad)
        if self._grad is not None:
            out._grad = Tensor(self._grad._array.copy())
        memo[id(self)] = out
        return out
