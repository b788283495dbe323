"""Edge kernels of size 3, 5 and 7 and the Laplacian on a real photograph, on numbaconv.

From "PyTorch nn.Conv2d": section 5 ("Explore Kernel Size Effects": horizontal-edge kernels, ones above the
middle row and minus ones below it) and "Understand the Math Behind Conv2d" (the 3x3 Laplacian
``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``); and from "Apply a 2D Convolution Operation in PyTorch",
Example 2 (a random ``Conv2d(3, 3, kernel_size=3, stride=2)`` on an RGB photo). Where the tutorials read
their own picture with ``Image.open``, this reads scikit-learn's bundled sample photo ``china.jpg``
(427 x 640, so it runs offline), converted to grayscale as PIL's ``convert("L")`` does.

Writes edges_on_a_photo.png.

    python examples/03_edges_on_a_photo.py [--out DIR]
"""

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments
from sklearn.datasets import load_sample_image

import numbaconv
import numbaconv.nn as nn

out = arguments(__doc__.splitlines()[0]).out
numbaconv.manual_seed(0)

rgb = load_sample_image("china.jpg")  # (427, 640, 3) uint8, like np.asarray(Image.open(...))
gray = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0  # ITU-R 601 luma, as PIL's convert("L")
sample_image = numbaconv.tensor(gray, dtype=numbaconv.float32).reshape(1, 1, *gray.shape)
print(f"photo: {rgb.shape} RGB -> grayscale tensor {sample_image.shape}")

# Apply convolutions with different kernel sizes (the tutorial's loop, unchanged)
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
    with numbaconv.no_grad():
        output = conv(sample_image)
    outputs.append(output)
    print(f"kernel {k_size}x{k_size}: output {output.shape}")

# The Laplacian from "Understand the Math Behind Conv2d": responds to edges in every direction
laplacian = nn.Conv2d(1, 1, kernel_size=3, padding=1, bias=False)
laplacian.weight.data = numbaconv.tensor([[[[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]]])
with numbaconv.no_grad():
    edges = laplacian(sample_image)

# "Apply a 2D Convolution Operation", Example 2: a random 3 -> 3 convolution with stride 2 on the RGB photo
Input = numbaconv.tensor(rgb.transpose(2, 0, 1) / 255.0, dtype=numbaconv.float32).unsqueeze(0)  # T.ToTensor()
conv = nn.Conv2d(in_channels=3, out_channels=3, kernel_size=3, stride=2, bias=True)
with numbaconv.no_grad():
    output = conv(Input)
print("Input Tensor :", Input.shape)
print("Output Tensor :", output.shape)  # (427 - 3) // 2 + 1 = 213, (640 - 3) // 2 + 1 = 319
Out_img = output.squeeze(0).numpy().transpose(1, 2, 0)
Out_img = (Out_img - Out_img.min()) / (Out_img.max() - Out_img.min())  # what T.ToPILImage would display, scaled

panels = [(gray, "grayscale photo (china.jpg)", "gray")]
panels += [
    (o[0, 0].numpy(), f"horizontal edges, kernel {k}x{k}", "RdBu_r") for k, o in zip(kernel_sizes, outputs, strict=True)
]
panels += [
    (edges[0, 0].numpy(), "Laplacian 3x3", "gray"),
    (Out_img, f"random Conv2d(3, 3, 3, stride=2): {output.shape}", None),
]
plt.figure(figsize=(15, 8))
for i, (image, title, cmap) in enumerate(panels, 1):
    plt.subplot(2, 3, i)
    if cmap == "RdBu_r":  # symmetric scale: red where brightness falls going down, blue where it rises
        limit = np.percentile(np.abs(image), 99.5)
        plt.imshow(image, cmap=cmap, vmin=-limit, vmax=limit)
    elif title.startswith("Laplacian"):
        plt.imshow(np.abs(image), cmap="gray_r", vmax=np.percentile(np.abs(image), 99.5))
    else:
        plt.imshow(image, cmap=cmap)
    plt.title(title, fontsize=10)
    plt.axis("off")
plt.tight_layout()
plt.savefig(out / "edges_on_a_photo.png", dpi=80)
plt.close()
print(f"wrote {out / 'edges_on_a_photo.png'}")
