"""The benchmark shape suite: one source of truth for `test_bench_engine.py` and `compare.py`.

Each entry is one conv2d layer, (N, C, H=W) -> K with a square k x k kernel, as in the engine issue's table.
`random_inputs` builds the arrays every benchmark uses, from a fixed seed, so that numbaconv and PyTorch
(each in its own process) see exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

PASSES = ("forward", "forward+backward")


class ConvShape(NamedTuple):
    """One convolution layer: input (n, c, h, h), weight (k, c // groups, ksize, ksize)."""

    name: str
    n: int
    c: int
    h: int
    k: int
    ksize: int
    stride: int
    padding: int
    dilation: int
    groups: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.h)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c // self.groups, self.ksize, self.ksize)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        span = self.dilation * (self.ksize - 1) + 1
        size = (self.h + 2 * self.padding - span) // self.stride + 1
        return (self.n, self.k, size, size)

    @property
    def conv_kwargs(self) -> dict[str, int]:
        """The keyword arguments shared by numbaconv's and PyTorch's conv2d (and the gradients)."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    @property
    def winograd_eligible(self) -> bool:
        """3x3, stride 1, dilation 1: the shapes the "winograd" algorithm serves."""
        return self.ksize == 3 and self.stride == 1 and self.dilation == 1

    def flops(self, pass_: str = "forward") -> int:
        """Direct-convolution FLOPs (a multiply-add counts 2); forward+backward adds both gradients."""
        n, k, oh, ow = self.output_shape
        forward = 2 * n * k * oh * ow * (self.c // self.groups) * self.ksize * self.ksize
        return forward if pass_ == "forward" else 3 * forward

    def describe(self) -> str:
        """The layer in the issue's notation, e.g. ``8x64x56x56 -> 64, k3 s1 p1 d1 g1``."""
        n, c, h, w = self.input_shape
        return (
            f"{n}x{c}x{h}x{w} -> {self.k}, k{self.ksize} s{self.stride} p{self.padding} d{self.dilation} g{self.groups}"
        )


# fmt: off
SUITE: tuple[ConvShape, ...] = (
    #          name         N     C     H      K   k   s   p   d     g
    ConvShape("tutorial",   40,   40,   32,   100,  3,  2,  3,  1,    1),
    ConvShape("cifar_c1",   64,    3,   32,    32,  3,  1,  1,  1,    1),
    ConvShape("cifar_c2",   64,   32,   16,    64,  3,  1,  1,  1,    1),
    ConvShape("cifar_c3",   64,   64,    8,   128,  3,  1,  1,  1,    1),
    ConvShape("resnet56",    8,   64,   56,    64,  3,  1,  1,  1,    1),
    ConvShape("resnet28",    8,  128,   28,   128,  3,  1,  1,  1,    1),
    ConvShape("resnet14",    8,  256,   14,   256,  3,  1,  1,  1,    1),
    ConvShape("resnet7",     8,  512,    7,   512,  3,  1,  1,  1,    1),
    ConvShape("resnet1x1",   8,  256,   14,  1024,  1,  1,  0,  1,    1),
    ConvShape("stem7x7",     8,    3,  224,    64,  7,  2,  3,  1,    1),
    ConvShape("depthwise",   8,  256,   28,   256,  3,  1,  1,  1,  256),
    ConvShape("dilated",     8,   64,   56,    64,  3,  1,  2,  2,    1),
)
# fmt: on

BY_NAME: dict[str, ConvShape] = {shape.name: shape for shape in SUITE}


def select(names: Iterable[str] | None = None) -> tuple[ConvShape, ...]:
    """The suite entries called ``names`` (in the order given), or the whole suite for None."""
    if names is None:
        return SUITE
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; the suite has {list(BY_NAME)}")
    return tuple(BY_NAME[name] for name in names)


def random_inputs(shape: ConvShape, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """x, weight, bias and grad_output for ``shape``, C-contiguous, reproducible from ``seed``.

    The weight is scaled by 1/sqrt(fan_in) (as PyTorch's init does) so activations stay O(1) and no
    denormals slow either library down.
    """
    rng = np.random.default_rng(seed)
    fan_in = (shape.c // shape.groups) * shape.ksize * shape.ksize
    arrays = {
        "x": rng.standard_normal(shape.input_shape),
        "weight": rng.standard_normal(shape.weight_shape) / np.sqrt(fan_in),
        "bias": rng.standard_normal(shape.k),
        "grad_output": rng.standard_normal(shape.output_shape),
    }
    return {name: np.ascontiguousarray(array, dtype=dtype) for name, array in arrays.items()}
