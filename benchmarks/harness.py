"""The machinery under `compare.py`: worker processes, their JSON-lines protocol, timing, interleaved rounds.

- A *worker* is a long-lived process for one library (`worker.py`), so two libraries' thread pools never
  share a process. It answers one JSON object per line on stdin/stdout: a
  request ``{"op": name, ...}`` calls ``op_<name>(...)`` of its session object (`serve`), whose reply is one
  JSON object (``{"error": ...}`` when the operation raised).
- A session derived from `TimingSession` *arms* a workload -- named no-argument calls, each warmed up (so a
  Numba compilation or cache load is never timed) and given enough back-to-back repetitions to fill a target
  time -- then times one call of it per ``time`` request.
- The driver (`Worker`, `interleaved_rounds`) takes turns between the libraries: the order alternates between
  rounds and each turn starts after a short pause, so a busy moment on the machine hits both libraries.
- `run_fresh` runs a one-shot process (peak memory, start-up) and returns its wall time and last JSON line.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WARMUP_CALLS = 2  # the first call compiles (or loads the cache), the second settles workspaces
# Pause before each library's turn: after a call, BLAS/OpenMP worker threads keep spinning for up to ~0.1 s
# (measured here on numbaconv's worker) and would steal cores from the other library's timing.
SETTLE_SECONDS = 0.15
MAX_REPS = 10_000


# ----------------------------------------------------------------------------------------------------------
# Small helpers shared by both sides
# ----------------------------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def summarize(rounds: list[float], stat: str) -> float:
    return min(rounds) if stat == "best" else statistics.median(rounds)


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load,  # 1-minute load average before the workers start: other work on the machine
    }


# ----------------------------------------------------------------------------------------------------------
# Worker side
# ----------------------------------------------------------------------------------------------------------


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


class TimingSession:
    """Worker state: the armed workload (named calls, their repetitions and thread counts) and its timing.

    ``self.backend`` needs ``set_threads(n)`` and ``get_threads()`` for calls armed with a thread count.
    """

    def __init__(self, backend) -> None:
        self.backend = backend
        self.workload: str | None = None
        self.calls: dict[str, Callable[[], object]] = {}
        self.reps: dict[str, int] = {}
        self.threads: dict[str, int] = {}

    @contextmanager
    def _threads(self, key: str) -> Iterator[None]:
        """Run with the thread count ``key`` was armed with (if any), restoring the process's afterwards."""
        count = self.threads.get(key)
        if count is None:
            yield
            return
        before = self.backend.get_threads()
        self.backend.set_threads(count)
        try:
            yield
        finally:
            self.backend.set_threads(before)

    def arm(
        self,
        workload: str,
        calls: dict[str, Callable[[], object]],
        target: float,
        threads: dict[str, int] | None = None,
    ) -> dict:
        """Make ``calls`` the current workload: warm each up and choose its repetitions to fill ``target`` s."""
        self.workload, self.calls, self.reps, self.threads = workload, calls, {}, dict(threads or {})
        reply: dict = {"first_call_ms": {}, "reps": self.reps, "errors": {}}
        for key, fn in calls.items():
            try:
                with self._threads(key):
                    start = time.perf_counter()
                    fn()
                    reply["first_call_ms"][key] = 1e3 * (time.perf_counter() - start)
                    for _ in range(WARMUP_CALLS - 1):
                        fn()
                    single = seconds_per_call(fn, 1, prime=False)
            except Exception as exc:  # reported per call; the other calls and library go on
                reply["errors"][key] = error_text(exc)
                continue
            self.reps[key] = max(1, min(MAX_REPS, math.ceil(target / max(single, 1e-9))))
        return reply

    def op_time(self, workload: str, key: str) -> dict:
        """Seconds per call of ``key`` of the current workload, over its chosen repetitions."""
        if workload != self.workload or key not in self.reps:
            return {"error": f"{key} of {workload} is not set up"}
        reps = self.reps[key]
        with self._threads(key):
            return {"seconds": seconds_per_call(self.calls[key], reps, prime=reps > 1)}

    def op_release(self) -> dict:
        self.workload, self.calls, self.reps, self.threads = None, {}, {}, {}
        gc.collect()
        return {}


def serve(make_session: Callable[[], object], name: str) -> None:
    """Answer JSON requests on stdin, one per line, until "quit" or end of input."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter printed to stdout must not corrupt the protocol

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    try:
        session = make_session()
    except Exception as exc:
        send({"fatal": error_text(exc)})
        return
    send({"ready": name})
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
    """A worker process for one library, started with ``command``, and the requests sent to it."""

    def __init__(self, library: str, command: list[str], env: dict | None = None) -> None:
        self.library = library
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env
        )
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


def interleaved_rounds(
    workers: dict[str, Worker],
    workload: str,
    keys: dict[str, list[str]],
    errors: dict[str, dict[str, str]],
    rounds: int,
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per call of each armed ``keys[library]`` over ``rounds`` rounds, the libraries taking turns.

    The order of the libraries alternates between rounds; each turn starts after `SETTLE_SECONDS`. A key in
    ``errors[library]`` is skipped; a key whose timing fails is added there and loses its rounds.
    """
    samples = {library: {key: [] for key in keys[library]} for library in workers}
    order = list(workers)
    for round_ in range(rounds):
        for library in order if round_ % 2 == 0 else order[::-1]:
            time.sleep(SETTLE_SECONDS)
            for key in keys[library]:
                if key in errors[library]:
                    continue
                reply = workers[library].request("time", workload=workload, key=key)
                if "error" in reply:
                    errors[library][key] = reply["error"]
                    samples[library][key] = []
                else:
                    samples[library][key].append(1e3 * reply["seconds"])
    return samples


def run_fresh(command: list[str], env: dict | None = None, timeout: float = 600) -> tuple[float, dict]:
    """Run a one-shot process; return its wall time (from just before start to exit) and its last JSON line.

    The JSON line is ``{"error": ...}`` when the process failed or printed none.
    """
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, {"error": f"timed out after {timeout:g} s"}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return wall, {"error": f"exit status {done.returncode}: {tail}"}
    return wall, json.loads(lines[-1])
