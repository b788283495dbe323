"""Bad input: a ValueError or TypeError naming the argument and the offending value, for every entry point.

One test per case the issue lists (and a few neighbours). Each asserts the exception type, that the message
names the argument (``match``) and that it shows the value that was wrong.
"""

from __future__ import annotations

import re

import numpy as np
import oracle
import pytest

import numbaconv

PASSES = ("forward", "grad_input", "grad_weight")


def _arrays(x_shape=(2, 4, 6, 6), w_shape=(4, 4, 3, 3), dtype=np.float64):
    rng = np.random.default_rng(0)
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)


def _grad_output(x, w, options, dtype=None):
    """A grad_output of the right shape when the options make one, else a 4-D stand-in."""
    try:
        shape = oracle.output_shape(
            x.shape, w.shape, options.get("stride", 1), options.get("padding", 0), options.get("dilation", 1)
        )
        if min(shape) < 0 or any(s == 0 for s in shape[-2:]):
            raise ValueError
    except (ValueError, TypeError, ZeroDivisionError):
        shape = (x.shape[0], w.shape[0], 2, 2)
    return np.zeros(shape, dtype or x.dtype)


def call(pass_name, x, w, bias=None, grad_output=None, **options):
    """Run one entry point with these arrays and options."""
    if grad_output is None and pass_name != "forward":
        grad_output = _grad_output(x, w, options)
    if pass_name == "forward":
        return numbaconv.conv2d(x, w, bias, **options)
    if pass_name == "grad_input":
        return numbaconv.conv2d_grad_input(tuple(x.shape), w, grad_output, **options)
    return numbaconv.conv2d_grad_weight(x, tuple(w.shape), grad_output, **options)


def shows(excinfo, *values: str) -> None:
    """The message shows each of ``values`` (the offending value, as the user wrote it)."""
    message = str(excinfo.value)
    for value in values:
        assert value in message, f"{value!r} not in the message {message!r}"


# ---- array shapes ----


@pytest.mark.parametrize("shape", [(6,), (6, 6), (1, 2, 4, 6, 6)], ids=["1d", "2d", "5d"])
def test_x_wrong_ndim(shape):
    x = np.zeros(shape)
    _, w = _arrays()
    with pytest.raises(ValueError, match=r"\bx\b") as e:
        numbaconv.conv2d(x, w)
    shows(e, str(shape))


def test_x_wrong_ndim_in_grad_weight():
    _, w = _arrays()
    with pytest.raises(ValueError, match=r"\bx\b") as e:
        numbaconv.conv2d_grad_weight(np.zeros((6, 6)), w.shape, np.zeros((2, 4, 4, 4)))
    shows(e, "(6, 6)")


@pytest.mark.parametrize("pass_name", ["forward", "grad_input"])
def test_weight_wrong_ndim(pass_name):
    x, _ = _arrays()
    w = np.zeros((4, 4, 3))
    with pytest.raises(ValueError, match="weight") as e:
        call(pass_name, x, w, grad_output=np.zeros((2, 4, 4, 4)))
    shows(e, "(4, 4, 3)")


def test_weight_shape_wrong_length():
    x, _ = _arrays()
    with pytest.raises((TypeError, ValueError), match="weight_shape") as e:
        numbaconv.conv2d_grad_weight(x, (4, 4, 3), np.zeros((2, 4, 4, 4)))
    shows(e, "(4, 4, 3)")


@pytest.mark.parametrize("input_shape", [(6, 6), (2, 4, 6, 6, 1)], ids=["2d", "5d"])
def test_input_shape_wrong_length(input_shape):
    _, w = _arrays()
    with pytest.raises((TypeError, ValueError), match="input_shape") as e:
        numbaconv.conv2d_grad_input(input_shape, w, np.zeros((2, 4, 4, 4)))
    shows(e, str(input_shape))


def test_input_shape_negative():
    _, w = _arrays()
    with pytest.raises(ValueError, match="input_shape") as e:
        numbaconv.conv2d_grad_input((2, 4, -6, 6), w, np.zeros((2, 4, 4, 4)))
    shows(e, "-6")


@pytest.mark.parametrize("pass_name", PASSES)
def test_channel_mismatch(pass_name):
    x, _ = _arrays((2, 3, 6, 6))
    w = np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match="weight|channel") as e:
        call(pass_name, x, w)
    shows(e, "3", "(4, 2, 3, 3)")


