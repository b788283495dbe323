"""Threads, processes and non-finite data.

- Several Python threads calling the engine at once (different shapes, algorithms and passes) all get the
  oracle's answers.
- A process that has used the engine forks (multiprocessing's "fork" start method) and the child uses the
  engine too; a hang fails the test after a timeout instead of blocking the run. Also forking while another
  thread is inside an engine call (run in a separate interpreter, since that deadlock can hang the parent).
- NaN/Inf reach exactly the outputs whose windows contain them, including for ``algorithm="auto"`` on a
  layer big enough that auto picks Winograd (whose tile transforms would otherwise smear them).
- set_num_threads / get_num_threads round-trip.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import oracle
import pytest
from conftest import assert_close

import numbaconv

FORK_TIMEOUT = 180  # seconds; generous for a loaded 2-core CI machine, short enough to fail a hang

# name: (x shape, weight shape, options, algorithm, pass, dtype)
JOBS = {
    "wino-fwd-f32": ((2, 8, 12, 11), (8, 8, 3, 3), dict(padding=1), "winograd", "forward", np.float32),
    "wino-gi-f64": (
        (1, 6, 9, 10),
        (4, 6, 3, 3),
        dict(padding=1, padding_mode="reflect"),
        "winograd",
        "grad_input",
        np.float64,
    ),
    "wino-gw-f32": ((2, 4, 10, 7), (6, 2, 3, 3), dict(padding="same", groups=2), "winograd", "grad_weight", np.float32),
    "im2col-fwd-f64": ((2, 5, 9, 9), (7, 5, 3, 2), dict(stride=2, padding=(1, 0)), "im2col", "forward", np.float64),
    "im2col-gi-f32": ((1, 3, 8, 11), (4, 3, 1, 1), dict(stride=(1, 2)), "im2col", "grad_input", np.float32),
    "im2col-gw-f64": (
        (2, 4, 7, 8),
        (4, 4, 2, 2),
        dict(padding="same", dilation=2, padding_mode="circular"),
        "im2col",
        "grad_weight",
        np.float64,
    ),
    "direct-fwd-f32": ((2, 6, 9, 8), (6, 1, 3, 3), dict(padding=1, groups=6), "direct", "forward", np.float32),
    "direct-gi-f64": (
        (1, 4, 10, 9),
        (8, 2, 5, 3),
        dict(padding=2, groups=2, padding_mode="replicate"),
        "direct",
        "grad_input",
        np.float64,
    ),
    "direct-gw-f32": (
        (2, 3, 9, 9),
        (5, 3, 3, 3),
        dict(stride=2, dilation=2, padding=2),
        "direct",
        "grad_weight",
        np.float32,
    ),
    "auto-fwd-f64": ((1, 16, 12, 12), (16, 16, 3, 3), dict(padding=1), "auto", "forward", np.float64),
    "auto-gi-f32": ((2, 3, 9, 7), (4, 3, 4, 4), dict(padding="same"), "auto", "grad_input", np.float32),
    "auto-gw-f64": ((3, 5, 6, 6), (5, 1, 3, 3), dict(padding=1, groups=5), "auto", "grad_weight", np.float64),
}


def _job_data(name):
    """The job's arrays (in its dtype) and the oracle's answer."""
    x_shape, w_shape, options, _, pass_name, dtype = JOBS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[0]).astype(dtype)
    grad_output = rng.standard_normal(
        oracle.output_shape(
            x_shape, w_shape, options.get("stride", 1), options.get("padding", 0), options.get("dilation", 1)
        )
    ).astype(dtype)
    if pass_name == "forward":
        expected = oracle.conv2d(x, weight, bias, **options)
    elif pass_name == "grad_input":
        expected = oracle.conv2d_grad_input(x_shape, weight, grad_output, **options)
    else:
        expected = oracle.conv2d_grad_weight(x, w_shape, grad_output, **options)
    return (x, weight, bias, grad_output), expected


def _run_job(name, arrays):
    _, _, options, algorithm, pass_name, _ = JOBS[name]
    x, weight, bias, grad_output = arrays
    if pass_name == "forward":
        return numbaconv.conv2d(x, weight, bias, algorithm=algorithm, **options)
    if pass_name == "grad_input":
        return numbaconv.conv2d_grad_input(x.shape, weight, grad_output, algorithm=algorithm, **options)
    return numbaconv.conv2d_grad_weight(x, weight.shape, grad_output, algorithm=algorithm, **options)


@pytest.fixture(scope="module")
def jobs():
    return {name: _job_data(name) for name in JOBS}


def _check_job(name, result, expected):
    _, _, _, algorithm, _, dtype = JOBS[name]
    assert_close(result, expected, dtype, algorithm)


def test_threads_at_once(jobs):
    """Four threads, each running every job (in its own order) three times, all starting together."""
    names = list(JOBS)
    for name in names:  # compile (or load) every kernel first, so the threads really overlap
        _check_job(name, _run_job(name, jobs[name][0]), jobs[name][1])
    threads = 4
    barrier = threading.Barrier(threads)

    def worker(index):
        order = names[index:] + names[:index]
        if index % 2:
            order.reverse()
        barrier.wait(timeout=60)
        failures = []
        for _ in range(3):
            for name in order:
                try:
                    _check_job(name, _run_job(name, jobs[name][0]), jobs[name][1])
                except Exception as error:
                    failures.append(f"thread {index} {name}: {type(error).__name__}: {error}")
        return failures

    with ThreadPoolExecutor(threads) as pool:
        failures = [f for result in pool.map(worker, range(threads)) for f in result]
    assert not failures, "\n".join(failures)


def _child(conn, names, arrays, num_threads):
    """In the forked child: run the jobs and send the results (or the error) back."""
    try:
        if num_threads is not None:
            numbaconv.set_num_threads(num_threads)
        conn.send(("ok", [_run_job(name, arrays[name]) for name in names]))
    except BaseException as error:  # report anything, so the parent fails with the reason
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def _run_in_fork(names, jobs, num_threads=None):
    """Run ``names`` in a forked child; return its results, failing on a hang, a crash or an error."""
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    arrays = {name: jobs[name][0] for name in names}
    process = ctx.Process(target=_child, args=(child_end, names, arrays, num_threads), daemon=True)
    process.start()
    child_end.close()
    try:
        if not parent_end.poll(FORK_TIMEOUT):
            pytest.fail(f"the forked child did not answer within {FORK_TIMEOUT} s (hang after fork?)")
        status, payload = parent_end.recv()
    except EOFError:
        process.join(10)
        pytest.fail(f"the forked child died without answering (exit code {process.exitcode})")
    finally:
        if process.is_alive():
            process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    assert status == "ok", f"the forked child failed: {payload}"
    assert process.exitcode == 0, f"the forked child exited with code {process.exitcode}"
    return payload


@pytest.mark.parametrize("num_threads", [None, 1], ids=["default-threads", "one-thread"])
def test_fork_after_use(jobs, num_threads):
    """The parent has run every algorithm (threads and BLAS started); a forked child computes correctly."""
    names = list(JOBS)
    for name in names:
        _check_job(name, _run_job(name, jobs[name][0]), jobs[name][1])
    for name, result in zip(names, _run_in_fork(names, jobs, num_threads), strict=True):
        _check_job(name, result, jobs[name][1])
    # and the parent still works after forking
    for name in names:
        _check_job(name, _run_job(name, jobs[name][0]), jobs[name][1])


def test_fork_after_threads(jobs):
    """Fork after several Python threads used the engine at once (as pytest-xdist workers may inherit)."""
    names = list(JOBS)
    with ThreadPoolExecutor(3) as pool:
        for name, result in zip(names, pool.map(lambda n: _run_job(n, jobs[n][0]), names), strict=True):
            _check_job(name, result, jobs[name][1])
    for name, result in zip(names, _run_in_fork(names, jobs), strict=True):
        _check_job(name, result, jobs[name][1])


# Run in a separate interpreter: when this deadlocks it can do so inside os.fork() in the parent, which no
# in-process timeout could interrupt.
_FORK_WHILE_BUSY = textwrap.dedent(
    """
    import multiprocessing, os, threading, time
    import numpy as np
    import numbaconv, oracle

    x = np.random.default_rng(0).standard_normal((4, 16, 20, 20))
    w = np.random.default_rng(1).standard_normal((16, 16, 3, 3))
    expected = oracle.conv2d(x, w, padding=1)
    algorithms = ("direct", "im2col", "winograd")
    stop = threading.Event()

    def busy():
        i = 0
        while not stop.is_set():
            numbaconv.conv2d(x, w, padding=1, algorithm=algorithms[i % 3])
            i += 1

    def child(conn):
        conn.send([float(np.abs(numbaconv.conv2d(x, w, padding=1, algorithm=a) - expected).max())
                   for a in algorithms])
        conn.close()

    for a in algorithms:
        numbaconv.conv2d(x, w, padding=1, algorithm=a)
    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    ctx = multiprocessing.get_context("fork")
    for trial in range(40):  # without the fork hook's wait for idle threads, 4% of these forks hung
        time.sleep(0.02)
        parent_end, child_end = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child, args=(child_end,), daemon=True)
        process.start()
        child_end.close()
        if not parent_end.poll(30):
            process.kill()
            print(f"fork {trial}: the child hung")
            os._exit(2)
        errors = parent_end.recv()
        process.join()
        if max(errors) > 1e-9:
            print(f"fork {trial}: wrong results in the child, errors {errors}")
            os._exit(3)
    stop.set()
    thread.join(60)
    print("ok")
    os._exit(0)
    """
)


def test_fork_while_another_thread_computes():
    """Fork while another thread is inside an engine call (BLAS and Numba pools busy): neither the parent nor
    the child may deadlock, and the child computes correctly."""
    root = Path(numbaconv.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(Path(__file__).resolve().parent)]))
    # Its own process group, so a hung parent and its hung children can all be killed.
    process = subprocess.Popen(
        [sys.executable, "-c", _FORK_WHILE_BUSY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=FORK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("deadlock: forking while another thread ran the engine hung in the parent")
    assert process.returncode == 0 and "ok" in stdout, f"exit code {process.returncode}: {stdout} {stderr}"


# ---- NaN / Inf propagation ----

# A 3x3 layer big enough that "auto" picks Winograd for it (at least for the forward pass). Winograd's tile
# transforms would smear a NaN over whole tiles, so the engine must not run them on non-finite data, whether
# "auto" chose Winograd or the caller asked for it.
# The depthwise layer's rows are wide enough for the direct forward's unpadded kernel, whose edge columns
# first read a neighbouring row's pixels (`numbaconv.kernels.direct.forward_same_width`).
NAN_SHAPES = {
    "dense": ((1, 32, 16, 16), (32, 32, 3, 3), 1),
    "depthwise-wide": ((1, 8, 16, 24), (8, 1, 3, 3), 8),
}


def _reach(pass_name, source_mask, x_shape, w_shape, options):
    """Where a non-finite value at ``source_mask`` must show up: the oracle run on indicators."""
    ones_w = np.ones(w_shape)
    if pass_name == "forward":
        return oracle.conv2d(source_mask, ones_w, **options) > 0
    out_shape = oracle.output_shape(
        x_shape, w_shape, options.get("stride", 1), options.get("padding", 0), options.get("dilation", 1)
    )
    if pass_name == "grad_input":
        return oracle.conv2d_grad_input(x_shape, ones_w, source_mask, **options) > 0
    return oracle.conv2d_grad_weight(source_mask, w_shape, np.ones(out_shape), **options) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("value", [np.nan, -np.inf], ids=["nan", "-inf"])
@pytest.mark.parametrize("where", [(7, 9), (0, 0), (15, 4), (9, -1)], ids=["interior", "corner", "edge", "right"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
@pytest.mark.parametrize("algorithm", ["auto", "winograd", "direct", "im2col"])
@pytest.mark.parametrize("pass_name", ["forward", "grad_input", "grad_weight"])
@pytest.mark.parametrize("layer", list(NAN_SHAPES))
def test_non_finite_stays_in_its_windows(layer, pass_name, algorithm, padding_mode, where, value, dtype):
    x_shape, w_shape, groups = NAN_SHAPES[layer]
    options = dict(padding=1, padding_mode=padding_mode, groups=groups)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal(w_shape)
    grad_output = rng.standard_normal(oracle.output_shape(x_shape, w_shape, padding=1))
    # grad_input gets the bad value in grad_output; forward and grad_weight in x.
    bad = grad_output if pass_name == "grad_input" else x
    channel = 5
    mask = np.zeros(bad.shape)
    mask[0, channel, where[0], where[1]] = 1.0
    clean = bad.copy()
    clean[0, channel, where[0], where[1]] = 0.0
    bad[0, channel, where[0], where[1]] = value
    reach = _reach(pass_name, mask, x_shape, w_shape, options)
    if pass_name == "forward":
        actual = numbaconv.conv2d(x.astype(dtype), weight.astype(dtype), algorithm=algorithm, **options)
        expected = oracle.conv2d(clean, weight, **options)
    elif pass_name == "grad_input":
        actual = numbaconv.conv2d_grad_input(
            x_shape, weight.astype(dtype), grad_output.astype(dtype), algorithm=algorithm, **options
        )
        expected = oracle.conv2d_grad_input(x_shape, weight, clean, **options)
    else:
        actual = numbaconv.conv2d_grad_weight(
            x.astype(dtype), w_shape, grad_output.astype(dtype), algorithm=algorithm, **options
        )
        expected = oracle.conv2d_grad_weight(clean, w_shape, grad_output, **options)
    assert reach.any() and not reach.all()
    nonfinite = ~np.isfinite(actual)
    leaked, missing = nonfinite & ~reach, reach & ~nonfinite
    assert not leaked.any(), f"non-finite outside the windows at {np.argwhere(leaked)[:5].tolist()}"
    assert not missing.any(), f"finite inside the windows at {np.argwhere(missing)[:5].tolist()}"
    if np.isnan(value):
        assert np.isnan(actual[reach]).all(), "NaN must stay NaN"
    finite_actual = np.where(reach, 0.0, actual).astype(dtype)
    assert_close(finite_actual, np.where(reach, 0.0, expected), dtype, algorithm)


# ---- thread count ----


def test_set_get_num_threads_round_trip(jobs):
    original = numbaconv.get_num_threads()
    assert original >= 1
    try:
        for n in sorted({1, original}):
            numbaconv.set_num_threads(n)
            assert numbaconv.get_num_threads() == n
            for name in ("wino-fwd-f32", "im2col-gw-f64", "direct-gi-f64"):
                _check_job(name, _run_job(name, jobs[name][0]), jobs[name][1])
    finally:
        numbaconv.set_num_threads(original)
    assert numbaconv.get_num_threads() == original
