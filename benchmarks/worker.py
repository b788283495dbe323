"""The worker side of `compare.py`: one library per process, answering requests (see `harness.py`).

    python benchmarks/worker.py numbaconv|torch --threads T [--algorithm A]      # a long-lived worker
    python benchmarks/worker.py numbaconv|torch --memory-probe SHAPE [...]     # one peak-memory measurement

A backend wraps one library (its array-level conv2d and gradients, its thread count, its module for the
models); `WorkerSession` holds the operations `compare.py` requests, ``op_<name>``, one per kind of workload.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import models  # noqa: E402
from harness import TimingSession, error_text, serve  # noqa: E402
from shapes import ConvShape, random_inputs, select  # noqa: E402

LIBRARIES = ("numbaconv", "torch")
GRAD_PASSES = ("forward", "grad_input", "grad_weight")
MEMORY_CALLS = 3  # full-size forward+backward calls of a memory probe


class NumbaconvBackend:
    """numbaconv's array API, with the thread count and algorithm fixed for the process."""

    name = "numbaconv"

    def __init__(self, threads: int, algorithm: str) -> None:
        if (REPO / "numbaconv" / "__init__.py").exists() and str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))  # a checkout benchmarks its own source, installed or not
        start = time.perf_counter()
        import numbaconv

        self.import_seconds = time.perf_counter() - start
        numbaconv.set_num_threads(threads)
        self.nc = self.lib = numbaconv
        self.algorithm = algorithm

    def set_threads(self, n: int) -> None:
        self.nc.set_num_threads(n)

    def get_threads(self) -> int:
        return self.nc.get_num_threads()

    def info(self) -> dict:
        return {
            "version": getattr(self.nc, "__version__", "?"),
            "path": str(Path(self.nc.__file__).parent),
            "threads": self.nc.get_num_threads(),
            "algorithm": self.algorithm,
            "import_seconds": self.import_seconds,
        }

    def calls(self, shape: ConvShape, arrays: dict) -> dict[str, Callable[[], object]]:
        nc = self.nc
        kw = dict(shape.conv_kwargs, algorithm=self.algorithm)
        x, w, b, g = arrays["x"], arrays["weight"], arrays["bias"], arrays["grad_output"]

        def forward():
            return nc.conv2d(x, w, b, **kw)

        def forward_backward():
            nc.conv2d(x, w, b, **kw)
            nc.conv2d_grad_input(x.shape, w, g, **kw)
            return nc.conv2d_grad_weight(x, w.shape, g, **kw)

        return {"forward": forward, "forward+backward": forward_backward}

    def algorithms(self, shape: ConvShape) -> dict[str, str | None]:
        """The algorithm numbaconv runs for each pass of ``shape``, as `explain` reports it."""
        if self.algorithm != "auto":
            return dict.fromkeys(GRAD_PASSES, self.algorithm)
        plan = self.nc.explain(shape.input_shape, shape.weight_shape, dtype="float32", **shape.conv_kwargs)
        return {p: decision_label(getattr(plan, p, None)) for p in GRAD_PASSES}


def decision_label(decision) -> str | None:
    """``explain``'s choice for one pass in a few characters: ``im2col``, ``winograd(4)`` (F(4x4,3x3))."""
    if decision is None:
        return None
    options = getattr(decision, "options", None) or {}
    suffix = f"({','.join(str(v) for v in options.values())})" if options else ""
    return f"{decision.algorithm}{suffix}"