def test_channel_mismatch_unbatched():
    x, w = np.zeros((3, 6, 6)), np.zeros((4, 4, 3, 3))
    with pytest.raises(ValueError, match="weight|channel") as e:
        numbaconv.conv2d(x, w)
    shows(e, "3")


@pytest.mark.parametrize("pass_name", PASSES)
def test_groups_not_dividing_channels(pass_name):
    x, w = _arrays((1, 3, 6, 6), (4, 1, 3, 3))
    with pytest.raises(ValueError, match="groups") as e:
        call(pass_name, x, w, groups=2)
    shows(e, "2", "3")


@pytest.mark.parametrize("pass_name", PASSES)
def test_groups_not_dividing_output_channels(pass_name):
    x, w = _arrays((1, 4, 6, 6), (3, 2, 3, 3))
    with pytest.raises(ValueError, match="groups") as e:
        call(pass_name, x, w, groups=2)
    shows(e, "2", "3")


@pytest.mark.parametrize("groups", [0, -1])
def test_groups_below_one(groups):
    x, w = _arrays()
    with pytest.raises(ValueError, match="groups") as e:
        numbaconv.conv2d(x, w, groups=groups)
    shows(e, str(groups))


def test_groups_not_int():
    x, w = _arrays()
    with pytest.raises(TypeError, match="groups") as e:
        numbaconv.conv2d(x, w, groups=1.5)
    shows(e, "1.5")


# ---- stride, dilation, padding ----


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize(
    "name, value", [("stride", 0), ("stride", (1, 0)), ("stride", -2), ("dilation", 0), ("dilation", (0, 1))], ids=str
)
def test_stride_dilation_below_one(pass_name, name, value):
    x, w = _arrays()
    with pytest.raises(ValueError, match=name) as e:
        call(pass_name, x, w, **{name: value})
    shows(e, str(value))


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("value", [-1, (0, -2)], ids=str)
def test_negative_padding(pass_name, value):
    x, w = _arrays()
    with pytest.raises(ValueError, match="padding") as e:
        call(pass_name, x, w, padding=value)
    shows(e, str(value))


@pytest.mark.parametrize(
    "name, value",
    [
        ("stride", 1.5),
        ("dilation", 2.0),
        ("padding", 0.5),
        ("stride", (1, 1.5)),
        ("stride", (1, 1, 1)),
        ("padding", None),
    ],
    ids=str,
)
def test_not_int_or_pair(name, value):
    x, w = _arrays()
    with pytest.raises(TypeError, match=name) as e:
        numbaconv.conv2d(x, w, **{name: value})
    shows(e, str(value))


@pytest.mark.parametrize("pass_name", PASSES)
def test_unknown_padding_string(pass_name):
    x, w = _arrays()
    with pytest.raises(ValueError, match="padding") as e:
        call(pass_name, x, w, padding="full")
    shows(e, "full")


@pytest.mark.parametrize("pass_name", PASSES)
def test_unknown_padding_mode(pass_name):
    x, w = _arrays()
    with pytest.raises(ValueError, match="padding_mode") as e:
        call(pass_name, x, w, padding=1, padding_mode="zero")
    shows(e, "zero")


