"""numbaconv.nn modules: constructors and defaults, initialisation statistics, reprs, registration,
state_dict / load_state_dict, modes, freezing and the parameter counts from the tutorials."""

from __future__ import annotations

import copy
import math

import models
import numpy as np
import pytest

import numbaconv.autograd as ag
import numbaconv.nn.functional as F
from numbaconv import nn
from numbaconv.nn import init


def SimpleCNN():  # noqa: N802 - reads as the tutorial's class
    return models.simple_cnn(nn)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def small_net():
    return nn.Sequential(Block(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


# --------------------------------------------------------------------------------------------- constructors


def test_conv2d_defaults_and_shapes():
    conv = nn.Conv2d(3, 16, 3)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (3, 16, (3, 3))
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((1, 1), (0, 0), (1, 1), 1)
    assert conv.padding_mode == "zeros" and conv.output_padding == (0, 0) and not conv.transposed
    assert conv.weight.shape == (16, 3, 3, 3) and conv.bias.shape == (16,)
    assert conv.weight.dtype == np.float32 and conv.weight.requires_grad and conv.weight.is_leaf
    assert isinstance(conv.weight, nn.Parameter)
    grouped = nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=2, groups=2, bias=False)
    assert grouped.weight.shape == (6, 2, 3, 5) and grouped.bias is None
    assert grouped.dilation == (2, 2) and grouped.stride == (2, 1)
    assert nn.Conv2d(2, 2, 3, dtype=ag.float64).weight.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "in_channels must be divisible by groups"),
        (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "out_channels must be divisible by groups"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=0), "groups must be a positive integer"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding="full"), "Invalid padding string"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding="same", stride=2), "strided convolutions"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding_mode="mirror"), "padding_mode must be one of"),
    ],
)
def test_conv2d_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(**kwargs)


def test_device_and_dtype_arguments():
    assert nn.Linear(2, 3, device="cpu").weight.shape == (3, 2)
    with pytest.raises(ValueError, match="CPU only"):
        nn.Linear(2, 3, device="cuda")
    with pytest.raises(TypeError, match="floating point"):
        nn.Conv2d(1, 1, 3, dtype=ag.int64)


def test_conv_forward_shapes():
    x = ag.randn(2, 3, 9, 9)
    assert nn.Conv2d(3, 4, 3)(x).shape == (2, 4, 7, 7)
    assert nn.Conv2d(3, 4, 3, padding="same")(x).shape == (2, 4, 9, 9)
    assert nn.Conv2d(3, 4, 4, padding="same", dilation=2)(x).shape == (2, 4, 9, 9)
    assert nn.Conv2d(3, 4, 3, padding="valid")(x).shape == (2, 4, 7, 7)
    assert nn.Conv2d(3, 4, 3, padding=2, padding_mode="reflect")(x).shape == (2, 4, 11, 11)
    assert nn.Conv2d(3, 6, 3, stride=2, groups=3, padding=1, padding_mode="circular")(x).shape == (2, 6, 5, 5)
    assert nn.Conv1d(3, 5, 3, padding=1)(ag.randn(2, 3, 10)).shape == (2, 5, 10)
    assert nn.Conv1d(3, 5, 3, stride=2, padding_mode="replicate", padding=1)(ag.randn(2, 3, 10)).shape == (2, 5, 5)


