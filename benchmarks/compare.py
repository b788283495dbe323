"""numbaconv against PyTorch's CPU build, side by side: conv2d on the shape suite, training steps, the digits
recipe, thread scaling, peak memory and start-up.

Usage, from the repository root:

    python benchmarks/compare.py [--sections suite,training,digits,threads,memory,startup] [--quick]
                                 [--rounds R] [--threads T] [--shapes name,...] [--json PATH]

Sections (default: all; about 10 minutes on an idle 2-core machine, ``--quick`` a few):

- ``suite``: per shape, conv2d forward and forward+backward. "forward+backward" is conv2d plus both gradients:
  numbaconv's conv2d, conv2d_grad_input and conv2d_grad_weight; PyTorch's ``F.conv2d(x, w, b)`` with x and w
  requiring grad, then ``y.backward(g)``. "forward" runs PyTorch under ``torch.no_grad()``.
- ``training``: one training step at batch 64 with Adam (lr 1e-3) -- zero_grad, forward, CrossEntropyLoss,
  backward, step -- of the tutorials' SimpleCNN and LandmarkCNN (train mode: batch statistics, Dropout), both
  from the same weights (`models.seeded_state`) and the same random batch.
- ``digits``: the issue's digits recipe (`models.digits_cnn`, 15 epochs, batch 32, Adam 3e-3) on
  ``numbaconv.data.digits()`` -- PyTorch trains on the very same arrays, from the same initial weights, in the
  same batch order. Timed: the whole training (data in memory; each library first warms up on a throwaway
  model: a full batch, the last partial batch and an evaluation); reported with the final test accuracy.
  ``--digits-rounds`` rounds (3, quick 1).
- ``threads``: forward+backward at 1 thread and at T threads on the five largest selected shapes by FLOPs
  (ties in suite order); speedup = time at 1 / time at T, for both libraries.
- ``memory``: per shape and library, a fresh process (``worker.py --memory-probe``) builds the inputs and
  runs forward+backward 3 times at full size. "peak" = ``getrusage(RUSAGE_SELF).ru_maxrss`` at the end minus
  the resident set (VmRSS) after imports and input creation, before any call: everything the calls made
  resident, loaded JIT code and workspaces included. A second fresh process (``--batch1``) gives the
  breakdown: it runs forward+backward once at batch 1 first (that loads the kernels; "loaded" = VmRSS after
  it), then the 3 full-size calls; "excl. load" = their peak (VmHWM reset through /proc/self/clear_refs after
  the batch-1 call) minus the resident set at that point: the same without the code the batch-1 call loaded.
  Where the batch-1 plan differs, that process loads kernels the full-size calls do not use, so its peak is
  kept apart (``peak_with_batch1_mib`` in the JSON). Ratios are numbaconv / torch (below 1: numbaconv uses
  less). Numbaconv's JIT cache is warmed first, so nothing compiles.
- ``startup``: wall clock around a fresh process (`startup_probe.py`) that imports the library, runs one conv
  forward+backward and one training step of SimpleCNN at batch 8: with a warm JIT cache (a first, untimed
  run fills it) over ``--startup-rounds`` rounds, and for numbaconv with an empty one (NUMBA_CACHE_DIR pointed
  at a new temporary directory: everything compiles; one run). That run is a first run as a user meets it:
  numbaconv's compile-ahead helper (`numbaconv.precompile`) compiles beside it; every other process here runs
  with ``NUMBACONV_PRECOMPILE=0``, so no helper competes with a timed call.

How timings are taken (suite, training, threads): each library runs in its own long-lived worker process
(`worker.py`; protocol and timing in `harness.py`), both set to T threads (default 2); PyTorch is
skipped when it does not import. Both workers build the same float32 inputs from the same seed. Each workload
is warmed up first (numbaconv's first call compiles or loads its Numba kernels: never timed) and given enough
back-to-back calls to fill ``--target`` seconds; then R rounds in which the libraries take turns, the order
alternating between rounds. Reported: the median over rounds (``--stat best`` for the minimum). Ratios of
times are PyTorch / numbaconv: above 1 means numbaconv is faster.

The last lines printed are the geometric means of the suite's ratios and one summary line per other section.
A new section is a worker operation (``op_<name>`` of `worker.WorkerSession`) plus a ``run_*``/``render_*``
pair here (and an entry in `SECTIONS` and `RENDER`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import (  # noqa: E402
    SETTLE_SECONDS,
    Worker,
    WorkerError,
    geomean,
    interleaved_rounds,
    machine_info,
    progress,
    run_fresh,
    summarize,
)
from shapes import PASSES, ConvShape, select  # noqa: E402
from worker import GRAD_PASSES, LIBRARIES, MEMORY_CALLS  # noqa: E402

WORKER = str(HERE / "worker.py")
PRECOMPILE_SWITCH = "NUMBACONV_PRECOMPILE"
SECTIONS = ("suite", "training", "digits", "threads", "memory", "startup")
WORKER_SECTIONS = {"suite", "training", "digits", "threads", "memory"}  # the others use fresh processes
TRAIN_MODELS = ("SimpleCNN", "LandmarkCNN")
TRAIN_BATCH, TRAIN_LR = 64, 1e-3
DIGITS_EPOCHS, DIGITS_BATCH, DIGITS_LR = 15, 32, 3e-3
THREAD_SHAPES = 5


# ----------------------------------------------------------------------------------------------------------
# Driver side: workers
# ----------------------------------------------------------------------------------------------------------


def make_worker(library: str, args: argparse.Namespace) -> Worker:
    command = [sys.executable, WORKER, library, "--threads", str(args.threads), "--algorithm", args.algorithm]
    return Worker(library, command)


def start_workers(args: argparse.Namespace, libraries=LIBRARIES) -> tuple[dict[str, Worker], dict[str, str]]:
    """A worker per library that starts; the others with the reason they did not."""
    workers, missing = {}, {}
    for library in libraries:
        progress(f"starting {library} worker ...")
        try:
            workers[library] = make_worker(library, args)
        except WorkerError as exc:
            missing[library] = str(exc)
            progress(f"  {library} unavailable: {exc}")
    return workers, missing


def guarded(workers: dict[str, Worker], args: argparse.Namespace, measure: Callable[[dict], dict]):
    """``measure(workers)``; a worker that dies is restarted and its library left out of this one measurement.

    Returns the result and {library: error} of the libraries left out.
    """
    failed: dict[str, str] = {}
    while True:
        try:
            return measure({k: w for k, w in workers.items() if k not in failed}), failed
        except WorkerError as exc:  # a crash costs that library this measurement, not the run
            progress(f"  {exc}; restarting the {exc.library} worker")
            failed[exc.library] = str(exc)
            workers[exc.library].close()
            try:
                workers[exc.library] = make_worker(exc.library, args)
            except WorkerError:
                del workers[exc.library]


def lib_ratio(libs: dict, get: Callable[[dict], float | None], invert: bool = False) -> float | None:
    """torch / numbaconv of ``get(record)`` (numbaconv / torch with ``invert``); None if either is missing."""
    if "torch" not in libs or "numbaconv" not in libs:
        return None
    ours, theirs = get(libs["numbaconv"]), get(libs["torch"])
    if not ours or not theirs:
        return None
    return ours / theirs if invert else theirs / ours


def format_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def format_ms(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


# ----------------------------------------------------------------------------------------------------------
# Section: shape suite
# ----------------------------------------------------------------------------------------------------------


def measure_shape(workers: dict[str, Worker], shape: ConvShape, args: argparse.Namespace) -> dict:
    """Warm both libraries up on ``shape``, then time both passes for R interleaved rounds."""
    entry: dict = {
        "name": shape.name,
        "layer": shape.describe(),
        "gflop": {p: shape.flops(p) / 1e9 for p in PASSES},
        "libraries": {},
    }
    for library, worker in workers.items():
        setup = worker.request("setup", shape=shape.name, target=args.target, seed=args.seed)
        if "error" in setup:  # the shape could not even be prepared
            setup = {"errors": dict.fromkeys(PASSES, setup["error"]), "reps": {}, "first_call_ms": {}}
        entry["libraries"][library] = {"setup": setup}
    errors = {library: record["setup"]["errors"] for library, record in entry["libraries"].items()}
    samples = interleaved_rounds(workers, shape.name, dict.fromkeys(workers, list(PASSES)), errors, args.rounds)
    for library, worker in workers.items():
        worker.request("release")
        record = entry["libraries"][library]
        record["rounds_ms"] = samples[library]
        record["ms"] = {p: summarize(ms, args.stat) if ms else None for p, ms in record["rounds_ms"].items()}
    return entry


def failed_record(message: str, keys=PASSES) -> dict:
    """The record of a library whose worker died on a measurement."""
    return {
        "setup": {"errors": dict.fromkeys(keys, message), "reps": {}, "first_call_ms": {}},
        "rounds_ms": {k: [] for k in keys},
        "ms": dict.fromkeys(keys),
    }


def ratio(entry: dict, pass_: str) -> float | None:
    """PyTorch time / numbaconv time for one pass of one shape (None if either is missing)."""
    return lib_ratio(entry["libraries"], lambda record: record["ms"][pass_])


def run_suite(workers: dict[str, Worker], args: argparse.Namespace) -> dict:
    """The shape-suite section: per shape, both libraries, both passes."""
    shapes = select(args.shapes)
    entries = []
    for i, shape in enumerate(shapes, 1):
        progress(f"[{i}/{len(shapes)}] {shape.name}: {shape.describe()}")
        entry, failed = guarded(workers, args, lambda live, shape=shape: measure_shape(live, shape, args))
        entry["libraries"].update({library: failed_record(message) for library, message in failed.items()})
        entries.append(entry)
    return {"stat": args.stat, "rounds": args.rounds, "target_s": args.target, "shapes": entries}


def format_algorithms(entry: dict) -> str:
    record = entry["libraries"].get("numbaconv")
    if record is None:
        return ""
    chosen = record["setup"].get("algorithms")
    if not chosen:
        return ""
    if "error" in chosen:
        return f"explain failed: {chosen['error']}"
    return " | ".join(str(chosen.get(p)) for p in GRAD_PASSES)


def error_lines(libraries: dict) -> list[str]:
    errors = {f"{lib} {k}": e for lib, rec in libraries.items() for k, e in rec["setup"]["errors"].items()}
    return [f"{'':<10}   ! {where}: {err}" for where, err in errors.items()]


def render_suite(suite: dict) -> list[str]:
    """The per-shape table: ms of each library per pass, the ratio, numbaconv's algorithms."""
    head = f"{'':<10} | {'forward (ms)':^28} | {'forward+backward (ms)':^28} |"
    columns = f"{'numbaconv':>10} {'torch':>10} {'ratio':>6}"
    lines = [
        head,
        f"{'shape':<10} | {columns} | {columns} | numbaconv algorithm: fwd | grad_in | grad_w",
    ]
    lines.append("-" * len(lines[-1]))
    for entry in suite["shapes"]:
        cells = []
        for pass_ in PASSES:
            times = [
                format_ms(entry["libraries"][lib]["ms"][pass_]) if lib in entry["libraries"] else "-"
                for lib in LIBRARIES
            ]
            r = ratio(entry, pass_)
            cells.append(f"{times[0]:>10} {times[1]:>10} {'-' if r is None else f'{r:.2f}':>6}")
        lines.append(f"{entry['name']:<10} | {cells[0]} | {cells[1]} | {format_algorithms(entry)}")
        lines += error_lines(entry["libraries"])
    return lines


