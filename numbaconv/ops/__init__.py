"""Functional ops on Tensors: each computes its forward with numpy, the engine or a Numba kernel, and records
its backward rule (defined right next to it) on the autograd tape with ``autograd.record``.

``numbaconv.nn.functional`` re-exports these under PyTorch's names.
"""

from .activation import dropout, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d, conv_transpose2d, linear
from .loss import cross_entropy, mse_loss, nll_loss
from .norm import batch_norm
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .shape import pad

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "cross_entropy",
    "dropout",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
