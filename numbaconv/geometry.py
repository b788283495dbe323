"""Argument normalisation and validation for 2-D convolution: the one place conv errors are raised.

`ConvSpec` turns PyTorch-style arguments (ints or pairs, ``"same"``/``"valid"``, padding modes) into plain
integers, checks them against the array shapes, and describes the work as a `ConvGeometry` that kernels
consume. Kernels never validate: everything they can trip over is rejected here first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np

IntPair = int | Sequence[int]
Padding = int | Sequence[int] | str

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
T = TypeVar("T")


class ConvGeometry(NamedTuple):
    """Plain integers describing one batched convolution, as kernels see it.

    The input is (n, c, h, w), the weight (k, c // groups, kh, kw), the output (n, k, oh, ow).
    ``pad_h``/``pad_w`` are the implicit zero rows/columns before the input (top/left); any padding after it
    (bottom/right, possibly one more than top/left for ``"same"``) is implied by ``oh``/``ow``. An input
    position ``oh_i * stride_h - pad_h + kh_i * dil_h`` outside ``[0, h)`` reads as zero.
    """

    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    oh: int
    ow: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dil_h: int
    dil_w: int
    groups: int


def check_array(name: str, value: object, ndim: int) -> np.ndarray:
    """``value`` as a float32/float64 array of ``ndim`` dimensions, or a TypeError/ValueError naming it."""
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    return array


def check_activation(name: str, value: object) -> tuple[np.ndarray, bool]:
    """An (N, C, H, W) array, or a (C, H, W) one given a batch of one; returns it and whether it was 3-D."""
    array = np.asarray(value)
    if array.ndim not in (3, 4):
        raise ValueError(f"{name} must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {array.shape}")
    array = check_array(name, array, array.ndim)
    if min(array.shape[1:] if array.ndim == 4 else array.shape) < 1:
        raise ValueError(f"{name} must have non-empty channel and spatial dimensions, got shape {array.shape}")
    return (array[np.newaxis], True) if array.ndim == 3 else (array, False)


def check_shape(name: str, value: object, lengths: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """A tuple of ints of one of ``lengths``, each at least ``minimum``."""
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence) or len(value) not in lengths:
        raise TypeError(f"{name} must be a tuple of {' or '.join(map(str, lengths))} ints, got {value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
    if any(v < minimum for v in value):
        raise ValueError(f"{name} must have dimensions >= {minimum}, got {tuple(value)}")
    return tuple(int(v) for v in value)


def check_input_shape(value: object) -> tuple[tuple[int, int, int, int], bool]:
    """input_shape as (N, C, H, W) and whether it was given unbatched as (C, H, W)."""
    shape = check_shape("input_shape", value, (3, 4), minimum=0)
    unbatched = len(shape) == 3
    if min(shape[-3:]) < 1:
        raise ValueError(f"input_shape must have non-empty channel and spatial dimensions, got {shape}")
    return ((1, *shape) if unbatched else shape), unbatched


def check_dtype(name: str, value: object) -> np.dtype:
    """``value`` as float32 or float64, the dtypes the engine computes in."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}")
    return dtype


def common_dtype(arrays: dict[str, np.ndarray]) -> np.dtype:
    """The one dtype every array shares, or a TypeError listing them."""
    dtypes = {array.dtype for array in arrays.values()}
    if len(dtypes) != 1:
        listed = ", ".join(f"{name} {array.dtype}" for name, array in arrays.items())
        raise TypeError(f"{', '.join(arrays)} must share one dtype, got {listed}")
    return dtypes.pop()


def check_grad_output(grad_output: np.ndarray, plan: ConvPlan, unbatched: bool) -> np.ndarray:
    """grad_output as (N, K, OH, OW), after checking it has the shape the forward output would have."""
    geo = plan.geometry
    expected = (geo.n, geo.k, geo.oh, geo.ow)
    batched = grad_output[np.newaxis] if unbatched else grad_output
    if batched.shape != expected:
        shown = expected[1:] if unbatched else expected
        raise ValueError(f"grad_output must have the output's shape {shown}, got {grad_output.shape}")
    return batched


class ConvPlan(NamedTuple):
    """What the engine runs for one call: the kernels' geometry and any explicit padding to apply first.

    ``explicit_padding`` is ``(top, bottom, left, right)`` for the non-zero padding modes, which are
    materialised before the kernels run (the geometry then has zero implicit padding), and None for "zeros".
    """

    geometry: ConvGeometry
    explicit_padding: tuple[int, int, int, int] | None
    padding_mode: str


def _typed_key(args: tuple) -> tuple:
    """A dict key for arguments that tells apart values comparing equal across types (True and 1, 2.0 and 2),
    one level into tuples: deeper values are never valid arguments, so never remembered."""
    return args, tuple([tuple(map(type, v)) if type(v) is tuple else type(v) for v in args])


def remember_valid(validate: Callable[..., T], maxsize: int = 1024) -> Callable[..., T]:
    """``validate`` (positional arguments only, never returning None) remembered per distinct arguments, told
    apart by type too, so that a layer's fixed arguments are checked once. Errors are raised every time,
    unhashable arguments (lists) validated every time; beyond ``maxsize`` entries new ones are not kept."""
    memo: dict[tuple, T] = {}

    @functools.wraps(validate)
    def remembered(*args):
        key = _typed_key(args)
        try:
            result = memo.get(key)
        except TypeError:  # unhashable
            return validate(*args)
        if result is None:
            result = validate(*args)
            if len(memo) < maxsize:
                memo[key] = result
        return result

    return remembered