def render_suite_summary(suite: dict) -> list[str]:
    """The closing lines: geometric means of the ratios (and the lowest ratio) per pass."""
    lines = ["ratio = torch time / numbaconv time (above 1: numbaconv faster); winograd(t) = F(t x t, 3x3)"]
    for pass_ in PASSES:
        pairs = [(e["name"], ratio(e, pass_)) for e in suite["shapes"]]
        pairs = [(name, r) for name, r in pairs if r is not None]
        if not pairs:
            lines.append(f"geomean ratio, {pass_}: n/a (needs both libraries)")
            continue
        lowest_name, lowest = min(pairs, key=lambda pair: pair[1])
        line = (
            f"geomean ratio, {pass_ + ':':<17} {geomean([r for _, r in pairs]):.2f} over "
            f"{len(pairs)} shapes; lowest {lowest:.2f} ({lowest_name})"
        )
        eligible = [r for name, r in pairs if select([name])[0].winograd_eligible]
        if eligible and len(eligible) < len(pairs):
            line += f"; 3x3 stride-1 shapes: {geomean(eligible):.2f} over {len(eligible)}"
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------------------------------------
# Timed workloads shared by the training and threads sections
# ----------------------------------------------------------------------------------------------------------


def measure_workload(
    workers: dict[str, Worker], workload: str, keys: list[str], setup: Callable[[Worker], dict], args
) -> dict:
    """Arm ``workload`` in every worker with ``setup(worker)``, time ``keys`` in interleaved rounds, release."""
    libraries = {}
    for library, worker in workers.items():
        reply = setup(worker)
        if "error" in reply:
            reply = {"errors": dict.fromkeys(keys, reply["error"]), "reps": {}, "first_call_ms": {}}
        libraries[library] = {"setup": reply}
    errors = {library: record["setup"]["errors"] for library, record in libraries.items()}
    samples = interleaved_rounds(workers, workload, dict.fromkeys(workers, keys), errors, args.rounds)
    for library, worker in workers.items():
        worker.request("release")
        record = libraries[library]
        record["rounds_ms"] = samples[library]
        record["ms"] = {k: summarize(ms, args.stat) if ms else None for k, ms in samples[library].items()}
    return libraries


