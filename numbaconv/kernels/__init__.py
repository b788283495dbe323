"""Numba kernels: plain arrays and integers in, arrays out. No validation and no Python objects here."""

from llvmlite import binding

# No "nnan"/"ninf": NaN and Inf must propagate exactly to the outputs whose windows hold them.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

_FEATURES = binding.get_host_cpu_features()
VECTOR_BYTES = 64 if _FEATURES.get("avx512f") else 32 if _FEATURES.get("avx2") and _FEATURES.get("fma") else 0
"""Bytes of one vector register of the kernels written as LLVM IR (the GEMM's register tile, `vector`'s moves):
AVX-512's, AVX2's (with FMA), or 0 where the CPU has neither and the products go to numpy's BLAS."""
