"""Custom weight initialisation: normal init, then Gabor-like filters written into a Conv2d, on numbaconv.

From "PyTorch nn.Conv2d", section 6 ("Custom Weight Initialization"), line for line with ``torch``
replaced by ``numbaconv``: ``nn.init.normal_`` first, then a cosine grating at 16 angles written weight by
weight through ``conv.weight.data``. Then, beyond the tutorial, the filters applied to scikit-learn's
sample photo: each grating answers to stripes at its own angle.

Writes gabor_filters.png (the first 8 filters, as the tutorial plots them) and gabor_responses.png.

    python examples/04_gabor_init.py [--out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments
from sklearn.datasets import load_sample_image

import numbaconv
import numbaconv.nn as nn

out = arguments(__doc__.splitlines()[0]).out
numbaconv.manual_seed(0)

# Create a convolutional layer
conv = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)

# Check the default weight shape
print(f"Default weight shape: {conv.weight.shape}")  # (16, 3, 3, 3)

# Initialize with custom weights
# For example, Gaussian initialization with specific mean and std
nn.init.normal_(conv.weight, mean=0.0, std=0.01)
print(f"after normal_(std=0.01): weight std {conv.weight.detach().numpy().std():.4f}")

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

# Visualize a few of the filters
plt.figure(figsize=(10, 5))
for i in range(8):
    plt.subplot(2, 4, i + 1)
    # Show the filter for the first input channel
    plt.imshow(conv.weight.data[i, 0].detach().numpy(), cmap="viridis")
    plt.title(f"Filter {i + 1}")
    plt.axis("off")
plt.tight_layout()
plt.savefig(out / "gabor_filters.png", dpi=80)  # the tutorial calls plt.show() here
plt.close()

# Beyond the tutorial: what the filters respond to. cos is even, so filter i + 8 repeats filter i (angle + 180
# degrees): 8 distinct filters. Each also has a positive mean (it brightens flat areas); with the mean taken out
# of the weights, each answers to stripes across its angle. This runs on the array-level engine,
# numbaconv.conv2d, which takes and returns numpy arrays.
gray = load_sample_image("china.jpg")[::2, ::2] @ np.array([0.299, 0.587, 0.114]) / 255.0  # (214, 320)
weights = conv.weight.detach().numpy()[:8, :1]  # (8, 1, 3, 3): the first input channel of filters 1-8
weights = weights - weights.mean(axis=(2, 3), keepdims=True)
responses = numbaconv.conv2d(gray[None, None].astype(np.float32), weights, padding=1)[0]  # (8, 214, 320)
plt.figure(figsize=(12, 6))
for i in range(8):
    plt.subplot(2, 4, i + 1)
    plt.imshow(np.abs(responses[i]), cmap="magma", vmax=np.percentile(np.abs(responses[i]), 99))
    plt.title(f"filter {i + 1} (angle {i * 180 / 8:.1f} deg), mean removed", fontsize=9)
    plt.axis("off")
plt.tight_layout()
plt.savefig(out / "gabor_responses.png", dpi=80)
plt.close()
print(f"responses {responses.shape}; wrote {out / 'gabor_filters.png'} and {out / 'gabor_responses.png'}")