# ----------------------------------------------------------------------------------------------------------
# Section: training steps
# ----------------------------------------------------------------------------------------------------------


def run_training(workers: dict[str, Worker], args: argparse.Namespace) -> dict:
    """Per model: one training step (batch 64, Adam), both libraries, interleaved rounds."""
    entries = []
    for name in TRAIN_MODELS:
        progress(f"training step: {name}, batch {TRAIN_BATCH}, Adam")

        def setup(worker, name=name):
            return worker.request(
                "train_setup", model=name, batch=TRAIN_BATCH, lr=TRAIN_LR, seed=args.seed, target=args.target
            )

        libraries, failed = guarded(
            workers,
            args,
            lambda live, name=name, setup=setup: measure_workload(live, f"train:{name}", ["step"], setup, args),
        )
        libraries.update({library: failed_record(message, ["step"]) for library, message in failed.items()})
        entries.append({"model": name, "libraries": libraries})
    return {"batch": TRAIN_BATCH, "optimizer": f"Adam(lr={TRAIN_LR:g})", "models": entries}


def training_ratio(entry: dict) -> float | None:
    return lib_ratio(entry["libraries"], lambda record: record["ms"]["step"])


def render_training(training: dict) -> list[str]:
    lines = [
        f"training step, batch {training['batch']}, {training['optimizer']}, train mode "
        "(zero_grad, forward, CrossEntropyLoss, backward, step)",
        f"{'model':<12} | {'numbaconv (ms)':>14} {'torch (ms)':>11} {'ratio':>6}",
    ]
    lines.append("-" * len(lines[-1]))
    for entry in training["models"]:
        libs = entry["libraries"]
        times = [format_ms(libs[lib]["ms"]["step"]) if lib in libs else "-" for lib in LIBRARIES]
        lines.append(f"{entry['model']:<12} | {times[0]:>14} {times[1]:>11} {format_ratio(training_ratio(entry)):>6}")
        lines += error_lines(libs)
    return lines


