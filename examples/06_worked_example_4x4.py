"""The 4x4 worked example: a convolution by hand, then with Conv2d, on numbaconv.

From "Apply a 2D Convolution Operation in PyTorch": a 4x4 image of 1..16, the 3x3 sharpening kernel
``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]`` and a bias of 5 give ``[[11, 12], [15, 16]]``, first by sliding
the kernel by hand, then with ``nn.Conv2d``. The tutorial's ``Output_shape`` subtracts ``2 * padding``;
it only works because its padding is 0 -- the formula adds it, as written here.

Writes worked_example_4x4.png (the image with the first window marked, the kernel and the output).

    python examples/06_worked_example_4x4.py [--out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments
from matplotlib.patches import Rectangle

import numbaconv
import numbaconv.nn as nn

out = arguments(__doc__.splitlines()[0]).out

# Define the filter
kernel = numbaconv.tensor([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=numbaconv.float32)

# Define the bias
bias = numbaconv.tensor([5], dtype=numbaconv.float32)

# Define the input image
image = numbaconv.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=numbaconv.float32)


def Output_shape(image, kernel, padding, stride):
    h, w = image.shape[-2], image.shape[-1]
    k_h, k_w = kernel.shape[-2], kernel.shape[-1]

    h_out = (h - k_h + 2 * padding) // stride[0] + 1  # the tutorial has "- 2 * padding"
    w_out = (w - k_w + 2 * padding) // stride[1] + 1
    return h_out, w_out


print(Output_shape(image, kernel, padding=0, stride=(1, 1)))  # (2, 2)

# By hand: slide the kernel, multiply, sum, add the bias
output_shape = Output_shape(image, kernel, padding=0, stride=(1, 1))
output = np.zeros(output_shape)
for i in range(output_shape[0]):
    for j in range(output_shape[1]):
        # torch.tensordot(a, b) over two 3x3 matrices is (a * b).sum()
        output[i, j] = (image[i : 3 + i, j : 3 + j] * kernel).sum().item() + bias.item()
print(output)  # [[11. 12.] [15. 16.]]

# With Conv2d, its weight and bias set by hand
conv = nn.Conv2d(in_channels=1, out_channels=1, kernel_size=3, bias=False)
conv.weight = nn.Parameter(kernel.reshape(1, 1, 3, 3))
conv.bias = nn.Parameter(bias)
result = conv(image.reshape(1, 1, 4, 4))
print("Output Shape :", result.shape)  # (1, 1, 2, 2)
print("Output \n", result)  # tensor([[[[11., 12.], [15., 16.]]]], grad_fn=<ConvolutionBackward0>)
assert np.array_equal(result.detach().numpy()[0, 0], output)

fig, axes = plt.subplots(1, 3, figsize=(11, 4), gridspec_kw={"width_ratios": [4, 3, 2]})
panels = [(image.numpy(), "input 4x4"), (kernel.numpy(), "kernel 3x3 (+ bias 5)"), (output, "output 2x2")]
for ax, (values, title) in zip(axes, panels, strict=True):
    ax.imshow(values, cmap="Blues")
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=14)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].add_patch(Rectangle((-0.5, -0.5), 3, 3, fill=False, edgecolor="red", linewidth=3))
axes[2].add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="red", linewidth=3))
window = " + ".join(
    f"{a:g}*{b:g}" if b > 0 else f"{a:g}*({b:g})"
    for a, b in zip(image.numpy()[:3, :3].flat, kernel.numpy().flat, strict=True)
    if b
)
fig.suptitle(f"red window: {window} + 5 = {output[0, 0]:g}")
fig.tight_layout()
fig.savefig(out / "worked_example_4x4.png", dpi=100)
print(f"wrote {out / 'worked_example_4x4.png'}")
