"""Memory of the SP 800-22 tests: bounded per bit, so that long sequences cannot exhaust it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from deepkedi.metrics.nist import TESTS

N_BITS = 1 << 21
#: Bytes per bit of input any test but the DFT may allocate at its peak (NumPy reports to
#: tracemalloc). They used to need 16 to 25 (int64 windows, walks and cycle numbers).
MAX_BYTES_PER_BIT = 8


@pytest.fixture(scope="module")
def bits() -> np.ndarray:
    return np.random.default_rng(2026).integers(0, 2, N_BITS, dtype=np.uint8)


@pytest.mark.parametrize("name", [name for name in TESTS if name != "dft"])
def test_peak_allocation_per_bit(bits: np.ndarray, name: str) -> None:
    # The DFT needs its float64 sequence and complex spectrum (about 32 bytes per bit,
    # partly inside pocketfft where tracemalloc does not see it); docs/METRICS.md says so.
    tracemalloc.start()
    try:
        TESTS[name](bits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / N_BITS <= MAX_BYTES_PER_BIT, f"{name}: {peak / N_BITS:.1f} bytes per bit"
