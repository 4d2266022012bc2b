"""SP 800-22 rev 1a tests 1–8: frequency to overlapping template matching.

Each function takes a 1-D sequence of 0/1 values and returns a
:class:`~deepkedi.metrics.nist._common.NistTestResult`. Defaults are those of NIST's
Appendix B (n = 10⁶); the parameters of the Section 2 worked examples are keyword
arguments. A sequence too short for a test gives ``applicable=False`` with the
reason, never an exception.

The functions are named without the ``test_`` prefix of the document so that pytest
does not collect them.

References
----------
.. [1] A. Rukhin et al., "A Statistical Test Suite for Random and Pseudorandom Number
   Generators for Cryptographic Applications", NIST SP 800-22 rev 1a, 2010.
   :doi:`10.6028/NIST.SP.800-22r1a`
.. [2] NIST Statistical Test Suite (STS) 2.1.2, the reference C implementation.
.. [3] K. Hamano and T. Kaneko, "Correction of overlapping template matching test
   included in NIST randomness test suite", IEICE Trans. Fundamentals E90-A(9),
   pp. 1788–1792, 2007. :doi:`10.1093/ietfec/e90-a.9.1788`
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from scipy.special import erfc, gammaincc, gammaln

from deepkedi.metrics.nist._common import NistTestResult, as_bits

__all__ = [
    "OVERLAPPING_PROBABILITIES_HAMANO_KANEKO",
    "aperiodic_templates",
    "block_frequency",
    "dft",
    "frequency",
    "longest_run",
    "non_overlapping_template",
    "overlapping_template",
    "rank",
    "runs",
]


def _not_applicable(name: str, reason: str, **details: Any) -> NistTestResult:
    return NistTestResult(name, (), applicable=False, reason=reason, details=details)


def _window_values(bits: np.ndarray, m: int) -> np.ndarray:
    """The m-bit windows ``bits[i:i+m]`` read MSB first, as integers, for every i.

    A shift-and-add over the m offsets (m ≤ 32), not over the n positions.
    """
    count = bits.size - m + 1
    values = np.zeros(count, dtype=np.intp)
    for k in range(m):
        values <<= 1
        values |= bits[k : k + count]
    return values


# --------------------------------------------------------------------------- 2.1


def frequency(bits: Any) -> NistTestResult:
    """Frequency (monobit) test, SP 800-22 §2.1.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.

    Returns
    -------
    NistTestResult
        ``p = erfc(|S_n| / sqrt(2n))`` with ``S_n = Σ(2ε_i − 1)``.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.1. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> round(frequency([1, 0, 1, 1, 0, 1, 0, 1, 0, 1]).p_value, 6)
    0.527089
    """
    eps = as_bits(bits)
    n = eps.size
    s_n = 2 * int(np.count_nonzero(eps)) - n
    s_obs = abs(s_n) / math.sqrt(n)
    p = float(erfc(s_obs / math.sqrt(2)))
    return NistTestResult("frequency", (p,), details={"n": n, "s_n": s_n, "s_obs": s_obs})


# --------------------------------------------------------------------------- 2.2


def block_frequency(bits: Any, *, block_size: int = 128) -> NistTestResult:
    """Frequency test within a block, SP 800-22 §2.2.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    block_size
        M, the length of each block; the ``n mod M`` trailing bits are discarded.

    Returns
    -------
    NistTestResult
        ``p = igamc(N/2, χ²/2)`` with ``χ² = 4M Σ(π_i − ½)²`` over the N blocks.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.2. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> round(block_frequency([0, 1, 1, 0, 0, 1, 1, 0, 1, 0], block_size=3).p_value, 6)
    0.801252
    """
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    eps = as_bits(bits)
    n_blocks = eps.size // block_size
    if n_blocks < 1:
        return _not_applicable(
            "block_frequency",
            f"n = {eps.size} is shorter than one block of {block_size} bits",
        )
    blocks = eps[: n_blocks * block_size].reshape(n_blocks, block_size)
    proportions = blocks.sum(axis=1, dtype=np.int64) / block_size
    chi2 = float(4.0 * block_size * np.sum((proportions - 0.5) ** 2))
    p = float(gammaincc(n_blocks / 2.0, chi2 / 2.0))
    return NistTestResult(
        "block_frequency",
        (p,),
        details={
            "n": eps.size,
            "block_size": block_size,
            "blocks": n_blocks,
            "chi2": chi2,
        },
    )


# --------------------------------------------------------------------------- 2.3


def runs(bits: Any) -> NistTestResult:
    """Runs test, SP 800-22 §2.3.

    If the frequency prerequisite ``|π − ½| < 2/√n`` fails, the P-value is 0.0 as in the
    document (step 2) and STS 2.1.2, and ``details["prerequisite_failed"]`` is True.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.

    Returns
    -------
    NistTestResult
        ``p = erfc(|V_n − 2nπ(1−π)| / (2√(2n) π(1−π)))``.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.3. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> round(runs([1, 0, 0, 1, 1, 0, 1, 0, 1, 1]).p_value, 6)
    0.147232
    """
    eps = as_bits(bits)
    n = eps.size
    pi = np.count_nonzero(eps) / n
    tau = 2.0 / math.sqrt(n)
    if abs(pi - 0.5) >= tau:
        return NistTestResult(
            "runs",
            (0.0,),
            details={"n": n, "pi": pi, "tau": tau, "prerequisite_failed": True},
        )
    v_obs = 1 + int(np.count_nonzero(eps[1:] != eps[:-1]))
    spread = 2.0 * n * pi * (1.0 - pi)
    p = float(erfc(abs(v_obs - spread) / (2.0 * math.sqrt(2.0 * n) * pi * (1.0 - pi))))
    return NistTestResult(
        "runs",
        (p,),
        details={"n": n, "pi": pi, "v_obs": v_obs, "prerequisite_failed": False},
    )


# --------------------------------------------------------------------------- 2.4

# §2.4.2: block length M and the smallest class value of ν (longest run ≤ it, …, the
# last class ≥), chosen from n; class probabilities π_i as in STS 2.1.2's
# longestRunOfOnes.c. For M = 8 and M = 128 they are the exact probabilities (the
# §3.4 table rounds them to four decimals; the §2.4.8 example, χ² = 4.882457,
# needs π_3 = 0.1875 exactly). For M = 10⁴ they are NIST's published approximations,
# which differ from the exact values (0.08663, 0.20820, 0.24842, 0.19391, 0.12146,
# 0.06801, 0.07337) by up to 0.0016; Appendix B was computed with them, so they stay.
_LONGEST_RUN_TABLES: tuple[tuple[int, int, int, tuple[float, ...]], ...] = (
    # (min n, M, smallest class value, probabilities)
    (750_000, 10_000, 10, (0.0882, 0.2092, 0.2483, 0.1933, 0.1208, 0.0675, 0.0727)),
    (
        6_272,
        128,
        4,
        (0.1174035788, 0.242955959, 0.249363483, 0.17517706, 0.102701071, 0.112398847),
    ),
    (128, 8, 1, (0.21484375, 0.3671875, 0.23046875, 0.1875)),
)


#: Bits handled per pass where a test's temporaries would otherwise grow with n.
_CHUNK_BITS = 1 << 20


def _longest_run_per_row(blocks: np.ndarray) -> np.ndarray:
    """The longest run of ones in each row of a 2-D 0/1 array, about 2²⁰ bits per pass."""
    rows = max(1, _CHUNK_BITS // max(1, blocks.shape[1]))
    if blocks.shape[0] > rows:
        return np.concatenate([_longest_run_per_row(blocks[i : i + rows]) for i in range(0, blocks.shape[0], rows)])
    n_rows = blocks.shape[0]
    padded = np.zeros((n_rows, blocks.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = blocks
    edges = np.diff(padded, axis=1)
    # np.nonzero walks row-major, so the k-th start and k-th end of a row pair up.
    start_rows, start_cols = np.nonzero(edges == 1)
    _, end_cols = np.nonzero(edges == -1)
    longest = np.zeros(n_rows, dtype=np.int64)
    np.maximum.at(longest, start_rows, end_cols - start_cols)
    return longest


def longest_run(bits: Any) -> NistTestResult:
    """Test for the longest run of ones in a block, SP 800-22 §2.4.

    M is chosen from n as in §2.4.2: 8 for 128 ≤ n < 6272, 128 for n < 750 000,
    10⁴ otherwise; N = ⌊n/M⌋ blocks (as STS 2.1.2; the document's fixed N are the
    minima).

    Parameters
    ----------
    bits
        The sequence, 0/1 values; at least 128.

    Returns
    -------
    NistTestResult
        ``p = igamc(K/2, χ²/2)`` over the K + 1 classes of the longest run.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.4 and §3.4. :doi:`10.6028/NIST.SP.800-22r1a`
    """
    eps = as_bits(bits)
    n = eps.size
    # The first table (largest block length M) whose minimum n the sequence reaches.
    table = next((row for row in _LONGEST_RUN_TABLES if n >= row[0]), None)
    if table is None:
        return _not_applicable("longest_run", f"n = {n} < 128")
    _, m, first, probabilities = table
    n_blocks = n // m
    longest = _longest_run_per_row(eps[: n_blocks * m].reshape(n_blocks, m))
    k = len(probabilities) - 1
    classes = np.clip(longest - first, 0, k)
    observed = np.bincount(classes, minlength=k + 1)
    expected = n_blocks * np.asarray(probabilities)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    p = float(gammaincc(k / 2.0, chi2 / 2.0))
    return NistTestResult(
        "longest_run",
        (p,),
        details={
            "n": n,
            "block_size": m,
            "blocks": n_blocks,
            "counts": observed.tolist(),
            "chi2": chi2,
        },
    )


# --------------------------------------------------------------------------- 2.5


def _gf2_ranks(rows: np.ndarray, n_cols: int) -> np.ndarray:
    """GF(2) rank of many matrices at once.

    ``rows`` has shape (matrices, rows): each entry a row packed into an unsigned
    integer, column j at bit ``n_cols − 1 − j``. Gaussian elimination runs one column
    at a time over all matrices together, so the Python loop is over columns only.
    """
    rows = rows.copy()
    n_mat, n_rows = rows.shape
    rank_of = np.zeros(n_mat, dtype=np.int64)
    row_index = np.arange(n_rows)
    all_mats = np.arange(n_mat)
    for col in range(n_cols):
        bit = rows.dtype.type(1 << (n_cols - 1 - col))
        has = (rows & bit) != 0
        # Only rows not yet used as pivots may serve as the pivot for this column.
        eligible = has & (row_index[None, :] >= rank_of[:, None])
        found = eligible.any(axis=1)
        if not found.any():
            continue
        mats = all_mats[found]
        pivot = eligible[mats].argmax(axis=1)
        target = rank_of[mats]
        pivot_rows = rows[mats, pivot].copy()
        # Swap the pivot row into position `target`.
        rows[mats, pivot] = rows[mats, target]
        rows[mats, target] = pivot_rows
        # Clear this column from every other row holding it.
        clear = (rows[mats] & bit) != 0
        clear[np.arange(mats.size), target] = False
        rows[mats] ^= np.where(clear, pivot_rows[:, None], rows.dtype.type(0))
        rank_of[mats] += 1
        if n_rows <= col + 1 and np.all(rank_of == n_rows):
            break
    return rank_of


def _rank_probabilities(n_rows: int, n_cols: int) -> tuple[float, float, float]:
    """P(full rank), P(full rank − 1), P(lower) for a random binary matrix, §3.5.

    STS 2.1.2 evaluates the same product for 32×32 (0.288788, 0.577576, 0.133636); the
    document's text rounds them to 0.2888, 0.5776, 0.1336.
    """
    full = min(n_rows, n_cols)

    def p_rank(r: int) -> float:
        i = np.arange(r, dtype=np.float64)
        product = np.prod((1 - 2.0 ** (i - n_rows)) * (1 - 2.0 ** (i - n_cols)) / (1 - 2.0 ** (i - r)))
        return float(2.0 ** (r * (n_rows + n_cols - r) - n_rows * n_cols) * product)

    p_full, p_minus1 = p_rank(full), p_rank(full - 1)
    return p_full, p_minus1, 1.0 - p_full - p_minus1


def rank(
    bits: Any,
    *,
    matrix_rows: int = 32,
    matrix_cols: int = 32,
    probabilities: Sequence[float] | None = None,
) -> NistTestResult:
    """Binary matrix rank test, SP 800-22 §2.5.

    The sequence is cut into N = ⌊n/(MQ)⌋ M×Q matrices filled row by row; ranks over
    GF(2) are counted in three classes: full, full − 1, lower.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    matrix_rows, matrix_cols
        M and Q (at most 63 columns).
    probabilities
        The class probabilities (full, full − 1, lower). By default they are computed
        exactly from §3.5 for the M×Q shape, as STS 2.1.2 does for 32×32. The §2.5.8
        worked example (M = Q = 3) uses the rounded 32×32 values (0.2888, 0.5776, 0.1336).

    Returns
    -------
    NistTestResult
        ``p = exp(−χ²/2)``. NIST recommends N ≥ 38; fewer matrices still give a
        P-value (as in the worked example) with ``details["recommended"]`` False.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.5 and §3.5. :doi:`10.6028/NIST.SP.800-22r1a`
    """
    if not (1 <= matrix_cols <= 63 and matrix_rows >= 1):
        raise ValueError("matrix_rows must be ≥ 1 and matrix_cols in [1, 63]")
    eps = as_bits(bits)
    n = eps.size
    size = matrix_rows * matrix_cols
    n_mat = n // size
    if n_mat < 1:
        return _not_applicable("rank", f"n = {n} is shorter than one {matrix_rows}×{matrix_cols} matrix")
    dtype = np.uint32 if matrix_cols <= 32 else np.uint64
    weights = (np.uint64(1) << np.arange(matrix_cols - 1, -1, -1, dtype=np.uint64)).astype(dtype)
    matrices = eps[: n_mat * size].reshape(n_mat, matrix_rows, matrix_cols)
    step = max(1, _CHUNK_BITS // size)  # pack about 2²⁰ bits per pass
    packed = np.concatenate(
        [(matrices[i : i + step].astype(dtype) * weights).sum(axis=2, dtype=dtype) for i in range(0, n_mat, step)]
    )
    ranks = _gf2_ranks(packed, matrix_cols)
    full = min(matrix_rows, matrix_cols)
    counts = np.array(
        [np.count_nonzero(ranks == full), np.count_nonzero(ranks == full - 1), 0],
        dtype=np.int64,
    )
    counts[2] = n_mat - counts[0] - counts[1]
    probs = np.asarray(probabilities if probabilities is not None else _rank_probabilities(matrix_rows, matrix_cols))
    if probs.shape != (3,):
        raise ValueError("probabilities must hold 3 values: full rank, full − 1, lower")

    expected = n_mat * probs
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    p = math.exp(-chi2 / 2.0)
    return NistTestResult(
        "rank",
        (p,),
        details={
            "n": n,
            "matrices": n_mat,
            "counts": counts.tolist(),
            "probabilities": probs.tolist(),
            "chi2": chi2,
            "recommended": n_mat >= 38,
        },
    )


# --------------------------------------------------------------------------- 2.6


def dft(bits: Any) -> NistTestResult:
    """Discrete Fourier transform (spectral) test, SP 800-22 rev 1a §2.6.

    Uses the revised threshold ``T = sqrt(ln(1/0.05) n)`` and ``N0 = 0.95 n/2`` of
    rev 1a (the 2001 edition had ``sqrt(3n)``), as STS 2.1.2.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.

    Returns
    -------
    NistTestResult
        ``p = erfc(|d|/√2)``, ``d = (N1 − N0)/sqrt(n · 0.95 · 0.05 / 4)``, N1 the number
        of the first n/2 moduli below T.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.6. :doi:`10.6028/NIST.SP.800-22r1a`

    Notes
    -----
    The moduli counted are |S_0| … |S_{n/2−1}| (the DC term included, the Nyquist
    term not), as STS 2.1.2 counts them; this reproduces Appendix B for e, π, √2
    and √3. The P-values printed in the §2.6.8 worked examples are not reproduced
    (for ε = 1001010011 all five moduli 0, 2, 4.47, 2, 4.47 lie below T = 5.47, so
    N1 = 5 and P = 0.468160).

    Examples
    --------
    A strictly periodic sequence puts all its energy in one frequency:

    >>> dft([0, 1] * 500).passed
    False
    """
    eps = as_bits(bits)
    n = eps.size
    if n < 2:
        return _not_applicable("dft", f"n = {n} < 2")
    x = eps.astype(np.float64)
    x *= 2.0
    x -= 1.0
    spectrum = np.fft.rfft(x)
    del x
    moduli = np.abs(spectrum[: n // 2])
    threshold = math.sqrt(math.log(1 / 0.05) * n)
    n0 = 0.95 * n / 2.0
    n1 = int(np.count_nonzero(moduli < threshold))
    d = (n1 - n0) / math.sqrt(n * 0.95 * 0.05 / 4.0)
    p = float(erfc(abs(d) / math.sqrt(2)))
    return NistTestResult("dft", (p,), details={"n": n, "n0": n0, "n1": n1, "d": d})


# --------------------------------------------------------------------------- 2.7


@cache
def aperiodic_templates(length: int) -> tuple[int, ...]:
    """All aperiodic templates of ``length`` bits, as integers in increasing order.

    A template B is aperiodic when no proper shift of it overlaps itself:
    ``B[k:] != B[:m−k]`` for every k in 1…m−1. These are the templates of STS 2.1.2's
    ``templates/template<m>`` files, in the same order (148 for m = 9, the first
    000000001).

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.7.2 and §3.7. :doi:`10.6028/NIST.SP.800-22r1a`
    """
    if not 2 <= length <= 21:
        raise ValueError(f"template length must be in [2, 21], got {length}")
    values = np.arange(1 << length, dtype=np.int64)
    aperiodic = np.ones(values.size, dtype=bool)
    for k in range(1, length):
        # B[k:] (low m−k bits) against B[:m−k] (high m−k bits).
        low = values & ((1 << (length - k)) - 1)
        high = values >> k
        aperiodic &= low != high
    return tuple(int(v) for v in values[aperiodic])


def _template_value(template: Any) -> tuple[int, int]:
    """(integer value MSB first, length) of a template given as a 0/1 sequence or string."""
    if isinstance(template, str):
        if not template or set(template) - {"0", "1"}:
            raise ValueError(f"template must be a string of 0/1, got {template!r}")
        template = [int(c) for c in template]
    t = as_bits(template)
    return int("".join(map(str, t.tolist())), 2), t.size


def non_overlapping_template(
    bits: Any,
    *,
    template_length: int = 9,
    blocks: int = 8,
    template: Any = None,
) -> NistTestResult:
    """Non-overlapping template matching test, SP 800-22 §2.7.

    Every aperiodic template of ``template_length`` bits is tested (148 for m = 9), one
    P-value per template in increasing order; Appendix B quotes the first, 000000001.
    An aperiodic template cannot overlap itself, so NIST's scan (skip m bits after a
    match) counts exactly all its occurrences: one histogram of the m-bit windows of
    each block counts every template at once.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    template_length
        m, when all templates are tested.
    blocks
        N, the number of blocks; M = ⌊n/N⌋.
    template
        One aperiodic template to test instead (a 0/1 sequence or string such as
        ``"001"``), as in the §2.7.8 worked example.

    Returns
    -------
    NistTestResult
        ``p = igamc(N/2, χ²/2)`` per template, ``χ² = Σ_j (W_j − μ)²/σ²``.
        ``details["templates"]`` lists the templates as bit strings.

    Raises
    ------
    ValueError
        ``template`` is periodic (the test is defined for aperiodic templates).

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.7 and §3.7. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> bits = [int(c) for c in "10100100101110010110"]
    >>> round(non_overlapping_template(bits, template="001", blocks=2).p_value, 6)
    0.344154
    """
    if template is not None:
        value, m = _template_value(template)
        if m < 2 or value not in aperiodic_templates(m):
            raise ValueError(f"template {template!r} is periodic; SP 800-22 §2.7 needs an aperiodic one")
        templates = np.array([value], dtype=np.int64)
    else:
        m = template_length
        templates = np.array(aperiodic_templates(m), dtype=np.int64)
    if blocks < 1:
        raise ValueError(f"blocks must be ≥ 1, got {blocks}")
    eps = as_bits(bits)
    n = eps.size
    block_size = n // blocks
    if block_size < m:
        return _not_applicable(
            "non_overlapping_template",
            f"blocks of {block_size} bits are shorter than m = {m}",
        )
    # One block's windows at a time: memory of one block, not of the whole sequence.
    histogram = np.stack(
        [
            np.bincount(
                _window_values(eps[j * block_size : (j + 1) * block_size], m),
                minlength=1 << m,
            )
            for j in range(blocks)
        ]
    )
    counts = histogram[:, templates]  # (blocks, templates)
    mu = (block_size - m + 1) / 2.0**m
    sigma2 = block_size * (1 / 2.0**m - (2 * m - 1) / 2.0 ** (2 * m))
    chi2 = np.sum((counts - mu) ** 2, axis=0) / sigma2
    p = gammaincc(blocks / 2.0, chi2 / 2.0)
    return NistTestResult(
        "non_overlapping_template",
        tuple(float(v) for v in p),
        details={
            "n": n,
            "template_length": m,
            "blocks": blocks,
            "block_size": block_size,
            "templates": [format(int(t), f"0{m}b") for t in templates],
            "mu": mu,
            "sigma2": sigma2,
        },
    )


# --------------------------------------------------------------------------- 2.8

#: Hamano & Kaneko's corrected class probabilities for m = 9, M = 1032 (K = 5), quoted in
#: SP 800-22 rev 1a §2.8.4 and in the initialiser of ``pi[]`` in STS 2.1.2's
#: ``overlappingTemplateMatchings.c``. STS 2.1.2 then overwrites that array with §3.8's
#: approximation, and Appendix B was computed that way, so they are not the default:
#: pass them as ``overlapping_template(..., probabilities=OVERLAPPING_PROBABILITIES_HAMANO_KANEKO)``.
OVERLAPPING_PROBABILITIES_HAMANO_KANEKO = (
    0.364091,
    0.185659,
    0.139381,
    0.100571,
    0.0704323,
    0.139865,
)


def _overlapping_probabilities(eta: float, k: int) -> np.ndarray:
    """§3.8's approximate class probabilities (Pólya–Aeppli with parameter η).

    π_0 = e^{−η}; π_u = e^{−η} 2^{−u} Σ_{l=1}^{u} C(u−1, l−1) η^l / l!; π_K = 1 − Σ.
    """
    probs = np.empty(k + 1)
    probs[0] = math.exp(-eta)
    for u in range(1, k):
        ell = np.arange(1, u + 1)
        log_terms = (
            -eta
            - u * math.log(2)
            + ell * math.log(eta)
            - gammaln(ell + 1)
            + gammaln(u)
            - gammaln(ell)
            - gammaln(u - ell + 1)
        )
        probs[u] = float(np.sum(np.exp(log_terms)))
    probs[k] = 1.0 - probs[:k].sum()
    return probs


def overlapping_template(
    bits: Any,
    *,
    template_length: int = 9,
    block_size: int = 1032,
    probabilities: Sequence[float] | None = None,
) -> NistTestResult:
    """Overlapping template matching test, SP 800-22 §2.8, template of m ones.

    Counts the overlapping occurrences of 1…1 (m ones) in each of N = ⌊n/M⌋ blocks and
    compares the counts 0, 1, …, 4, ≥5 with their probabilities (K = 5).

    Probabilities: by default §3.8's approximation (a Pólya–Aeppli law with
    η = (M − m + 1)/2^{m+1}; for m = 9, M = 1032: 0.367879, 0.183940, 0.137955,
    0.099634, 0.069935, 0.140657), which is what STS 2.1.2 actually uses (its
    hard-coded corrected values are overwritten by the computed ones before use) and
    what reproduces Appendix B and the §2.8.8 n = 10⁶ example (e: counts 329, 164,
    150, 111, 78, 136; χ² = 8.965859; P = 0.110434). The corrected values of Hamano &
    Kaneko [3]_ that rev 1a §2.8.4 quotes are :data:`OVERLAPPING_PROBABILITIES_HAMANO_KANEKO`;
    pass them as ``probabilities`` for the statistically exact test (P-values then
    differ from Appendix B, e.g. 0.159032 instead of 0.110434 for e).

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    template_length
        m.
    block_size
        M.
    probabilities
        Six class probabilities to use instead.

    Returns
    -------
    NistTestResult
        ``p = igamc(K/2, χ²/2)``.

    References
    ----------
    .. [1] NIST SP 800-22 rev 1a, §2.8 and §3.8. :doi:`10.6028/NIST.SP.800-22r1a`
    .. [3] K. Hamano and T. Kaneko, IEICE Trans. Fundamentals E90-A(9), 2007.
       :doi:`10.1093/ietfec/e90-a.9.1788`
    """
    k = 5
    m = template_length
    if m < 1 or block_size < m:
        raise ValueError("need 1 ≤ template_length ≤ block_size")
    eps = as_bits(bits)
    n = eps.size
    n_blocks = n // block_size
    if n_blocks < 1:
        return _not_applicable(
            "overlapping_template",
            f"n = {n} is shorter than one block of {block_size} bits",
        )
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (k + 1,):
            raise ValueError(f"probabilities must hold {k + 1} values (classes 0…{k - 1}, ≥{k})")
        source = "given"
    else:
        probs = _overlapping_probabilities((block_size - m + 1) / 2.0 ** (m + 1), k)
        source = "SP 800-22 §3.8 approximation (STS 2.1.2)"
    # A window of m ones ends at j exactly when the m-bit window sum there is m; the
    # narrowest integer that holds a block's count keeps memory near 2 bytes per bit.
    csum_dtype = np.int16 if block_size < 2**15 else np.int32
    csum = np.zeros((n_blocks, block_size + 1), dtype=csum_dtype)
    np.cumsum(
        eps[: n_blocks * block_size].reshape(n_blocks, block_size),
        axis=1,
        dtype=csum_dtype,
        out=csum[:, 1:],
    )
    matches = np.count_nonzero(csum[:, m:] - csum[:, :-m] == m, axis=1)
    counts = np.bincount(np.minimum(matches, k), minlength=k + 1)
    expected = n_blocks * probs
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    p = float(gammaincc(k / 2.0, chi2 / 2.0))
    return NistTestResult(
        "overlapping_template",
        (p,),
        details={
            "n": n,
            "template_length": m,
            "block_size": block_size,
            "blocks": n_blocks,
            "counts": counts.tolist(),
            "probabilities": probs.tolist(),
            "probability_source": source,
            "chi2": chi2,
        },
    )
