"""The dispatcher against measurements: time every algorithm (each Winograd tile apart) on every pass of the
shape suite and the benchmark models' layers, then score the choices the cost model makes on them.

Usage, from the repository root:

    python benchmarks/calibrate.py measure /tmp/cal1.json [--shapes a,b] [--threads 2]
    python benchmarks/calibrate.py regret /tmp/cal1.json [/tmp/cal2.json ...]

``measure`` runs numbaconv alone (float32; per algorithm and pass the median of 5 rounds of back-to-back calls
filling 40 ms each, after a warm-up call; the algorithms take turns round by round). ``regret`` takes the
geometric mean of the runs given, asks `numbaconv.dispatch` for its choice on each pass, and prints every pass
where the choice was not the fastest measured, then the summed regret (ms) and the summed log ratio
chosen/fastest. A constant of
`numbaconv.dispatch` earns its value by lowering both over several runs; the machine is noisy, so one run is
not enough.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
from shapes import SUITE, ConvShape

import numbaconv
from numbaconv import dispatch
from numbaconv.benchmark import random_inputs
from numbaconv.geometry import ConvSpec

# The benchmark models' layers not already in the suite (SimpleCNN at batch 64, the digits CNN at batch 32),
# and a batch-1 layer.
MODEL_LAYERS = (
    ConvShape("simple_c1", 64, 3, 32, 16, 3, 1, 1, 1, 1),
    ConvShape("simple_c2", 64, 16, 16, 32, 3, 1, 1, 1, 1),
    ConvShape("simple_c3", 64, 32, 8, 64, 3, 1, 1, 1, 1),
    ConvShape("digits_c1", 32, 1, 8, 16, 3, 1, 1, 1, 1),
    ConvShape("digits_c2", 32, 16, 4, 32, 3, 1, 1, 1, 1),
    ConvShape("batch1_56", 1, 64, 56, 64, 3, 1, 1, 1, 1),
)
PASSES = dispatch.PASSES
ROUND_SECONDS = 0.04
ROUNDS = 5


@contextlib.contextmanager
def _pinned_tile(tile: int | None) -> Iterator[None]:
    """Inside the block "winograd" runs only ``tile`` (every tile when None)."""
    tiles = dispatch.WINOGRAD_TILES
    dispatch.WINOGRAD_TILES = tiles if tile is None else (tile,)
    dispatch._decide.cache_clear()
    try:
        yield
    finally:
        dispatch.WINOGRAD_TILES = tiles
        dispatch._decide.cache_clear()


def _candidates(shape: ConvShape) -> list[tuple[str, str, int | None]]:
    """(label, algorithm, Winograd tile) of every algorithm that serves ``shape``."""
    found = [("direct", "direct", None), ("im2col", "im2col", None)]
    if shape.winograd_eligible:
        found += [(f"winograd{tile}", "winograd", tile) for tile in dispatch.WINOGRAD_TILES]
    return found


def _pass_calls(shape: ConvShape, arrays: dict, algorithm: str) -> dict[str, Callable[[], object]]:
    x, w, b, g = arrays["x"], arrays["weight"], arrays["bias"], arrays["grad_output"]
    kw = dict(shape.conv_kwargs, algorithm=algorithm)
    return {
        "forward": lambda: numbaconv.conv2d(x, w, b, **kw),
        "grad_input": lambda: numbaconv.conv2d_grad_input(x.shape, w, g, **kw),
        "grad_weight": lambda: numbaconv.conv2d_grad_weight(x, w.shape, g, **kw),
    }


def _interleaved_medians(calls: dict[str, tuple[Callable[[], object], int | None]]) -> dict[str, float]:
    """Median seconds per call of each labelled (call, tile), the candidates taking turns round by round so
    that a slow phase of the shared machine falls on all of them alike."""
    reps = {}
    for label, (call, tile) in calls.items():
        with _pinned_tile(tile):
            call()
            start = time.perf_counter()
            call()
            reps[label] = max(1, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-6)))
    rounds: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(ROUNDS):
        for label, (call, tile) in calls.items():
            with _pinned_tile(tile):
                start = time.perf_counter()
                for _ in range(reps[label]):
                    call()
                rounds[label].append((time.perf_counter() - start) / reps[label])
    return {label: statistics.median(times) for label, times in rounds.items()}


def measure(path: str, names: list[str] | None, threads: int) -> None:
    numbaconv.set_num_threads(threads)
    results = {}
    for shape in SUITE + MODEL_LAYERS:
        if names and shape.name not in names:
            continue
        arrays = random_inputs(shape)  # one set for all the candidates
        candidates = [
            (label, _pass_calls(shape, arrays, algorithm), tile) for label, algorithm, tile in _candidates(shape)
        ]
        times: dict[str, dict[str, float]] = {label: {} for label, _, _ in candidates}
        for pass_name in PASSES:
            medians = _interleaved_medians({label: (calls[pass_name], tile) for label, calls, tile in candidates})
            for label, seconds in medians.items():
                times[label][pass_name] = seconds
        results[shape.name] = {"shape": list(shape), "threads": threads, "times": times}
        print(shape.name, {label: {p: round(t * 1e3, 3) for p, t in ts.items()} for label, ts in times.items()})
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def _mean_times(paths: list[str]) -> dict:
    """The first run's entries with each time replaced by the geometric mean over all runs."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    merged = runs[0]
    for name, entry in merged.items():
        for label, passes in entry["times"].items():
            for p in passes:
                passes[p] = math.exp(statistics.fmean(math.log(run[name]["times"][label][p]) for run in runs))
    return merged


def _chosen(entry: dict, pass_name: str) -> str:
    shape = ConvShape(*entry["shape"])
    spec = ConvSpec.from_args(shape.stride, shape.padding, shape.dilation, shape.groups, "zeros")
    geo = spec.plan(shape.input_shape, shape.weight_shape).geometry
    best = min(
        dispatch._estimates(pass_name, geo, np.dtype(np.float32).itemsize, entry["threads"]), key=lambda e: e.seconds
    )
    return best.algorithm + (str(best.options["tile"]) if best.algorithm == "winograd" else "")


def regret(paths: list[str]) -> None:
    total_ms = total_log = 0.0
    for name, entry in _mean_times(paths).items():
        for pass_name in PASSES:
            times = {label: ts[pass_name] for label, ts in entry["times"].items()}
            chosen, fastest = _chosen(entry, pass_name), min(times, key=times.get)
            total_ms += (times[chosen] - times[fastest]) * 1e3
            total_log += math.log(times[chosen] / times[fastest])
            if chosen != fastest:
                print(
                    f"{name:10} {pass_name:11} chose {chosen:9} {times[chosen] * 1e3:8.3f} ms, "
                    f"fastest {fastest:9} {times[fastest] * 1e3:8.3f} ms"
                )
    print(f"summed regret {total_ms:.2f} ms, summed log(chosen / fastest) {total_log:.3f} over {len(paths)} run(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="time every algorithm and pass; write JSON")
    m.add_argument("json")
    m.add_argument("--shapes", help="comma-separated names (suite and model layers)")
    m.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("regret", help="score the dispatcher's choices on measured runs")
    r.add_argument("json", nargs="+")
    args = parser.parse_args()
    if args.command == "measure":
        measure(args.json, args.shapes.split(",") if args.shapes else None, args.threads)
    else:
        regret(args.json)


if __name__ == "__main__":
    main()
