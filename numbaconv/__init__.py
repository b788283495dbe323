"""numbaconv: a CPU CNN library with PyTorch's API -- Tensor with autograd, ``nn``, ``optim``, ``data`` --
on a multithreaded convolution engine written with Numba.

The array-level engine takes and returns numpy arrays:

>>> import numpy as np, numbaconv
>>> x = np.random.rand(8, 3, 32, 32).astype(np.float32)
>>> w = np.random.rand(16, 3, 3, 3).astype(np.float32)
>>> numbaconv.conv2d(x, w, padding=1).shape
(8, 16, 32, 32)
"""

from . import data, nn, optim, precompile
from .autograd import (
    Tensor,
    arange,
    enable_grad,
    float32,
    float64,
    from_numpy,
    int64,
    is_grad_enabled,
    manual_seed,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .dispatch import ALGORITHMS, explain
from .engine import conv2d, conv2d_grad_input, conv2d_grad_weight
from .runtime import get_num_threads, release_workspaces, set_num_threads, workspace_bytes
from .serialization import load, save

__version__ = "0.1.0"

precompile.start_if_cold()  # a first run compiles in a helper process too (numbaconv.precompile)

__all__ = [
    "ALGORITHMS",
    "Tensor",
    "arange",
    "enable_grad",
    "float32",
    "float64",
    "from_numpy",
    "int64",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
    "conv2d",
    "data",
    "load",
    "nn",
    "optim",
    "save",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "explain",
    "get_num_threads",
    "release_workspaces",
    "set_num_threads",
    "workspace_bytes",
]
