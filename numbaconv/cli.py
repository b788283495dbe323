"""The ``numbaconv`` command (also ``python -m numbaconv``): ``demo``, ``explain``, ``bench`` and ``info``.

    numbaconv demo [--epochs N] [--out DIR]      train the digits CNN, write pictures and a checkpoint
    numbaconv explain --input N,C,H,W --weight K,C,kh,kw [--stride --padding --dilation --groups --dtype]
    numbaconv bench [--quick]                    the benchmark shape suite (against PyTorch when installed)
    numbaconv info [--warm]                      versions, CPU, threads, JIT cache; --warm compiles every kernel

Bad arguments print the usage and exit with status 2; a missing optional dependency of ``demo`` exits with
status 1 and names the pip command that installs it.

Numba compiles the kernels on first use and caches them on disk. A command that is about to compile says so
once on stderr: up front when no kernel is in the cache (a fresh install), otherwise at the first actual
compilation (Numba's ``numba:compile`` event fires only on a cache miss), so the notice never cries wolf.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEMO_INSTALL = 'pip install "numbaconv[demo]"'
COMPILE_NOTICE = "compiling numbaconv kernels, first run only..."
# CPU features worth naming in ``info`` (what the kernels' vector loops can use), in this order.
_SIMD = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16", "neon", "sve")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- the JIT cache


def kernel_dispatchers() -> list:
    """The Numba kernels Python calls: every public ``@njit`` function of ``numbaconv.kernels``, the Winograd
    transforms (built per tile size and dtype) and the GEMM's kernels for the dtypes used so far. Their helpers
    are compiled into them."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    from . import dispatch, kernels
    from .algorithms import winograd
    from .autograd import float32, float64

    found = []
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        found += [
            obj
            for name, obj in vars(module).items()
            if isinstance(obj, Dispatcher)
            and not name.startswith("_")
            and obj.py_func.__module__ == module.__name__
            and obj.targetoptions.get("inline") != "always"  # helpers shared between modules, inlined
        ]
        found += getattr(module, "compiled_kernels", [])  # the GEMM's, made per dtype on first use
    for tile in dispatch.WINOGRAD_TILES:
        for dtype in (float32, float64):
            found += [obj for obj in winograd._plan(tile, dtype) if isinstance(obj, Dispatcher)]
    return found