def test_conv_transpose2d():
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    assert up.weight.shape == (4, 2, 3, 3) and up.bias.shape == (2,)
    x = ag.randn(1, 4, 5, 5)
    assert up(x).shape == (1, 2, 9, 9)
    assert up(x, output_size=(10, 10)).shape == (1, 2, 10, 10)
    assert up(x, output_size=(1, 2, 10, 10)).shape == (1, 2, 10, 10)
    with pytest.raises(ValueError, match="valid sizes range from"):
        up(x, output_size=(12, 12))
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(4, 2, 3, padding_mode="reflect")
    # the transposed convolution is the input gradient of the matching convolution
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
    conv.weight.data = up.weight.data
    y = ag.randn(1, 2, 9, 9, requires_grad=True)
    g = ag.randn(1, 4, 5, 5)
    conv(y).backward(g)
    up_nb = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, bias=False)
    up_nb.weight.data = up.weight.data
    np.testing.assert_allclose(up_nb(g).detach().numpy(), y.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_linear_and_friends():
    lin = nn.Linear(5, 3)
    assert lin.weight.shape == (3, 5) and lin.bias.shape == (3,)
    x = ag.randn(4, 5)
    expected = x.numpy() @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    np.testing.assert_allclose(lin(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert nn.Linear(5, 3, bias=False).bias is None
    assert nn.Flatten()(ag.randn(2, 3, 4, 5)).shape == (2, 60)
    assert nn.Flatten(0, 1)(ag.randn(2, 3, 4)).shape == (6, 4)
    t = ag.randn(3)
    assert nn.Identity(54, unused="argument")(t) is t


def test_activations_and_pools():
    x = ag.tensor([[-2.0, -0.5, 0.0, 1.5]])
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), [[0, 0, 0, 1.5]])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).numpy(), [[-0.2, -0.05, 0, 1.5]], rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()), rtol=1e-6)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).numpy().sum(), 1.0, rtol=1e-6)
    img = ag.arange(16, dtype=ag.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(img).numpy(), [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(nn.AvgPool2d(2)(img).numpy(), [[[[2.5, 4.5], [10.5, 12.5]]]])
    np.testing.assert_array_equal(nn.AdaptiveAvgPool2d(1)(img).numpy(), [[[[7.5]]]])
    pool = nn.MaxPool2d(3, stride=1)
    assert (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode) == (3, 1, 0, 1, False)


# ------------------------------------------------------------------------------------------------ init


def _uniform_stats(values: np.ndarray, bound: float) -> None:
    assert values.min() >= -bound and values.max() <= bound
    assert abs(values.mean()) < 0.05 * bound
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound


def test_conv_and_linear_default_init_distributions():
    ag.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    bound = 1 / math.sqrt(64 * 9)  # kaiming_uniform_(a=sqrt(5)) gives exactly 1 / sqrt(fan_in)
    _uniform_stats(conv.weight.detach().numpy(), bound)
    bias = conv.bias.detach().numpy()
    assert np.abs(bias).max() <= bound and bias.std() > 0
    lin = nn.Linear(300, 200)
    _uniform_stats(lin.weight.detach().numpy(), 1 / math.sqrt(300))
    assert np.abs(lin.bias.detach().numpy()).max() <= 1 / math.sqrt(300)
    grouped = nn.Conv2d(64, 128, 3, groups=4)  # fan_in = in_channels / groups * kh * kw
    _uniform_stats(grouped.weight.detach().numpy(), 1 / math.sqrt(16 * 9))
    up = nn.ConvTranspose2d(8, 64, 3)  # weight (in, out, k, k): fan_in = size(1) * k * k
    _uniform_stats(up.weight.detach().numpy(), 1 / math.sqrt(64 * 9))


def test_manual_seed_makes_init_reproducible():
    ag.manual_seed(123)
    a = nn.Conv2d(3, 8, 3).weight.detach().numpy().copy()
    ag.manual_seed(123)
    b = nn.Conv2d(3, 8, 3).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_init_functions():
    w = nn.Parameter(ag.zeros(256, 128, 3, 3))
    fan_in, fan_out = 128 * 9, 256 * 9
    assert init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu") is w
    assert w.detach().numpy().std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    init.kaiming_uniform_(w, nonlinearity="relu")
    _uniform_stats(w.detach().numpy(), math.sqrt(6 / fan_in))
    init.kaiming_uniform_(w, a=0.2)  # leaky_relu gain sqrt(2 / (1 + a^2))
    _uniform_stats(w.detach().numpy(), math.sqrt(2 / 1.04) * math.sqrt(3 / fan_in))
    init.xavier_uniform_(w, gain=2.0)
    _uniform_stats(w.detach().numpy(), 2.0 * math.sqrt(6 / (fan_in + fan_out)))
    init.xavier_normal_(w)
    assert w.detach().numpy().std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    init.normal_(w, mean=3.0, std=0.01)
    assert w.detach().numpy().mean() == pytest.approx(3.0, abs=1e-3)
    assert w.detach().numpy().std() == pytest.approx(0.01, rel=0.02)
    init.uniform_(w, -2.0, 5.0)
    assert w.detach().numpy().min() >= -2 and w.detach().numpy().max() <= 5
    assert w.detach().numpy().mean() == pytest.approx(1.5, abs=0.05)
    init.constant_(w, 0.25)
    assert np.all(w.detach().numpy() == 0.25)
    init.ones_(w)
    assert np.all(w.detach().numpy() == 1)
    init.zeros_(w)
    assert np.all(w.detach().numpy() == 0)
    assert w.grad is None and w.is_leaf and w.requires_grad and w.dtype == np.float32


def test_init_gain_and_fan_errors():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(ag.zeros(5))
    with pytest.raises(ValueError, match="Mode fan_sideways not supported"):
        init.kaiming_uniform_(ag.zeros(3, 3), mode="fan_sideways")
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(ag.zeros(0, 3))


def test_tutorial_init_then_elementwise_writes():
    conv = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)
    assert conv.weight.shape == (16, 3, 3, 3)
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)
    assert conv.weight.detach().numpy().std() < 0.02
    for i in range(16):
        angle = i * np.pi / 8
        for j in range(3):
            for x in range(3):
                for y in range(3):
                    x_c, y_c = x - 1, y - 1
                    conv.weight.data[i, j, x, y] = np.cos(x_c * np.cos(angle) + y_c * np.sin(angle))
    assert conv.weight[0, 0, 1, 1].item() == pytest.approx(1.0)
    assert conv.weight.data[4, 2, 0, 0].item() == pytest.approx(np.cos(-np.cos(np.pi / 2) - np.sin(np.pi / 2)))
    assert conv.weight.data[i, 0].detach().numpy().shape == (3, 3)


