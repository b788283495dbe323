"""Shared test fixtures: a seeded generator, the accuracy check against the oracle, hypothesis profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The oracle is a plain module next to the tests, and the benchmarks' `models` defines the networks the tests
# share with the benchmarks (so they check exactly what is timed): make both importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# No compile-ahead helper process beside the tests (and the processes they start): tests/test_precompile.py
# runs it on purpose.
os.environ.setdefault("NUMBACONV_PRECOMPILE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# "ci" keeps the sweep to a few seconds once kernels are compiled; "thorough" is for hunting bugs locally:
# HYPOTHESIS_PROFILE=thorough pytest tests/test_engine_hypothesis.py
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=100, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Error allowed relative to max |reference| (the "Accuracy" section).
TOLERANCES = {
    np.dtype(np.float64): {"direct": 1e-10, "im2col": 1e-10, "winograd": 1e-10},
    np.dtype(np.float32): {"direct": 1e-4, "im2col": 1e-4, "winograd": 1e-3},
}


def tolerance(dtype, algorithm: str) -> float:
    """The accuracy the issue requires; "auto" may pick Winograd, so it gets Winograd's bound."""
    table = TOLERANCES[np.dtype(dtype)]
    return table["winograd"] if algorithm == "auto" else table[algorithm]


def assert_close(actual, expected, dtype, algorithm: str) -> None:
    """``actual`` has ``expected``'s shape, the dtype ``dtype`` and is within the issue's relative error.

    The error is max |actual - expected| / max |expected| (absolute when the reference is all zeros).
    """
    assert isinstance(actual, np.ndarray), f"expected a numpy array, got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    if expected.size == 0:
        return
    assert np.isfinite(actual).all(), "result has NaN/Inf where the reference is finite"
    scale = np.abs(expected).max()
    error = np.abs(actual.astype(np.float64) - expected).max() / (scale if scale > 0 else 1.0)
    bound = tolerance(dtype, algorithm)
    assert error <= bound, f"relative error {error:.3g} > {bound:g} ({np.dtype(dtype)}, {algorithm})"


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator seeded per test, so every failure reproduces."""
    return np.random.default_rng(20240601)