def render_training_summary(training: dict) -> str:
    parts = [f"{e['model']} {format_ratio(training_ratio(e))}" for e in training["models"]]
    ratios = [r for r in map(training_ratio, training["models"]) if r is not None]
    tail = f"; geomean {geomean(ratios):.2f}" if ratios else ""
    return f"training step ratio (batch {training['batch']}, Adam): " + ", ".join(parts) + tail


# ----------------------------------------------------------------------------------------------------------
# Section: digits recipe
# ----------------------------------------------------------------------------------------------------------


def run_digits(workers: dict[str, Worker], args: argparse.Namespace) -> dict:
    """The digits recipe, whole training timed per library, ``--digits-rounds`` interleaved rounds."""
    result: dict = {
        "epochs": DIGITS_EPOCHS,
        "batch": DIGITS_BATCH,
        "lr": DIGITS_LR,
        "rounds": args.digits_rounds,
        "libraries": {},
    }
    if "numbaconv" not in workers:
        result["error"] = "needs numbaconv (its worker provides numbaconv.data.digits())"
        return result
    tmp = tempfile.mkdtemp(prefix="numbaconv-digits-")
    path = os.path.join(tmp, "digits.npz")
    try:
        exported = workers["numbaconv"].request("digits_export", path=path)
        if "error" in exported:
            result["error"] = exported["error"]
            return result
        result["data"] = exported
        records = {library: {"rounds": [], "errors": []} for library in workers}
        order = list(workers)
        for round_ in range(args.digits_rounds):
            for library in order if round_ % 2 == 0 else order[::-1]:
                if library not in workers:  # its worker died and could not restart
                    continue
                progress(f"digits recipe: round {round_ + 1}/{args.digits_rounds}, {library}")
                time.sleep(SETTLE_SECONDS)
                request = dict(path=path, epochs=DIGITS_EPOCHS, batch_size=DIGITS_BATCH, lr=DIGITS_LR, seed=args.seed)
                try:
                    reply = workers[library].request("digits", **request)
                except WorkerError as exc:
                    reply = {"error": str(exc)}
                    workers[library].close()
                    try:
                        workers[library] = make_worker(library, args)
                    except WorkerError:
                        del workers[library]
                if "error" in reply:
                    records[library]["errors"].append(reply["error"])
                else:
                    records[library]["rounds"].append(reply)
        for record in records.values():
            seconds = [r["seconds"] for r in record["rounds"]]
            record["seconds"] = summarize(seconds, args.stat) if seconds else None
            record["test_accuracy"] = record["rounds"][-1]["test_accuracy"] if seconds else None
            record["final_loss"] = record["rounds"][-1]["final_loss"] if seconds else None
        result["libraries"] = records
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def digits_ratio(digits: dict) -> float | None:
    return lib_ratio(digits["libraries"], lambda record: record["seconds"])


