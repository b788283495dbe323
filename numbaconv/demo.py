"""``numbaconv demo``: train a small CNN on scikit-learn's 8x8 handwritten digits and draw what it learned.

The model and recipe are the ones the test suite trains (two conv-ReLU-pool blocks and a Linear; Adam, lr
3e-3, batch 32, seeded): ten epochs reach about 97% on the 359 held-out digits. Written to ``out``:

- ``filters.png``: the 16 learned 3x3 filters of the first layer;
- ``feature_maps.png``: one test digit and what each layer's channels make of it;
- ``training_curves.png``: loss and accuracy per epoch;
- ``confusion_matrix.png``: which digits the model mistakes for which;
- ``digits_cnn.npz``: the checkpoint (``numbaconv.load`` reads it back; so does ``numpy.load``).

Needs the ``demo`` extra (scikit-learn, matplotlib, tqdm): ``pip install "numbaconv[demo]"``.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from . import data, manual_seed, nn, no_grad, optim, save
from .nn import functional as F

EXTRA = {"sklearn": "scikit-learn", "matplotlib": "matplotlib", "tqdm": "tqdm"}
INSTALL = 'pip install "numbaconv[demo]"'
PICTURES = ("filters.png", "feature_maps.png", "training_curves.png", "confusion_matrix.png")
CHECKPOINT = "digits_cnn.npz"


def check_extra() -> None:
    """Raise ImportError naming the pip command when a dependency of the demo is missing."""
    missing = []
    for module, distribution in EXTRA.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise ImportError(f"the demo needs {', '.join(missing)}, which is not installed: {INSTALL}")


class DigitsCNN(nn.Module):
    """(N, 1, 8, 8) -> conv 3x3 (16) -> ReLU -> pool -> conv 3x3 (32) -> ReLU -> pool -> (32, 2, 2) -> Linear -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def features(self, x):
        """The activations after each block: (N, 16, 8, 8) before pooling and (N, 32, 4, 4)."""
        a1 = F.relu(self.conv1(x))
        a2 = F.relu(self.conv2(F.max_pool2d(a1, 2)))
        return a1, a2

    def forward(self, x):
        _, a2 = self.features(x)
        return self.fc(F.max_pool2d(a2, 2).flatten(1))


def predict(model: nn.Module, dataset, batch_size: int = 512) -> np.ndarray:
    """Predicted labels for every sample of ``dataset``, in order."""
    model.eval()
    predictions = []
    with no_grad():
        for images, _ in data.DataLoader(dataset, batch_size=batch_size):
            predictions.append(model(images).argmax(dim=1).numpy())
    model.train()
    return np.concatenate(predictions)


def run(
    epochs: int = 10,
    out: str | Path = "numbaconv-demo",
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 3e-3,
    announce: Callable | None = None,
) -> float:
    """Train, write the pictures and the checkpoint to ``out``, print their paths; return the test accuracy.

    ``announce(write)``, when given, is a context manager around the training that may print one line
    through ``write`` (the CLI's "compiling kernels" notice, kept clear of the progress bar).
    """
    check_extra()
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manual_seed(seed)
    train_set, test_set = data.digits(seed=seed)
    test_labels = test_set.tensors[1].numpy()
    loader = data.DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=seed)
    model = DigitsCNN()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {"loss": [], "train": [], "test": []}

    def write(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    with announce(write) if announce is not None else nullcontext():
        started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            bar = tqdm(
                total=len(train_set),
                desc=f"epoch {epoch}/{epochs}",
                unit="img",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )
            loss_sum = correct = seen = 0
            for images, labels in loader:
                optimizer.zero_grad()
                logits = model(images)
                loss = criterion(logits, labels)
                loss.backward()
                optimizer.step()
                n = labels.shape[0]
                loss_sum += loss.item() * n
                correct += int((logits.argmax(dim=1) == labels).sum().item())
                seen += n
                bar.update(n)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%", refresh=False)
            test_accuracy = float((predict(model, test_set) == test_labels).mean())
            history["loss"].append(loss_sum / seen)
            history["train"].append(correct / seen)
            history["test"].append(test_accuracy)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%", test=f"{100 * test_accuracy:.1f}%"
            )
            bar.close()
        seconds = time.perf_counter() - started

    predictions = predict(model, test_set)
    accuracy = float((predictions == test_labels).mean())
    written = _draw(model, test_set, test_labels, predictions, history, out)
    checkpoint = out / CHECKPOINT
    save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epochs, "test_accuracy": accuracy},
        checkpoint,
    )
    for path in [*written, checkpoint]:
        print(f"wrote {path}")
    print(f"trained {epochs} epochs on {len(train_set)} digits in {seconds:.1f} s")
    return accuracy


