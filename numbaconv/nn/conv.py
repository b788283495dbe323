"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d with PyTorch's signatures, init and repr.

Shapes (Conv2d): input ``(N, C_in, H, W)``, weight ``(C_out, C_in / groups, kH, kW)``, output
``(N, C_out, H_out, W_out)`` with ``H_out = floor((H + 2 * padding - dilation * (kH - 1) - 1) / stride + 1)``.
ConvTranspose2d's weight is ``(C_in, C_out / groups, kH, kW)`` and its output is
``H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import functional as F
from . import init
from .module import Module, add_weight_and_bias, factory_dtype

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(n: int):
    def parse(x) -> tuple:
        return tuple(x) if isinstance(x, Iterable) else (x,) * n

    return parse


_single, _pair = _ntuple(1), _ntuple(2)


class _ConvNd(Module):
    """Argument validation, parameters, initialisation and repr shared by every convolution layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
        padding: str | tuple[int, ...],
        dilation: tuple[int, ...],
        transposed: bool,
        output_padding: tuple[int, ...],
        groups: int,
        bias: bool,
        padding_mode: str,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dtype = factory_dtype(device, dtype)
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {set(_PADDING_MODES)}, but got padding_mode='{padding_mode}'"
            )
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.transposed, self.output_padding, self.groups = transposed, output_padding, groups
        self.padding_mode = padding_mode
        # F.pad's (left, right) pairs, last dimension first: used by non-"zeros" padding modes
        if isinstance(padding, str):
            pads = [0, 0] * len(kernel_size)
            if padding == "same":
                for i, (d, k) in enumerate(zip(dilation, kernel_size, strict=True)):
                    total = d * (k - 1)
                    j = len(kernel_size) - 1 - i
                    pads[2 * j], pads[2 * j + 1] = total // 2, total - total // 2
            self._reversed_padding_repeated_twice = pads
        else:
            self._reversed_padding_repeated_twice = tuple(p for p in reversed(padding) for _ in range(2))
        shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        add_weight_and_bias(self, shape + tuple(kernel_size), out_channels, bias, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight ~ kaiming_uniform_(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init._reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.padding):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class _ConvForward(_ConvNd):
    """Conv1d and Conv2d: the same constructor and forward, over ``_expand``-ed sizes and ``_functional``."""

    _expand: Callable  # int or tuple -> a tuple of the layer's dimensionality
    _functional: Callable  # F.conv1d or F.conv2d

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        expand = self._expand
        super().__init__(
            in_channels, out_channels, expand(kernel_size), expand(stride),
            padding if isinstance(padding, str) else expand(padding), expand(dilation),
            False, expand(0), groups, bias, padding_mode, device, dtype,
        )  # fmt: skip

    def forward(self, input):
        return self._functional(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            padding_mode=self.padding_mode,
        )  # fmt: skip


class Conv1d(_ConvForward):
    """1-D convolution over ``(N, C_in, L)``: ``L_out = floor((L + 2p - d(k - 1) - 1) / s + 1)``."""

    _expand = staticmethod(_single)
    _functional = staticmethod(F.conv1d)


class Conv2d(_ConvForward):
    """2-D convolution over ``(N, C_in, H, W)``, every option of ``torch.nn.Conv2d``.

    ``padding`` is an int, a pair, ``"valid"`` (none) or ``"same"`` (output size = input size, stride 1);
    ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    """

    _expand = staticmethod(_pair)
    _functional = staticmethod(F.conv2d)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input).

    ``forward(input, output_size=None)``: ``output_size`` picks among the sizes a strided convolution maps
    to the same input size, as in PyTorch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not support string padding, got {padding!r}")
        super().__init__(
            in_channels, out_channels, _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation),
            True, _pair(output_padding), groups, bias, padding_mode, device, dtype,
        )  # fmt: skip

    def _output_padding(self, input, output_size) -> tuple[int, ...]:
        if output_size is None:
            return self.output_padding
        n = len(self.kernel_size)
        output_size = tuple(int(s) for s in output_size)
        non_spatial = 2 if input.ndim == n + 2 else 1
        if len(output_size) == non_spatial + n:
            output_size = output_size[non_spatial:]
        if len(output_size) != n:
            raise ValueError(
                f"ConvTranspose{n}D: for {input.ndim}D input, output_size must have {n} or {non_spatial + n} "
                f"elements (got {len(output_size)})"
            )
        spatial = input.shape[non_spatial:]
        low = [
            (spatial[d] - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1) + 1
            for d in range(n)
        ]
        high = [low[d] + self.stride[d] - 1 for d in range(n)]
        if any(not low[d] <= output_size[d] <= high[d] for d in range(n)):
            raise ValueError(
                f"requested an output size of {list(output_size)}, but valid sizes range from {low} to {high} "
                f"(for an input of {list(spatial)})"
            )
        return tuple(output_size[d] - low[d] for d in range(n))

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(
            input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups, self.dilation
        )