def render_digits(digits: dict) -> list[str]:
    lines = [
        f"digits recipe: DigitsCNN, {digits['epochs']} epochs, batch {digits['batch']}, Adam(lr={digits['lr']:g}), "
        f"{digits['rounds']} round(s), whole training timed",
    ]
    if "error" in digits:
        return lines + [f"  ! {digits['error']}"]
    lines.append(f"{'library':<10} | {'train (s)':>9} {'test acc':>9} {'final loss':>10} {'warm-up (s)':>11}")
    lines.append("-" * len(lines[-1]))
    for library in LIBRARIES:
        record = digits["libraries"].get(library)
        if record is None:
            continue
        if record["seconds"] is None:
            lines.append(f"{library:<10} | n/a")
        else:
            warm = record["rounds"][0]["warmup_seconds"]
            lines.append(
                f"{library:<10} | {record['seconds']:>9.2f} {record['test_accuracy']:>9.4f} "
                f"{record['final_loss']:>10.4f} {warm:>11.2f}"
            )
        lines += [f"{'':<10}   ! {err}" for err in record["errors"]]
    return lines


def render_digits_summary(digits: dict) -> str:
    head = f"digits recipe ({digits['epochs']} epochs, batch {digits['batch']}, Adam {digits['lr']:g}): "
    if "error" in digits:
        return head + f"n/a ({digits['error']})"
    parts = []
    for library in LIBRARIES:
        record = digits["libraries"].get(library)
        if record and record["seconds"] is not None:
            parts.append(f"{library} {record['seconds']:.2f} s (test acc {record['test_accuracy']:.4f})")
    return head + ", ".join(parts) + f"; ratio {format_ratio(digits_ratio(digits))}"


# ----------------------------------------------------------------------------------------------------------
# Section: thread scaling
# ----------------------------------------------------------------------------------------------------------


def largest_shapes(args: argparse.Namespace) -> tuple[ConvShape, ...]:
    """The `THREAD_SHAPES` selected shapes with the most forward FLOPs (ties in suite order)."""
    return tuple(sorted(select(args.shapes), key=lambda s: -s.flops("forward"))[:THREAD_SHAPES])


def run_threads(workers: dict[str, Worker], args: argparse.Namespace) -> dict:
    counts = sorted({1, args.threads})
    if len(counts) == 1:
        return {"counts": counts, "shapes": [], "error": "needs --threads above 1"}
    keys = [f"forward+backward@{n}" for n in counts]
    entries = []
    for shape in largest_shapes(args):
        progress(f"threads {counts}: {shape.name}: {shape.describe()}")

        def setup(worker, shape=shape):
            return worker.request("threads_setup", shape=shape.name, counts=counts, target=args.target, seed=args.seed)

        libraries, failed = guarded(
            workers,
            args,
            lambda live, shape=shape, setup=setup: measure_workload(live, f"threads:{shape.name}", keys, setup, args),
        )
        libraries.update({library: failed_record(message, keys) for library, message in failed.items()})
        entries.append({"name": shape.name, "gflop": shape.flops("forward+backward") / 1e9, "libraries": libraries})
    return {"counts": counts, "shapes": entries}


def speedup(record: dict, counts: list[int]) -> float | None:
    one, many = record["ms"].get(f"forward+backward@{counts[0]}"), record["ms"].get(f"forward+backward@{counts[-1]}")
    return one / many if one and many and len(counts) > 1 else None


def render_threads(threads: dict) -> list[str]:
    if "error" in threads:
        return [f"thread scaling: n/a ({threads['error']})"]
    lo, hi = threads["counts"][0], threads["counts"][-1]
    cols = f"{f'{lo} thr (ms)':>11} {f'{hi} thr (ms)':>11} {'speedup':>7}"
    lines = [
        f"thread scaling, forward+backward, {lo} -> {hi} threads, the {THREAD_SHAPES} largest shapes by FLOPs",
        f"{'':<10} | {'numbaconv':^31} | {'torch':^31}",
        f"{'shape':<10} | {cols} | {cols}",
    ]
    lines.append("-" * len(lines[-1]))
    for entry in threads["shapes"]:
        cells = []
        for library in LIBRARIES:
            record = entry["libraries"].get(library)
            if record is None:
                cells.append(f"{'-':>11} {'-':>11} {'-':>7}")
                continue
            ms = [format_ms(record["ms"].get(f"forward+backward@{n}")) for n in (lo, hi)]
            cells.append(f"{ms[0]:>11} {ms[1]:>11} {format_ratio(speedup(record, threads['counts'])):>7}")
        lines.append(f"{entry['name']:<10} | {cells[0]} | {cells[1]}")
        lines += error_lines(entry["libraries"])
    return lines


def render_threads_summary(threads: dict) -> str:
    if "error" in threads:
        return f"thread speedup: n/a ({threads['error']})"
    lo, hi = threads["counts"][0], threads["counts"][-1]
    parts = []
    for library in LIBRARIES:
        pairs = [
            (e["name"], speedup(e["libraries"][library], threads["counts"]))
            for e in threads["shapes"]
            if library in e["libraries"]
        ]
        pairs = [(name, s) for name, s in pairs if s is not None]
        if pairs:
            low_name, low = min(pairs, key=lambda pair: pair[1])
            parts.append(f"{library} geomean {geomean([s for _, s in pairs]):.2f} (lowest {low:.2f}, {low_name})")
    body = "; ".join(parts) if parts else "n/a"
    return f"thread speedup {lo} -> {hi}, forward+backward, {len(threads['shapes'])} largest shapes: {body}"