# ------------------------------------------------------------------------------------------------ reprs


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: nn.Conv2d(3, 16, 3, padding=1), "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"),
        (
            lambda: nn.Conv2d(64, 128, 3, groups=2, bias=False),
            "Conv2d(64, 128, kernel_size=(3, 3), stride=(1, 1), groups=2, bias=False)",
        ),
        (
            lambda: nn.Conv2d(8, 8, (3, 5), stride=2, padding=2, dilation=2, padding_mode="reflect"),
            "Conv2d(8, 8, kernel_size=(3, 5), stride=(2, 2), padding=(2, 2), dilation=(2, 2), padding_mode=reflect)",
        ),
        (lambda: nn.Conv2d(1, 8, 3, padding="same"), "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=same)"),
        (lambda: nn.Conv1d(2, 4, 5), "Conv1d(2, 4, kernel_size=(5,), stride=(1,))"),
        (
            lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
            "ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))",
        ),
        (lambda: nn.Linear(1024, 10), "Linear(in_features=1024, out_features=10, bias=True)"),
        (lambda: nn.Linear(3, 2, bias=False), "Linear(in_features=3, out_features=2, bias=False)"),
        (lambda: nn.ReLU(), "ReLU()"),
        (lambda: nn.ReLU(inplace=True), "ReLU(inplace=True)"),
        (lambda: nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
        (lambda: nn.Sigmoid(), "Sigmoid()"),
        (
            lambda: nn.MaxPool2d(kernel_size=2),
            "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
        ),
        (lambda: nn.AvgPool2d(3, 1), "AvgPool2d(kernel_size=3, stride=1, padding=0)"),
        (lambda: nn.AdaptiveAvgPool2d((1, 1)), "AdaptiveAvgPool2d(output_size=(1, 1))"),
        (
            lambda: nn.BatchNorm2d(32),
            "BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)",
        ),
        (lambda: nn.Dropout(0.5), "Dropout(p=0.5, inplace=False)"),
        (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
        (lambda: nn.Identity(), "Identity()"),
        (lambda: nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
        (lambda: nn.MSELoss(), "MSELoss()"),
    ],
)
def test_layer_reprs(make, expected):
    assert repr(make()) == expected


def test_nested_repr_like_pytorch():
    expected = """SimpleCNN(
  (conv1): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (conv2): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (conv3): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (fc): Linear(in_features=1024, out_features=10, bias=True)
)"""
    assert repr(SimpleCNN()) == expected
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Dropout(0.1)))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()])) == (
        "ModuleList(\n  (0-1): 2 x ReLU()\n  (2): Tanh()\n)"
    )
    assert repr(nn.Parameter(ag.tensor([1.0, 2.0]))).startswith("Parameter containing:\ntensor(")


# ------------------------------------------------------------------------------------------- registration


