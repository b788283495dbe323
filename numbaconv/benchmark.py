"""The benchmark shape suite, and ``numbaconv bench``: numbaconv (and PyTorch, when it imports) timed on it.

`SUITE` is the one list of benchmark layers: ``benchmarks/compare.py`` and ``benchmarks/test_bench_engine.py``
take it from here, so the installed package can run it too. Each entry is one conv2d layer, (N, C, H=W) -> K
with a square k x k kernel; `random_inputs` builds the same float32 arrays from a seed for every library.

`run` times each library in its own process (``python -m numbaconv.benchmark --worker LIBRARY``), one after
the other, so the two thread pools never share a process; per shape and pass it warms up (numbaconv's first
call compiles or loads its kernels: never timed), then takes the median of a few rounds of back-to-back calls.
It is a quick look; ``benchmarks/compare.py`` in a checkout interleaves the libraries' rounds for a fairer
comparison on a busy machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

PASSES = ("forward", "forward+backward")
LIBRARIES = ("numbaconv", "torch")
GRAD_PASSES = ("forward", "grad_input", "grad_weight")


class ConvShape(NamedTuple):
    """One convolution layer: input (n, c, h, h), weight (k, c // groups, ksize, ksize)."""

    name: str
    n: int
    c: int
    h: int
    k: int
    ksize: int
    stride: int
    padding: int
    dilation: int
    groups: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.h)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c // self.groups, self.ksize, self.ksize)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        span = self.dilation * (self.ksize - 1) + 1
        size = (self.h + 2 * self.padding - span) // self.stride + 1
        return (self.n, self.k, size, size)

    @property
    def conv_kwargs(self) -> dict[str, int]:
        """The keyword arguments shared by numbaconv's and PyTorch's conv2d (and the gradients)."""
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    @property
    def winograd_eligible(self) -> bool:
        """3x3, stride 1 (any dilation): the shapes the "winograd" algorithm serves."""
        return self.ksize == 3 and self.stride == 1

    def flops(self, pass_: str = "forward") -> int:
        """Direct-convolution FLOPs (a multiply-add counts 2); forward+backward adds both gradients."""
        n, k, oh, ow = self.output_shape
        forward = 2 * n * k * oh * ow * (self.c // self.groups) * self.ksize * self.ksize
        return forward if pass_ == "forward" else 3 * forward

    def describe(self) -> str:
        """The layer in the issue's notation, e.g. ``8x64x56x56 -> 64, k3 s1 p1 d1 g1``."""
        n, c, h, w = self.input_shape
        return (
            f"{n}x{c}x{h}x{w} -> {self.k}, k{self.ksize} s{self.stride} p{self.padding} d{self.dilation} g{self.groups}"
        )


# fmt: off
SUITE: tuple[ConvShape, ...] = (
    #          name         N     C     H      K   k   s   p   d     g
    ConvShape("tutorial",   40,   40,   32,   100,  3,  2,  3,  1,    1),
    ConvShape("cifar_c1",   64,    3,   32,    32,  3,  1,  1,  1,    1),
    ConvShape("cifar_c2",   64,   32,   16,    64,  3,  1,  1,  1,    1),
    ConvShape("cifar_c3",   64,   64,    8,   128,  3,  1,  1,  1,    1),
    ConvShape("resnet56",    8,   64,   56,    64,  3,  1,  1,  1,    1),
    ConvShape("resnet28",    8,  128,   28,   128,  3,  1,  1,  1,    1),
    ConvShape("resnet14",    8,  256,   14,   256,  3,  1,  1,  1,    1),
    ConvShape("resnet7",     8,  512,    7,   512,  3,  1,  1,  1,    1),
    ConvShape("resnet1x1",   8,  256,   14,  1024,  1,  1,  0,  1,    1),
    ConvShape("stem7x7",     8,    3,  224,    64,  7,  2,  3,  1,    1),
    ConvShape("depthwise",   8,  256,   28,   256,  3,  1,  1,  1,  256),
    ConvShape("dilated",     8,   64,   56,    64,  3,  1,  2,  2,    1),
)
# fmt: on

BY_NAME: dict[str, ConvShape] = {shape.name: shape for shape in SUITE}


def select(names: Iterable[str] | None = None) -> tuple[ConvShape, ...]:
    """The suite entries called ``names`` (in the order given), or the whole suite for None."""
    if names is None:
        return SUITE
    names = list(names)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; the suite has {list(BY_NAME)}")
    return tuple(BY_NAME[name] for name in names)


def random_inputs(shape: ConvShape, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """x, weight, bias and grad_output for ``shape``, C-contiguous, reproducible from ``seed``.

    The weight is scaled by 1/sqrt(fan_in) (as PyTorch's init does) so activations stay O(1) and no
    denormals slow either library down.
    """
    rng = np.random.default_rng(seed)
    fan_in = (shape.c // shape.groups) * shape.ksize * shape.ksize
    arrays = {
        "x": rng.standard_normal(shape.input_shape),
        "weight": rng.standard_normal(shape.weight_shape) / np.sqrt(fan_in),
        "bias": rng.standard_normal(shape.k),
        "grad_output": rng.standard_normal(shape.output_shape),
    }
    return {name: np.ascontiguousarray(array, dtype=dtype) for name, array in arrays.items()}


# ------------------------------------------------------------------------------------- worker: one library


def _numbaconv_calls(shape: ConvShape, arrays: dict) -> dict[str, Callable[[], object]]:
    import numbaconv as nc

    kw = shape.conv_kwargs
    x, w, b, g = arrays["x"], arrays["weight"], arrays["bias"], arrays["grad_output"]

    def forward_backward():
        nc.conv2d(x, w, b, **kw)
        nc.conv2d_grad_input(x.shape, w, g, **kw)
        return nc.conv2d_grad_weight(x, w.shape, g, **kw)

    return {"forward": lambda: nc.conv2d(x, w, b, **kw), "forward+backward": forward_backward}


def _torch_calls(shape: ConvShape, arrays: dict) -> dict[str, Callable[[], object]]:
    import torch
    from torch.nn.functional import conv2d

    kw = shape.conv_kwargs
    x, w, b, g = (torch.from_numpy(arrays[k]) for k in ("x", "weight", "bias", "grad_output"))
    x_leaf, w_leaf = x.clone().requires_grad_(), w.clone().requires_grad_()

    def forward():
        with torch.no_grad():
            return conv2d(x, w, b, **kw)

    def forward_backward():
        x_leaf.grad = w_leaf.grad = None
        conv2d(x_leaf, w_leaf, b, **kw).backward(g)

    return {"forward": forward, "forward+backward": forward_backward}


def _seconds_per_call(fn: Callable[[], object], reps: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps
    finally:
        gc.enable()


def measure(library: str, names: list[str], threads: int, target: float, rounds: int, seed: int = 0) -> dict:
    """Milliseconds per call of each pass of each shape for ``library`` (in this process)."""
    start = time.perf_counter()
    if library == "numbaconv":
        import numbaconv as lib

        lib.set_num_threads(threads)
        calls_of = _numbaconv_calls
    else:
        import torch as lib

        lib.set_num_threads(threads)
        calls_of = _torch_calls
    result: dict = {"version": lib.__version__, "threads": threads, "import_s": time.perf_counter() - start}
    shapes = {}
    for shape in select(names):
        entry: dict = {"ms": {}, "first_call_ms": {}, "errors": {}}
        try:
            calls = calls_of(shape, random_inputs(shape, seed))
            for pass_, fn in calls.items():
                t0 = time.perf_counter()
                fn()  # compiles or loads the kernels (numbaconv), allocates workspaces: never timed
                entry["first_call_ms"][pass_] = 1e3 * (time.perf_counter() - t0)
                single = _seconds_per_call(fn, 1)
                reps = max(1, min(10_000, math.ceil(target / max(single, 1e-9))))
                entry["ms"][pass_] = 1e3 * statistics.median(_seconds_per_call(fn, reps) for _ in range(rounds))
            if library == "numbaconv":
                plan = lib.explain(shape.input_shape, shape.weight_shape, **shape.conv_kwargs)
                entry["algorithms"] = [_label(getattr(plan, p)) for p in GRAD_PASSES]
        except Exception as exc:  # one failing shape costs that shape, not the run
            entry["errors"]["setup"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        shapes[shape.name] = entry
    result["shapes"] = shapes
    return result


def _label(decision) -> str:
    """``im2col``, ``winograd(4)`` (F(4x4,3x3)): explain's choice for one pass in a few characters."""
    options = decision.options or {}
    return decision.algorithm + (f"({','.join(str(v) for v in options.values())})" if options else "")


# ------------------------------------------------------------------------------------- driver: the table


def _run_worker(library: str, names: list[str], threads: int, target: float, rounds: int) -> dict:
    """``measure`` in a fresh process; its stderr (progress, the compile notice) passes through."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, NUMBACONV_PRECOMPILE="0")  # no compile-ahead helper beside the timed calls
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-m",
        "numbaconv.benchmark",
        "--worker",
        library,
        "--shapes",
        ",".join(names),
        "--threads",
        str(threads),
        "--target",
        str(target),
        "--rounds",
        str(rounds),
    ]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{library} worker failed (exit status {proc.returncode})")
    return json.loads(lines[-1])


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run(
    shapes: Iterable[ConvShape] | None = None, quick: bool = False, threads: int | None = None, torch: bool = True
) -> dict:
    """Time the suite (or ``shapes``) with numbaconv and, if it imports, PyTorch, each on ``threads`` threads
    (default: as many as Numba starts, i.e. every core); print the table; return the measurements."""
    if threads is None:
        import numba

        threads = numba.config.NUMBA_NUM_THREADS
    names = [s.name for s in (SUITE if shapes is None else shapes)]
    target, rounds = (0.05, 3) if quick else (0.2, 5)
    results, missing = {}, {}
    from . import precompile

    precompile.wait_for_helper()
    for library in LIBRARIES:
        if library == "torch" and not torch:
            missing[library] = "skipped (--no-torch)"
            continue
        if library == "torch" and not _torch_available():
            missing[library] = "not installed"
            continue
        print(f"timing {library} on {len(names)} shapes, {threads} threads ...", file=sys.stderr, flush=True)
        try:
            results[library] = _run_worker(library, names, threads, target, rounds)
        except RuntimeError as exc:
            missing[library] = str(exc)
    print("\n".join(render(names, results, missing, target, rounds)))
    return results


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def render(names: list[str], results: dict, missing: dict, target: float, rounds: int) -> list[str]:
    libs = [
        f"{lib} {results[lib]['version']} ({results[lib]['threads']} threads)"
        if lib in results
        else f"{lib}: {missing.get(lib, 'not measured')}"
        for lib in LIBRARIES
    ]
    lines = [
        " vs ".join(libs) + "; float32",
        f"median of {rounds} rounds of >= {target:g} s of calls per shape and pass, after a warm-up call",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "",
    ]
    columns = f"{'numbaconv':>10} {'torch':>10} {'ratio':>6}"
    lines += [
        f"{'':<10} | {'forward (ms)':^28} | {'forward+backward (ms)':^28} |",
        f"{'shape':<10} | {columns} | {columns} | numbaconv algorithm: fwd | grad_in | grad_w",
    ]
    lines.append("-" * len(lines[-1]))
    ratios: dict[str, list[float]] = {p: [] for p in PASSES}
    for name in names:
        cells, errors = [], []
        for pass_ in PASSES:
            ours, theirs = (
                results.get(lib, {}).get("shapes", {}).get(name, {}).get("ms", {}).get(pass_) for lib in LIBRARIES
            )
            ratio = theirs / ours if ours and theirs else None
            if ratio is not None:
                ratios[pass_].append(ratio)
            cells.append(f"{_fmt(ours):>10} {_fmt(theirs):>10} {'-' if ratio is None else f'{ratio:.2f}':>6}")
        for lib, res in results.items():
            errors += [f"{lib}: {e}" for e in res["shapes"].get(name, {}).get("errors", {}).values()]
        algorithms = " | ".join(results.get("numbaconv", {}).get("shapes", {}).get(name, {}).get("algorithms", []))
        lines.append(f"{name:<10} | {cells[0]} | {cells[1]} | {algorithms}")
        lines += [f"{'':<10}   ! {e}" for e in errors]
    lines.append("ratio = torch time / numbaconv time (above 1: numbaconv faster); winograd(t) = F(t x t, 3x3)")
    for pass_, values in ratios.items():
        if values:
            geomean = math.exp(sum(math.log(v) for v in values) / len(values))
            lines.append(f"geomean ratio, {pass_ + ':':<17} {geomean:.2f} over {len(values)} shapes")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time numbaconv (and PyTorch) on the benchmark shape suite.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shapes", type=lambda s: s.split(","))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, default=0.2, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker:
        run(select(args.shapes), quick=args.quick, threads=args.threads)
        return
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library chatter printed to stdout must not corrupt the JSON line
    if args.worker == "numbaconv":
        from .cli import compile_notice

        with compile_notice():
            result = measure(args.worker, args.shapes, args.threads, args.target, args.rounds)
    else:
        result = measure(args.worker, args.shapes, args.threads, args.target, args.rounds)
    protocol.write(json.dumps(result) + "\n")
    protocol.close()


if __name__ == "__main__":
    main()