# ------------------------------------------------------------------------------------------------ pictures


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure(figsize=(width, height), layout="constrained")


def _draw(model, test_set, labels, predictions, history, out: Path) -> list[Path]:
    paths = [out / name for name in PICTURES]
    _filters(model.conv1.weight.detach().numpy()[:, 0]).savefig(paths[0], dpi=120)
    _feature_maps(model, test_set, labels, predictions).savefig(paths[1], dpi=120)
    _curves(history).savefig(paths[2], dpi=120)
    _confusion(labels, predictions).savefig(paths[3], dpi=120)
    return paths


def _filters(weights: np.ndarray):
    """Each (3, 3) filter on a symmetric red-blue scale: red weights excite, blue inhibit."""
    fig = _figure(8, 2.6)
    fig.suptitle("learned first-layer filters (conv1: 16 x 1 x 3 x 3)")
    limit = np.abs(weights).max()
    axes = fig.subplots(2, 8)
    for i, ax in enumerate(axes.flat):
        image = ax.imshow(weights[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{i}", fontsize=8)
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def _feature_maps(model, test_set, labels, predictions):
    """The first test digit, then its 16 conv1 and 32 conv2 activation maps (after ReLU)."""
    image = test_set.tensors[0][:1]
    with no_grad():
        a1, a2 = (a.numpy()[0] for a in model.features(image))
    fig = _figure(10, 6.5)
    fig.suptitle(f"feature maps of one test digit (label {labels[0]}, predicted {predictions[0]})")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 3.2])
    ax = left.subplots()
    ax.imshow(image.numpy()[0, 0], cmap="gray_r")
    ax.set_title("input 8 x 8")
    ax.set_axis_off()
    top, bottom = right.subfigures(2, 1, height_ratios=[1, 2])
    for sub, maps, rows, title in (
        (top, a1, 2, "conv1 + ReLU: 16 maps, 8 x 8"),
        (bottom, a2, 4, "conv2 + ReLU: 32 maps, 4 x 4"),
    ):
        sub.suptitle(title, fontsize=10)
        for i, ax in enumerate(sub.subplots(rows, 8).flat):
            ax.imshow(maps[i], cmap="viridis")
            ax.set_axis_off()
    return fig


def _curves(history):
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = _figure(9, 3.5)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, history["loss"], "o-")
    loss_ax.set(title="training loss (cross-entropy)", xlabel="epoch", ylabel="mean loss")
    acc_ax.plot(epochs, 100 * np.array(history["train"]), "o-", label="train (during the epoch)")
    acc_ax.plot(epochs, 100 * np.array(history["test"]), "s-", label="test (after the epoch)")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="%")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    return fig


def _confusion(labels: np.ndarray, predictions: np.ndarray):
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    fig = _figure(5.5, 5)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if count > matrix.max() / 2 else "black",
            )
    accuracy = 100 * np.trace(matrix) / matrix.sum()
    ax.set(
        title=f"confusion matrix, test set ({accuracy:.2f}% correct)",
        xlabel="predicted",
        ylabel="true",
        xticks=range(10),
        yticks=range(10),
    )
    return fig
