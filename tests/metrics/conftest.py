"""Reference data for SP 800-22: the binary expansions of e, π, √2 and √3.

NIST's sample data (``data.e``, ``data.pi``, ``data.sqrt2``, ``data.sqrt3``) are the
first 10⁶ bits of each constant's binary expansion, integer part included
(e = 10.1011011…₂, so the sequence starts 1010110111111000…). They are computed
here with mpmath and cached in pytest's cache folder, never committed.
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import numpy as np
import pytest

EXPANSION_BITS = 1_000_000
_CONSTANTS = {
    "e": lambda: mpmath.e,
    "pi": lambda: mpmath.pi,
    "sqrt2": lambda: mpmath.sqrt(2),
    "sqrt3": lambda: mpmath.sqrt(3),
}


def binary_expansion(name: str, n_bits: int = EXPANSION_BITS) -> np.ndarray:
    """The first ``n_bits`` bits of the constant, integer part first, as uint8 0/1."""
    with mpmath.workprec(n_bits + 64):
        value = mpmath.mpf(_CONSTANTS[name]())
        integer_bits = int(mpmath.floor(value)).bit_length()
        scaled = int(mpmath.floor(value * mpmath.mpf(2) ** (n_bits - integer_bits)))
    text = bin(scaled)[2:]
    assert len(text) == n_bits
    return (np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")).astype(np.uint8)


@pytest.fixture(scope="session")
def nist_expansion(request: pytest.FixtureRequest) -> Callable[[str], np.ndarray]:
    """``nist_expansion("pi")`` → the 10⁶ reference bits, computed once and cached on disk."""
    folder = request.config.cache.mkdir("nist-expansions")
    memo: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in memo:
            path = folder / f"{name}-{EXPANSION_BITS}.npy"
            if path.exists():
                bits = np.unpackbits(np.load(path))[:EXPANSION_BITS]
            else:
                bits = binary_expansion(name)
                np.save(path, np.packbits(bits))
            memo[name] = bits
        return memo[name]

    return get
