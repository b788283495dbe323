"""Grouped and depthwise convolutions: parameter counts, and what the dispatcher runs for each, on numbaconv.

From "PyTorch nn.Conv2d", "Performance Tips for Conv2d": a standard 64 -> 128 layer, the same with 2 groups,
and a depthwise 64 -> 64 layer (groups = in_channels); their parameter counts are the tutorial's code
verbatim. Beyond the tutorial: the time of one forward pass on a (16, 64, 32, 32) batch, and
``numbaconv.explain`` naming the algorithm chosen for each layer.

Writes grouped_and_depthwise.png.

    python examples/05_grouped_and_depthwise.py [--out DIR]
"""

import time

import matplotlib.pyplot as plt
from _common import arguments

import numbaconv
import numbaconv.nn as nn

out = arguments(__doc__.splitlines()[0]).out
numbaconv.manual_seed(0)

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

print(f"Standard Conv2d parameters: {standard_params}")  # 128*64*3*3 + 128 = 73856
print(f"Grouped Conv2d parameters: {grouped_params}")  # 128*32*3*3 + 128 = 36992
print(f"Depthwise Conv2d parameters: {depthwise_params}")  # 64*1*3*3 + 64 = 640

# Beyond the tutorial: time per forward pass, and the algorithm numbaconv picks for it
x = numbaconv.randn(16, 64, 32, 32)
layers = {"standard": standard_conv, "groups=2": grouped_conv, "depthwise": depthwise_conv}
params = [standard_params, grouped_params, depthwise_params]
milliseconds = []
with numbaconv.no_grad():
    for name, layer in layers.items():
        layer(x)  # the first call compiles (or loads) the kernels: not timed
        start = time.perf_counter()
        for _ in range(5):
            layer(x)
        milliseconds.append(1e3 * (time.perf_counter() - start) / 5)
        plan = numbaconv.explain(x.shape, layer.weight.shape, padding=1, groups=layer.groups)
        print(f"{name:>10}: {layer}\n{'':>12}forward {milliseconds[-1]:.2f} ms, algorithm {plan.forward.algorithm}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
bars = left.bar(layers.keys(), params, color=["tab:blue", "tab:orange", "tab:green"])
left.bar_label(bars)
left.set(title="parameters (weight + bias)", yscale="log")
bars = right.bar(layers.keys(), milliseconds, color=["tab:blue", "tab:orange", "tab:green"])
right.bar_label(bars, fmt="%.1f ms")
right.set(title=f"forward time, input {x.shape}, {numbaconv.get_num_threads()} threads", ylabel="ms")
fig.tight_layout()
fig.savefig(out / "grouped_and_depthwise.png", dpi=100)
print(f"wrote {out / 'grouped_and_depthwise.png'}")
