"""numbaconv.nn against torch.nn: the same constructors print the same reprs, have the same parameter
shapes and state_dict keys, and (with PyTorch's weights loaded through state_dict) compute the same outputs."""

from __future__ import annotations

import inspect

import models
import numpy as np
import pytest

import numbaconv.autograd as ag
from numbaconv import nn

torch = pytest.importorskip("torch")
tnn = torch.nn

# Each entry builds a layer from a module namespace (numbaconv.nn or torch.nn).
CONSTRUCTORS = {
    "conv_default": lambda n: n.Conv2d(3, 16, 3),
    "conv_padding": lambda n: n.Conv2d(3, 16, kernel_size=3, padding=1),
    "conv_tutorial": lambda n: n.Conv2d(40, 100, 3, stride=2, padding=3),
    "conv_grouped": lambda n: n.Conv2d(64, 128, kernel_size=3, padding=1, groups=2),
    "conv_depthwise": lambda n: n.Conv2d(64, 64, kernel_size=3, padding=1, groups=64),
    "conv_nobias": lambda n: n.Conv2d(64, 128, 3, groups=2, bias=False),
    "conv_rect": lambda n: n.Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    "conv_same": lambda n: n.Conv2d(1, 8, 4, padding="same", dilation=2),
    "conv_same_even": lambda n: n.Conv2d(1, 3, (4, 3), padding="same"),
    "conv_same_reflect": lambda n: n.Conv2d(2, 3, (4, 2), padding="same", padding_mode="reflect"),
    "conv_valid": lambda n: n.Conv2d(1, 8, 3, padding="valid"),
    "conv_reflect": lambda n: n.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"),
    "conv_circular": lambda n: n.Conv2d(3, 6, 3, padding=2, padding_mode="circular", groups=3),
    "conv_dilation": lambda n: n.Conv2d(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding=1, dilation=2),
    "conv1d": lambda n: n.Conv1d(4, 8, 5, stride=2, padding=2),
    "conv1d_replicate": lambda n: n.Conv1d(4, 8, 3, padding=1, padding_mode="replicate", bias=False),
    "convT": lambda n: n.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1),
    "convT_grouped": lambda n: n.ConvTranspose2d(4, 6, 2, stride=2, groups=2, bias=False, dilation=2),
    "linear": lambda n: n.Linear(1024, 10),
    "linear_nobias": lambda n: n.Linear(5, 3, bias=False),
    "relu": lambda n: n.ReLU(),
    "relu_inplace": lambda n: n.ReLU(inplace=True),
    "leaky": lambda n: n.LeakyReLU(),
    "leaky_slope": lambda n: n.LeakyReLU(0.2, inplace=True),
    "sigmoid": lambda n: n.Sigmoid(),
    "tanh": lambda n: n.Tanh(),
    "softmax": lambda n: n.Softmax(dim=1),
    "log_softmax": lambda n: n.LogSoftmax(dim=-1),
    "maxpool": lambda n: n.MaxPool2d(kernel_size=2),
    "maxpool_full": lambda n: n.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=1, ceil_mode=True),
    "avgpool": lambda n: n.AvgPool2d(2),
    "avgpool_full": lambda n: n.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    "adaptive": lambda n: n.AdaptiveAvgPool2d((1, 1)),
    "adaptive_int": lambda n: n.AdaptiveAvgPool2d(7),
    "bn": lambda n: n.BatchNorm2d(32),
    "bn_options": lambda n: n.BatchNorm2d(8, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
    "bn_untracked": lambda n: n.BatchNorm2d(8, momentum=0.01, track_running_stats=False),
    "dropout": lambda n: n.Dropout(0.5),
    "dropout_default": lambda n: n.Dropout(),
    "flatten": lambda n: n.Flatten(),
    "flatten_dims": lambda n: n.Flatten(0, 2),
    "identity": lambda n: n.Identity(),
    "ce": lambda n: n.CrossEntropyLoss(),
    "ce_options": lambda n: n.CrossEntropyLoss(ignore_index=3, reduction="sum", label_smoothing=0.1),
    "mse": lambda n: n.MSELoss(reduction="none"),
}


def sequential_net(n, F):
    return n.Sequential(
        n.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
        n.BatchNorm2d(8),
        n.LeakyReLU(0.1),
        n.Sequential(n.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), n.BatchNorm2d(8, momentum=None), n.Tanh()),
        n.AvgPool2d(2),
        n.AdaptiveAvgPool2d(1),
        n.Flatten(),
        n.Linear(8, 4),
    )


MODELS = {
    "simple": lambda n, F: models.simple_cnn(n),
    "landmark": lambda n, F: models.landmark_cnn(n),
    "sequential": sequential_net,
}