@pytest.mark.parametrize("pass_name", PASSES)
def test_unknown_algorithm(pass_name):
    x, w = _arrays()
    with pytest.raises(ValueError, match="algorithm") as e:
        call(pass_name, x, w, algorithm="fft")
    shows(e, "fft")


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("stride", [2, (1, 2)], ids=str)
def test_same_with_stride(pass_name, stride):
    x, w = _arrays()
    with pytest.raises(ValueError, match="same") as e:
        call(pass_name, x, w, padding="same", stride=stride)
    assert "stride" in str(e.value)
    shows(e, str(stride))


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize(
    "x_shape, w_shape, options, shown",
    [
        ((1, 2, 4, 4), (3, 2, 5, 5), {}, "(5, 5)"),
        ((1, 2, 4, 9), (3, 2, 2, 10), {"padding": (1, 0)}, "(2, 10)"),
        ((1, 2, 5, 5), (3, 2, 3, 3), {"dilation": 3}, "(3, 3)"),
        ((1, 2, 5, 5), (3, 2, 3, 3), {"dilation": (1, 3), "padding": (0, 0)}, "(1, 3)"),
    ],
    ids=["kernel", "kernel-with-padding", "dilated", "dilated-pair"],
)
def test_kernel_larger_than_padded_input(pass_name, x_shape, w_shape, options, shown):
    x, w = _arrays(x_shape, w_shape)
    with pytest.raises(ValueError, match="kernel|weight") as e:
        call(pass_name, x, w, grad_output=np.zeros((1, 3, 1, 1)), **options)
    shows(e, shown)


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("padding", [3, (0, 5), "same"])
def test_reflect_padding_not_below_input_size(pass_name, padding):
    """PyTorch: reflect padding must be smaller than the input dimension."""
    x, w = _arrays((1, 2, 3, 5), (2, 2, 7, 7) if padding == "same" else (2, 2, 3, 3))
    with pytest.raises(ValueError, match="padding") as e:
        call(pass_name, x, w, padding=padding, padding_mode="reflect")
    shows(e, "reflect")


@pytest.mark.parametrize("pass_name", PASSES)
def test_circular_padding_beyond_input_size(pass_name):
    """PyTorch: circular padding may not wrap around more than once (padding <= size)."""
    x, w = _arrays((1, 2, 3, 5), (2, 2, 3, 3))
    with pytest.raises(ValueError, match="padding") as e:
        call(pass_name, x, w, padding=(4, 1), padding_mode="circular")
    shows(e, "circular")


# ---- dtypes ----


@pytest.mark.parametrize("pass_name", ["forward", "grad_weight"])
@pytest.mark.parametrize(
    "dtype", [np.int64, np.int32, np.float16, np.complex128, np.bool_], ids=lambda d: np.dtype(d).name
)
def test_x_bad_dtype(pass_name, dtype):
    x, w = _arrays()
    with pytest.raises(TypeError, match=r"\bx\b") as e:
        call(pass_name, x.astype(dtype), w, grad_output=np.zeros((2, 4, 4, 4)))
    shows(e, np.dtype(dtype).name)


@pytest.mark.parametrize("pass_name", ["forward", "grad_input"])
@pytest.mark.parametrize("dtype", [np.int64, np.float16], ids=lambda d: np.dtype(d).name)
def test_weight_bad_dtype(pass_name, dtype):
    x, w = _arrays()
    with pytest.raises(TypeError, match="weight") as e:
        call(pass_name, x, w.astype(dtype), grad_output=np.zeros((2, 4, 4, 4)))
    shows(e, np.dtype(dtype).name)


