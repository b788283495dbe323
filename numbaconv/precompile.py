"""Compiling the kernels ahead of use: every kernel at once (`warm`), or, on a first run, in a helper process
that uses a core the first run leaves idle (`start_if_cold`).

Numba compiles a kernel on its first call and caches it on disk; compiling is single-threaded and holds the
GIL, so a first run (a fresh install, an empty cache) spends about a minute on one core while the other cores
wait. When ``import numbaconv`` finds no marker of a finished helper for this version, Numba and CPU in the
cache directory, it starts ``python -m numbaconv.precompile PID``: a niced process that compiles the float32
kernels into the same cache, in the order of `steps` (what a script reaches last, first). The kernels the
helper has finished load from the cache when the script gets to them: on a 2-core Zen 3 the start-up probe of
`compare.py --sections startup` took 34-35 s from an empty cache instead of 58-63 s; on the Zen 5 of the
README's Performance section it takes 16.7-19.1 s with the helper.

The helper leaves the marker when it is through the steps. When its parent has exited it stops after the
step it is on, with the marker only if it had nothing to compile (the cache was warm), so a later run goes on
where it stopped. A lock file keeps to one helper per cache. ``NUMBACONV_PRECOMPILE=0`` turns it off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from numba.core import event

ENV_SWITCH = "NUMBACONV_PRECOMPILE"
"""Environment variable: ``0`` keeps ``import numbaconv`` from starting the helper."""

STALE_LOCK_SECONDS = 15 * 60
"""A lock older than this belongs to a helper that died without removing it (a full pass takes about 2 min)."""

_helper: subprocess.Popen | None = None
"""The helper this process started, if any."""


def steps(dtype: type) -> Iterator[Callable[[], None]]:
    """The compile-ahead work for one dtype, as calls on tiny inputs, in the order the helper runs them.

    A script's first compilations are its first layer's forward (direct, say: few input channels) and then
    Winograd's (the 3x3 layers after it); its last ones the backward passes and the optimizer. The helper
    takes what it can before the script gets there: direct's 3x3 passes, then the common layers (max pooling,
    ReLU, batch norm, Adam), Winograd's F(4x4) backward passes, im2col's 3x3 passes and Winograd's forward.
    Then everything else a layer may take: the other pooling and padding layers, direct and im2col with
    stride 2, 1x1 and reflect padding, the engine's GEMM, Winograd's other tile size and its dilated
    (polyphase) path. Compiling all of it takes about 2.5 minutes of one core."""
    from . import conv2d, dispatch
    from .geometry import ConvSpec

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9)).astype(dtype)
    w = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    geo = ConvSpec.from_args(1, 1, 1, 1, "zeros").plan(x.shape, w.shape).geometry
    tiles = sorted(dispatch.WINOGRAD_TILES, key=lambda tile: tile != 4)
    yield lambda: _three_passes(x, w, dict(padding=1, algorithm="direct"))
    yield lambda: _layers(x, common=True)
    for which in ("dw", "dx"):
        yield lambda which=which: _winograd_pass(which, x, w, geo, tiles[0])
    yield lambda: _three_passes(x, w, dict(padding=1, algorithm="im2col"))
    yield lambda: _fused_im2col(x, w, geo)
    yield lambda: _winograd_pass("y", x, w, geo, tiles[0])
    yield lambda: _layers(x, common=False)
    configs = [(3, 2, 1, "zeros"), (1, 1, 0, "zeros"), (3, 1, 1, "reflect")]
    for algorithm in ("direct", "im2col", "winograd"):
        for k, stride, padding, mode in configs:
            if algorithm != "winograd" or (k, stride) == (3, 1):
                kw = dict(stride=stride, padding=padding, padding_mode=mode, algorithm=algorithm)
                yield lambda k=k, kw=kw: _three_passes(x, rng.standard_normal((6, 4, k, k)).astype(dtype), kw)
    wide = rng.standard_normal((1, 4, 3, 20)).astype(dtype)  # rows wide enough for direct's unpadded kernel
    yield lambda: conv2d(wide, w[:4, :1], None, padding=1, groups=4, algorithm="direct")
    yield lambda: _products(rng, dtype)
    for tile in tiles[1:]:
        for which in ("dw", "dx", "y"):
            yield lambda tile=tile, which=which: _winograd_pass(which, x, w, geo, tile)
    yield lambda: conv2d(x, w, None, padding=2, dilation=2, algorithm="winograd")  # its polyphase parts


def _winograd_pass(which: str, x: np.ndarray, w: np.ndarray, geo, tile: int) -> None:
    """Winograd F(tile x tile, 3x3) grad_weight (``which`` "dw"), grad_input ("dx") or forward ("y"), run
    directly: auto picks one tile size per shape, and each size has its own kernels."""
    from . import runtime
    from .algorithms import winograd

    g = np.ones((geo.n, geo.k, geo.oh, geo.ow), x.dtype)
    with runtime.parallel_section():
        if which == "dw":
            winograd.grad_weight(x, g, geo, tile=tile)
        elif which == "dx":
            winograd.grad_input(g, w, geo, tile=tile)
        else:
            winograd.forward(x, w, w[:, 0, 0, 0].copy(), geo, tile=tile)


def _fused_im2col(x: np.ndarray, w: np.ndarray, geo) -> None:
    """im2col's fused kernels (where the CPU has the GEMM's register tile), which layers this small take only
    at some thread counts."""
    from . import runtime
    from .algorithms import im2col

    if im2col.FUSED:
        g = np.ones((geo.n, geo.k, geo.oh, geo.ow), x.dtype)
        with runtime.parallel_section():
            im2col.fused_forward(x, w, w[:, 0, 0, 0].copy(), geo, 1, np.empty(g.shape, x.dtype))
            im2col.gathered_forward(x, w, w[:, 0, 0, 0].copy(), geo, np.empty(g.shape, x.dtype))
            im2col.fused_grad_input(g, w, geo, 1, np.empty(x.shape, x.dtype))
            im2col.fused_grad_weight(x, g, geo, 1)


def _three_passes(x: np.ndarray, w: np.ndarray, kw: dict) -> None:
    """Forward (with and without bias), grad_input and grad_weight of one configuration."""
    from . import conv2d, conv2d_grad_input, conv2d_grad_weight

    y = conv2d(x, w, w[:, 0, 0, 0].copy(), **kw)
    conv2d(x, w, None, **kw)
    conv2d_grad_input(x.shape, w, np.ones_like(y), **kw)
    conv2d_grad_weight(x, w.shape, np.ones_like(y), **kw)


def _layers(x: np.ndarray, common: bool) -> None:
    """Forward and backward on x (n, c, h, w) of the common layers (2x2 max pooling, batch norm, ReLU) and an
    Adam step, or of the others (strided and average pooling, reflect padding)."""
    from . import Tensor
    from .nn import functional as F
    from .optim import Adam

    t = Tensor(x.copy(), requires_grad=True)
    if common:
        c, dtype = x.shape[1], x.dtype
        gamma = Tensor(np.ones(c, dtype), requires_grad=True)
        beta = Tensor(np.zeros(c, dtype), requires_grad=True)
        mean, var = Tensor(np.zeros(c, dtype)), Tensor(np.ones(c, dtype))
        outputs = [
            F.max_pool2d(t, 2),
            F.batch_norm(t, mean, var, gamma, beta, training=True),
            F.batch_norm(t, mean, var, gamma, beta, training=False),
            F.relu(t),
        ]
    else:
        outputs = [
            F.max_pool2d(t, 3, stride=2, padding=1),
            F.avg_pool2d(t, 2),
            F.avg_pool2d(t, 3, stride=2, padding=1),
            F.adaptive_avg_pool2d(t, 1),
            F.pad(t, (1, 1, 1, 1), mode="reflect"),
        ]
    for out in outputs:
        out.sum().backward()
    if common:
        Adam([gamma, beta]).step()


def _products(rng: np.random.Generator, dtype: type) -> None:
    """The engine's GEMM, plain and with a transposed operand (the layers' tiny products stay on numpy)."""
    from . import runtime
    from .algorithms import gemm

    a, b = rng.standard_normal((64, 96)).astype(dtype), rng.standard_normal((96, 128)).astype(dtype)
    with runtime.parallel_section():
        gemm.matmul(a, b, np.empty((64, 128), dtype))
        gemm.matmul(a, np.asfortranarray(b), np.empty((64, 128), dtype))


def warm() -> None:
    """Compile every kernel now, in this process: all of `steps` for float32 and float64."""
    for dtype in (np.float32, np.float64):
        for step in steps(dtype):
            step()


class KernelCompileListener(event.Listener):
    """Calls ``on_compile()`` whenever Numba starts compiling one of numbaconv's functions (a cache miss:
    loading from the cache fires no ``numba:compile`` event)."""

    def __init__(self, on_compile: Callable[[], None]) -> None:
        self.on_compile = on_compile

    def on_start(self, ev) -> None:
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.startswith(__package__ + "."):
            self.on_compile()

    def on_end(self, ev) -> None:
        pass


def cache_directory() -> Path | None:
    """The directory Numba caches numbaconv's kernels in, or None when it caches nothing (JIT or cache off)."""
    from numba.core import config

    from .kernels import optim

    cache = getattr(optim.adam_update, "_cache", None)
    path = getattr(cache, "_cache_path", None)
    return None if config.DISABLE_JIT or path is None else Path(path)


