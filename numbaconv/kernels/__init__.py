"""Numba kernels: plain arrays and integers in, arrays out. No validation and no Python objects here."""

from pathlib import Path

from llvmlite import binding

# No "nnan"/"ninf": NaN and Inf must propagate exactly to the outputs whose windows hold them.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

_FEATURES = binding.get_host_cpu_features()
VECTOR_BYTES = 64 if _FEATURES.get("avx512f") else 32 if _FEATURES.get("avx2") and _FEATURES.get("fma") else 0
"""Bytes of one vector register of the kernels written as LLVM IR (the GEMM's register tile, `vector`'s moves):
AVX-512's, AVX2's (with FMA), or 0 where the CPU has neither and the products go to numpy's BLAS."""

HAS_AVX512 = VECTOR_BYTES == 64
"""Whether the kernels use AVX-512's registers: 32 of them, for a taller register tile and faster products."""


def l2_bytes(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache"), default: int = 1 << 20) -> int:
    """Bytes of one core's L2 cache as Linux reports it in ``cache_dir`` (sysfs), else ``default``."""
    for index in sorted(cache_dir.glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            break
    return default


L2_BYTES = l2_bytes()
"""One core's L2 cache: the blocked kernels size the operands they reuse to stay in it."""