def _int_pair(name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    """Normalise an int or a pair of ints, each at least ``minimum``, to a pair."""
    pair = (value, value) if _is_int(value) else value
    if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if not all(_is_int(v) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class ConvSpec(NamedTuple):
    """Normalised convolution arguments: pairs of ints, a padding string or pair, groups and padding mode.

    Build it with `ConvSpec.from_args`, which accepts PyTorch's forms (an int or a pair for ``stride``,
    ``padding`` and ``dilation``; ``padding="valid"`` or ``"same"``) and raises ValueError/TypeError naming
    the argument and the value.
    """

    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    padding_mode: str

    @classmethod
    def from_args(
        cls,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> ConvSpec:
        """Validate and normalise the shape-independent arguments (remembered per distinct arguments: a layer
        passes the same ones on every call)."""
        return _spec(stride, padding, dilation, groups, padding_mode)

    def padding_sides(self, kernel_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding; for "same" the odd extra row/column goes bottom/right."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if self.padding == "same":
            sides = []
            for k, d in zip(kernel_size, self.dilation, strict=True):
                total = d * (k - 1)
                sides += [total // 2, total - total // 2]
            return sides[0], sides[1], sides[2], sides[3]
        ph, pw = self.padding
        return ph, ph, pw, pw

    @functools.lru_cache(maxsize=1024)  # noqa: B019  (specs are few and small: keeping them alive is fine)
    def plan(self, input_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> ConvPlan:
        """Check a batched (n, c, h, w) input against a (k, c/groups, kh, kw) weight; return the plan
        (remembered per spec and shapes: a training loop asks the same question every step)."""
        n, c, h, w = input_shape
        k, c_per_group, kh, kw = weight_shape
        if c % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the input channels, got {c} (input shape {input_shape})"
            )
        if k % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the output channels, got {k} (weight shape {weight_shape})"
            )
        if c_per_group * self.groups != c:
            raise ValueError(
                f"weight shape {weight_shape} expects {c_per_group * self.groups} input channels "
                f"(c/groups={c_per_group}, groups={self.groups}), but the input has {c} (input shape {input_shape})"
            )
        if min(weight_shape) < 1:
            raise ValueError(f"weight must have no empty dimension, got shape {weight_shape}")
        top, bottom, left, right = self.padding_sides((kh, kw))
        self._check_padding_mode_limits(h, w, (top, bottom, left, right))
        span_h = self.dilation[0] * (kh - 1) + 1
        span_w = self.dilation[1] * (kw - 1) + 1
        padded_h, padded_w = h + top + bottom, w + left + right
        if span_h > padded_h or span_w > padded_w:
            raise ValueError(
                f"kernel size ({kh}, {kw}) with dilation {self.dilation} spans ({span_h}, {span_w}), larger than "
                f"the padded input ({padded_h}, {padded_w}) (input {h}x{w}, padding {self.padding!r})"
            )
        oh = (padded_h - span_h) // self.stride[0] + 1
        ow = (padded_w - span_w) // self.stride[1] + 1
        if self.padding_mode == "zeros":
            in_h, in_w, pad_h, pad_w, explicit = h, w, top, left, None
        else:
            in_h, in_w, pad_h, pad_w, explicit = padded_h, padded_w, 0, 0, (top, bottom, left, right)
        geometry = ConvGeometry(
            n,
            c,
            in_h,
            in_w,
            k,
            kh,
            kw,
            oh,
            ow,
            self.stride[0],
            self.stride[1],
            pad_h,
            pad_w,
            self.dilation[0],
            self.dilation[1],
            self.groups,
        )
        return ConvPlan(geometry, explicit, self.padding_mode)

    def _check_padding_mode_limits(self, h: int, w: int, sides: tuple[int, int, int, int]) -> None:
        """PyTorch's limits: reflect padding < size; circular padding <= size."""
        top, bottom, left, right = sides
        for size, before, after, axis in ((h, top, bottom, "height"), (w, left, right, "width")):
            widest = max(before, after)
            if self.padding_mode == "reflect" and widest >= size:
                raise ValueError(
                    f"padding_mode='reflect' needs padding < input {axis} ({size}), got padding {self.padding!r}"
                )
            if self.padding_mode == "circular" and widest > size:
                raise ValueError(
                    f"padding_mode='circular' needs padding <= input {axis} ({size}), got padding {self.padding!r}"
                )


@remember_valid
def _spec(stride, padding, dilation, groups, padding_mode) -> ConvSpec:
    """`ConvSpec.from_args`, remembered."""
    stride_pair = _int_pair("stride", stride, 1)
    dilation_pair = _int_pair("dilation", dilation, 1)
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if padding == "same" and stride_pair != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride!r})")
        padding_value: tuple[int, int] | str = padding
    else:
        padding_value = _int_pair("padding", padding, 0)
    if not _is_int(groups):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return ConvSpec(stride_pair, padding_value, dilation_pair, int(groups), padding_mode)


def padding_source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each position of an axis padded by (before, after), the input index it copies, per ``mode``.

    Used both to build the padded input and to fold its gradient back onto the cells it copied.
    """
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        return positions % size
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    folded = np.abs(positions) % period
    return np.where(folded < size, folded, period - folded)