# ----------------------------------------------------------------------------------------------------------
# Section: peak memory
# ----------------------------------------------------------------------------------------------------------


def run_memory(workers: dict[str, Worker], available: list[str], args: argparse.Namespace) -> dict:
    """Per shape and library, a fresh `memory_probe` process; numbaconv's JIT cache warmed first."""
    entries = []
    shapes = select(args.shapes)
    for i, shape in enumerate(shapes):
        progress(f"memory: {shape.name}: {shape.describe()}")
        entry: dict = {"name": shape.name, "libraries": {}}
        if "numbaconv" in workers:
            try:
                warm = workers["numbaconv"].request("warm_memory", shape=shape.name, seed=args.seed)
            except WorkerError as exc:
                warm = {"error": str(exc)}
            entry["cache_warm_up"] = warm
        for library in available if i % 2 == 0 else available[::-1]:
            command = [sys.executable, WORKER, library, "--memory-probe", shape.name, "--seed", str(args.seed)]
            command += ["--threads", str(args.threads), "--algorithm", args.algorithm]
            _, peak = run_fresh(command)
            _, breakdown = run_fresh([*command, "--batch1"])
            entry["libraries"][library] = {**breakdown, **peak}
        entries.append(entry)
    return {"calls": MEMORY_CALLS, "shapes": entries}


def memory_ratio(entry: dict, field: str) -> float | None:
    return lib_ratio(entry["libraries"], lambda record: record.get(field), invert=True)


def format_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render_memory(memory: dict) -> list[str]:
    cols = f"{'numbaconv':>10} {'torch':>8} {'ratio':>6}"
    lines = [
        "peak memory of forward+backward, MiB above the resident set after imports and inputs (fresh processes "
        f"per shape and library: {memory['calls']} full-size calls; for the breakdown, a batch-1 call before them)",
        f"{'':<10} | {'peak (ru_maxrss - base)':^26} | {'excl. kernel load':^26} | loaded by the batch-1 call",
        f"{'shape':<10} | {cols} | {cols} | {'numbaconv':>10} {'torch':>8}",
    ]
    lines.append("-" * len(lines[-1]))
    for entry in memory["shapes"]:
        libs = entry["libraries"]
        cells = []
        for field in ("peak_mib", "peak_excl_load_mib"):
            values = [format_mib(libs[lib].get(field)) if lib in libs else "-" for lib in LIBRARIES]
            cells.append(f"{values[0]:>10} {values[1]:>8} {format_ratio(memory_ratio(entry, field)):>6}")
        loaded = [format_mib(libs[lib].get("loaded_mib")) if lib in libs else "-" for lib in LIBRARIES]
        note = (
            " (numbaconv's batch-1 plan differs)"
            if libs.get("numbaconv", {}).get("batch1_same_algorithms") is False
            else ""
        )
        lines.append(f"{entry['name']:<10} | {cells[0]} | {cells[1]} | {loaded[0]:>10} {loaded[1]:>8}{note}")
        lines += [f"{'':<10}   ! {lib}: {rec['error']}" for lib, rec in libs.items() if "error" in rec]
    return lines


def render_memory_summary(memory: dict) -> str:
    pairs = [(e["name"], memory_ratio(e, "peak_mib")) for e in memory["shapes"]]
    pairs = [(name, r) for name, r in pairs if r is not None]
    if not pairs:
        return "peak memory ratio numbaconv/torch: n/a (needs both libraries)"
    high_name, high = max(pairs, key=lambda pair: pair[1])
    line = (
        f"peak memory ratio numbaconv/torch (forward+backward): geomean {geomean([r for _, r in pairs]):.2f} over "
        f"{len(pairs)} shapes; highest {high:.2f} ({high_name})"
    )
    excl = [r for r in (memory_ratio(e, "peak_excl_load_mib") for e in memory["shapes"]) if r is not None]
    if excl:  # a zero (nothing new resident) has no logarithm: then no geomean
        mean = f"geomean {geomean(excl):.2f}, " if min(excl) > 0 else ""
        line += f"; excl. kernel load: {mean}highest {max(excl):.2f}"
    return line


# ----------------------------------------------------------------------------------------------------------
# Section: start-up
# ----------------------------------------------------------------------------------------------------------


