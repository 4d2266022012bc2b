"""What every SP 800-22 test shares: the result record and bit-sequence input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_ALPHA", "NistTestResult", "as_bits", "bits_from_bytes"]

#: SP 800-22 §4.2.1: the significance level NIST recommends.
DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class NistTestResult:
    """The outcome of one SP 800-22 test on one sequence.

    Parameters
    ----------
    name
        The test's key: ``frequency``, ``block_frequency``, ``runs``, ``longest_run``,
        ``rank``, ``dft``, ``non_overlapping_template``, ``overlapping_template``,
        ``universal``, ``linear_complexity``, ``serial``, ``approximate_entropy``,
        ``cumulative_sums``, ``random_excursions``, ``random_excursions_variant``.
    p_values
        One P-value, or several where the test yields several (serial: 2;
        cumulative sums: forward and backward; non-overlapping template: one per
        template; random excursions: 8 states; variant: 18 states).
    alpha
        Significance level the pass/fail refers to.
    applicable
        False when the sequence does not meet the test's precondition (too short,
        too few cycles for the random excursions tests); ``p_values`` is then empty.
    reason
        Why the test was not applicable.
    details
        Test statistics worth reporting (χ², counts, parameters), JSON-safe.
    """

    name: str
    p_values: tuple[float, ...]
    alpha: float = DEFAULT_ALPHA
    applicable: bool = True
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def p_value(self) -> float:
        """The single P-value, or the smallest of several."""
        if not self.p_values:
            raise ValueError(f"{self.name}: not applicable ({self.reason})")
        return min(self.p_values)

    @property
    def familywise_p_value(self) -> float:
        """The smallest P-value times the number of P-values, capped at 1 (Bonferroni).

        A test that reports k P-values on one sequence (148 templates, 18 excursion
        states) has k chances to fall below α, and they are not independent; the
        Bonferroni bound keeps the chance that a random sequence rejects the test as a
        whole at most α, whatever the dependence.
        """
        return min(1.0, self.p_value * len(self.p_values))

    @property
    def passed(self) -> bool | None:
        """Every P-value ≥ alpha; None when the test was not applicable."""
        if not self.applicable:
            return None
        return all(p >= self.alpha for p in self.p_values)


def bits_from_bytes(data: bytes | bytearray | memoryview, *, n_bits: int | None = None) -> np.ndarray:
    """The bits of ``data``, most significant bit of each byte first, as uint8 0/1.

    Parameters
    ----------
    data
        Bytes to expand.
    n_bits
        Keep only the first ``n_bits`` bits; only those are expanded (one byte of
        memory per bit kept, not per bit of ``data``).
    """
    octets = np.frombuffer(data, dtype=np.uint8)
    if n_bits is not None and not 0 <= n_bits <= 8 * octets.size:
        raise ValueError(f"n_bits must be in [0, {8 * octets.size}], got {n_bits}")
    return np.unpackbits(octets, count=n_bits)


def as_bits(sequence: Any) -> np.ndarray:
    """Validate a 1-D sequence of 0/1 values and return it as a uint8 array.

    Raises
    ------
    ValueError
        The sequence is not 1-D, is empty, or holds values other than 0 and 1.
    """
    bits = np.asarray(sequence)
    if bits.ndim != 1:
        raise ValueError(f"a bit sequence must be 1-D, got shape {bits.shape}")
    if bits.size == 0:
        raise ValueError("the bit sequence is empty")
    if bits.dtype != np.uint8:
        if bits.dtype.kind not in "biu":
            raise ValueError(f"bits must be integers 0/1, not {bits.dtype}")
        bits = bits.astype(np.uint8)
    if bits.max() > 1:
        raise ValueError("bits must be 0 or 1; for bytes use bits_from_bytes")
    return bits
