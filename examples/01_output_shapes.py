"""Output shapes of Conv2d and the output-size formula, on numbaconv.

From the tutorials "Understand torch.nn.Conv2d() with Examples", "How do I apply a Conv2d filter in PyTorch?"
and "Apply a 2D Convolution Operation in PyTorch": every layer they build, its output shape, and the formula

    H_out = (H_in + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1      (likewise W_out)

Writes output_shapes.png: one output channel of the first layer (its border sees only padding, so it equals
the bias) and H_out against H_in for the tutorials' settings.

    python examples/01_output_shapes.py [--out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments

import numbaconv
from numbaconv import nn


def out_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """The output-size formula (PyTorch's nn.Conv2d documentation)."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


out = arguments(__doc__.splitlines()[0]).out
numbaconv.manual_seed(0)

# "Understand torch.nn.Conv2d() with Examples"
N, C_in, H_in, W_in = 40, 40, 32, 32
inputs = numbaconv.rand([N, C_in, H_in, W_in])
padding, kernel_size, stride, C_out = 3, 3, 2, 100
x = nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding)
y = x(inputs)
print(x)
print(y.shape)  # (40, 100, 18, 18); PyTorch prints torch.Size([40, 100, 18, 18])
assert y.shape == (N, C_out, out_size(H_in, kernel_size, stride, padding), out_size(W_in, kernel_size, stride, padding))

# The other tutorials' layers: (what, layer, input shape)
layers = [
    ("1 -> 16, k3 s1 p1", nn.Conv2d(1, 16, kernel_size=3, stride=1, padding=1), (1, 1, 28, 28)),
    ("3 -> 32, k5 s2 p2", nn.Conv2d(3, 32, kernel_size=5, stride=2, padding=2), (1, 3, 64, 64)),
    ("1 -> 8, k3 s1 p1 d2", nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1, dilation=2), (1, 1, 28, 28)),
    ("3 -> 3, k3 s2 p0 (460 x 460 photo)", nn.Conv2d(3, 3, kernel_size=3, stride=2), (1, 3, 460, 460)),
]
print(f"\n{'layer':<36} {'input':<18} {'output':<18} formula for H_out")
for what, layer, shape in layers:
    result = layer(numbaconv.zeros(shape)).shape
    k, s, p, d = layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.dilation[0]
    h = out_size(shape[2], k, s, p, d)
    print(f"{what:<36} {str(shape):<18} {str(result):<18} ({shape[2]} + 2*{p} - {d}*({k}-1) - 1) // {s} + 1 = {h}")
    assert result[2] == h
# Note: one tutorial's comment says the dilated layer keeps 28 x 28; PyTorch (and numbaconv) give 26 x 26:
# a 3 x 3 kernel with dilation 2 spans 5 pixels, and padding 1 only makes up for 3 of them.

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
image = left.imshow(y[0, 0].detach().numpy(), cmap="viridis")
title = f"y[0, 0] of Conv2d(40, 100, 3, stride=2, padding=3)\nborder = bias {x.bias[0].item():+.4f}"
left.set_title(title, fontsize=10)
fig.colorbar(image, ax=left)
sizes = np.arange(8, 65)
for k, s, p, d in [(3, 1, 1, 1), (3, 1, 0, 1), (3, 1, 1, 2), (3, 2, 3, 1), (5, 2, 2, 1)]:
    style = "--" if d > 1 else "-"  # k3 s1 p1 d2 and k3 s1 p0 both give H_in - 2: the lines coincide
    right.plot(sizes, out_size(sizes, k, s, p, d), style, label=f"k{k} s{s} p{p} d{d}")
right.plot([32, 28, 64, 28], [18, 28, 32, 26], "ko", label="the tutorials' layers")
right.set(xlabel="H_in", ylabel="H_out", title="H_out = (H_in + 2p - d(k - 1) - 1) // s + 1")
right.grid(alpha=0.3)
right.legend()
fig.tight_layout()
fig.savefig(out / "output_shapes.png", dpi=100)
print(f"\nwrote {out / 'output_shapes.png'}")