class TorchBackend:
    """PyTorch's ``F.conv2d`` and autograd, with the intra-op thread count fixed for the process."""

    name = "torch"

    def __init__(self, threads: int, algorithm: str) -> None:
        start = time.perf_counter()
        import torch
        import torch.nn.functional

        self.import_seconds = time.perf_counter() - start
        torch.set_num_threads(threads)
        self.torch = self.lib = torch
        self.conv2d = torch.nn.functional.conv2d

    def set_threads(self, n: int) -> None:
        self.torch.set_num_threads(n)

    def get_threads(self) -> int:
        return self.torch.get_num_threads()

    def info(self) -> dict:
        return {
            "version": self.torch.__version__,
            "path": str(Path(self.torch.__file__).parent),
            "threads": self.torch.get_num_threads(),
            "import_seconds": self.import_seconds,
        }

    def calls(self, shape: ConvShape, arrays: dict) -> dict[str, Callable[[], object]]:
        torch, conv2d, kw = self.torch, self.conv2d, shape.conv_kwargs
        x, w, b, g = (torch.from_numpy(arrays[k]) for k in ("x", "weight", "bias", "grad_output"))
        x_leaf = x.clone().requires_grad_()
        w_leaf = w.clone().requires_grad_()

        def forward():
            with torch.no_grad():
                return conv2d(x, w, b, **kw)

        def forward_backward():
            x_leaf.grad = None  # fresh gradients each step, no accumulation
            w_leaf.grad = None
            conv2d(x_leaf, w_leaf, b, **kw).backward(g)

        return {"forward": forward, "forward+backward": forward_backward}

    def algorithms(self, shape: ConvShape) -> dict[str, str | None]:
        return {}


BACKENDS = {"numbaconv": NumbaconvBackend, "torch": TorchBackend}


class WorkerSession(TimingSession):
    """One worker process: its backend and the armed workload (see `harness.TimingSession`)."""

    def op_info(self) -> dict:
        return self.backend.info()

    def op_setup(self, shape: str, target: float, seed: int) -> dict:
        """Suite: arm both passes of ``shape`` (workload ``shape``, keys `PASSES`)."""
        conv = select([shape])[0]
        reply = self.arm(shape, self.backend.calls(conv, random_inputs(conv, seed)), target)
        try:
            reply["algorithms"] = self.backend.algorithms(conv)
        except Exception as exc:
            reply["algorithms"] = {"error": error_text(exc)}
        return reply

    def op_train_setup(self, model: str, batch: int, lr: float, seed: int, target: float) -> dict:
        """Training: arm one training step of ``model`` (workload ``train:<model>``, key ``step``)."""
        step = models.make_train_step(self.backend.lib, model, batch=batch, seed=seed, lr=lr)
        return self.arm(f"train:{model}", {"step": step}, target)

    def op_threads_setup(self, shape: str, counts: list[int], target: float, seed: int) -> dict:
        """Threads: arm forward+backward of ``shape`` at each thread count (keys ``forward+backward@<n>``)."""
        conv = select([shape])[0]
        call = self.backend.calls(conv, random_inputs(conv, seed))["forward+backward"]
        keys = {f"forward+backward@{n}": n for n in counts}
        return self.arm(f"threads:{shape}", dict.fromkeys(keys, call), target, threads=keys)

    def op_digits_export(self, path: str) -> dict:
        """Digits: save ``numbaconv.data.digits()`` as numpy arrays (numbaconv's worker), for both libraries."""
        train, test = self.backend.lib.data.digits()
        arrays = {
            "train_images": train.tensors[0].numpy(),
            "train_labels": train.tensors[1].numpy(),
            "test_images": test.tensors[0].numpy(),
            "test_labels": test.tensors[1].numpy(),
        }
        np.savez(path, **arrays)
        return {name: list(array.shape) for name, array in arrays.items()}

    def op_digits(self, path: str, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
        """Digits: warm up on a throwaway model, then train a fresh one for ``epochs`` and time it."""
        lib = self.backend.lib
        with np.load(path) as data:
            images, labels = data["train_images"], data["train_labels"]
            test_images, test_labels = data["test_images"], data["test_labels"]

        def fresh():
            model = models.build(lib, "DigitsCNN", seed)
            return model, lib.optim.Adam(model.parameters(), lr=lr), lib.nn.CrossEntropyLoss()

        start = time.perf_counter()
        model, optimizer, criterion = fresh()
        remainder = len(labels) % batch_size or batch_size  # the last batch's size
        warm_order = np.concatenate([np.arange(batch_size), np.arange(remainder)])
        models.train_epoch(lib, model, optimizer, criterion, images, labels, warm_order, batch_size)
        models.accuracy(lib, model, test_images, test_labels)
        warmup = time.perf_counter() - start

        model, optimizer, criterion = fresh()
        orders = models.epoch_orders(len(labels), epochs, seed)
        start = time.perf_counter()
        for order in orders:
            loss = models.train_epoch(lib, model, optimizer, criterion, images, labels, order, batch_size)
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "warmup_seconds": warmup,
            "final_loss": loss,
            "test_accuracy": models.accuracy(lib, model, test_images, test_labels),
        }

    def op_warm_memory(self, shape: str, seed: int) -> dict:
        """Memory: run the calls a memory probe of ``shape`` makes once, so that its JIT cache is warm."""
        start = time.perf_counter()
        for conv in memory_shapes(select([shape])[0]):
            self.backend.calls(conv, random_inputs(conv, seed))["forward+backward"]()
        return {"seconds": time.perf_counter() - start}


