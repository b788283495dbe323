"""Numba kernels: plain arrays and integers in, arrays out. No validation and no Python objects here."""

# No "nnan"/"ninf": NaN and Inf must propagate exactly to the outputs whose windows hold them.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
