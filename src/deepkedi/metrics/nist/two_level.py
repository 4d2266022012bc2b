"""Second-level analysis of SP 800-22 P-values over many sequences (§4.2).

Given, for each test, the P-values obtained on m sequences, two checks decide
whether the generator behaves randomly:

* **proportion of passing sequences** (§4.2.1): the fraction with P ≥ α should lie
  in p̂ ± 3·√(p̂(1 − p̂)/m), p̂ = 1 − α;
* **uniformity of the P-values** (§4.2.2): a χ² over 10 equal bins of [0, 1],
  P-value_T = igamc(9/2, χ²/2), uniform when P-value_T ≥ 0.0001. NIST asks for at
  least 55 sequences; with fewer the check is reported as not applicable.

References
----------
.. [1] A. Rukhin et al., "A Statistical Test Suite for Random and Pseudorandom
   Number Generators for Cryptographic Applications", NIST SP 800-22 rev 1a,
   2010, §4.2. :doi:`10.6028/NIST.SP.800-22r1a`
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaincc

from deepkedi.metrics.nist._common import DEFAULT_ALPHA, NistTestResult

__all__ = [
    "MIN_SEQUENCES_FOR_UNIFORMITY",
    "UNIFORMITY_THRESHOLD",
    "ProportionCheck",
    "TwoLevelRecord",
    "UniformityCheck",
    "p_values_by_test",
    "proportion_check",
    "two_level_analysis",
    "uniformity_check",
]

#: §4.2.2: P-value_T below this means the P-values are not uniform.
UNIFORMITY_THRESHOLD = 0.0001
#: §4.2.2: "at least 55 sequences" for the χ² over 10 bins to be meaningful.
MIN_SEQUENCES_FOR_UNIFORMITY = 55
_BINS = 10


@dataclass(frozen=True)
class ProportionCheck:
    """Proportion of sequences passing one test (§4.2.1).

    Attributes
    ----------
    proportion
        Fraction of the sequences with P ≥ ``alpha``.
    n_passed, n_sequences
        Counts behind ``proportion``.
    lower, upper
        The acceptable range p̂ ± 3·√(p̂(1 − p̂)/m), p̂ = 1 − α.
    passed
        ``proportion ≥ lower``: §4.2.1 calls a proportion outside the interval
        "(i.e., less than)" it evidence of non-randomness; too many passes is not.
    within_range
        ``lower ≤ proportion ≤ upper`` (STS 2.1.2 flags both sides).
    """

    proportion: float
    n_passed: int
    n_sequences: int
    alpha: float
    lower: float
    upper: float
    passed: bool
    within_range: bool


@dataclass(frozen=True)
class UniformityCheck:
    """Uniformity of one test's P-values over [0, 1] (§4.2.2).

    Attributes
    ----------
    histogram
        Counts F_1…F_10 in [0, 0.1), [0.1, 0.2), …, [0.9, 1] (P = 1 in the last bin).
    chi_square, p_value
        χ² = Σ (F_i − s/10)² / (s/10) and P-value_T = igamc(9/2, χ²/2); None when
        not applicable.
    threshold
        0.0001.
    applicable
        False below 55 sequences.
    uniform
        ``p_value ≥ threshold``; None when not applicable.
    """

    histogram: tuple[int, ...]
    chi_square: float | None
    p_value: float | None
    threshold: float
    applicable: bool
    uniform: bool | None
    reason: str | None = None


@dataclass(frozen=True)
class TwoLevelRecord:
    """Both second-level checks for one test (or one P-value of a multi-P-value test).

    ``passed`` is True when the proportion check passes and the P-values are not
    found non-uniform (a not-applicable uniformity check does not fail a test).
    """

    name: str
    proportion: ProportionCheck
    uniformity: UniformityCheck
    passed: bool


def _validated(p_values: ArrayLike, name: str) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError(f"{name}: no P-values to analyse")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"{name}: P-values must lie in [0, 1]")
    return p


def proportion_check(p_values: ArrayLike, *, alpha: float = DEFAULT_ALPHA) -> ProportionCheck:
    """The proportion of sequences passing at level ``alpha`` and its range (§4.2.1).

    Examples
    --------
    >>> c = proportion_check([0.5] * 1000)
    >>> round(c.lower, 7), round(c.upper, 7)
    (0.9805607, 0.9994393)
    """
    p = _validated(p_values, "proportion")
    m = p.size
    n_passed = int(np.count_nonzero(p >= alpha))
    proportion = n_passed / m
    p_hat = 1.0 - alpha
    half_width = 3.0 * np.sqrt(p_hat * (1.0 - p_hat) / m)
    lower, upper = p_hat - half_width, p_hat + half_width
    return ProportionCheck(
        proportion=proportion,
        n_passed=n_passed,
        n_sequences=m,
        alpha=alpha,
        lower=float(lower),
        upper=float(upper),
        passed=bool(proportion >= lower),
        within_range=bool(lower <= proportion <= upper),
    )


def uniformity_check(p_values: ArrayLike) -> UniformityCheck:
    """χ² test of the P-values' uniformity over 10 bins (§4.2.2).

    Examples
    --------
    >>> uniformity_check([(i + 0.5) / 100 for i in range(100)]).p_value
    1.0
    """
    p = _validated(p_values, "uniformity")
    # Bin i holds [i/10, (i+1)/10); P = 1 joins the last bin, as in STS.
    bins = np.minimum((p * _BINS).astype(np.int64), _BINS - 1)
    histogram = tuple(int(v) for v in np.bincount(bins, minlength=_BINS))
    s = p.size
    if s < MIN_SEQUENCES_FOR_UNIFORMITY:
        return UniformityCheck(
            histogram,
            None,
            None,
            UNIFORMITY_THRESHOLD,
            applicable=False,
            uniform=None,
            reason=f"{s} sequences < {MIN_SEQUENCES_FOR_UNIFORMITY} (§4.2.2)",
        )
    expected = s / _BINS
    chi2 = float(np.sum((np.array(histogram) - expected) ** 2 / expected))
    p_t = float(gammaincc((_BINS - 1) / 2, chi2 / 2))
    return UniformityCheck(
        histogram,
        chi2,
        p_t,
        UNIFORMITY_THRESHOLD,
        applicable=True,
        uniform=p_t >= UNIFORMITY_THRESHOLD,
    )


def two_level_analysis(
    p_value_lists: Mapping[str, ArrayLike] | Iterable[tuple[str, ArrayLike]],
    *,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[TwoLevelRecord, ...]:
    """Proportion and uniformity checks for each test's P-values over m sequences.

    Parameters
    ----------
    p_value_lists
        For each test name, the P-values from all sequences: a mapping, or
        ``(name, p_values)`` pairs. :func:`p_values_by_test` builds it from
        :class:`NistTestResult` objects.
    alpha
        Significance level of the first-level tests.

    Returns
    -------
    tuple of TwoLevelRecord
        One record per test, in input order.

    Raises
    ------
    ValueError
        A test has no P-values, or a value outside [0, 1].

    References
    ----------
    .. [1] SP 800-22 rev 1a §4.2. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> (record,) = two_level_analysis({"frequency": [0.2, 0.5, 0.9]})
    >>> record.proportion.proportion, record.uniformity.applicable
    (1.0, False)
    """
    items = p_value_lists.items() if isinstance(p_value_lists, Mapping) else p_value_lists
    records = []
    for name, p_values in items:
        p = _validated(p_values, name)
        proportion = proportion_check(p, alpha=alpha)
        uniformity = uniformity_check(p)
        records.append(
            TwoLevelRecord(
                name=name,
                proportion=proportion,
                uniformity=uniformity,
                passed=proportion.passed and uniformity.uniform is not False,
            )
        )
    return tuple(records)


def p_values_by_test(results: Iterable[NistTestResult]) -> dict[str, list[float]]:
    """Gather P-values per test from results on many sequences.

    A test with one P-value keys by its name; one with several keys each position as
    ``name[i]`` (1-based: ``serial[1]``, ``serial[2]``, ``random_excursions[5]`` …).
    Not-applicable results are left out, so each list holds only the sequences the
    test applied to, as NIST's report counts them.
    """
    gathered: dict[str, list[float]] = {}
    for result in results:
        if not result.applicable:
            continue
        if len(result.p_values) == 1:
            gathered.setdefault(result.name, []).append(result.p_values[0])
            continue
        for i, p in enumerate(result.p_values, start=1):
            gathered.setdefault(f"{result.name}[{i}]", []).append(p)
    return gathered
