"""The tutorials' code, ported line for line (``torch`` -> ``numbaconv``), each asserting PyTorch's result.

Sources (in ``/work/shared/tutorials``): "Understand torch.nn.Conv2d() with Examples", "How do I apply a Conv2d
filter in PyTorch?", "PyTorch nn.Conv2d" and "Apply a 2D Convolution Operation in PyTorch". matplotlib calls
are left out (they only display), as are torchvision and pretrained weights (a small ResNet-shaped model with
an ``fc`` stands in for ``models.resnet18(pretrained=True)``).

The expected values are literals -- the shapes, reprs and numbers PyTorch prints (torch 2.x) -- or come from
an independent float64 numpy cross-correlation, so none of these tests needs torch. ``numbaconv``'s shapes are
tuples where PyTorch prints ``torch.Size([...])``.
"""

from __future__ import annotations

import numpy as np
import pytest

import numbaconv
import numbaconv.nn as nn
import numbaconv.nn.functional as F
import numbaconv.optim as optim

# --------------------------------------------------------------------------------------- numpy reference


def np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1) -> np.ndarray:
    """PyTorch's Conv2d (a cross-correlation, zero padding, groups=1) in float64 numpy, written from the
    definition: out[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xpad[n, c, i*s + u*d, j*s + v*d]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding : padding + h, padding : padding + wd] = x
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for u in range(kh):
        for v in range(kw):
            r0, c0 = u * dilation, v * dilation
            patch = xp[:, :, r0 : r0 + stride * (ho - 1) + 1 : stride, c0 : c0 + stride * (wo - 1) + 1 : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, u, v])
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return out


def arr(t) -> np.ndarray:
    """A numbaconv tensor's values as a numpy array (detached)."""
    return t.detach().numpy()


@pytest.fixture(autouse=True)
def _seed():
    numbaconv.manual_seed(0)


# ------------------------------------------------------ "Understand torch.nn.Conv2d() with Examples"


def test_conv2d_example_40x100():
    N = 40
    C_in = 40
    H_in = 32
    W_in = 32

    inputs = numbaconv.rand([N, C_in, H_in, W_in])

    padding = 3
    kernel_size = 3
    stride = 2
    C_out = 100
    x = numbaconv.nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding)
    y = x(inputs)

    # torch.Size([40, 100, 18, 18])
    assert y.shape == (40, 100, 18, 18)
    assert y.dtype == numbaconv.float32
    assert y.requires_grad and y.grad_fn is not None
    assert repr(y).endswith("grad_fn=<ConvolutionBackward0>)")
    # As in the tutorial's printout: with padding 3 and stride 2 the first output row and column only see
    # padding, so they equal the channel's bias (-1.1969e-02 ... for torch's random draw).
    bias = arr(x.bias)
    values = arr(y)
    np.testing.assert_array_equal(values[:, :, 0, :], np.broadcast_to(bias[None, :, None], (N, C_out, 18)))
    np.testing.assert_array_equal(values[:, :, :, 0], np.broadcast_to(bias[None, :, None], (N, C_out, 18)))
    # and everything agrees with the definition (two samples are enough and keep this quick)
    ref = np_conv2d(arr(inputs)[:2], arr(x.weight), bias, stride=stride, padding=padding)
    np.testing.assert_allclose(values[:2], ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------- "How do I apply a Conv2d filter in PyTorch?"


def test_filter_example1_basic_convolution(capsys):
    # Define the convolutional layer
    conv_layer = nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=1, padding=1)

    # Sample input tensor (single channel, 28x28)
    input_tensor = numbaconv.randn(1, 1, 28, 28)

    # Perform the convolution
    output_tensor = conv_layer(input_tensor)

    # Print output tensor shape
    print(output_tensor.shape)  # Output: torch.Size([1, 16, 28, 28])
    assert capsys.readouterr().out == "(1, 16, 28, 28)\n"
    assert output_tensor.shape == (1, 16, 28, 28)
    ref = np_conv2d(arr(input_tensor), arr(conv_layer.weight), arr(conv_layer.bias), padding=1)
    np.testing.assert_allclose(arr(output_tensor), ref, rtol=1e-4, atol=1e-5)