def _marker_name() -> str:
    """The file a finished helper leaves: one per numbaconv version, Numba version and CPU."""
    import numba
    from llvmlite import binding

    from . import __version__

    return f"numbaconv-{__version__}-numba-{numba.__version__}-{binding.get_host_cpu_name()}.precompiled"


def start_if_cold() -> subprocess.Popen | None:
    """Start the helper process (module docstring) unless it is switched off, has already been through the
    steps for this cache, or is running; returns it, or None. Never raises: it is an optimisation."""
    try:
        directory = cache_directory()
        if os.environ.get(ENV_SWITCH) == "0" or directory is None or (directory / _marker_name()).exists():
            return None
        if not _take_lock(directory / (_marker_name() + ".lock")):
            return None
        env = dict(os.environ, **{ENV_SWITCH: "0", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        package_parent = str(Path(__file__).resolve().parent.parent)  # the same numbaconv, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_parent, env.get("PYTHONPATH"))))
        global _helper
        _helper = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C stops the script alone
        )
        return _helper
    except Exception:
        return None


def wait_for_helper() -> None:
    """Wait until the helper this process started (if any) is through, so that nothing timed shares the CPU
    with it (``numbaconv bench`` on a first run)."""
    if _helper is not None and _helper.poll() is None:
        print("waiting for numbaconv's compile-ahead helper (first run only) ...", file=sys.stderr, flush=True)
        _helper.wait()


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` (True), or find it held by a live helper (False); a stale one is taken over."""
    for _ in range(2):
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime < STALE_LOCK_SECONDS:
                    return False
                lock.unlink()
            except FileNotFoundError:
                pass
    return False


def run_helper(parent: int) -> None:
    """The helper's work: `steps` for float32 while process ``parent`` lives (checked after each step). The
    marker goes down once the steps are through, or one failed (no import should start the helper again only
    to fail again), or when the parent has exited and the helper has had nothing to compile (the cache was
    warm); the lock is removed either way."""
    directory = cache_directory()
    if directory is None:
        return
    lock = directory / (_marker_name() + ".lock")
    compiled = []
    try:
        with event.install_listener("numba:compile", KernelCompileListener(lambda: compiled.append(True))):
            for step in steps(np.float32):
                try:
                    step()
                except Exception:
                    break
                if os.getppid() != parent:  # the script has ended: its kernels are no longer wanted
                    if compiled:
                        return
                    break
        (directory / _marker_name()).touch()
    finally:
        lock.unlink(missing_ok=True)


if __name__ == "__main__":
    os.nice(10)  # behind the script whenever they compete for a core
    run_helper(int(sys.argv[1]))
