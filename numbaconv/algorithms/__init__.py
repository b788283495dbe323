"""Per-algorithm drivers: orchestrate kernels, workspaces and matrix products for one algorithm."""

import numpy as np


def flipped_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """The weight of a convolution's adjoint (its input gradient as a forward convolution of the output
    gradient): (k, c/groups, kh, kw) -> C-contiguous (c, k/groups, kh, kw), in and out channels swapped within
    each group and the taps rotated 180 degrees."""
    k, cg, kh, kw = weight.shape
    kg = k // groups
    swapped = weight.reshape(groups, kg, cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return np.ascontiguousarray(swapped).reshape(groups * cg, kg, kh, kw)