def test_filter_example2_channels_and_stride():
    # Define the convolutional layer
    conv_layer = nn.Conv2d(in_channels=3, out_channels=32, kernel_size=5, stride=2, padding=2)

    # Sample input tensor (3 channels, 64x64)
    input_tensor = numbaconv.randn(1, 3, 64, 64)

    # Perform the convolution
    output_tensor = conv_layer(input_tensor)

    assert output_tensor.shape == (1, 32, 32, 32)  # Output: torch.Size([1, 32, 32, 32])
    ref = np_conv2d(arr(input_tensor), arr(conv_layer.weight), arr(conv_layer.bias), stride=2, padding=2)
    np.testing.assert_allclose(arr(output_tensor), ref, rtol=1e-4, atol=1e-5)


def test_filter_example3_dilation():
    # Define the convolutional layer with dilation
    conv_layer = nn.Conv2d(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding=1, dilation=2)

    # Sample input tensor (single channel, 28x28)
    input_tensor = numbaconv.randn(1, 1, 28, 28)

    # Perform the convolution
    output_tensor = conv_layer(input_tensor)

    # The tutorial's comment says torch.Size([1, 8, 28, 28]); PyTorch actually gives [1, 8, 26, 26]:
    # 28 + 2*1 - 2*(3 - 1) - 1 + 1 = 26 (the dilated kernel spans 5 pixels and padding 1 does not make up for it).
    assert output_tensor.shape == (1, 8, 26, 26)
    assert repr(conv_layer) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(2, 2))"
    ref = np_conv2d(arr(input_tensor), arr(conv_layer.weight), arr(conv_layer.bias), padding=1, dilation=2)
    np.testing.assert_allclose(arr(output_tensor), ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ "PyTorch nn.Conv2d"


def test_basic_convolutional_layer(capsys):
    # Create a convolutional layer with 3 input channels, 16 output channels, and a 3x3 kernel
    conv_layer = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)

    # Create a sample input (batch_size, channels, height, width)
    input_image = numbaconv.randn(1, 3, 32, 32)

    # Apply convolution
    output = conv_layer(input_image)

    print(f"Input shape: {input_image.shape}")
    print(f"Output shape: {output.shape}")

    # torch prints "Input shape: torch.Size([1, 3, 32, 32])" / "Output shape: torch.Size([1, 16, 32, 32])"
    assert capsys.readouterr().out == "Input shape: (1, 3, 32, 32)\nOutput shape: (1, 16, 32, 32)\n"
    assert repr(conv_layer) == "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"


class SimpleCNN(nn.Module):
    def __init__(self):
        super(SimpleCNN, self).__init__()  # noqa: UP008 (the tutorial's spelling)
        # First convolutional layer: 3 input channels (RGB), 16 output channels, 3x3 kernel
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        # Second convolutional layer: 16 input channels, 32 output channels, 3x3 kernel
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        # Third convolutional layer: 32 input channels, 64 output channels, 3x3 kernel
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        # Fully connected layer: 64*4*4 input features, 10 output features (for 10 classes)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        # Apply conv1, then ReLU, then max pooling
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        # Apply conv2, then ReLU, then max pooling
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        # Apply conv3, then ReLU, then max pooling
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        # Flatten the tensor
        x = x.view(-1, 64 * 4 * 4)
        # Apply the fully connected layer
        x = self.fc(x)
        return x


SIMPLE_CNN_REPR = """\
SimpleCNN(
  (conv1): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (conv2): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (conv3): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (fc): Linear(in_features=1024, out_features=10, bias=True)
)"""


