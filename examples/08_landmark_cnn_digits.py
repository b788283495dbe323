"""The tutorial's LandmarkCNN (conv + batch norm + pooling, dropout), trained briefly on digits, on numbaconv.

From "PyTorch nn.Conv2d", section 4 ("Implement a Real-World Example"): three conv-BatchNorm-ReLU-pool
blocks and a two-layer classifier with dropout, for 3 x 32 x 32 images of landmarks. Landmark photos are
not bundled anywhere, so, as in 07_simple_cnn_digits.py, scikit-learn's 8 x 8 digits stand in: each digit
upsampled 4x (every pixel repeated in a 4 x 4 block) to 32 x 32 and copied into 3 identical channels; the
model is the tutorial's, unchanged, with num_classes=10 for the ten digits. Training mode (batch
statistics, dropout on) and evaluation mode (running statistics, dropout off) matter here: ``model.eval()``
before testing, as in PyTorch.

Writes landmark_cnn_digits.png (the loss per batch, the test accuracy along the way, the BatchNorm running
means).

    python examples/08_landmark_cnn_digits.py [--out DIR] [--epochs N]
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from _common import arguments, as_rgb32

import numbaconv
import numbaconv.nn as nn
import numbaconv.optim as optim
from numbaconv.data import DataLoader


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


def evaluate(model, dataset):
    model.eval()  # running BatchNorm statistics, no dropout
    images, labels = dataset.tensors
    with numbaconv.no_grad():
        predictions = model(images).argmax(dim=1).numpy()
    model.train()
    return (predictions == labels.numpy()).mean()


args = arguments(__doc__.splitlines()[0], epochs=1)
numbaconv.manual_seed(0)
train_set, test_set = (as_rgb32(d) for d in numbaconv.data.digits())

# Create the model
model = LandmarkCNN(num_classes=10)  # ten digits instead of ten landmarks
sample_input = numbaconv.randn(1, 3, 32, 32)  # Batch size 1, 3 channels, 32x32 image
model.eval()  # a batch of one has no batch statistics to train on
print(f"Input shape: {sample_input.shape}")
print(f"Output shape: {model(sample_input).shape}")  # (1, 10)
model.train()
print(f"{sum(p.numel() for p in model.parameters())} parameters")

optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
losses, checkpoints = [], []  # checkpoints: (batches seen, test accuracy), five per epoch
every = max(1, len(loader) // 5)
start = time.perf_counter()
for epoch in range(args.epochs):
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if len(losses) % every == 0:
            checkpoints.append((len(losses), evaluate(model, test_set)))
    print(
        f"epoch {epoch + 1}: mean loss {np.mean(losses[-len(loader) :]):.3f}, "
        f"test accuracy {100 * evaluate(model, test_set):.2f}% ({time.perf_counter() - start:.1f} s)"
    )

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
axes[0].plot(losses, lw=0.8)
axes[0].set(title="LandmarkCNN training loss", xlabel="batch", ylabel="cross-entropy")
axes[1].plot([b for b, _ in checkpoints], [100 * a for _, a in checkpoints], "o-")
axes[1].set(title="test accuracy (model.eval())", xlabel="batch", ylabel="%")
for name, bn in (("bn1", model.bn1), ("bn2", model.bn2), ("bn3", model.bn3)):
    label = f"{name}: {bn.num_features} channels, {bn.num_batches_tracked.item()} batches tracked"
    axes[2].plot(bn.running_mean.numpy(), ".", label=label)
axes[2].set(title="BatchNorm running means per channel", xlabel="channel")
axes[2].legend(fontsize=7)
fig.suptitle("LandmarkCNN on digits upsampled to 3 x 32 x 32")
fig.tight_layout()
fig.savefig(args.out / "landmark_cnn_digits.png", dpi=90)
print(f"wrote {args.out / 'landmark_cnn_digits.png'}")
