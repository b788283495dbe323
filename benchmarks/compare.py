"""numbaconv against PyTorch's CPU conv2d on the benchmark shape suite, side by side.

Usage, from the repository root:

    python benchmarks/compare.py [--rounds R] [--threads T] [--shapes name,...] [--quick] [--json PATH]

How it measures:
- Each library runs in its own worker process (this script re-invoked with ``--worker``), so the two thread
  pools never share a process; both are set to T threads (default 2). PyTorch is skipped when it does not
  import.
- Both workers build the same float32 inputs from the same seed (``shapes.random_inputs``).
- Per shape, each worker first warms up (numbaconv's first call compiles or loads its Numba kernels: never
  timed) and picks how many back-to-back calls fill ``--target`` seconds. Then R rounds: in each round both
  libraries time both passes, taking turns (the order alternates between rounds, with a short pause before
  each turn so the other process's spinning threads have gone idle), so a busy moment on the machine hits
  both. Reported: the median over rounds of the time per call (``--stat best`` for the minimum).
- "forward+backward" is conv2d plus both gradients: numbaconv's conv2d, conv2d_grad_input and
  conv2d_grad_weight; PyTorch's ``F.conv2d(x, w, b)`` with x and w requiring grad, then ``y.backward(g)``.
  "forward" runs PyTorch under ``torch.no_grad()``.
- ratio = PyTorch time / numbaconv time: above 1 means numbaconv is faster. The last lines print the
  geometric means of the ratios.

The worker speaks one JSON object per line on stdin/stdout; an operation is a method of `WorkerSession`
(``op_<name>``), so a new measurement (training steps, thread scaling, peak memory, start-up) is a new
operation plus a ``run_*``/``render_*`` pair on the driver side.
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
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from shapes import PASSES, ConvShape, random_inputs, select  # noqa: E402

LIBRARIES = ("numbaconv", "torch")
GRAD_PASSES = ("forward", "grad_input", "grad_weight")
WARMUP_CALLS = 2  # the first call compiles (or loads the cache), the second settles workspaces
# Pause before each library's turn: after a call, BLAS/OpenMP worker threads keep spinning for up to ~0.1 s
# (measured here on numbaconv's worker) and would steal cores from the other library's timing.
SETTLE_SECONDS = 0.15
MAX_REPS = 10_000


# ----------------------------------------------------------------------------------------------------------
# Worker side: one library per process
# ----------------------------------------------------------------------------------------------------------


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
        self.nc = numbaconv
        self.algorithm = algorithm

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
        self.torch = torch
        self.conv2d = torch.nn.functional.conv2d

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


def seconds_per_call(fn: Callable[[], object], reps: int, prime: bool) -> float:
    """Mean time of ``reps`` back-to-back calls; with ``prime``, after an untimed one that wakes the threads.

    Priming matters for short calls (a pool woken from sleep, caches holding the other process's data);
    a call long enough to fill a round alone (``reps`` 1) amortises that itself and is not primed.
    """
    if prime:
        fn()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps
    finally:
        if gc_was_enabled:
            gc.enable()


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


class WorkerSession:
    """State of one worker process: its backend and the prepared calls of the current shape."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.shape: str | None = None
        self.calls: dict[str, Callable[[], object]] = {}
        self.reps: dict[str, int] = {}

    def op_info(self) -> dict:
        return self.backend.info()

    def op_setup(self, shape: str, target: float, seed: int) -> dict:
        """Build the inputs of ``shape``, warm every pass up and choose its repetitions."""
        conv = select([shape])[0]
        self.shape, self.reps = shape, {}
        self.calls = self.backend.calls(conv, random_inputs(conv, seed))
        reply: dict = {"first_call_ms": {}, "reps": self.reps, "errors": {}}
        for pass_, fn in self.calls.items():
            try:
                start = time.perf_counter()
                fn()
                reply["first_call_ms"][pass_] = 1e3 * (time.perf_counter() - start)
                for _ in range(WARMUP_CALLS - 1):
                    fn()
                single = seconds_per_call(fn, 1, prime=False)
            except Exception as exc:  # reported per pass; the other pass and library go on
                reply["errors"][pass_] = error_text(exc)
                continue
            self.reps[pass_] = max(1, min(MAX_REPS, math.ceil(target / max(single, 1e-9))))
        try:
            reply["algorithms"] = self.backend.algorithms(conv)
        except Exception as exc:
            reply["algorithms"] = {"error": error_text(exc)}
        return reply

    def op_time(self, shape: str, pass_: str) -> dict:
        """Seconds per call of ``pass_`` on the current shape, over its chosen repetitions."""
        if shape != self.shape or pass_ not in self.reps:
            return {"error": f"{pass_} of {shape} is not set up"}
        reps = self.reps[pass_]
        return {"seconds": seconds_per_call(self.calls[pass_], reps, prime=reps > 1)}

    def op_release(self) -> dict:
        self.shape, self.calls, self.reps = None, {}, {}
        gc.collect()
        return {}


def serve(library: str, threads: int, algorithm: str) -> None:
    """Answer JSON requests on stdin, one per line, until "quit" or end of input."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter printed to stdout must not corrupt the protocol

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    try:
        session = WorkerSession(BACKENDS[library](threads, algorithm))
    except Exception as exc:
        send({"fatal": error_text(exc)})
        return
    send({"ready": library})
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            send(getattr(session, f"op_{op}")(**request))
        except Exception as exc:
            send({"error": error_text(exc)})


# ----------------------------------------------------------------------------------------------------------
# Driver side
# ----------------------------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker could not start or died."""

    def __init__(self, library: str, message: str) -> None:
        super().__init__(message)
        self.library = library


class Worker:
    """A worker process for one library (``threads`` threads), and the requests sent to it.

    A fresh one per measurement gives a clean process (peak memory, start-up); a long-lived one keeps its
    warm kernels (timings).
    """

    def __init__(self, library: str, threads: int, algorithm: str = "auto") -> None:
        self.library = library
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", library]
        command += ["--threads", str(threads), "--algorithm", algorithm]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = self._receive()
        if "fatal" in hello:
            self.close()
            raise WorkerError(library, hello["fatal"])
        self.info = self.request("info")

    def _receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(self.library, f"{self.library} worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def request(self, op: str, **kwargs) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(self.library, f"{self.library} worker exited (status {self.proc.wait()})") from None
        return self._receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.proc.wait()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_workers(args: argparse.Namespace) -> tuple[dict[str, Worker], dict[str, str]]:
    """A worker per library that starts; the others with the reason they did not."""
    workers, missing = {}, {}
    for library in LIBRARIES:
        progress(f"starting {library} worker ...")
        try:
            workers[library] = Worker(library, args.threads, args.algorithm)
        except WorkerError as exc:
            missing[library] = str(exc)
            progress(f"  {library} unavailable: {exc}")
    return workers, missing


def summarize(rounds: list[float], stat: str) -> float:
    return min(rounds) if stat == "best" else statistics.median(rounds)


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
        entry["libraries"][library] = {"setup": setup, "rounds_ms": {p: [] for p in PASSES}}
    order = list(workers)
    for round_ in range(args.rounds):
        for library in order if round_ % 2 == 0 else order[::-1]:
            time.sleep(SETTLE_SECONDS)
            record = entry["libraries"][library]
            for pass_ in PASSES:
                if pass_ in record["setup"]["errors"]:
                    continue
                reply = workers[library].request("time", shape=shape.name, pass_=pass_)
                if "error" in reply:
                    record["setup"]["errors"][pass_] = reply["error"]
                    record["rounds_ms"][pass_] = []
                else:
                    record["rounds_ms"][pass_].append(1e3 * reply["seconds"])
    for library, worker in workers.items():
        worker.request("release")
        record = entry["libraries"][library]
        record["ms"] = {p: summarize(ms, args.stat) if ms else None for p, ms in record["rounds_ms"].items()}
    return entry


def failed_record(message: str) -> dict:
    """The record of a library whose worker died on a shape."""
    return {
        "setup": {"errors": dict.fromkeys(PASSES, message), "reps": {}, "first_call_ms": {}},
        "rounds_ms": {p: [] for p in PASSES},
        "ms": dict.fromkeys(PASSES),
    }


def ratio(entry: dict, pass_: str) -> float | None:
    """PyTorch time / numbaconv time for one pass of one shape (None if either is missing)."""
    libs = entry["libraries"]
    if "torch" not in libs or "numbaconv" not in libs:
        return None
    ours, theirs = libs["numbaconv"]["ms"][pass_], libs["torch"]["ms"][pass_]
    return theirs / ours if ours and theirs else None


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def run_suite(workers: dict[str, Worker], args: argparse.Namespace) -> dict:
    """The shape-suite section: per shape, both libraries, both passes."""
    shapes = select(args.shapes)
    entries = []
    for i, shape in enumerate(shapes, 1):
        progress(f"[{i}/{len(shapes)}] {shape.name}: {shape.describe()}")
        failed = {}
        while True:
            try:
                entry = measure_shape({k: w for k, w in workers.items() if k not in failed}, shape, args)
                break
            except WorkerError as exc:  # a crash costs that library this shape, not the run
                progress(f"  {exc}; restarting the {exc.library} worker")
                failed[exc.library] = str(exc)
                workers[exc.library].close()
                try:
                    workers[exc.library] = Worker(exc.library, args.threads, args.algorithm)
                except WorkerError:
                    del workers[exc.library]
        entry["libraries"].update({library: failed_record(message) for library, message in failed.items()})
        entries.append(entry)
    return {"stat": args.stat, "rounds": args.rounds, "target_s": args.target, "shapes": entries}


def format_ms(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


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
        errors = {f"{lib} {p}": e for lib, rec in entry["libraries"].items() for p, e in rec["setup"]["errors"].items()}
        lines += [f"{'':<10}   ! {where}: {err}" for where, err in errors.items()]
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
            line += f"; 3x3 s1 d1 shapes: {geomean(eligible):.2f} over {len(eligible)}"
        lines.append(line)
    return lines


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def render_header(meta: dict, libraries: dict, missing: dict, args: argparse.Namespace) -> list[str]:
    names = []
    for library in LIBRARIES:
        if library in libraries:
            info = libraries[library]
            names.append(f"{library} {info['version']} ({info['threads']} threads)")
        else:
            names.append(f"{library}: not measured ({missing.get(library)})")
    m = meta["machine"]
    algorithm = "" if args.algorithm == "auto" else f", numbaconv algorithm={args.algorithm}"
    return [
        " vs ".join(names) + f"; float32{algorithm}",
        f"{args.stat} of {args.rounds} rounds per shape and pass, each round >= {args.target:g} s "
        f"of back-to-back calls, after warm-up; seed {args.seed}",
        f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}",
        "",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time numbaconv and PyTorch conv2d side by side on the benchmark shape suite."
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
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.target is None:
        args.target = 0.05 if args.quick else 0.2
    if args.rounds < 1 or args.threads < 1 or args.target <= 0:
        parser.error("--rounds, --threads and --target must be positive")
    if args.shapes is not None:
        try:
            select(args.shapes)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        serve(args.worker, args.threads, args.algorithm)
        return
    started = time.perf_counter()
    workers, missing = start_workers(args)
    if not workers:
        sys.exit("no library could be measured: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    try:
        report = {
            "meta": {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}},
            "libraries": {library: worker.info for library, worker in workers.items()},
            "missing": missing,
            "suite": run_suite(workers, args),
        }
    finally:
        for worker in workers.values():
            worker.close()
    report["meta"]["wall_seconds"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    lines = render_header(report["meta"], report["libraries"], missing, args)
    lines += render_suite(report["suite"])
    lines += ["", *render_suite_summary(report["suite"])]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
