"""Threads (Numba's and BLAS's), the threading layer, the engine lock and reusable workspaces.

Numba's ``tbb`` threading layer is the one that is both thread-safe and fork-safe, and it launches a parallel
region in about a microsecond (``workqueue``, the fallback where the ``tbb`` package is missing, takes ~100 us,
which dominates small layers). Every engine call also runs under one process-wide lock: it keeps a single
thread pool busy at a time, so Numba's workers and BLAS's never compete for the same cores and two Python
threads never oversubscribe them; and it makes ``workqueue``, which is not thread-safe, safe too.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import math
import os
import threading
import time

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

TBB_LIBRARIES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")


def _load_tbb() -> bool:
    """Load the ``tbb`` wheel's library so Numba can use it (pip puts it outside the loader's search path)."""
    try:
        files = importlib.metadata.distribution("tbb").files or ()
        library = next(f for f in files if f.name in TBB_LIBRARIES)
        ctypes.CDLL(str(library.locate()), mode=ctypes.RTLD_GLOBAL)
        import numba.np.ufunc.tbbpool  # noqa: F401  (fails here, not at the first launch, if TBB is unusable)
    except (importlib.metadata.PackageNotFoundError, StopIteration, OSError, ImportError):
        return False
    return True


if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "tbb" if _load_tbb() else "workqueue"

MAX_THREADS: int = numba.config.NUMBA_NUM_THREADS

HEAP_BLOCK_BYTES = 32 << 20
"""Arrays up to this size come from the heap instead of fresh mappings (glibc's ceiling for it on 64-bit)."""

HEAP_RETAIN_BYTES = 256 << 20
"""Free memory the heap keeps for reuse instead of returning it to the OS; `release_workspaces` returns it."""


@functools.cache
def _libc_function(name: str):
    """The C library's function ``name``, or None where there is none (not glibc, or not found); looked up
    once."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):
        return None


def _retain_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse (unless NUMBACONV_KEEP_FREED_MEMORY=0); whether it now does.

    A training step allocates every activation and gradient anew. By default glibc maps blocks above an
    adaptive threshold freshly and hands the heap's free top back to the OS once a step frees it, so the
    next step page-faults the same megabytes in again: the tutorials' SimpleCNN at batch 64, 2 threads, took
    2000 page faults a step, and 30.7 ms median instead of 18.5 ms with the memory kept.
    """
    mallopt = _libc_function("mallopt")
    if os.environ.get("NUMBACONV_KEEP_FREED_MEMORY", "1") == "0" or mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, HEAP_BLOCK_BYTES)) and bool(mallopt(m_trim_threshold, HEAP_RETAIN_BYTES))


KEEPS_FREED_MEMORY: bool = _retain_freed_memory()
"""Whether freed memory stays in the process for reuse (see `_retain_freed_memory`)."""

_lock = threading.RLock()
_num_threads = MAX_THREADS
_blas = ThreadpoolController().select(user_api="blas")
_workspaces: dict[tuple[str, np.dtype], np.ndarray] = {}
_views: dict[tuple, np.ndarray] = {}  # (name, dtype, shape) -> the view `workspace` last returned for it
_VIEWS_MAX = 4096


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


_TASKS = "/proc/self/task"
_SEES_THREAD_STATES = os.path.isdir(_TASKS)  # Linux
_SETTLE_SECONDS = 0.05  # the longest a fork waits for the other threads to go idle


def _running_threads() -> int:
    """How many threads of this process other than the calling one are running (Linux's state R)."""
    me = str(threading.get_native_id())
    running = 0
    for tid in os.listdir(_TASKS):
        try:
            with open(f"{_TASKS}/{tid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # the thread has just exited
            continue
        running += tid != me and fields[0] == b"R"
    return running


def _before_fork() -> None:
    """Wait for any engine call in flight (BLAS's and Numba's thread pools cannot be copied mid-call: the child
    would inherit their held locks), then, on Linux, for the thread pools' workers to stop running: a TBB
    worker still spinning down after a parallel region can be caught inside the scheduler, and the child's
    first parallel region then hangs (8 hangs in 200 forks of a process whose other thread calls the engine
    in a loop; none in 400 with this wait)."""
    _lock.acquire()
    if _SEES_THREAD_STATES:
        deadline = time.monotonic() + _SETTLE_SECONDS
        while _running_threads() and time.monotonic() < deadline:
            time.sleep(0.0002)


# The child gets a fresh, free lock.
os.register_at_fork(before=_before_fork, after_in_parent=lambda: _lock.release(), after_in_child=_reset_lock_in_child)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for all parallel work: Numba kernels and the BLAS matrix products alike.

    ``n`` must be an int from 1 to the number of threads Numba started with (all cores by default,
    ``NUMBA_NUM_THREADS`` to change it).
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be between 1 and {MAX_THREADS}, got {n}")
    with _lock:
        _num_threads = int(n)
        _blas.limit(limits=_num_threads)


def get_num_threads() -> int:
    """The number of threads parallel work uses (see `set_num_threads`)."""
    return _num_threads


class parallel_section:  # lower case: used like the function it was, ``with parallel_section():``
    """Hold the engine lock and apply the thread count for the calling thread's Numba launches.

    A plain class rather than a generator context manager: it is entered around every kernel launch.
    """

    __slots__ = ("_held",)

    def __enter__(self) -> None:
        self._held = _lock  # the one acquired, even if a fork replaces the global meanwhile
        self._held.acquire()
        try:
            if numba.get_num_threads() != _num_threads:  # the setting is per Python thread
                numba.set_num_threads(_num_threads)
        except BaseException:
            self._held.release()
            raise

    def __exit__(self, *exc_info) -> None:
        self._held.release()


def workspace(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A scratch array of ``shape`` reused across calls; its contents are undefined.

    Buffers are kept per (name, dtype) and only grow, so a steady workload stops allocating (and stops
    page-faulting) after its first call. Call only inside `parallel_section`: the buffers are shared.
    """
    key = (name, dtype, shape)
    view = _views.get(key)
    if view is None:
        view = _views[key] = _grown(name, math.prod(shape), np.dtype(dtype)).reshape(shape)
    return view


def _grown(name: str, size: int, dtype: np.dtype) -> np.ndarray:
    """The first ``size`` elements of buffer (name, dtype), growing it (and dropping the views of the
    smaller one, which would keep it alive) when it is too small."""
    buffer = _workspaces.get((name, dtype))
    if buffer is None or buffer.size < size:
        _views.clear()
        buffer = _workspaces[name, dtype] = np.empty(size, dtype=dtype)
    elif len(_views) >= _VIEWS_MAX:  # a workload of ever new shapes: start over rather than grow forever
        _views.clear()
    return buffer[:size]


def workspace_bytes() -> int:
    """Bytes currently held by reusable workspaces."""
    with _lock:
        return sum(buffer.nbytes for buffer in _workspaces.values())


def release_workspaces() -> None:
    """Free every reusable workspace, and return the free memory the heap keeps for reuse to the OS (see
    `KEEPS_FREED_MEMORY`); the next call that needs a workspace allocates it again."""
    with _lock:
        _views.clear()
        _workspaces.clear()
        malloc_trim = _libc_function("malloc_trim")
        if malloc_trim is not None:
            malloc_trim(0)