def test_parameter_and_module_registration():
    net = SimpleCNN()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias",
                     "fc.weight", "fc.bias"]  # fmt: skip
    assert [n for n, _ in net.named_children()] == ["conv1", "conv2", "conv3", "fc"]
    assert [n for n, _ in net.named_modules()] == ["", "conv1", "conv2", "conv3", "fc"]
    assert len(list(net.modules())) == 5 and len(list(net.children())) == 4
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.get_submodule("fc") is net.fc
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        net.missing  # noqa: B018


def test_shared_modules_and_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_bias_parameter_assigned_on_a_bias_free_layer():
    conv = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=3, bias=False)
    assert conv.bias is None and "bias" not in conv.state_dict()
    conv.weight = nn.Parameter(ag.tensor([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=ag.float32).reshape(1, 1, 3, 3))
    conv.bias = nn.Parameter(ag.tensor([5], dtype=ag.float32))
    assert list(conv.state_dict()) == ["weight", "bias"] and len(list(conv.parameters())) == 2
    assert repr(conv) == "Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1))"
    image = ag.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=ag.float32)
    out = conv(image.reshape(1, 1, 4, 4))
    np.testing.assert_allclose(out.detach().numpy(), [[[[11, 12], [15, 16]]]])
    assert out.requires_grad
    with pytest.raises(TypeError, match="Parameter or None expected"):
        conv.bias = ag.tensor([1.0])
    conv.bias = None
    assert conv.bias is None and list(conv.state_dict()) == ["weight"]


def test_weight_data_assignment_and_shared_data():
    conv1 = nn.Conv2d(1, 1, kernel_size=3, stride=1, padding=0)
    conv1.weight.data = ag.tensor([[[[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]]])
    conv1.bias.data = ag.tensor([0.0])
    conv2 = nn.Conv2d(1, 1, kernel_size=3, stride=2, padding=1)
    conv2.weight.data = conv1.weight.data
    conv2.bias.data = conv1.bias.data
    x = ag.zeros(1, 1, 8, 8)
    x[0, 0, 2:6, 2:6] = 1.0
    assert conv1(x).shape == (1, 1, 6, 6) and conv2(x).shape == (1, 1, 4, 4)
    assert isinstance(conv1.weight, nn.Parameter) and conv1.weight.requires_grad


def test_buffers():
    bn = nn.BatchNorm2d(3)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    m = nn.Module()
    m.register_buffer("kept", ag.zeros(2))
    m.register_buffer("scratch", ag.ones(2), persistent=False)
    assert list(m.state_dict()) == ["kept"] and len(list(m.buffers())) == 2
    m.kept = ag.ones(2)  # assigning a Tensor to a buffer name replaces the buffer
    assert m.state_dict()["kept"].numpy().tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="Tensor or None expected"):
        m.kept = [1, 2]


def test_assignment_before_init_is_an_error():
    class Broken(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(1, 1, 1)

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Broken()


def test_deepcopy_is_independent():
    net = small_net()
    clone = copy.deepcopy(net)
    clone[0].conv.weight.data[0, 0, 0, 0] = 123.0
    assert net[0].conv.weight.data[0, 0, 0, 0].item() != 123.0
    assert isinstance(clone[0].conv.weight, nn.Parameter)


# -------------------------------------------------------------------------------------------- containers


def test_sequential_protocol():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.ReLU)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU"]
    seq.append(nn.Linear(3, 2))
    assert len(seq) == 3 and list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(ag.randn(5, 4)).shape == (5, 2)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"]
    seq[1] = nn.Linear(3, 7)
    with pytest.raises(IndexError):
        seq[5]
    from collections import OrderedDict

    named = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"] and named.act is named[1]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6 and list(ml.state_dict())[0] == "0.weight"


# -------------------------------------------------------------------------------------------- state_dict


def landmark_like():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.pool = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(4 * 2 * 2, 5)

        def forward(self, x):
            return self.fc(self.flatten(self.pool(F.relu(self.bn1(self.conv1(x))))))

    return Net()


def test_state_dict_keys_order_and_sharing():
    net = landmark_like()
    sd = net.state_dict()
    assert list(sd) == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked", "fc.weight", "fc.bias"]  # fmt: skip
    assert not sd["conv1.weight"].requires_grad and not isinstance(sd["conv1.weight"], nn.Parameter)
    assert np.shares_memory(sd["conv1.weight"].numpy(), net.conv1.weight.detach().numpy())
    assert net.state_dict(keep_vars=True)["fc.bias"] is net.fc.bias