def run_startup(available: list[str], args: argparse.Namespace) -> dict:
    """Wall clock around `startup_probe.py`: warm JIT cache (after an untimed run), and numbaconv's empty cache."""
    probe = str(HERE / "startup_probe.py")
    result: dict = {"rounds": args.startup_rounds, "warm": {}, "cold": {}}

    def run(library: str, env: dict | None = None) -> dict:
        wall, reply = run_fresh([sys.executable, probe, library, str(args.threads)], env=env)
        return {"wall_s": wall, **reply}

    for library in available:
        progress(f"start-up: {library}, untimed run to warm the caches")
        result["warm"][library] = {"prime": run(library), "runs": []}
    for round_ in range(args.startup_rounds):
        for library in available if round_ % 2 == 0 else available[::-1]:
            progress(f"start-up: {library}, warm cache, round {round_ + 1}/{args.startup_rounds}")
            result["warm"][library]["runs"].append(run(library))
    if "numbaconv" in available:
        for i in range(args.cold_runs):
            progress(f"start-up: numbaconv, empty JIT cache, run {i + 1}/{args.cold_runs}")
            cache = tempfile.mkdtemp(prefix="numbaconv-cold-cache-")
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            env.pop(PRECOMPILE_SWITCH, None)
            try:
                result["cold"].setdefault("numbaconv", {"runs": []})["runs"].append(run("numbaconv", env=env))
            finally:
                wait_for_precompile_helper(Path(cache))
                shutil.rmtree(cache, ignore_errors=True)
    for kind in ("warm", "cold"):
        for record in result[kind].values():
            good = [r["wall_s"] for r in record["runs"] if "error" not in r]
            record["wall_s"] = summarize(good, args.stat) if good else None
            record["errors"] = [r["error"] for r in record["runs"] + [record.get("prime", {})] if "error" in r]
    return result


def wait_for_precompile_helper(cache: Path, timeout: float = 300) -> None:
    """Wait until the compile-ahead helper of the probe that used ``cache`` has exited (it removes its lock
    file, after finishing the step it was on), so that it neither overlaps the next measurement nor writes
    into a removed directory."""
    deadline = time.monotonic() + timeout
    while any(cache.rglob("*.precompiled.lock")) and time.monotonic() < deadline:
        time.sleep(0.5)


def startup_ratio(startup: dict) -> float | None:
    return lib_ratio(startup["warm"], lambda record: record["wall_s"])