@pytest.mark.parametrize("pass_name", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("dtype", [np.int64, np.float16], ids=lambda d: np.dtype(d).name)
def test_grad_output_bad_dtype(pass_name, dtype):
    x, w = _arrays()
    with pytest.raises(TypeError, match="grad_output") as e:
        call(pass_name, x, w, grad_output=np.zeros((2, 4, 4, 4), dtype))
    shows(e, np.dtype(dtype).name)


def test_bias_bad_dtype():
    x, w = _arrays()
    with pytest.raises(TypeError, match="bias") as e:
        numbaconv.conv2d(x, w, np.zeros(4, np.int64))
    shows(e, "int64")


@pytest.mark.parametrize(
    "pass_name, first, second",
    [("forward", "x", "weight"), ("grad_input", "weight", "grad_output"), ("grad_weight", "x", "grad_output")],
)
def test_mixed_dtypes(pass_name, first, second):
    x, w = _arrays()
    arrays = {"x": x, "weight": w, "grad_output": np.zeros((2, 4, 4, 4))}
    arrays[second] = arrays[second].astype(np.float32)
    with pytest.raises(TypeError, match=second) as e:
        call(pass_name, arrays["x"], arrays["weight"], grad_output=arrays["grad_output"])
    shows(e, "float32", "float64", first)


def test_mixed_dtype_bias():
    x, w = _arrays(dtype=np.float32)
    with pytest.raises(TypeError, match="bias") as e:
        numbaconv.conv2d(x, w, np.zeros(4, np.float64))
    shows(e, "float32", "float64")


def test_explain_bad_dtype():
    with pytest.raises(TypeError, match="dtype") as e:
        numbaconv.explain((1, 2, 5, 5), (2, 2, 3, 3), dtype="int32")
    shows(e, "int32")


# ---- bias and grad_output shapes ----


@pytest.mark.parametrize("shape", [(5,), (3,), (4, 1), ()], ids=["k+1", "k-1", "2d", "scalar"])
def test_bias_wrong_shape(shape):
    x, w = _arrays()
    with pytest.raises(ValueError, match="bias") as e:
        numbaconv.conv2d(x, w, np.zeros(shape))
    shows(e, str(shape))


@pytest.mark.parametrize("pass_name", ["grad_input", "grad_weight"])
@pytest.mark.parametrize(
    "shape",
    [(2, 4, 4, 5), (2, 4, 3, 4), (2, 5, 4, 4), (1, 4, 4, 4), (3, 4, 4, 4), (4, 4, 4), (2, 4, 4, 4, 1)],
    ids=["ow", "oh", "k", "n-1", "n+1", "3d", "5d"],
)
def test_grad_output_wrong_shape(pass_name, shape):
    x, w = _arrays()  # output (2, 4, 4, 4)
    with pytest.raises(ValueError, match="grad_output") as e:
        call(pass_name, x, w, grad_output=np.zeros(shape))
    shows(e, str(shape))


@pytest.mark.parametrize("pass_name", ["grad_input", "grad_weight"])
def test_grad_output_wrong_shape_unbatched(pass_name):
    x, w = _arrays((4, 6, 6))
    with pytest.raises(ValueError, match="grad_output") as e:
        call(pass_name, x, w, grad_output=np.zeros((4, 4, 5)))
    shows(e, "(4, 4, 5)")


# ---- Winograd on shapes it cannot serve ----


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize(
    "w_shape, options, shown",
    [
        ((4, 4, 5, 5), {"padding": 2}, "5"),
        ((4, 4, 3, 3), {"stride": 2}, "stride"),
        ((4, 4, 3, 3), {"dilation": 2, "stride": (1, 2)}, "stride"),
        ((4, 4, 1, 1), {}, "1"),
        ((4, 4, 3, 1), {}, "1"),
    ],
    ids=["5x5", "stride2", "dilation2-stride(1,2)", "1x1", "3x1"],
)
def test_winograd_unservable(pass_name, w_shape, options, shown):
    x, w = _arrays((2, 4, 6, 6), w_shape)
    with pytest.raises(ValueError, match="(?i)winograd") as e:
        call(pass_name, x, w, algorithm="winograd", **options)
    shows(e, shown)


# ---- threads ----


@pytest.mark.parametrize("n", [0, -1, 10**6])
def test_set_num_threads_out_of_range(n):
    before = numbaconv.get_num_threads()
    with pytest.raises(ValueError, match=re.escape(str(n))):
        numbaconv.set_num_threads(n)
    assert numbaconv.get_num_threads() == before


@pytest.mark.parametrize("n", [1.5, "2", None])
def test_set_num_threads_not_int(n):
    with pytest.raises(TypeError, match=re.escape(repr(n))):
        numbaconv.set_num_threads(n)


# ---- nothing leaks through as another exception type ----


def test_empty_dimensions():
    x, w = _arrays()
    with pytest.raises(ValueError, match=r"\bx\b"):
        numbaconv.conv2d(np.zeros((2, 0, 6, 6)), w[:, :0])
    with pytest.raises(ValueError, match="weight"):
        numbaconv.conv2d(x, np.zeros((0, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"\bx\b"):
        numbaconv.conv2d(np.zeros((2, 4, 0, 6)), w)


def test_remembered_arguments_do_not_admit_equal_values_of_other_types():
    """ConvSpec remembers validated arguments; True (== 1), 2.0 (== 2) and (1, True) must still be refused
    after the int versions were accepted."""
    x, w = _arrays()
    for good, bad in [({"stride": 1}, {"stride": True}), ({"stride": 2}, {"stride": 2.0}),
                      ({"dilation": (1, 1)}, {"dilation": (1, True)}), ({"groups": 1}, {"groups": True})]:  # fmt: skip
        numbaconv.conv2d(x, w, **good)
        with pytest.raises(TypeError) as e:
            numbaconv.conv2d(x, w, **bad)
        shows(e, repr(next(iter(bad.values()))))