def is_cached(kernel) -> bool:
    """Whether Numba's on-disk cache holds a compiled version of ``kernel`` that it would load: an index
    (``*.nbi``) for the current source, with an entry for this CPU and, for the Winograd closures, this matrix."""
    cache = getattr(kernel, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is None:  # caching disabled
        return False
    try:
        index = cache_file._load_index()  # {} when missing, stale (source edited) or from another Numba
        codegen = kernel.targetctx.codegen()
        magic, ident = codegen.magic_tuple(), cache._index_key(None, codegen)[2]
        return any(key[1] == magic and key[2] == ident for key in index)
    except Exception:  # Numba's internals moved: fall back to "an index file exists"
        return os.path.exists(cache_file._index_path)


def cache_report() -> tuple[list[str], int, int]:
    """(cache directories, kernels cached, kernels in all)."""
    kernels = kernel_dispatchers()
    directories = sorted({str(k._cache.cache_path) for k in kernels if getattr(k, "_cache", None) is not None})
    cached = sum(is_cached(k) for k in kernels)
    return directories, cached, len(kernels)


@contextmanager
def compile_notice(write: Callable[[str], None] = _stderr) -> Iterator[None]:
    """Within the block, say ``COMPILE_NOTICE`` once when numbaconv kernels will be compiled."""
    from numba.core import event

    from .precompile import KernelCompileListener

    said = False

    def say() -> None:
        nonlocal said
        if not said:
            said = True
            write(COMPILE_NOTICE)

    kernels = kernel_dispatchers()
    if kernels and not any(is_cached(k) for k in kernels):
        say()
    with event.install_listener("numba:compile", KernelCompileListener(say)):
        yield


# ------------------------------------------------------------------------------------------- the commands


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _pair(text: str) -> int | tuple[int, ...]:
    values = _ints(text)
    if len(values) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected an int or a pair 'h,w', got {text!r}")
    return values[0] if len(values) == 1 else values


def _padding(text: str):
    return text if text in ("same", "valid") else _pair(text)


def _positive(text: str) -> int:
    value = _ints(text)
    if len(value) != 1 or value[0] < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value[0]


def _set_threads(parser: argparse.ArgumentParser, threads: int | None) -> None:
    if threads is None:
        return
    from . import set_num_threads

    try:
        set_num_threads(threads)
    except ValueError as e:
        parser.error(str(e))


def cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import demo

    try:
        demo.check_extra()
    except ImportError as e:
        _stderr(f"numbaconv demo: {e}")
        return 1
    _set_threads(parser, args.threads)
    accuracy = demo.run(epochs=args.epochs, out=args.out, seed=args.seed, announce=compile_notice)
    print(f"test accuracy: {100 * accuracy:.2f}%")
    return 0


def cmd_explain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import explain

    _set_threads(parser, args.threads)
    try:
        text = str(
            explain(
                args.input,
                args.weight,
                stride=args.stride,
                padding=args.padding,
                dilation=args.dilation,
                groups=args.groups,
                padding_mode=args.padding_mode,
                dtype=args.dtype,
            )
        )
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    print(text)
    return 0


def cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import benchmark

    try:
        shapes = benchmark.select(args.shapes)
    except ValueError as e:
        parser.error(str(e))
    benchmark.run(shapes, quick=args.quick, threads=args.threads, torch=not args.no_torch)
    return 0


def cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import llvmlite
    import numba
    import numpy
    import threadpoolctl

    from . import __version__, get_num_threads, runtime

    if args.warm:
        from .precompile import warm

        with compile_notice():
            warm()
    rows = [("numbaconv", f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})")]
    rows.append(("python", f"{platform.python_version()} ({sys.executable})"))
    for module in (numpy, numba, llvmlite, threadpoolctl):
        rows.append((module.__name__, module.__version__))
    for name in ("scikit-learn", "matplotlib", "tqdm", "torch"):
        rows.append((name, _version_of(name)))
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
        for i in threadpoolctl.threadpool_info()
        if i.get("user_api") == "blas"
    ]
    rows.append(("BLAS", ", ".join(blas) or "none found"))
    rows.append(("CPU", f"{_cpu_name()}; {os.cpu_count()} logical CPUs"))
    rows.append(("CPU features", _cpu_features()))
    rows.append(("threads", f"{get_num_threads()} (of {runtime.MAX_THREADS} started; NUMBA_NUM_THREADS to change)"))
    try:
        layer = f"{numba.threading_layer()} (running)"
    except ValueError:  # no parallel kernel has run in this process yet
        layer = f"{numba.config.THREADING_LAYER} (configured)"
    rows.append(("threading layer", layer))
    directories, cached, total = cache_report()
    rows.append(("JIT cache", ", ".join(directories) or "disabled"))
    if total == 0:
        rows.append(("kernels", "none found: the JIT is disabled (NUMBA_DISABLE_JIT), kernels run as Python"))
    else:
        state = "all compiled" if cached == total else "none compiled yet" if cached == 0 else "partly compiled"
        hint = "" if cached == total else "; `numbaconv info --warm` compiles them now"
        rows.append(("kernels", f"{cached} of {total} cached ({state}{hint})"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name + ':':<{width + 1}} {value}")
    return 0


def _version() -> str:
    from . import __version__

    return __version__


def _version_of(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _cpu_features() -> str:
    import llvmlite.binding as llvm

    try:
        features = {name for name, on in llvm.get_host_cpu_features().items() if on}
    except RuntimeError:
        features = set()
    named = [f for f in _SIMD if f in features]
    return f"{llvm.get_host_cpu_name()}: {' '.join(named) or 'no SIMD extensions detected'}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numbaconv", description="A CPU CNN library on Numba with PyTorch's API: try it, inspect it, time it."
    )
    parser.add_argument("--version", action="version", version=f"numbaconv {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,explain,bench,info}", required=True)

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on the digits; write pictures and a checkpoint",
        description=f"Train the digits CNN and write pictures and a checkpoint. Needs the demo extra: {DEMO_INSTALL}",
    )
    demo.add_argument("--epochs", type=_positive, default=10, help="training epochs (default 10)")
    demo.add_argument("--out", default="numbaconv-demo", help="output directory (default ./numbaconv-demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the initialisation and shuffling (default 0)")
    demo.add_argument("--threads", type=_positive, help="threads to use (default: all cores)")
    demo.set_defaults(run=cmd_demo, parser=demo)

    explain = sub.add_parser(
        "explain",
        help="which algorithm runs each pass of a convolution, and why",
        description="Print numbaconv.explain() for one conv2d layer.",
    )
    explain.add_argument("--input", type=_ints, required=True, metavar="N,C,H,W", help="input shape")
    explain.add_argument("--weight", type=_ints, required=True, metavar="K,C,kh,kw", help="weight shape")
    explain.add_argument("--stride", type=_pair, default=1, metavar="S", help="int or 'h,w' (default 1)")
    explain.add_argument(
        "--padding", type=_padding, default=0, metavar="P", help="int, 'h,w', 'same' or 'valid' (default 0)"
    )
    explain.add_argument("--dilation", type=_pair, default=1, metavar="D", help="int or 'h,w' (default 1)")
    explain.add_argument("--groups", type=_positive, default=1, help="groups (default 1)")
    explain.add_argument("--padding-mode", default="zeros", choices=("zeros", "reflect", "replicate", "circular"))
    explain.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    explain.add_argument("--threads", type=_positive, help="threads to plan for (default: all cores)")
    explain.set_defaults(run=cmd_explain, parser=explain)

    bench = sub.add_parser(
        "bench",
        help="time the benchmark shape suite (against PyTorch when installed)",
        description="Time conv2d on the benchmark shape suite, each library in its own "
        "process; PyTorch ratios when torch imports.",
    )
    bench.add_argument("--quick", action="store_true", help="fewer rounds and shorter timings")
    bench.add_argument("--shapes", type=lambda s: s.split(","), metavar="NAME,...", help="suite entries to run")
    bench.add_argument("--threads", type=_positive, help="threads for each library (default: all cores)")
    bench.add_argument("--no-torch", action="store_true", help="time numbaconv only")
    bench.set_defaults(run=cmd_bench, parser=bench)

    info = sub.add_parser(
        "info",
        help="versions, CPU features, threads and the JIT cache",
        description="Versions, CPU features, threads, the threading layer and the JIT cache.",
    )
    info.add_argument("--warm", action="store_true", help="compile every kernel now (float32 and float64)")
    info.set_defaults(run=cmd_info, parser=info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numbaconv`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, args.parser)
    except KeyboardInterrupt:
        _stderr("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `numbaconv explain ... | head`: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
