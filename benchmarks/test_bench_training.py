"""pytest-benchmark of numbaconv training, float32, numbaconv's default thread count. Measured, never asserted.

Run from the repository root (the project's plain ``pytest`` only collects ``tests/``):

    pytest benchmarks/test_bench_training.py
    pytest benchmarks/test_bench_training.py -k LandmarkCNN

- ``test_train_step[SimpleCNN|LandmarkCNN]``: one training step at batch 64 with Adam (lr 1e-3) -- zero_grad,
  forward, CrossEntropyLoss, backward, step -- in train mode, on a fixed random batch (`models.make_train_step`,
  the same code `compare.py --sections training` times side by side with PyTorch).
- ``test_digits_epoch``: one epoch of the digits recipe (`models.digits_cnn` on ``numbaconv.data.digits()``,
  batch 32, Adam 3e-3; 45 steps, the last one of 30 images), each round a new shuffled order on the same model.

Each test runs its workload before timing: the first call compiles (or loads) the Numba kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

import numbaconv  # noqa: E402


@pytest.mark.parametrize("name", ["SimpleCNN", "LandmarkCNN"])
def test_train_step(benchmark, name):
    step = models.make_train_step(numbaconv, name, batch=64, seed=0, lr=1e-3)
    step()  # warm-up: compiles or loads the kernels
    step()  # settles workspaces and Adam's state
    benchmark.group = "training step, batch 64, Adam"
    benchmark.extra_info["threads"] = numbaconv.get_num_threads()
    benchmark(step)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    train, test = numbaconv.data.digits()
    return train.tensors[0].numpy(), train.tensors[1].numpy()


def test_digits_epoch(benchmark, digits):
    images, labels = digits
    model = models.build(numbaconv, "DigitsCNN", seed=0)
    optimizer = numbaconv.optim.Adam(model.parameters(), lr=3e-3)
    criterion = numbaconv.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)

    def epoch():
        return models.train_epoch(
            numbaconv, model, optimizer, criterion, images, labels, rng.permutation(len(labels)), 32
        )

    epoch()  # warm-up: every batch size of the epoch (32 and the last, 30) compiled or loaded
    benchmark.group = "digits recipe, one epoch (batch 32, Adam 3e-3)"
    benchmark.extra_info["threads"] = numbaconv.get_num_threads()
    benchmark.extra_info["steps"] = -(-len(labels) // 32)
    benchmark(epoch)
