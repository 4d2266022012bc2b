"""NIST SP 800-22 rev 1a statistical tests for random bit sequences.

Tests 1–8 live in :mod:`.basic`, tests 9–15 in :mod:`.advanced`, the two-level
analysis over many sequences (§4.2) in :mod:`.two_level`.
:func:`run_all` runs every available test with NIST's Appendix B defaults.

References
----------
.. [1] A. Rukhin et al., "A Statistical Test Suite for Random and Pseudorandom Number
   Generators for Cryptographic Applications", NIST SP 800-22 rev 1a, 2010.
   :doi:`10.6028/NIST.SP.800-22r1a`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepkedi.metrics.nist._common import NistTestResult, as_bits, bits_from_bytes
from deepkedi.metrics.nist.advanced import (
    ADVANCED_TESTS,
    approximate_entropy,
    cumulative_sums,
    linear_complexity,
    random_excursions,
    random_excursions_variant,
    serial,
    universal,
)
from deepkedi.metrics.nist.basic import (
    block_frequency,
    dft,
    frequency,
    longest_run,
    non_overlapping_template,
    overlapping_template,
    rank,
    runs,
)
from deepkedi.metrics.nist.two_level import TwoLevelRecord, two_level_analysis

__all__ = [
    "ADVANCED_TESTS",
    "BASIC_TESTS",
    "TESTS",
    "TEST_NAMES",
    "NistTestResult",
    "TwoLevelRecord",
    "approximate_entropy",
    "as_bits",
    "bits_from_bytes",
    "block_frequency",
    "cumulative_sums",
    "dft",
    "frequency",
    "linear_complexity",
    "longest_run",
    "non_overlapping_template",
    "overlapping_template",
    "random_excursions",
    "random_excursions_variant",
    "rank",
    "run_all",
    "runs",
    "serial",
    "two_level_analysis",
    "universal",
]

#: The 15 tests in the order of SP 800-22 §2 (and of STS 2.1.2's report).
TEST_NAMES: tuple[str, ...] = (
    "frequency",
    "block_frequency",
    "runs",
    "longest_run",
    "rank",
    "dft",
    "non_overlapping_template",
    "overlapping_template",
    "universal",
    "linear_complexity",
    "serial",
    "approximate_entropy",
    "cumulative_sums",
    "random_excursions",
    "random_excursions_variant",
)

#: Tests 1–8, name → function.
BASIC_TESTS: dict[str, Callable[..., NistTestResult]] = {
    "frequency": frequency,
    "block_frequency": block_frequency,
    "runs": runs,
    "longest_run": longest_run,
    "rank": rank,
    "dft": dft,
    "non_overlapping_template": non_overlapping_template,
    "overlapping_template": overlapping_template,
}

#: All 15 tests, name → function, in :data:`TEST_NAMES` order.
TESTS: dict[str, Callable[..., NistTestResult]] = {name: {**BASIC_TESTS, **ADVANCED_TESTS}[name] for name in TEST_NAMES}


def run_all(bits: Any) -> dict[str, NistTestResult]:
    """Run every available SP 800-22 test with its default parameters.

    Parameters
    ----------
    bits
        The sequence, 0/1 values (see :func:`bits_from_bytes` for bytes). NIST's
        defaults assume n ≥ 10⁶; tests whose preconditions fail report
        ``applicable=False``.

    Returns
    -------
    dict[str, NistTestResult]
        Keyed by test name, in the order of :data:`TEST_NAMES`.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2 and Appendix B. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> import numpy as np
    >>> results = run_all(np.random.default_rng(0).integers(0, 2, 10_000))
    >>> list(results)[:3]
    ['frequency', 'block_frequency', 'runs']
    """
    eps = as_bits(bits)
    return {name: test(eps) for name, test in TESTS.items()}
