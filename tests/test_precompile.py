"""The compile-ahead helper (`numbaconv.precompile`): when ``import numbaconv`` starts it, what it runs, when it
stops and what it leaves behind. The helper's steps themselves run in `test_warm_covers_every_step` (their
kernels are the ones the rest of the suite checks against the oracle)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from numba import njit

from numbaconv import precompile


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, with the helper switched on."""
    monkeypatch.setattr(precompile, "cache_directory", lambda: tmp_path)
    monkeypatch.delenv(precompile.ENV_SWITCH, raising=False)
    return tmp_path


@pytest.fixture
def spawned(monkeypatch):
    """The commands and environments `start_if_cold` would start processes with (none is started)."""
    calls = []

    def fake_popen(command, env, **kwargs):
        calls.append((command, env, kwargs))
        return "process"

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.setattr(precompile, "_helper", None)  # start_if_cold keeps what it started here
    return calls


def test_a_cold_cache_starts_one_helper(cache, spawned):
    assert precompile.start_if_cold() == "process"
    ((command, env, kwargs),) = spawned
    assert command == [sys.executable, "-m", "numbaconv.precompile", str(os.getpid())]
    assert env[precompile.ENV_SWITCH] == "0"  # its own import starts no helper
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(precompile.__file__)))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == package_parent
    assert kwargs["start_new_session"] and kwargs["stdout"] == subprocess.DEVNULL
    assert precompile.start_if_cold() is None  # the lock is held
    assert len(spawned) == 1


def test_wait_for_helper_returns_when_the_helper_has_exited(monkeypatch, capsys):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    monkeypatch.setattr(precompile, "_helper", helper)
    precompile.wait_for_helper()
    assert helper.poll() == 0
    assert "compile-ahead helper" in capsys.readouterr().err


def test_no_helper_when_switched_off_or_done(cache, spawned, monkeypatch):
    (cache / precompile._marker_name()).touch()
    assert precompile.start_if_cold() is None
    (cache / precompile._marker_name()).unlink()
    monkeypatch.setenv(precompile.ENV_SWITCH, "0")
    assert precompile.start_if_cold() is None
    monkeypatch.setattr(precompile, "cache_directory", lambda: None)  # JIT or cache off
    monkeypatch.delenv(precompile.ENV_SWITCH)
    assert precompile.start_if_cold() is None
    assert spawned == []


def test_a_stale_lock_is_taken_over(cache, spawned):
    lock = cache / (precompile._marker_name() + ".lock")
    lock.touch()
    assert precompile.start_if_cold() is None
    old = time.time() - precompile.STALE_LOCK_SECONDS - 1
    os.utime(lock, (old, old))
    assert precompile.start_if_cold() == "process"


def test_start_if_cold_never_raises(monkeypatch):
    def broken():
        raise OSError("read-only file system")

    monkeypatch.setattr(precompile, "cache_directory", broken)
    monkeypatch.delenv(precompile.ENV_SWITCH, raising=False)
    assert precompile.start_if_cold() is None


def _kernel_compile():
    """A step that makes Numba compile a function of numbaconv's (a module name under the package)."""
    namespace = {"__name__": "numbaconv.fake_module"}
    exec("def double(x):\n    return 2 * x\n", namespace)
    njit(namespace["double"])(1)


def _run(cache, monkeypatch, steps, parent):
    lock = cache / (precompile._marker_name() + ".lock")
    lock.touch()
    monkeypatch.setattr(precompile, "steps", lambda dtype: iter(steps))
    precompile.run_helper(parent)
    assert not lock.exists()
    return (cache / precompile._marker_name()).exists()


def test_the_helper_marks_a_finished_pass(cache, monkeypatch):
    done = []
    assert _run(cache, monkeypatch, [lambda: done.append(1), _kernel_compile, lambda: done.append(2)], os.getppid())
    assert done == [1, 2]


def test_the_helper_stops_after_its_parent(cache, monkeypatch):
    done = []
    orphan = os.getppid() + 1  # any other process id: the parent has gone
    assert not _run(cache, monkeypatch, [_kernel_compile, lambda: done.append(1)], orphan)  # cold: go on later
    assert done == []
    assert _run(cache, monkeypatch, [lambda: done.append(1), lambda: done.append(2)], orphan)  # warm: done
    assert done == [1]


def test_a_failing_step_ends_the_pass_for_good(cache, monkeypatch):
    def fail():
        raise RuntimeError("a bug")

    done = []
    assert _run(cache, monkeypatch, [fail, lambda: done.append(1)], os.getppid())
    assert done == []


def test_the_helper_process_exits_with_its_parent_gone(tmp_path):
    """``python -m numbaconv.precompile PID`` with a parent that is not its own: it runs one step (direct's 3x3
    passes, loaded or compiled into an empty cache) and stops, removing the lock."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    code = "from numbaconv import precompile; print(precompile.cache_directory(), precompile._marker_name())"
    directory, marker = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    lock = os.path.join(directory, marker + ".lock")
    open(lock, "w").close()
    subprocess.run([sys.executable, "-m", "numbaconv.precompile", "1"], env=env, check=True, timeout=300)
    assert not os.path.exists(lock)
    assert not os.path.exists(os.path.join(directory, marker))  # it had to compile: a later run goes on


def test_warm_covers_every_step(monkeypatch):
    """`warm` runs every step of both dtypes (the kernels are mostly compiled by the other tests already)."""
    ran = []
    real_steps = precompile.steps

    def counted(dtype):
        for step in real_steps(dtype):
            ran.append(np.dtype(dtype))
            yield step

    monkeypatch.setattr(precompile, "steps", counted)
    precompile.warm()
    per_dtype = len(list(real_steps(np.float32)))
    assert per_dtype >= 15
    assert ran == [np.dtype(np.float32)] * per_dtype + [np.dtype(np.float64)] * per_dtype