def memory_shapes(shape: ConvShape) -> tuple[ConvShape, ConvShape]:
    """The batch-1 version of ``shape`` (it loads the kernels) and ``shape`` itself."""
    return shape._replace(n=1), shape


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's peak resident set (VmHWM, and with it ru_maxrss) to its current one (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(library: str, shape_name: str, threads: int, algorithm: str, seed: int, batch1: bool) -> dict:
    """Peak resident memory of forward+backward of one shape, in this fresh process (MiB).

    ``base``: VmRSS after imports and input creation. The peak is then reset (/proc/self/clear_refs), so that
    ru_maxrss only tells what happens from here on. Without ``batch1``: `MEMORY_CALLS` full-size calls, and
    ``peak`` = ru_maxrss at the end minus base, the kernels they load included. With it, the breakdown: one
    call at batch 1 first (it loads the kernels: ``loaded`` = VmRSS after it, minus base), then the full-size
    calls: ``peak_excl_load`` = their peak (reset again before them) minus VmRSS after the batch-1 call, and
    ``peak_with_batch1`` = the process's peak minus base, with whatever the batch-1 call loaded that the
    full-size calls do not use.
    """
    backend = BACKENDS[library](threads, algorithm)
    convs = memory_shapes(select([shape_name])[0])
    calls = [backend.calls(conv, random_inputs(conv, seed))["forward+backward"] for conv in convs[not batch1 :]]
    gc.collect()

    def maxrss_kib() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux

    before_kib, base_kib = maxrss_kib(), _status_kib("VmRSS")
    if base_kib is None:
        return {"error": "needs Linux's /proc/self/status"}
    mib = 1 / 1024
    reply = {"base_mib": base_kib * mib, "import_peak_above_base_mib": (before_kib - base_kib) * mib}
    reset = _reset_peak()
    if not batch1:
        for _ in range(MEMORY_CALLS):
            calls[0]()
        return {**reply, "peak_mib": (maxrss_kib() - base_kib) * mib, "peak_reset": reset}
    small, full = calls
    small()
    gc.collect()
    loaded_kib, small_peak_kib = _status_kib("VmRSS"), maxrss_kib()
    reset = _reset_peak() and reset
    for _ in range(MEMORY_CALLS):
        full()
    end_kib = maxrss_kib()
    reply |= {
        "loaded_mib": (loaded_kib - base_kib) * mib,
        "peak_with_batch1_mib": (max(small_peak_kib, end_kib) - base_kib) * mib,
        "peak_excl_load_mib": (end_kib - loaded_kib) * mib if reset else None,
        "peak_reset": reset,
    }
    if library == "numbaconv" and algorithm == "auto":
        reply["batch1_same_algorithms"] = backend.algorithms(convs[0]) == backend.algorithms(convs[1])
    return reply


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A compare.py worker (one library per process).")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--algorithm", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-probe", metavar="SHAPE", help="measure the peak memory of SHAPE and exit")
    parser.add_argument("--batch1", action="store_true", help="memory probe: the breakdown, a batch-1 call first")
    args = parser.parse_args(argv)
    if args.memory_probe:
        reply = memory_probe(args.library, args.memory_probe, args.threads, args.algorithm, args.seed, args.batch1)
        print(json.dumps(reply))
    else:
        serve(lambda: WorkerSession(BACKENDS[args.library](args.threads, args.algorithm)), args.library)


if __name__ == "__main__":
    main()