def _torch_bn_has_bias_flag() -> bool:
    return "bias" in inspect.signature(tnn.BatchNorm2d.__init__).parameters


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_repr_matches_torch(name):
    ours, theirs = CONSTRUCTORS[name](nn), CONSTRUCTORS[name](tnn)
    if name.startswith("bn") and not _torch_bn_has_bias_flag():  # PyTorch < 2.10 prints no bias= field
        assert repr(ours).replace("bias=True, ", "") == repr(theirs)
        return
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_parameters_and_buffers_match_torch(name):
    ours, theirs = CONSTRUCTORS[name](nn), CONSTRUCTORS[name](tnn)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    assert [(k, p.requires_grad) for k, p in ours.named_parameters()] == [
        (k, p.requires_grad) for k, p in theirs.named_parameters()
    ]
    for (k, ov), (_, tv) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert str(ov.dtype) == str(tv.dtype).replace("torch.", ""), k
    for attr in ("kernel_size", "stride", "padding", "dilation", "groups", "output_padding", "padding_mode",
                 "in_features", "out_features", "eps", "momentum", "affine", "p", "inplace", "negative_slope",
                 "start_dim", "end_dim", "output_size", "ceil_mode", "reduction", "ignore_index", "label_smoothing",
                 "_reversed_padding_repeated_twice"):  # fmt: skip
        if hasattr(theirs, attr):
            assert getattr(ours, attr) == getattr(theirs, attr), attr


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_repr_and_state_dict_keys_match_torch(name):
    import numbaconv.nn.functional as F

    ours, theirs = MODELS[name](nn, F), MODELS[name](tnn, torch.nn.functional)
    expected = repr(theirs)
    if not _torch_bn_has_bias_flag():
        expected = expected.replace("affine=True, track", "affine=True, bias=True, track")
    assert repr(ours) == expected
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_weights_load_and_give_the_same_outputs(name):
    import numbaconv.nn.functional as F

    torch.manual_seed(0)
    theirs = MODELS[name](tnn, torch.nn.functional)
    with torch.no_grad():  # non-trivial running statistics
        for mod in theirs.modules():
            if isinstance(mod, tnn.BatchNorm2d) and mod.track_running_stats:
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(3)
    ours = MODELS[name](nn, F)
    ours.load_state_dict(theirs.state_dict())  # torch tensors are array-likes
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    got = ours(ag.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_batchnorm_training_updates_match_torch():
    for momentum in (0.1, None):
        ours, theirs = nn.BatchNorm2d(3, momentum=momentum), tnn.BatchNorm2d(3, momentum=momentum)
        rng = np.random.default_rng(1)
        for _ in range(3):
            x = (rng.standard_normal((4, 3, 5, 5)) * 2 + 1).astype(np.float32)
            np.testing.assert_allclose(
                ours(ag.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
            )
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)


def test_default_init_statistics_match_torch():
    """Same distributions: every value within PyTorch's bound 1/sqrt(fan_in); weight spreads agree."""
    torch.manual_seed(0)
    for make in (lambda n: n.Conv2d(64, 128, 3), lambda n: n.Linear(500, 300), lambda n: n.ConvTranspose2d(32, 64, 3)):
        ours, theirs = make(nn), make(tnn)
        fan_in, _ = tnn.init._calculate_fan_in_and_fan_out(theirs.weight)
        bound = 1 / np.sqrt(fan_in)
        for (k, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            a, b = p.detach().numpy(), q.detach().numpy()
            assert abs(a).max() <= bound * (1 + 1e-6) and abs(b).max() <= bound * (1 + 1e-6), k
            if a.size > 10000:
                assert a.std() == pytest.approx(b.std(), rel=0.03), k
                assert abs(a).max() > 0.99 * bound, k


LAYER_INPUTS = {
    "conv_padding": (2, 3, 9, 9),
    "conv_grouped": (1, 64, 6, 6),
    "conv_rect": (2, 4, 11, 9),
    "conv_same": (2, 1, 8, 8),
    "conv_same_even": (2, 1, 7, 8),
    "conv_same_reflect": (2, 2, 7, 8),
    "conv_reflect": (2, 3, 6, 6),
    "conv_circular": (1, 3, 7, 7),
    "conv1d": (2, 4, 13),
    "conv1d_replicate": (2, 4, 9),
    "convT": (2, 16, 5, 5),
    "convT_grouped": (1, 4, 3, 4),
    "leaky": (3, 5),
    "maxpool_full": (1, 2, 7, 6),
    "avgpool_full": (1, 2, 7, 6),
    "adaptive": (2, 3, 5, 7),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", sorted(LAYER_INPUTS))
def test_layer_forward_and_backward_match_torch(name):
    """With PyTorch's parameters loaded, each layer gives PyTorch's output and parameter/input gradients."""
    torch.manual_seed(1)
    theirs = CONSTRUCTORS[name](tnn)
    ours = CONSTRUCTORS[name](nn)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(2).standard_normal(LAYER_INPUTS[name]).astype(np.float32)
    xt, xo = torch.tensor(x, requires_grad=True), ag.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    g = np.random.default_rng(3).standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    yo.backward(ag.tensor(g))
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (k, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=k)
