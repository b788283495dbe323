"""The benchmark models and the digits recipe, written once against "the library" so that numbaconv and PyTorch
run literally the same code: ``simple_cnn(numbaconv.nn)`` and ``simple_cnn(torch.nn)`` are the same network.

- `simple_cnn`: the tutorial's SimpleCNN (3 x conv3x3-ReLU-max_pool2d on 3x32x32, ``x.view(-1, 64*4*4)``,
  Linear 1024 -> 10);
- `landmark_cnn`: the tutorial's LandmarkCNN ((Conv-BatchNorm-ReLU-MaxPool) x 3, Flatten, Linear 2048 -> 512,
  ReLU, Dropout(0.5), Linear 512 -> 10; ``relu1`` reused after ``fc1``, as the tutorial does);
- `digits_cnn`: the issue's digits recipe network (two conv-ReLU-pool blocks and a Linear, 1x8x8 -> 10).

`seeded_state` draws a state_dict with PyTorch's default initial distributions from a numpy seed, so both
libraries can start from the same weights; `train_epoch` and `accuracy` are the digits recipe's loop, fed
from numpy arrays with a batch order drawn from numpy (`epoch_orders`), identical for both libraries.

Only the standard library is imported at module level: `startup_probe.py` imports this module inside the
process whose start-up it times.
"""

from __future__ import annotations

import math


def simple_cnn(nn):
    F = nn.functional

    class SimpleCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
            self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.fc = nn.Linear(64 * 4 * 4, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.max_pool2d(F.relu(self.conv3(x)), 2)
            x = x.view(-1, 64 * 4 * 4)
            return self.fc(x)

    return SimpleCNN()


def landmark_cnn(nn, num_classes: int = 10):
    class LandmarkCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1)
            self.bn1 = nn.BatchNorm2d(32)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(kernel_size=2)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.bn2 = nn.BatchNorm2d(64)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(kernel_size=2)
            self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
            self.bn3 = nn.BatchNorm2d(128)
            self.relu3 = nn.ReLU()
            self.pool3 = nn.MaxPool2d(kernel_size=2)
            self.flatten = nn.Flatten()
            self.fc1 = nn.Linear(128 * 4 * 4, 512)
            self.dropout = nn.Dropout(0.5)
            self.fc2 = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
            x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
            x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
            x = self.flatten(x)
            x = self.dropout(self.relu1(self.fc1(x)))
            return self.fc2(x)

    return LandmarkCNN()


def digits_cnn(nn):
    """(N, 1, 8, 8) -> conv3x3(16)-ReLU-pool -> conv3x3(32)-ReLU-pool -> (32, 2, 2) -> Linear 128 -> 10."""
    F = nn.functional

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
            self.fc = nn.Linear(32 * 2 * 2, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            return self.fc(x.flatten(1))

    return DigitsCNN()


# name -> (builder, input shape of one sample)
MODELS = {
    "SimpleCNN": (simple_cnn, (3, 32, 32)),
    "LandmarkCNN": (landmark_cnn, (3, 32, 32)),
    "DigitsCNN": (digits_cnn, (1, 8, 8)),
}


def seeded_state(model, seed: int) -> dict:
    """numpy arrays for every entry of ``model.state_dict()``, drawn from ``seed`` with PyTorch's defaults.

    Conv/Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what PyTorch's kaiming_uniform_ with
    a=sqrt(5) and its bias init amount to); BatchNorm: weight 1, bias 0, running mean 0, running var 1,
    num_batches_tracked 0. Works on either library's model (it only reads names and shapes).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    params = {name: tuple(p.shape) for name, p in model.named_parameters()}
    state = {}
    for name, value in model.state_dict().items():
        shape = tuple(value.shape)
        prefix, _, leaf = name.rpartition(".")
        weight_shape = params.get(f"{prefix}.weight" if prefix else "weight", ())
        if leaf == "num_batches_tracked":
            state[name] = np.zeros(shape, dtype=np.int64)
        elif leaf == "running_var" or (leaf == "weight" and len(shape) == 1):
            state[name] = np.ones(shape, dtype=np.float32)
        elif leaf == "running_mean" or (leaf == "bias" and len(weight_shape) < 2):
            state[name] = np.zeros(shape, dtype=np.float32)
        else:  # a Conv/Linear weight or bias
            fan_in = math.prod(weight_shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            state[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return state


def epoch_orders(n: int, epochs: int, seed: int) -> list:
    """One shuffled order of ``range(n)`` per epoch, from a numpy generator seeded with ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def train_epoch(lib, model, optimizer, criterion, images, labels, order, batch_size: int) -> float:
    """One epoch over numpy ``images``/``labels`` in ``order``, batches of ``batch_size`` (the last one smaller).

    Each batch: zero_grad, forward, loss, backward, step. Returns the mean loss (``loss.item()`` per batch).
    """
    running, batches = 0.0, 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        x, y = lib.from_numpy(images[index]), lib.from_numpy(labels[index])
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running += loss.item()
        batches += 1
    return running / batches


def accuracy(lib, model, images, labels, batch_size: int = 256) -> float:
    """Fraction of ``images`` classified as ``labels``, in eval mode under no_grad (train mode restored)."""
    model.eval()
    correct = 0
    with lib.no_grad():
        for start in range(0, len(labels), batch_size):
            x = lib.from_numpy(images[start : start + batch_size])
            y = lib.from_numpy(labels[start : start + batch_size])
            correct += int((model(x).argmax(dim=1) == y).sum().item())
    model.train()
    return correct / len(labels)


def build(lib, name: str, seed: int):
    """Model ``name`` of library ``lib`` (the numbaconv or torch module), in train mode, with `seeded_state`."""
    builder, _ = MODELS[name]
    model = builder(lib.nn)
    model.load_state_dict({key: lib.from_numpy(value) for key, value in seeded_state(model, seed).items()})
    model.train()
    return model


def make_train_step(lib, name: str, batch: int = 64, seed: int = 0, lr: float = 1e-3):
    """A no-argument training step of model ``name`` on a fixed random batch: zero_grad, forward,
    CrossEntropyLoss, backward, Adam step. Inputs: standard normal float32 images, labels in 0..9, from
    ``seed`` (numpy), so both libraries see the same numbers."""
    import numpy as np

    lib.manual_seed(seed)  # Dropout's masks (each library draws its own)
    model = build(lib, name, seed)
    rng = np.random.default_rng(seed)
    x = lib.from_numpy(rng.standard_normal((batch, *MODELS[name][1]), dtype=np.float32))
    y = lib.from_numpy(rng.integers(0, 10, batch).astype(np.int64))
    optimizer = lib.optim.Adam(model.parameters(), lr=lr)
    criterion = lib.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step