def render_startup(startup: dict) -> list[str]:
    lines = [
        "start-up: fresh process, import + conv forward+backward + one SimpleCNN training step (batch 8, Adam); "
        "wall clock around the process",
        f"{'library':<10} {'cache':<6} | {'wall (s)':>8} | marks in the median run: import / conv / step (s)",
    ]
    lines.append("-" * len(lines[-1]))
    for kind in ("warm", "cold"):
        for library in LIBRARIES:
            record = startup[kind].get(library)
            if record is None:
                continue
            good = [r for r in record["runs"] if "error" not in r]
            marks = ""
            if good:
                median = sorted(good, key=lambda r: r["wall_s"])[(len(good) - 1) // 2]
                marks = f"{median['import_s']:.2f} / {median['conv_s']:.2f} / {median['step_s']:.2f}"
            wall = "n/a" if record["wall_s"] is None else f"{record['wall_s']:.2f}"
            label = kind if kind == "warm" else "empty"
            lines.append(f"{library:<10} {label:<6} | {wall:>8} | {marks}")
            lines += [f"{'':<17}   ! {err}" for err in record["errors"]]
    return lines


def render_startup_summary(startup: dict) -> str:
    parts = []
    for library in LIBRARIES:
        record = startup["warm"].get(library)
        if record and record["wall_s"] is not None:
            parts.append(f"{library} {record['wall_s']:.2f} s")
    line = "start-up, warm JIT cache: " + (", ".join(parts) or "n/a")
    line += f" (ratio {format_ratio(startup_ratio(startup))})"
    cold = startup["cold"].get("numbaconv")
    if cold is not None:
        wall = "n/a" if cold["wall_s"] is None else f"{cold['wall_s']:.2f} s"
        line += f"; numbaconv, empty JIT cache: {wall}"
    return line


# ----------------------------------------------------------------------------------------------------------
# Report and command line
# ----------------------------------------------------------------------------------------------------------


def render_header(meta: dict, libraries: dict, missing: dict, args: argparse.Namespace) -> list[str]:
    names = []
    for library in LIBRARIES:
        if library in libraries:
            info = libraries[library]
            names.append(f"{library} {info['version']} ({info['threads']} threads)")
        elif library not in missing:
            names.append(f"{library} (fresh processes only, {args.threads} threads)")
        else:
            names.append(f"{library}: not measured ({missing.get(library)})")
    m = meta["machine"]
    algorithm = "" if args.algorithm == "auto" else f", numbaconv algorithm={args.algorithm}"
    lines = [" vs ".join(names) + f"; float32{algorithm}"]
    if set(args.sections) & {"suite", "training", "threads"}:
        lines.append(
            f"{args.stat} of {args.rounds} rounds per shape and pass, each round >= {args.target:g} s "
            f"of back-to-back calls, after warm-up; seed {args.seed}"
        )
    lines += [f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}{load_note(m)}", ""]
    return lines


def load_note(machine: dict) -> str:
    """The load average before the run, with a warning when other work was already using the CPUs."""
    load = machine.get("load_average")
    if load is None:
        return ""
    busy = " -- the machine was busy: timings are noisy" if load > 0.5 else ""
    return f"; load average {load:.2f} at start{busy}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time numbaconv and PyTorch side by side: conv2d shape suite, training steps, digits recipe, "
        "thread scaling, peak memory, start-up."
    )
    parser.add_argument(
        "--sections",
        type=lambda s: s.split(","),
        default=list(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument("--rounds", type=int, help="timed rounds per shape and pass (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for each library (default 2)")
    parser.add_argument("--shapes", type=lambda s: s.split(","), help="comma-separated suite names")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter timings")
    parser.add_argument("--json", type=Path, help="also save the raw results to this file")
    parser.add_argument("--stat", choices=("median", "best"), default="median", help="how rounds combine (median)")
    parser.add_argument("--target", type=float, help="seconds of calls per round (default 0.2, quick 0.05)")
    parser.add_argument("--algorithm", default="auto", help="numbaconv's algorithm (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--digits-rounds", type=int, help="rounds of the digits recipe (default 3, quick 1)")
    parser.add_argument("--startup-rounds", type=int, help="warm-cache start-up rounds (default 5, quick 2)")
    parser.add_argument("--cold-runs", type=int, default=1, help="empty-cache start-up runs of numbaconv (default 1)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.target is None:
        args.target = 0.05 if args.quick else 0.2
    if args.digits_rounds is None:
        args.digits_rounds = 1 if args.quick else 3
    if args.startup_rounds is None:
        args.startup_rounds = 2 if args.quick else 5
    positive = (args.rounds, args.threads, args.target, args.digits_rounds, args.startup_rounds)
    if min(positive) <= 0 or args.cold_runs < 0:
        parser.error("--rounds, --threads, --target, --digits-rounds and --startup-rounds must be positive")
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {','.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in args.sections]  # report order
    if args.shapes is not None:
        try:
            select(args.shapes)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def run_sections(workers: dict[str, Worker], available: list[str], args: argparse.Namespace) -> dict:
    """Every selected section's results, by name."""
    results = {}
    for section in args.sections:
        started = time.perf_counter()
        progress(f"== {section}")
        if section == "suite":
            results[section] = run_suite(workers, args)
        elif section == "training":
            results[section] = run_training(workers, args)
        elif section == "digits":
            results[section] = run_digits(workers, args)
        elif section == "threads":
            results[section] = run_threads(workers, args)
        elif section == "memory":
            results[section] = run_memory(workers, available, args)
        elif section == "startup":
            results[section] = run_startup(available, args)
        results[section]["seconds"] = time.perf_counter() - started
    return results


RENDER = {
    "suite": (render_suite, None),
    "training": (render_training, render_training_summary),
    "digits": (render_digits, render_digits_summary),
    "threads": (render_threads, render_threads_summary),
    "memory": (render_memory, render_memory_summary),
    "startup": (render_startup, render_startup_summary),
}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ[PRECOMPILE_SWITCH] = "0"  # for every process started here, the empty-cache probe aside
    started = time.perf_counter()
    machine = machine_info()  # before the workers start: the load average tells about other work
    # Long-lived workers for the timed sections (the memory section uses numbaconv's to warm its JIT cache);
    # the start-up section needs none. A library whose worker fails to start is left out of every section.
    libraries = LIBRARIES if set(args.sections) & WORKER_SECTIONS else ()
    workers, missing = start_workers(args, libraries)
    if libraries and not workers:
        sys.exit("no library could be measured: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    available = [lib for lib in LIBRARIES if lib not in missing]
    try:
        report = {
            "meta": {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}},
            "libraries": {library: worker.info for library, worker in workers.items()},
            "missing": missing,
        }
        report.update(run_sections(workers, available, args))
    finally:
        for worker in workers.values():
            worker.close()
    report["meta"]["wall_seconds"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    lines = render_header(report["meta"], report["libraries"], missing, args)
    summary = []
    for section in args.sections:
        table, closing = RENDER[section]
        lines += [*table(report[section]), ""]
        if closing is not None:
            summary.append(closing(report[section]))
    if "suite" in args.sections:
        summary = render_suite_summary(report["suite"]) + summary
    lines += summary
    print("\n".join(lines))


if __name__ == "__main__":
    main()