def np_max_pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def test_simple_cnn_repr_and_forward(capsys):
    # Create the model
    model = SimpleCNN()

    # Print the model architecture
    print(model)
    assert capsys.readouterr().out == SIMPLE_CNN_REPR + "\n"

    # A CIFAR-10-sized batch through it
    x = numbaconv.randn(4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 10)
    assert logits.dtype == numbaconv.float32
    assert sum(p.numel() for p in model.parameters()) == 448 + 4640 + 18496 + 10250

    # the same forward in numpy
    h = arr(x).astype(np.float64)
    for conv in (model.conv1, model.conv2, model.conv3):
        h = np_max_pool2(np.maximum(np_conv2d(h, arr(conv.weight), arr(conv.bias), padding=1), 0))
    ref = h.reshape(-1, 1024) @ arr(model.fc.weight).T.astype(np.float64) + arr(model.fc.bias)
    np.testing.assert_allclose(arr(logits), ref, rtol=1e-4, atol=1e-5)

    # and it trains: backward reaches every parameter
    loss = nn.CrossEntropyLoss()(logits, numbaconv.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.isfinite(arr(p.grad)).all(), name


def test_stride_and_padding_effects_sobel(capsys):
    # Create an input tensor (1 batch, 1 channel, 8x8 image)
    input_tensor = numbaconv.zeros(1, 1, 8, 8)
    # Create a simple pattern for visualization
    input_tensor[0, 0, 2:6, 2:6] = 1.0

    # Conv2d with stride=1, padding=0
    conv1 = nn.Conv2d(1, 1, kernel_size=3, stride=1, padding=0)
    # Initialize weights to highlight edges
    conv1.weight.data = numbaconv.tensor([[[[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]]])
    conv1.bias.data = numbaconv.tensor([0.0])
    output1 = conv1(input_tensor)

    # Conv2d with stride=2, padding=1
    conv2 = nn.Conv2d(1, 1, kernel_size=3, stride=2, padding=1)
    # Use same weights as conv1
    conv2.weight.data = conv1.weight.data
    conv2.bias.data = conv1.bias.data
    output2 = conv2(input_tensor)

    # Print output shapes
    print(f"Input shape: {input_tensor.shape}")
    print(f"Output shape (stride=1, padding=0): {output1.shape}")
    print(f"Output shape (stride=2, padding=1): {output2.shape}")
    assert capsys.readouterr().out == (
        "Input shape: (1, 1, 8, 8)\n"
        "Output shape (stride=1, padding=0): (1, 1, 6, 6)\n"
        "Output shape (stride=2, padding=1): (1, 1, 4, 4)\n"
    )

    image = np.zeros((8, 8))
    image[2:6, 2:6] = 1.0
    np.testing.assert_array_equal(arr(input_tensor)[0, 0], image)
    # PyTorch's values (integers: exact in float32)
    expected1 = [
        [-1, -1, 0, 0, 1, 1],
        [-2, -2, 0, 0, 2, 2],
        [-3, -3, 0, 0, 3, 3],
        [-3, -3, 0, 0, 3, 3],
        [-2, -2, 0, 0, 2, 2],
        [-1, -1, 0, 0, 1, 1],
    ]
    expected2 = [
        [0, 0, 0, 0],
        [0, -2, 0, 2],
        [0, -3, 0, 3],
        [0, -1, 0, 1],
    ]
    np.testing.assert_array_equal(arr(output1)[0, 0], expected1)
    np.testing.assert_array_equal(arr(output2)[0, 0], expected2)
    kernel = np.array([[[[1.0, 0.0, -1.0]] * 3]])
    np.testing.assert_array_equal(arr(output1), np_conv2d(image[None, None], kernel, [0.0]))
    np.testing.assert_array_equal(arr(output2), np_conv2d(image[None, None], kernel, [0.0], stride=2, padding=1))
    # conv2's weight is conv1's (`.data` assignment shares, as in PyTorch)
    conv1.weight.data[0, 0, 1, 1] = 7.0
    assert arr(conv2.weight)[0, 0, 1, 1] == 7.0


def test_landmark_cnn_training_mode(capsys):
    # Define a CNN for landmark classification
    class LandmarkCNN(nn.Module):
        def __init__(self, num_classes=10):
            super(LandmarkCNN, self).__init__()  # noqa: UP008 (the tutorial's spelling)

            # First convolutional block
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1)
            self.bn1 = nn.BatchNorm2d(32)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(kernel_size=2)

            # Second convolutional block
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.bn2 = nn.BatchNorm2d(64)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(kernel_size=2)

            # Third convolutional block
            self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
            self.bn3 = nn.BatchNorm2d(128)
            self.relu3 = nn.ReLU()
            self.pool3 = nn.MaxPool2d(kernel_size=2)

            # Classifier
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(128 * 4 * 4, 512)
            self.dropout = nn.Dropout(0.5)
            self.fc2 = nn.Linear(512, num_classes)

        def forward(self, x):
            # First block
            x = self.conv1(x)
            x = self.bn1(x)
            x = self.relu1(x)
            x = self.pool1(x)

            # Second block
            x = self.conv2(x)
            x = self.bn2(x)
            x = self.relu2(x)
            x = self.pool2(x)

            # Third block
            x = self.conv3(x)
            x = self.bn3(x)
            x = self.relu3(x)
            x = self.pool3(x)

            # Classifier
            x = self.flatten(x)
            x = self.fc1(x)
            x = self.relu1(x)
            x = self.dropout(x)
            x = self.fc2(x)

            return x

    # Create the model
    model = LandmarkCNN(num_classes=10)  # Assuming 10 landmark classes

    # Example input
    sample_input = numbaconv.randn(1, 3, 32, 32)  # Batch size 1, 3 channels, 32x32 image
    output = model(sample_input)

    print(f"Input shape: {sample_input.shape}")
    print(f"Output shape: {output.shape}")
    # torch: "Input shape: torch.Size([1, 3, 32, 32])" / "Output shape: torch.Size([1, 10])"
    assert capsys.readouterr().out == "Input shape: (1, 3, 32, 32)\nOutput shape: (1, 10)\n"

    assert model.training  # a fresh module trains: BatchNorm used the batch's statistics and updated its buffers
    assert np.isfinite(arr(output)).all()
    for bn in (model.bn1, model.bn2, model.bn3):
        assert bn.num_batches_tracked.item() == 1
        assert not np.allclose(arr(bn.running_mean), 0.0)
    # running_mean = 0.9 * 0 + 0.1 * (the batch mean of conv1's output)
    conv1_out = np_conv2d(arr(sample_input), arr(model.conv1.weight), arr(model.conv1.bias), padding=1)
    np.testing.assert_allclose(arr(model.bn1.running_mean), 0.1 * conv1_out.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    # with N = 1 the unbiased variance divides by H * W - 1
    var = conv1_out.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(arr(model.bn1.running_var), 0.9 + 0.1 * var, rtol=1e-4)
    # the parameters PyTorch gives this model
    assert sum(p.numel() for p in model.parameters()) == 896 + 64 + 18496 + 128 + 73856 + 256 + 1049088 + 5130
    assert [k for k in model.state_dict() if k.startswith("bn1.")] == [
        "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    ]  # fmt: skip
    # training-mode dropout is random, eval is deterministic
    model.eval()
    a, b = model(sample_input), model(sample_input)
    np.testing.assert_array_equal(arr(a), arr(b))
    assert a.shape == (1, 10)


def test_kernel_size_effects():
    # Create a sample image (1 batch, 1 channel, 28x28 image)
    sample_image = numbaconv.zeros(1, 1, 28, 28)
    # Add some patterns to the image
    sample_image[0, 0, 10:20, 10:20] = 1.0  # Square
    sample_image[0, 0, 5:10, 15:25] = 0.8  # Rectangle

    # Apply convolutions with different kernel sizes
    kernel_sizes = [3, 5, 7]
    outputs = []

    for k_size in kernel_sizes:
        # Create a convolution layer with specified kernel size
        conv = nn.Conv2d(1, 1, kernel_size=k_size, padding=k_size // 2)

        # Initialize weights to detect horizontal edges
        weight = numbaconv.zeros(1, 1, k_size, k_size)
        weight[0, 0, : k_size // 2, :] = 1.0
        weight[0, 0, k_size // 2 + 1 :, :] = -1.0
        conv.weight.data = weight
        conv.bias.data = numbaconv.tensor([0.0])

        # Apply convolution
        output = conv(sample_image)
        outputs.append(output)

    image = np.zeros((1, 1, 28, 28))
    image[0, 0, 10:20, 10:20] = 1.0
    image[0, 0, 5:10, 15:25] = 0.8
    for k_size, output in zip(kernel_sizes, outputs, strict=True):
        assert output.shape == (1, 1, 28, 28)  # padding k // 2 keeps the size for odd k
        kernel = np.zeros((1, 1, k_size, k_size))
        kernel[0, 0, : k_size // 2, :] = 1.0
        kernel[0, 0, k_size // 2 + 1 :, :] = -1.0
        ref = np_conv2d(image, kernel, [0.0], padding=k_size // 2)
        np.testing.assert_allclose(arr(output), ref, rtol=1e-5, atol=1e-5)
    # horizontal edges: the square's top edge (row 10 below the rectangle) responds, flat regions give 0
    out3 = arr(outputs[0])[0, 0]
    assert out3[0, 0] == 0.0 and out3[14, 14] == 0.0
    np.testing.assert_allclose(out3[19, 12], 3.0)  # the square's bottom row: ones above, zeros below
    np.testing.assert_allclose(out3[10, 12], -3.0)  # the square's top row: zeros above, ones below


def test_custom_weight_initialization(capsys):
    # Create a convolutional layer
    conv = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)

    # Check the default weight shape
    print(f"Default weight shape: {conv.weight.shape}")  # Should be [16, 3, 3, 3]
    assert capsys.readouterr().out == "Default weight shape: (16, 3, 3, 3)\n"

    # Initialize with custom weights
    # For example, Gaussian initialization with specific mean and std
    numbaconv.nn.init.normal_(conv.weight, mean=0.0, std=0.01)
    w = arr(conv.weight).copy()
    assert w.dtype == np.float32 and conv.weight.requires_grad and conv.weight.is_leaf
    assert abs(w.mean()) < 0.003 and 0.008 < w.std() < 0.012  # 432 draws from N(0, 0.01^2)

    # Or initialize with custom patterns
    # Create Gabor filter-like kernels
    for i in range(16):
        # Create a Gabor-like pattern for each output channel
        angle = i * np.pi / 8  # Different angles
        for j in range(3):  # For each input channel
            for x in range(3):
                for y in range(3):
                    # Simple Gabor-like pattern
                    x_c, y_c = x - 1, y - 1  # Center coordinates
                    conv.weight.data[i, j, x, y] = np.cos(x_c * np.cos(angle) + y_c * np.sin(angle))

    # Visualize a few of the filters (matplotlib left out): the arrays plt.imshow would get
    shown = [conv.weight.data[i, 0].detach().numpy() for i in range(8)]
    assert all(s.shape == (3, 3) for s in shown)

    expected = np.empty((16, 3, 3, 3))
    for i in range(16):
        angle = i * np.pi / 8
        xc, yc = np.meshgrid(np.arange(3) - 1, np.arange(3) - 1, indexing="ij")
        expected[i, :] = np.cos(xc * np.cos(angle) + yc * np.sin(angle))
    np.testing.assert_allclose(arr(conv.weight), expected, rtol=1e-6, atol=1e-7)
    assert conv.weight.dtype == np.float32 and conv.weight.requires_grad
    # filter 0 (angle 0) is cos(x - 1) along rows
    np.testing.assert_allclose(shown[0][:, 0], np.cos([-1.0, 0.0, 1.0]), rtol=1e-6)
    # the layer computes with the written weights
    x = numbaconv.randn(2, 3, 9, 9)
    np.testing.assert_allclose(
        arr(conv(x)), np_conv2d(arr(x), expected, arr(conv.bias), padding=1), rtol=1e-4, atol=1e-5
    )


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (the structure; no pretrained weights)."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TinyResNet(nn.Module):
    """A ResNet-18-shaped stand-in for ``models.resnet18(pretrained=True)``: the same stem (whose repr the
    tutorial prints), two stages instead of four, and a final ``fc``."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        x = x.flatten(1)
        return self.fc(x)


def test_transfer_learning_freezing(capsys):
    # Load a pre-trained ResNet-18 model (here: a small ResNet-shaped model, no pretrained weights)
    resnet = TinyResNet()
    before = {k: v.numpy().copy() for k, v in resnet.state_dict().items()}

    # Freeze all parameters
    for param in resnet.parameters():
        param.requires_grad = False

    # Modify the final layer for our landmark classification task (10 classes)
    num_features = resnet.fc.in_features
    resnet.fc = nn.Linear(num_features, 10)  # Replace with our custom classifier

    # Now only the parameters of the final layer are trainable
    trainable_params = [p for p in resnet.parameters() if p.requires_grad]
    print(f"Number of trainable parameters: {len(trainable_params)}")

    # Print the structure of the first convolutional layer
    print("First Conv2d layer in ResNet-18:")
    print(resnet.conv1)

    assert capsys.readouterr().out == (
        "Number of trainable parameters: 2\n"
        "First Conv2d layer in ResNet-18:\n"
        "Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)\n"
    )
    assert trainable_params[0] is resnet.fc.weight and trainable_params[1] is resnet.fc.bias
    assert resnet.fc.weight.shape == (10, 128)

    # Train a step: gradients reach fc only and only fc's parameters move. BatchNorm's running statistics
    # still update in train mode (as in PyTorch), so compare parameters, not buffers.
    optimizer = optim.SGD(trainable_params, lr=0.1, momentum=0.9)
    x = numbaconv.randn(4, 3, 32, 32)
    fc_before = [arr(p).copy() for p in trainable_params]
    loss = nn.CrossEntropyLoss()(resnet(x), numbaconv.tensor([1, 2, 3, 4]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name, p in resnet.named_parameters():
        if name.startswith("fc."):
            assert p.grad is not None
        else:
            assert p.grad is None and not p.requires_grad, name
            np.testing.assert_array_equal(arr(p), before[name], err_msg=name)
    for p, old in zip(trainable_params, fc_before, strict=True):
        assert not np.array_equal(arr(p), old)
    # an optimizer over every parameter changes only what requires grad
    full = optim.SGD(resnet.parameters(), lr=0.1)
    frozen_now = {k: arr(p).copy() for k, p in resnet.named_parameters() if not k.startswith("fc.")}
    resnet.zero_grad()
    nn.CrossEntropyLoss()(resnet(x), numbaconv.tensor([1, 2, 3, 4])).backward()
    full.step()
    for name, p in resnet.named_parameters():
        if not name.startswith("fc."):
            np.testing.assert_array_equal(arr(p), frozen_now[name], err_msg=name)


def test_math_behind_conv2d_laplacian(capsys):
    # Create a simple 5x5 input
    input_data = (
        numbaconv.tensor(
            [
                [0, 0, 0, 0, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 1, 1, 0],
                [0, 1, 1, 1, 0],
                [0, 0, 0, 0, 0],
            ],
            dtype=numbaconv.float32,
        )
        .unsqueeze(0)
        .unsqueeze(0)
    )  # Add batch and channel dimensions

    # Define a 3x3 kernel for edge detection
    kernel = (
        numbaconv.tensor(
            [
                [-1, -1, -1],
                [-1, 8, -1],
                [-1, -1, -1],
            ],
            dtype=numbaconv.float32,
        )
        .unsqueeze(0)
        .unsqueeze(0)
    )  # Add out_channels and in_channels dimensions

    # Create a Conv2d layer with this kernel
    conv = nn.Conv2d(1, 1, kernel_size=3, padding=0, bias=False)
    conv.weight.data = kernel

    # Apply the convolution
    output = conv(input_data)

    # the arrays the tutorial plots
    input_data[0, 0].numpy()
    output[0, 0].detach().numpy()

    print(f"Input shape: {input_data.shape}")
    print(f"Output shape: {output.shape}")
    assert capsys.readouterr().out == "Input shape: (1, 1, 5, 5)\nOutput shape: (1, 1, 3, 3)\n"
    expected = [[5.0, 3.0, 5.0], [3.0, 0.0, 3.0], [5.0, 3.0, 5.0]]
    np.testing.assert_array_equal(arr(output)[0, 0], expected)
    np.testing.assert_array_equal(arr(output), np_conv2d(arr(input_data), arr(kernel)))
    assert repr(output) == (
        "tensor([[[[5., 3., 5.],\n          [3., 0., 3.],\n          [5., 3., 5.]]]], grad_fn=<ConvolutionBackward0>)"
    )


def test_parameter_counts(capsys):
    # Standard convolution
    standard_conv = nn.Conv2d(64, 128, kernel_size=3, padding=1)

    # Grouped convolution (2 groups)
    grouped_conv = nn.Conv2d(64, 128, kernel_size=3, padding=1, groups=2)

    # Depthwise convolution (groups = in_channels)
    depthwise_conv = nn.Conv2d(64, 64, kernel_size=3, padding=1, groups=64)

    # Calculate parameter count
    standard_params = sum(p.numel() for p in standard_conv.parameters())
    grouped_params = sum(p.numel() for p in grouped_conv.parameters())
    depthwise_params = sum(p.numel() for p in depthwise_conv.parameters())

    print(f"Standard Conv2d parameters: {standard_params}")
    print(f"Grouped Conv2d parameters: {grouped_params}")
    print(f"Depthwise Conv2d parameters: {depthwise_params}")

    assert capsys.readouterr().out == (
        "Standard Conv2d parameters: 73856\nGrouped Conv2d parameters: 36992\nDepthwise Conv2d parameters: 640\n"
    )
    assert grouped_conv.weight.shape == (128, 32, 3, 3)
    assert depthwise_conv.weight.shape == (64, 1, 3, 3)
    assert repr(grouped_conv) == "Conv2d(64, 128, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)"
    assert repr(depthwise_conv) == "Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=64)"

    # the grouped and depthwise layers compute per group (checked against the ungrouped definition)
    x = numbaconv.randn(2, 64, 6, 6)
    xs = arr(x)
    out = arr(grouped_conv(x))
    w, b = arr(grouped_conv.weight), arr(grouped_conv.bias)
    ref = np.concatenate(
        [np_conv2d(xs[:, 32 * g : 32 * (g + 1)], w[64 * g : 64 * (g + 1)], b[64 * g : 64 * (g + 1)], padding=1)
         for g in range(2)], axis=1,
    )  # fmt: skip
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    out = arr(depthwise_conv(x))
    w, b = arr(depthwise_conv.weight), arr(depthwise_conv.bias)
    ref = np.concatenate([np_conv2d(xs[:, c : c + 1], w[c : c + 1], b[c : c + 1], padding=1) for c in range(64)], 1)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_hardware_acceleration_is_a_cpu_no_op():
    model = SimpleCNN()
    input_tensor = numbaconv.randn(1, 3, 32, 32)
    # device = torch.device("cuda" if torch.cuda.is_available() else "cpu"): numbaconv only has the CPU
    device = "cpu"
    model = model.to(device)
    input_tensor = input_tensor.to(device)
    assert model(input_tensor).shape == (1, 10)
    with pytest.raises(ValueError, match="cpu"):
        model.to("cuda")
    with pytest.raises(ValueError, match="cpu"):
        input_tensor.to("cuda")


# ----------------------------------------------------------------- "Apply a 2D Convolution Operation in PyTorch"


def test_output_shape_and_manual_convolution():
    # Define the filter
    kernel = numbaconv.tensor([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=numbaconv.float32)

    # Define the bias
    bias = numbaconv.tensor([5], dtype=numbaconv.float32)

    # Define the input image
    image = numbaconv.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=numbaconv.float32)

    def Output_shape(image, kernel, padding, stride):
        h, w = image.shape[-2], image.shape[-1]
        k_h, k_w = kernel.shape[-2], kernel.shape[-1]

        h_out = (h - k_h - 2 * padding) // stride[0] + 1
        w_out = (w - k_w - 2 * padding) // stride[1] + 1
        return h_out, w_out

    assert Output_shape(image, kernel, padding=0, stride=(1, 1)) == (2, 2)

    output_shape = Output_shape(image, kernel, padding=0, stride=(1, 1))
    output = np.zeros(output_shape)

    for i in range(output_shape[0]):
        for j in range(output_shape[1]):
            # torch.tensordot(a, b) with the default dims=2 over two 3x3 matrices is (a * b).sum(). The
            # tutorial adds bias.numpy() (shape (1,)); NumPy 2.4 refuses to store a 1-element array in a scalar
            # slot ("setting an array element with a sequence", with torch too), so the bias is indexed.
            output[i, j] = (image[i : 3 + i, j : 3 + j] * kernel).sum().numpy() + bias.numpy()[0]

    np.testing.assert_array_equal(output, np.array([[11.0, 12.0], [15.0, 16.0]]))


def test_conv2d_with_sharpening_kernel_and_bias(capsys):
    # Define the filter
    kernel = numbaconv.tensor([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=numbaconv.float32)
    kernel = kernel.reshape(1, 1, 3, 3)

    # Define the bias
    bias = numbaconv.tensor([5], dtype=numbaconv.float32)

    # Define the input image
    image = numbaconv.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=numbaconv.float32)
    image = image.reshape(1, 1, 4, 4)

    # Define the convolution operation
    conv = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=3, bias=False)

    # Set the filter for the convolution operation
    conv.weight = nn.Parameter(kernel)
    conv.bias = nn.Parameter(bias)
    # Apply the convolution operation
    output = conv(image)

    # Print the output
    print("Output Shape :", output.shape)
    print("Output \n", output)

    # PyTorch prints "Output Shape : torch.Size([1, 1, 2, 2])" and then exactly this tensor
    assert capsys.readouterr().out == (
        "Output Shape : (1, 1, 2, 2)\n"
        "Output \n"
        " tensor([[[[11., 12.],\n"
        "          [15., 16.]]]], grad_fn=<ConvolutionBackward0>)\n"
    )
    np.testing.assert_array_equal(arr(output), [[[[11.0, 12.0], [15.0, 16.0]]]])
    # the bias assigned to a bias=False layer is a registered parameter now
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert repr(conv) == "Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1))"
    # and receives a gradient: d(sum of 4 outputs)/d(bias) = 4
    output.sum().backward()
    np.testing.assert_array_equal(arr(conv.bias.grad), [4.0])
    np.testing.assert_array_equal(
        arr(conv.weight.grad)[0, 0], [[14.0, 18.0, 22.0], [30.0, 34.0, 38.0], [46.0, 50.0, 54.0]]
    )


def test_real_image_shape_without_torchvision(capsys):
    # Example 2 reads 'pawan.jpeg' with PIL and torchvision; a random image of the same size stands in for
    # T.ToTensor()(image) (a float (3, 460, 460) tensor in [0, 1]).
    Input = numbaconv.rand(3, 460, 460)

    # unsqueeze image to make 4D
    Input = Input.unsqueeze(0)
    print("Input Tensor :", Input.shape)

    # Define the convolution operation
    conv = nn.Conv2d(in_channels=3, out_channels=3, kernel_size=3, stride=2, bias=True)

    output = conv(Input)

    print("Output Tensor :", output.shape)
    # squeeze image
    Out_img = output.squeeze(0)

    assert capsys.readouterr().out == "Input Tensor : (1, 3, 460, 460)\nOutput Tensor : (1, 3, 229, 229)\n"
    assert Out_img.shape == (3, 229, 229)
    ref = np_conv2d(arr(Input)[:, :, :40, :40], arr(conv.weight), arr(conv.bias), stride=2)
    np.testing.assert_allclose(arr(output)[:, :, :19, :19], ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ the same, against torch when present


def test_tutorial_literals_match_torch():
    """Where torch imports, the literals above are what it prints and computes."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchSimpleCNN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, kernel_size=3, padding=1)
            self.conv2 = tnn.Conv2d(16, 32, kernel_size=3, padding=1)
            self.conv3 = tnn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.fc = tnn.Linear(64 * 4 * 4, 10)

    assert repr(TorchSimpleCNN()).replace("TorchSimpleCNN", "SimpleCNN") == SIMPLE_CNN_REPR
    assert repr(SimpleCNN()) == SIMPLE_CNN_REPR

    conv = tnn.Conv2d(in_channels=1, out_channels=1, kernel_size=3, bias=False)
    conv.weight = tnn.Parameter(
        torch.tensor([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=torch.float32).reshape(1, 1, 3, 3)
    )
    conv.bias = tnn.Parameter(torch.tensor([5], dtype=torch.float32))
    out = conv(torch.arange(1, 17, dtype=torch.float32).reshape(1, 1, 4, 4))
    assert repr(out) == "tensor([[[[11., 12.],\n          [15., 16.]]]], grad_fn=<ConvolutionBackward0>)"
    assert repr(conv) == "Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1))"

    # shapes, including the dilation case the tutorial gets wrong
    cases = [
        (lambda n: n.Conv2d(40, 100, 3, stride=2, padding=3), (2, 40, 32, 32)),
        (lambda n: n.Conv2d(1, 16, kernel_size=3, stride=1, padding=1), (1, 1, 28, 28)),
        (lambda n: n.Conv2d(3, 32, kernel_size=5, stride=2, padding=2), (1, 3, 64, 64)),
        (lambda n: n.Conv2d(1, 8, kernel_size=3, stride=1, padding=1, dilation=2), (1, 1, 28, 28)),
        (lambda n: n.Conv2d(3, 3, kernel_size=3, stride=2, bias=True), (1, 3, 46, 46)),
    ]
    for make, shape in cases:
        t_layer, n_layer = make(tnn), make(nn)
        assert repr(t_layer) == repr(n_layer)
        assert tuple(t_layer(torch.zeros(shape)).shape) == n_layer(numbaconv.zeros(shape)).shape

    for make in (
        lambda n: n.Conv2d(64, 128, kernel_size=3, padding=1),
        lambda n: n.Conv2d(64, 128, kernel_size=3, padding=1, groups=2),
        lambda n: n.Conv2d(64, 64, kernel_size=3, padding=1, groups=64),
    ):
        assert sum(p.numel() for p in make(tnn).parameters()) == sum(p.numel() for p in make(nn).parameters())

    # the Sobel and Laplacian outputs
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2:6, 2:6] = 1.0
    k = torch.tensor([[[[1.0, 0.0, -1.0]] * 3]])
    sobel1 = torch.nn.functional.conv2d(x, k).numpy()
    sobel2 = torch.nn.functional.conv2d(x, k, stride=2, padding=1).numpy()
    xn = numbaconv.from_numpy(x.numpy().copy())
    kn = numbaconv.from_numpy(k.numpy().copy())
    np.testing.assert_array_equal(arr(F.conv2d(xn, kn)), sobel1)
    np.testing.assert_array_equal(arr(F.conv2d(xn, kn, stride=2, padding=1)), sobel2)