def test_load_state_dict_round_trip_from_numpy_and_tensors():
    src, dst = landmark_like(), landmark_like()
    arrays = {k: v.numpy().copy() for k, v in src.state_dict().items()}
    arrays["bn1.running_mean"][:] = [1, 2, 3, 4]
    arrays["bn1.num_batches_tracked"] = np.array(7)
    result = dst.load_state_dict(arrays)
    assert (
        result.missing_keys == [] and result.unexpected_keys == [] and repr(result) == "<All keys matched successfully>"
    )
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), arrays[k])
    assert dst.bn1.num_batches_tracked.dtype == np.int64 and dst.bn1.num_batches_tracked.item() == 7
    weight = dst.conv1.weight
    dst.load_state_dict({k: ag.tensor(v, dtype=ag.float64) if v.dtype == np.float32 else ag.tensor(v)
                         for k, v in arrays.items()})  # fmt: skip
    assert dst.conv1.weight is weight and weight.dtype == np.float32  # copied in place, cast to the param dtype
    x = ag.randn(2, 3, 4, 4)
    src.eval()
    dst.eval()
    src.bn1.running_mean.data = ag.tensor([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(src(x).detach().numpy(), dst(x).detach().numpy(), rtol=1e-6)


def _snapshot(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def test_load_state_dict_errors_change_nothing():
    net = landmark_like()
    before = _snapshot(net)
    good = {k: np.zeros_like(v) for k, v in before.items()}

    bad_shape = dict(good, **{"fc.weight": np.zeros((5, 3))})
    with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight: copying a param with shape \(5, 3\)"):
        net.load_state_dict(bad_shape)
    missing = {k: v for k, v in good.items() if k != "conv1.bias"}
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "conv1.bias"'):
        net.load_state_dict(missing)
    extra = dict(good, **{"fc.extra": np.zeros(1)})
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "fc.extra"'):
        net.load_state_dict(extra)
    with pytest.raises(RuntimeError, match="expected a Tensor or array"):
        net.load_state_dict(dict(good, **{"fc.bias": "nope"}))
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([1, 2])
    after = _snapshot(net)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])

    result = net.load_state_dict(dict(missing, extra=np.zeros(1)), strict=False)
    assert result.missing_keys == ["conv1.bias"] and result.unexpected_keys == ["extra"]
    assert np.all(net.fc.weight.detach().numpy() == 0)


def test_num_batches_tracked_may_be_absent_like_old_pytorch_checkpoints():
    bn = nn.BatchNorm2d(2)
    sd = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    assert bn.load_state_dict(sd).missing_keys == []


# ------------------------------------------------------------------------------------- counts, freezing


def test_parameter_counts_from_the_tutorial():
    standard_conv = nn.Conv2d(64, 128, kernel_size=3, padding=1)
    grouped_conv = nn.Conv2d(64, 128, kernel_size=3, padding=1, groups=2)
    depthwise_conv = nn.Conv2d(64, 64, kernel_size=3, padding=1, groups=64)
    assert sum(p.numel() for p in standard_conv.parameters()) == 73856
    assert sum(p.numel() for p in grouped_conv.parameters()) == 36992
    assert sum(p.numel() for p in depthwise_conv.parameters()) == 640


def test_freezing_all_but_a_replaced_head():
    model = SimpleCNN()
    for param in model.parameters():
        param.requires_grad = False
    num_features = model.fc.in_features
    model.fc = nn.Linear(num_features, 10)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 2 and trainable[0] is model.fc.weight
    model(ag.randn(2, 3, 32, 32)).sum().backward()
    assert model.fc.weight.grad is not None and model.fc.bias.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc."))
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_zero_grad():
    lin = nn.Linear(3, 2)
    lin(ag.randn(4, 3)).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert np.all(lin.weight.grad.numpy() == 0) and lin.weight.grad.shape == (2, 3)
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


# ------------------------------------------------------------------------------------ modes, to, apply


def test_train_eval_and_dropout():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    assert net.training and net[1].training
    assert net.eval() is net and not net.training and not net[1].training
    x = ag.randn(8, 4)
    np.testing.assert_array_equal(net(x).detach().numpy(), net[0](x).detach().numpy())
    net.train()
    drop = nn.Dropout(0.25)
    y = drop(ag.ones(200, 50)).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_batchnorm_running_statistics():
    bn = nn.BatchNorm2d(3)
    x = ag.randn(4, 3, 5, 5) * 2 + 1
    bn(x)
    xs = x.numpy().astype(np.float64)
    mean, var = xs.mean(axis=(0, 2, 3)), xs.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    out = bn(x).detach().numpy()
    expected = (xs - bn.running_mean.numpy()[:, None, None]) / np.sqrt(bn.running_var.numpy()[:, None, None] + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    with pytest.raises(ValueError, match="expected 4D input"):
        bn(ag.randn(3, 5))


def test_batchnorm_cumulative_average_and_options():
    bn = nn.BatchNorm2d(2, momentum=None)
    batches = [ag.randn(3, 2, 4, 4) + i for i in range(3)]
    for b in batches:
        bn(b)
    means = np.mean([b.numpy().mean(axis=(0, 2, 3)) for b in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean.numpy(), means, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 3
    plain = nn.BatchNorm2d(2, affine=False, track_running_stats=False)
    assert plain.weight is None and plain.running_mean is None and list(plain.state_dict()) == []
    plain.eval()
    out = plain(batches[0]).detach().numpy()  # no running stats: batch statistics even in eval
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    nobias = nn.BatchNorm2d(2, bias=False)
    assert nobias.bias is None and list(nobias.state_dict())[:2] == ["weight", "running_mean"]


def test_to_and_dtype_conversion():
    net = landmark_like()
    params = list(net.parameters())
    assert net.to("cpu") is net and net.cpu() is net
    net.to(ag.float64)
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert list(net.parameters())[0] is params[0]  # the same Parameter objects (optimizers keep working)
    assert net.bn1.running_mean.dtype == np.float64 and net.bn1.num_batches_tracked.dtype == np.int64
    assert net(ag.randn(1, 3, 4, 4, dtype=ag.float64)).dtype == np.float64
    net.float()
    assert net.conv1.weight.dtype == np.float32
    net.to("cpu", dtype=ag.float64)
    assert net.fc.weight.dtype == np.float64
    with pytest.raises(ValueError, match="CPU only"):
        net.to("cuda")
    with pytest.raises(TypeError, match="floating point"):
        net.to(ag.int64)


def test_apply_for_custom_init():
    net = small_net()
    seen = []

    def init_weights(m):
        seen.append(type(m).__name__)
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)

    assert net.apply(init_weights) is net
    assert seen[-1] == "Sequential" and "Conv2d" in seen and "BatchNorm2d" in seen
    assert np.all(net[2].weight.detach().numpy() == 0)


def test_losses():
    logits = ag.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    target = ag.tensor([0, 2])
    log_p = logits.numpy() - np.log(np.exp(logits.numpy()).sum(1, keepdims=True))
    expected = -(log_p[0, 0] + log_p[1, 2]) / 2
    assert nn.CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert nn.CrossEntropyLoss(reduction="sum")(logits, target).item() == pytest.approx(2 * expected, rel=1e-6)
    assert nn.CrossEntropyLoss(reduction="none")(logits, target).shape == (2,)
    weighted = nn.CrossEntropyLoss(weight=ag.tensor([1.0, 2.0, 3.0]))
    assert list(weighted.state_dict()) == ["weight"]
    assert weighted(logits, target).item() == pytest.approx(-(log_p[0, 0] + 3 * log_p[1, 2]) / 4, rel=1e-6)
    ignored = nn.CrossEntropyLoss(ignore_index=2)(logits, target)
    assert ignored.item() == pytest.approx(-log_p[0, 0], rel=1e-6)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    a, b = ag.tensor([1.0, 2.0, 4.0]), ag.tensor([1.0, 0.0, 1.0])
    assert nn.MSELoss()(a, b).item() == pytest.approx(13 / 3)
    assert nn.MSELoss(reduction="sum")(a, b).item() == pytest.approx(13)
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.MSELoss(size_average=False).reduction == "sum"


def test_training_step_reduces_loss():
    ag.manual_seed(0)
    net = small_net()
    x, y = ag.randn(16, 2, 4, 4), ag.tensor(np.arange(16) % 3)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(20):
        net.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        first = loss.item() if first is None else first
        with ag.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
    assert loss.item() < first
