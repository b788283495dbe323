"""The process whose start-up `compare.py --sections startup` times (wall clock around this whole process).

    python benchmarks/startup_probe.py numbaconv|torch THREADS

It imports the library, sets THREADS threads, runs one conv forward+backward (Conv2d(16, 32, 3, padding=1) on
randn(8, 16, 32, 32), ``.sum().backward()``) and one training step of the tutorial's SimpleCNN (batch 8,
CrossEntropyLoss, Adam), then prints one JSON line with its own checkpoints, in seconds since this script's
first statement: ``import_s``, ``conv_s``, ``step_s``. Nothing else is imported before the library (the
benchmarks' `models` module only needs the standard library), so both libraries pay for the same things.
"""

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    library, threads = sys.argv[1], int(sys.argv[2])
    repo = Path(__file__).resolve().parent.parent
    if library == "numbaconv":
        if (repo / "numbaconv" / "__init__.py").exists() and str(repo) not in sys.path:
            sys.path.insert(0, str(repo))  # a checkout measures its own source, installed or not
        import numbaconv as lib
    elif library == "torch":
        import torch as lib
    else:
        sys.exit(f"unknown library {library!r}")
    lib.set_num_threads(threads)
    marks = {"import_s": time.perf_counter() - T0}

    import models

    lib.manual_seed(0)
    x = lib.randn(8, 16, 32, 32, requires_grad=True)
    conv = lib.nn.Conv2d(16, 32, 3, padding=1)
    conv(x).sum().backward()
    marks["conv_s"] = time.perf_counter() - T0

    model = models.simple_cnn(lib.nn)
    optimizer = lib.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = lib.randn(8, 3, 32, 32), lib.arange(8)
    optimizer.zero_grad()
    loss = lib.nn.CrossEntropyLoss()(model(images), labels)
    loss.backward()
    optimizer.step()
    marks["step_s"] = time.perf_counter() - T0
    marks["loss"] = float(loss.item())
    print(json.dumps(marks), flush=True)


if __name__ == "__main__":
    main()
