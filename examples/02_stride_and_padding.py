"""Stride and padding on an 8x8 square, on numbaconv.

From "PyTorch nn.Conv2d", section 3 ("Understand Stride and Padding Effects"), line for line with ``torch``
replaced by ``numbaconv``: a vertical-edge kernel over a 4x4 square of ones, once with stride 1 and no
padding (6x6 out), once with stride 2 and padding 1 (4x4 out).

Writes stride_and_padding.png (the tutorial's three panels, with the values written in).

    python examples/02_stride_and_padding.py [--out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments

import numbaconv
import numbaconv.nn as nn

out = arguments(__doc__.splitlines()[0]).out

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

plt.figure(figsize=(12, 4))
panels = [
    (input_tensor[0, 0].numpy(), "Input"),
    (output1[0, 0].detach().numpy(), "Stride=1, Padding=0"),
    (output2[0, 0].detach().numpy(), "Stride=2, Padding=1"),
]
for position, (image, title) in enumerate(panels, 1):
    plt.subplot(1, 3, position)
    plt.imshow(image, cmap="gray")
    for (i, j), value in np.ndenumerate(image):
        plt.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8, color="red")
    plt.title(f"{title}: {image.shape[0]}x{image.shape[1]}")
plt.tight_layout()
plt.savefig(out / "stride_and_padding.png", dpi=100)  # the tutorial calls plt.show() here
plt.close()

# Print output shapes
print(f"Input shape: {input_tensor.shape}")
print(f"Output shape (stride=1, padding=0): {output1.shape}")  # (1, 1, 6, 6)
print(f"Output shape (stride=2, padding=1): {output2.shape}")  # (1, 1, 4, 4)
print(output1[0, 0].detach())
print(output2[0, 0].detach())
print(f"wrote {out / 'stride_and_padding.png'}")
