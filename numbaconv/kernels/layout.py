"""Kernels that only move values between layouts, in parallel: numpy's copy of a transposed, reversed view
runs on one core, gathering a few values per cache line."""

import numpy as np
from numba import njit, prange

from . import FASTMATH

_U = np.uint64


_BLOCK = 16  # input channels per work item: reads of 16 kernels' taps in a row, 16 sequential write streams


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def adjoint_kernels(weight, out):
    """out[g, ci, ko, t] = weight[g, ko, ci, taps - 1 - t]: each group's in and out channels swapped and its
    taps rotated 180 degrees (the flattened taps reversed). weight: (groups, kg, cg, taps), out: (groups, cg,
    kg, taps), C-contiguous. A work item is a block of input channels of one group, read a row of kernels
    at a time rather than one kernel per output row (which would touch a new page for every kernel)."""
    groups, kg, cg, taps = weight.shape
    blocks = (cg + _BLOCK - 1) // _BLOCK
    for parallel_item in prange(groups * blocks):
        item = np.int64(parallel_item)
        g = item // blocks
        ci0 = (item - g * blocks) * _BLOCK
        ci1 = min(cg, ci0 + _BLOCK)
        for ko in range(kg):
            for ci in range(ci0, ci1):
                for t in range(taps):
                    out[_U(g), _U(ci), _U(ko), _U(t)] = weight[_U(g), _U(ko), _U(ci), _U(taps - 1 - t)]
