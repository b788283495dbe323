"""The runtime: reusable workspaces (their views remembered per shape), the parallel section, and freed memory
kept for reuse."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest

from numbaconv import runtime


@pytest.fixture(autouse=True)
def fresh_workspaces():
    runtime.release_workspaces()
    yield
    runtime.release_workspaces()


def test_workspace_reuses_one_buffer_per_name_and_dtype():
    with runtime.parallel_section():
        a = runtime.workspace("test.a", (2, 3), np.float32)
        again = runtime.workspace("test.a", (2, 3), np.float32)
        smaller = runtime.workspace("test.a", (5,), np.float32)
        other_dtype = runtime.workspace("test.a", (2, 3), np.float64)
    assert a.shape == (2, 3) and a.dtype == np.float32 and again.shape == (2, 3)
    assert np.shares_memory(a, again) and np.shares_memory(a, smaller)
    assert other_dtype.dtype == np.float64 and not np.shares_memory(a, other_dtype)
    assert runtime.workspace_bytes() == 6 * 4 + 6 * 8


def test_workspace_grows_and_forgets_views_of_the_smaller_buffer():
    with runtime.parallel_section():
        small = runtime.workspace("test.b", (4,), np.float64)
        large = runtime.workspace("test.b", (100,), np.float64)
        small_again = runtime.workspace("test.b", (4,), np.float64)
    assert large.shape == (100,) and runtime.workspace_bytes() == 800
    assert np.shares_memory(large, small_again) and not np.shares_memory(small, small_again)


def test_release_workspaces_frees_every_buffer():
    with runtime.parallel_section():
        first = runtime.workspace("test.c", (8,), np.float32)
    runtime.release_workspaces()
    assert runtime.workspace_bytes() == 0
    with runtime.parallel_section():
        second = runtime.workspace("test.c", (8,), np.float32)
    assert second.shape == (8,) and not np.shares_memory(first, second)


def test_parallel_section_applies_the_thread_count_and_releases_the_lock_on_errors():
    numba.set_num_threads(1)
    with pytest.raises(KeyError), runtime.parallel_section():
        assert numba.get_num_threads() == runtime.get_num_threads()
        raise KeyError("inside")
    acquired = []  # from another thread: the lock is reentrant, so this thread's own holds would not show

    def try_lock():
        acquired.append(runtime._lock.acquire(timeout=5))
        runtime._lock.release()

    thread = threading.Thread(target=try_lock)
    thread.start()
    thread.join()
    assert acquired == [True]


_FAULTS_SCRIPT = """
import resource, numpy as np, numbaconv
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        arrays = [np.ones(1 << 20, np.float32) for _ in range(6)]  # a step's 6 x 4 MB, freed together
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(numbaconv.runtime.KEEPS_FREED_MEMORY, faults())
"""


@pytest.mark.skipif(not runtime.KEEPS_FREED_MEMORY, reason="the C library keeps no freed memory on request")
@pytest.mark.parametrize("keep", ["1", "0"])
def test_freed_memory_is_reused_without_page_faults(keep):
    env = {**os.environ, "NUMBACONV_KEEP_FREED_MEMORY": keep}
    run = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True, check=True)
    kept, faults = run.stdout.split()
    assert kept == ("True" if keep == "1" else "False")
    # 10 rounds of 24 MB are 60,000 pages: kept, they fault in once (before counting); returned, every round.
    assert (int(faults) < 1000) == (keep == "1"), f"{faults} page faults"


@pytest.mark.parametrize("size, expected", [("512K", 512 << 10), ("2M", 2 << 20), ("1048576", 1 << 20)])
def test_l2_size_from_sysfs(tmp_path, size, expected):
    """The L2 size the blocked kernels size their panels by, read from sysfs-style cache directories: the
    level-2 entry among others, in K, M or plain bytes."""
    from numbaconv.kernels import l2_bytes

    for index, (level, text) in enumerate([("1", "32K"), ("2", size), ("3", "32768K")]):
        entry = tmp_path / f"index{index}"
        entry.mkdir()
        (entry / "level").write_text(level + "\n")
        (entry / "size").write_text(text + "\n")
    assert l2_bytes(tmp_path) == expected


def test_l2_size_defaults_without_sysfs(tmp_path):
    """No cache directories (not Linux), or an unreadable size: the default."""
    from numbaconv.kernels import l2_bytes

    assert l2_bytes(tmp_path / "missing", default=12345) == 12345
    (tmp_path / "index0").mkdir()
    (tmp_path / "index0" / "level").write_text("2")
    (tmp_path / "index0" / "size").write_text("unknown")
    assert l2_bytes(tmp_path, default=12345) == 12345
