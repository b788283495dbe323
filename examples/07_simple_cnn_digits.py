"""The tutorial's SimpleCNN, trained briefly on handwritten digits, on numbaconv.

From "PyTorch nn.Conv2d", section 2 ("Create a CNN with Multiple Conv2d Layers"): three conv-ReLU-pool
blocks and a Linear, written for CIFAR-10's 3 x 32 x 32 images. CIFAR-10 is a download; scikit-learn's
8 x 8 digits ship with it, so here each digit is upsampled 4x (every pixel repeated in a 4 x 4 block) to
32 x 32 and copied into 3 identical channels -- the input the tutorial's model expects, unchanged. Five
epochs of Adam take a few seconds once the kernels are compiled.

Writes simple_cnn_digits.png (the loss per batch, and test digits with their predictions).

    python examples/07_simple_cnn_digits.py [--out DIR] [--epochs N]
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments, as_rgb32

import numbaconv
import numbaconv.nn as nn
import numbaconv.nn.functional as F
import numbaconv.optim as optim
from numbaconv.data import DataLoader


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


args = arguments(__doc__.splitlines()[0], epochs=5)
numbaconv.manual_seed(0)
train_set, test_set = (as_rgb32(d) for d in numbaconv.data.digits())
print(f"digits upsampled to RGB 32 x 32: {len(train_set)} to train, {len(test_set)} to test")

model = SimpleCNN()
print(model)
optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
losses = []
start = time.perf_counter()
loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
for epoch in range(args.epochs):
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"epoch {epoch + 1}: mean loss {np.mean(losses[-len(loader) :]):.3f} ({time.perf_counter() - start:.1f} s)")

model.eval()
images, labels = test_set.tensors
with numbaconv.no_grad():
    predictions = model(images).argmax(dim=1).numpy()
accuracy = (predictions == labels.numpy()).mean()
print(f"test accuracy: {100 * accuracy:.2f}%")

fig = plt.figure(figsize=(12, 4.5))
ax = fig.add_subplot(1, 3, 1)
ax.plot(losses, lw=0.8)
ax.set(title="SimpleCNN training loss", xlabel="batch", ylabel="cross-entropy")
for i in range(8):
    ax = fig.add_subplot(2, 6, [3, 4, 5, 6, 9, 10, 11, 12][i])
    ax.imshow(images.numpy()[i].transpose(1, 2, 0))
    ok = predictions[i] == labels.numpy()[i]
    ax.set_title(f"pred {predictions[i]} (true {labels.numpy()[i]})", color="green" if ok else "red", fontsize=9)
    ax.axis("off")
fig.suptitle(f"SimpleCNN on digits upsampled to 3 x 32 x 32: test accuracy {100 * accuracy:.1f}%")
fig.tight_layout()
fig.savefig(args.out / "simple_cnn_digits.png", dpi=90)
print(f"wrote {args.out / 'simple_cnn_digits.png'}")
