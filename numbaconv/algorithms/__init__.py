"""Per-algorithm drivers: orchestrate kernels, workspaces and matrix products for one algorithm."""

import numpy as np

from ..kernels.layout import adjoint_kernels


def flipped_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """The weight of a convolution's adjoint (its input gradient as a forward convolution of the output
    gradient): (k, c/groups, kh, kw) -> C-contiguous (c, k/groups, kh, kw), in and out channels swapped within
    each group and the taps rotated 180 degrees."""
    k, cg, kh, kw = weight.shape
    kg = k // groups
    flipped = np.empty((groups, cg, kg, kh * kw), dtype=weight.dtype)
    adjoint_kernels(np.ascontiguousarray(weight).reshape(groups, kg, cg, kh * kw), flipped)
    return flipped.reshape(groups * cg, kg, kh, kw)
