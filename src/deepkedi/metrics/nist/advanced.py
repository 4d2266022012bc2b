"""SP 800-22 rev 1a tests 9–15: universal, linear complexity, serial, approximate
entropy, cumulative sums, random excursions and its variant.

Every test takes a 1-D sequence of 0/1 values and returns a
:class:`~deepkedi.metrics.nist._common.NistTestResult`; a sequence too short for a
test gives ``applicable=False`` and a reason, never an exception. The arithmetic is
vectorised: nothing loops over bits in Python (linear complexity runs
Berlekamp–Massey on all blocks at once, one NumPy step per bit position).

Constants, and where they depart from Appendix B:

* universal: expected values and variances of f_n for L = 1..16 from §2.9.4 (the
  ``expected_value`` / ``variance`` arrays of STS 2.1.2), with Maurer's correction
  ``c = 0.7 − 0.8/L + (4 + 32/L) K^(−3/L) / 15`` on the standard deviation. This
  reproduces Appendix B to 6 decimals.
* linear complexity: class probabilities π = (0.010417, 0.03125, 0.125, 0.5, 0.25,
  0.0625, 0.020833), the exact 1/96, 1/32, …, 1/48 rounded to six decimals.
  Appendix B and the §2.10.8 example were computed with STS 2.1.2's π₀ = 0.01047;
  with it, they are reproduced to 6 decimals (tests swap the constant to show it),
  with rev 1a's π₀ the P-values move by up to 0.009 (e: 0.826194 vs 0.826335).
* random excursions: π_k(x) from the closed form of §3.14 (STS tabulates the same
  values to 10 digits).
* cumulative sums: Appendix B prints 0.669887 / 0.724266 for e where the exact
  values are 0.6698865 / 0.7242653, one unit in the sixth decimal.

References
----------
.. [1] A. Rukhin et al., "A Statistical Test Suite for Random and Pseudorandom
   Number Generators for Cryptographic Applications", NIST SP 800-22 rev 1a,
   2010. :doi:`10.6028/NIST.SP.800-22r1a`
.. [2] U. M. Maurer, "A universal statistical test for random bit generators",
   J. Cryptology 5 (1992) 89–105. :doi:`10.1007/BF00193563`
.. [3] J. L. Massey, "Shift-register synthesis and BCH decoding", IEEE Trans.
   Inf. Theory 15 (1969) 122–127. :doi:`10.1109/TIT.1969.1054260`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import erfc, gammaincc, ndtr

from deepkedi.metrics.nist._common import DEFAULT_ALPHA, NistTestResult, as_bits

__all__ = [
    "ADVANCED_TESTS",
    "approximate_entropy",
    "cumulative_sums",
    "linear_complexity",
    "random_excursions",
    "random_excursions_variant",
    "serial",
    "universal",
]

# --------------------------------------------------------------------------- helpers


def _not_applicable(name: str, reason: str, alpha: float, **details: Any) -> NistTestResult:
    return NistTestResult(name, (), alpha=alpha, applicable=False, reason=reason, details=details)


def _cyclic_pattern_counts(bits: np.ndarray, m: int) -> np.ndarray:
    """Counts of the 2**m overlapping m-bit patterns, the sequence wrapped around.

    SP 800-22 §2.11.4 step 1 / §2.12.4 step 1: append the first m − 1 bits so that
    every position starts a window. Pattern value reads the window MSB first.
    """
    if m == 0:
        return np.array([bits.size], dtype=np.int64)
    n = bits.size
    extended = np.concatenate([bits, bits[: m - 1]])
    counts = np.zeros(1 << m, dtype=np.int64)
    # One vector operation per bit of the pattern (m ≤ ~25), not per bit of input, over
    # _CHUNK windows at a time in one reused buffer, so that memory does not grow with n.
    buffer = np.empty(min(n, _CHUNK), dtype=np.intp)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        values = buffer[: stop - start]
        values.fill(0)
        for j in range(m):
            values <<= 1
            values |= extended[start + j : stop + j]
        counts += np.bincount(values, minlength=1 << m)
    return counts


def _marginal_counts(counts: np.ndarray) -> np.ndarray:
    """Cyclic counts of (m − 1)-bit patterns from those of m-bit patterns.

    On a wrapped sequence every (m − 1)-window is the prefix of exactly one m-window.
    """
    return counts.reshape(-1, 2).sum(axis=1)


#: Windows counted per pass in :func:`_cyclic_pattern_counts` (8 MiB of int64 values).
_CHUNK = 1 << 20


def _random_walk(bits: np.ndarray) -> np.ndarray:
    """Partial sums S_k of X_i = 2ε_i − 1 (§2.13.4 step 2).

    int32 while |S_k| ≤ n fits, summed in place: 4 bytes per bit rather than 32.
    """
    walk = bits.astype(np.int32 if bits.size < 2**31 else np.int64)
    walk *= 2
    walk -= 1
    return np.cumsum(walk, out=walk)


# --------------------------------------------------------------------------- §2.9

#: §2.9.4 / STS 2.1.2 ``universal.c``: expected value of f_n for L = 1..16.
_UNIVERSAL_EXPECTED = np.array(
    [
        0.0,
        0.7326495,
        1.5374383,
        2.4016068,
        3.3112247,
        4.2534266,
        5.2177052,
        6.1962507,
        7.1836656,
        8.1764248,
        9.1723243,
        10.170032,
        11.168765,
        12.168070,
        13.167693,
        14.167488,
        15.167379,
    ]
)
#: §2.9.4 / STS 2.1.2: variance of log2 of the distances for L = 1..16.
_UNIVERSAL_VARIANCE = np.array(
    [
        0.0,
        0.690,
        1.338,
        1.901,
        2.358,
        2.705,
        2.954,
        3.125,
        3.238,
        3.311,
        3.356,
        3.384,
        3.401,
        3.410,
        3.416,
        3.419,
        3.421,
    ]
)
#: §2.9.7: smallest n for L = 6..16 (Q = 10·2^L initialisation blocks).
_UNIVERSAL_MIN_N = {
    6: 387_840,
    7: 904_960,
    8: 2_068_480,
    9: 4_654_080,
    10: 10_342_400,
    11: 22_753_280,
    12: 49_643_520,
    13: 107_560_960,
    14: 231_669_760,
    15: 496_435_200,
    16: 1_059_061_760,
}


def _universal_statistic(bits: np.ndarray, L: int, Q: int) -> tuple[float, int]:
    """Maurer's f_n (§2.9.4 steps 1–5) and the number K of test blocks."""
    n_blocks = bits.size // L
    K = n_blocks - Q
    blocks = bits[: n_blocks * L].reshape(n_blocks, L)
    values = np.zeros(n_blocks, dtype=np.int64)
    for column in range(L):  # read each block MSB first, one column at a time
        values <<= 1
        values |= blocks[:, column]
    # Distance to the previous block with the same value: a stable sort groups equal
    # values with their positions ascending, so each block's predecessor in its group
    # is its last occurrence. A block never seen before counts from position 0, as the
    # table T initialised to zeros does in STS.
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    previous = np.zeros(n_blocks, dtype=np.int64)
    same = sorted_values[1:] == sorted_values[:-1]
    previous[order[1:][same]] = order[:-1][same] + 1  # 1-based positions
    positions = np.arange(1, n_blocks + 1)
    distances = positions[Q:] - previous[Q:]
    return float(np.log2(distances).sum() / K), K


def universal(
    bits: Any,
    *,
    block_length: int | None = None,
    init_blocks: int | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> NistTestResult:
    """Maurer's "universal statistical" test (SP 800-22 §2.9).

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    block_length
        L; by default chosen from n as in §2.9.7 (L = 6 needs n ≥ 387 840).
    init_blocks
        Q, the blocks that initialise the table; default 10·2^L.
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``universal``, one P-value; ``details`` holds ``L``, ``Q``, ``K``, ``f_n``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.9. :doi:`10.6028/NIST.SP.800-22r1a`
    .. [2] Maurer 1992. :doi:`10.1007/BF00193563`

    Examples
    --------
    >>> universal([0, 1] * 10).applicable
    False
    """
    bits = as_bits(bits)
    n = bits.size
    L = block_length
    if L is None:
        L = max((ell for ell, n_min in _UNIVERSAL_MIN_N.items() if n >= n_min), default=None)
        if L is None:
            return _not_applicable("universal", f"n = {n} < 387840, the least length §2.9.7 allows", alpha)
    if not 1 <= L <= 16:
        raise ValueError(f"block_length must be in 1..16, got {L}")
    Q = 10 * (1 << L) if init_blocks is None else int(init_blocks)
    K = n // L - Q
    if Q < 1 or K < 1:
        return _not_applicable("universal", f"n = {n} leaves no test block after Q = {Q}", alpha)
    fn, K = _universal_statistic(bits, L, Q)
    # Maurer's correction for the dependence between distances (§2.9.4 step 5, STS).
    c = 0.7 - 0.8 / L + (4 + 32 / L) * K ** (-3 / L) / 15
    sigma = c * np.sqrt(_UNIVERSAL_VARIANCE[L] / K)
    p = float(erfc(abs(fn - _UNIVERSAL_EXPECTED[L]) / (np.sqrt(2) * sigma)))
    return NistTestResult(
        "universal",
        (p,),
        alpha=alpha,
        details={
            "L": L,
            "Q": Q,
            "K": K,
            "f_n": fn,
            "expected": float(_UNIVERSAL_EXPECTED[L]),
            "sigma": float(sigma),
        },
    )


# --------------------------------------------------------------------------- §2.10

#: P(T ∈ class i), i = 0..6: the exact 1/96, 1/32, 1/8, 1/2, 1/4, 1/16, 1/48 to six
#: decimals. STS 2.1.2 uses π₀ = 0.01047 instead (see the module notes).
_LINEAR_COMPLEXITY_PI = np.array([0.010417, 0.03125, 0.125, 0.5, 0.25, 0.0625, 0.020833])


def _berlekamp_massey_lengths(blocks: np.ndarray) -> np.ndarray:
    """Linear complexity of each row of ``blocks`` (N × M, 0/1) over GF(2).

    Berlekamp–Massey [3]_ run on all rows at once: one vector step per bit position,
    never a Python loop over rows. ``shifted_b`` holds x^(n−m)·B(x) for each row, so
    the connection-polynomial update C ← C + x^(n−m)·B needs no per-row shift; it
    moves one place right per step for every row alike.
    """
    blocks = np.asarray(blocks, dtype=bool)
    N, M = blocks.shape
    C = np.zeros((N, M + 1), dtype=bool)
    C[:, 0] = True
    shifted_b = np.zeros((N, M + 1), dtype=bool)
    shifted_b[:, 1] = True  # B = 1, m = −1: x^(0−(−1))·B = x
    lengths = np.zeros(N, dtype=np.int64)
    reversed_blocks = blocks[:, ::-1]
    for n in range(M):
        # Discrepancy d = Σ_{i=0..L} C_i s_{n−i}; C_i = 0 above the largest L.
        top = int(lengths.max())
        window = reversed_blocks[:, M - 1 - n : M - 1 - n + top + 1]
        d = (np.count_nonzero(C[:, : window.shape[1]] & window, axis=1) & 1).astype(bool)
        if d.any():
            grow = d & (2 * lengths <= n)
            previous_c = C[grow]
            C[d] ^= shifted_b[d]
            shifted_b[grow] = previous_c
            lengths[grow] = n + 1 - lengths[grow]
        shifted_b[:, 1:] = shifted_b[:, :-1].copy()
        shifted_b[:, 0] = False
    return lengths


def linear_complexity(bits: Any, *, block_size: int = 500, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Linear complexity test (SP 800-22 §2.10).

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    block_size
        M, bits per block (NIST: 500 ≤ M ≤ 5000; Appendix B uses 500).
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``linear_complexity``, one P-value; ``details`` has ``N``, ``M``, the class
        counts ``nu`` and ``chi_square``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.10. :doi:`10.6028/NIST.SP.800-22r1a`
    .. [2] Massey 1969. :doi:`10.1109/TIT.1969.1054260`
    """
    bits = as_bits(bits)
    M = int(block_size)
    if M < 2:
        raise ValueError(f"block_size must be at least 2, got {M}")
    N = bits.size // M
    if N < 1:
        return _not_applicable("linear_complexity", f"n = {bits.size} < block size {M}", alpha)
    lengths = _berlekamp_massey_lengths(bits[: N * M].reshape(N, M))
    mu = M / 2 + (9 + (-1) ** (M + 1)) / 36 - (M / 3 + 2 / 9) / 2.0**M
    T = (-1) ** M * (lengths - mu) + 2 / 9
    # Classes (−∞, −2.5], (−2.5, −1.5], …, (2.5, ∞): T is an integer plus 2/9 − frac(μ).
    classes = np.searchsorted(np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]), T, side="left")
    nu = np.bincount(classes, minlength=7)
    expected = N * _LINEAR_COMPLEXITY_PI
    chi2 = float(np.sum((nu - expected) ** 2 / expected))
    p = float(gammaincc(3.0, chi2 / 2))
    return NistTestResult(
        "linear_complexity",
        (p,),
        alpha=alpha,
        details={"N": N, "M": M, "nu": nu.tolist(), "chi_square": chi2},
    )


# --------------------------------------------------------------------------- §2.11


def _psi_squared(counts: np.ndarray, n: int) -> float:
    """ψ²_m = 2^m/n Σ ν² − n (§2.11.4 step 3); ψ²_0 = 0."""
    if counts.size == 1:
        return 0.0
    return float(counts.size / n * np.sum(counts.astype(np.float64) ** 2) - n)


def serial(bits: Any, *, block_length: int = 16, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Serial test (SP 800-22 §2.11): two P-values, for ∇ψ²_m and ∇²ψ²_m.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    block_length
        m; NIST asks m < ⌊log₂ n⌋ − 2 (Appendix B: 16).
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``serial`` with ``p_values = (P1, P2)``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.11. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> [round(p, 6) for p in serial([0,0,1,1,0,1,1,1,0,1], block_length=3).p_values]
    [0.808792, 0.67032]
    """
    bits = as_bits(bits)
    n, m = bits.size, int(block_length)
    if m < 2:
        raise ValueError(f"block_length must be at least 2, got {m}")
    if m > n:
        return _not_applicable("serial", f"n = {n} < m = {m}", alpha)
    counts_m = _cyclic_pattern_counts(bits, m)
    counts_m1 = _marginal_counts(counts_m)
    counts_m2 = _marginal_counts(counts_m1)
    psi = [_psi_squared(c, n) for c in (counts_m, counts_m1, counts_m2)]
    del1 = psi[0] - psi[1]
    del2 = psi[0] - 2 * psi[1] + psi[2]
    p1 = float(gammaincc(2.0 ** (m - 2), del1 / 2))
    p2 = float(gammaincc(2.0 ** (m - 3), del2 / 2))
    return NistTestResult(
        "serial",
        (p1, p2),
        alpha=alpha,
        details={"m": m, "psi_squared": psi, "del1": del1, "del2": del2},
    )


# --------------------------------------------------------------------------- §2.12


def _phi(counts: np.ndarray, n: int) -> float:
    """φ^(m) = Σ π_i log π_i over the patterns that occur (§2.12.4 step 4)."""
    c = counts[counts > 0].astype(np.float64)
    return float(np.sum(c * np.log(c / n)) / n)


def approximate_entropy(bits: Any, *, block_length: int = 10, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Approximate entropy test (SP 800-22 §2.12).

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    block_length
        m; NIST asks m < ⌊log₂ n⌋ − 5 (Appendix B: 10).
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``approximate_entropy``, one P-value; ``details`` has ``ApEn`` and ``chi_square``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.12. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> round(approximate_entropy([0,1,0,0,1,1,0,1,0,1], block_length=3).p_value, 6)
    0.261961
    """
    bits = as_bits(bits)
    n, m = bits.size, int(block_length)
    if m < 1:
        raise ValueError(f"block_length must be at least 1, got {m}")
    if m + 1 > n:
        return _not_applicable("approximate_entropy", f"n = {n} < m + 1 = {m + 1}", alpha)
    counts_m1 = _cyclic_pattern_counts(bits, m + 1)
    counts_m = _marginal_counts(counts_m1)
    apen = _phi(counts_m, n) - _phi(counts_m1, n)
    chi2 = 2 * n * (np.log(2) - apen)
    p = float(gammaincc(2.0 ** (m - 1), chi2 / 2))
    return NistTestResult(
        "approximate_entropy",
        (p,),
        alpha=alpha,
        details={"m": m, "ApEn": float(apen), "chi_square": float(chi2)},
    )


# --------------------------------------------------------------------------- §2.13


def _cusum_p_value(z: int, n: int) -> float:
    """§2.13.4 step 4: P-value for the maximal excursion z of a walk of n steps."""
    sqrt_n = np.sqrt(n)
    # Bounds as STS computes them: int k starts at trunc((−n/z + 1)/4), runs while
    # k ≤ (n/z − 1)/4.
    k1 = np.arange(int((-n / z + 1) / 4), int(np.floor((n / z - 1) / 4)) + 1)
    k2 = np.arange(int((-n / z - 3) / 4), int(np.floor((n / z - 1) / 4)) + 1)
    sum1 = np.sum(ndtr((4 * k1 + 1) * z / sqrt_n) - ndtr((4 * k1 - 1) * z / sqrt_n))
    sum2 = np.sum(ndtr((4 * k2 + 3) * z / sqrt_n) - ndtr((4 * k2 + 1) * z / sqrt_n))
    return float(1.0 - sum1 + sum2)


def cumulative_sums(bits: Any, *, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Cumulative sums (cusum) test (SP 800-22 §2.13), forward and backward.

    Parameters
    ----------
    bits
        The sequence, 0/1 values.
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``cumulative_sums`` with ``p_values = (forward, backward)``; ``details`` has
        the maximal excursions ``z_forward`` and ``z_backward``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.13. :doi:`10.6028/NIST.SP.800-22r1a`

    Examples
    --------
    >>> round(cumulative_sums([1,0,1,1,0,1,0,1,1,1]).p_values[0], 6)  # §2.13.4: 0.4116588
    0.411659
    """
    bits = as_bits(bits)
    n = bits.size
    walk = _random_walk(bits)
    z_forward = max(int(walk.max()), -int(walk.min()))
    # The backward walk's partial sums are S_n − S_j, j = n−1..0 (S_0 = 0): the largest
    # |S_n − S_j| is reached at the smallest or the largest S_j.
    total = int(walk[-1])
    low = min(0, int(walk[:-1].min())) if n > 1 else 0
    high = max(0, int(walk[:-1].max())) if n > 1 else 0
    z_backward = max(abs(total - low), abs(total - high))
    p = (_cusum_p_value(z_forward, n), _cusum_p_value(z_backward, n))
    return NistTestResult(
        "cumulative_sums",
        p,
        alpha=alpha,
        details={"z_forward": z_forward, "z_backward": z_backward},
    )


# --------------------------------------------------------------------------- §2.14, §2.15

_EXCURSION_STATES = np.array([-4, -3, -2, -1, 1, 2, 3, 4])
_VARIANT_STATES = np.array([-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9])


def _excursion_pi(x: int) -> np.ndarray:
    """π_k(x), k = 0..5 (k = 5: five visits or more), §3.14."""
    a = 1 / (2 * abs(x))
    k = np.arange(1, 5)
    return np.concatenate([[1 - a], a * a * (1 - a) ** (k - 1), [a * (1 - a) ** 4]])


def _cycles(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The walk S (§2.14.4 step 2), the positions where it is zero, and J.

    Bounding S with zeros (S' = 0, S, 0), a cycle runs between successive zeros; the
    step S_k belongs to the cycle numbered by the zeros before it, found by searching
    the zeros' positions (about √n of them) rather than numbering all n steps.
    """
    walk = _random_walk(bits)
    zeros = np.flatnonzero(walk == 0)
    J = zeros.size + (0 if walk[-1] == 0 else 1)
    return walk, zeros, J


def _excursion_statistics(bits: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """J, the visit-count table ν_k(x) (8 × 6) and χ²(x) for x = −4..−1, 1..4."""
    walk, zeros, J = _cycles(bits)
    nu = np.zeros((_EXCURSION_STATES.size, 6), dtype=np.int64)
    chi2 = np.zeros(_EXCURSION_STATES.size)
    for i, x in enumerate(_EXCURSION_STATES):  # eight states, each one vector pass
        cycle = np.searchsorted(zeros, np.flatnonzero(walk == x), side="left")
        visits = np.bincount(cycle, minlength=J)[:J]
        nu[i] = np.bincount(np.minimum(visits, 5), minlength=6)
        expected = J * _excursion_pi(int(x))
        chi2[i] = np.sum((nu[i] - expected) ** 2 / expected)
    return J, nu, chi2


def _excursion_constraint(n: int) -> float:
    # §2.14.7 asks J ≥ 500; STS also asks J ≥ 0.005·√n, which only binds past n = 10^10.
    return max(0.005 * np.sqrt(n), 500.0)


def random_excursions(bits: Any, *, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Random excursions test (SP 800-22 §2.14): 8 P-values, states −4..−1, 1..4.

    Parameters
    ----------
    bits
        The sequence, 0/1 values (NIST: n ≥ 10⁶).
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``random_excursions``; not applicable when the walk has fewer than 500
        cycles J. ``details`` has ``J``, ``states``, ``chi_square``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.14. :doi:`10.6028/NIST.SP.800-22r1a`
    """
    bits = as_bits(bits)
    J, _, chi2 = _excursion_statistics(bits)
    if _excursion_constraint(bits.size) > J:
        return _not_applicable("random_excursions", f"J = {J} cycles < 500 (§2.14.7)", alpha, J=J)
    p = tuple(float(v) for v in gammaincc(2.5, chi2 / 2))
    return NistTestResult(
        "random_excursions",
        p,
        alpha=alpha,
        details={
            "J": J,
            "states": _EXCURSION_STATES.tolist(),
            "chi_square": chi2.tolist(),
        },
    )


def _variant_statistics(bits: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """J, the visit totals ξ(x) and P-values for x = −9..−1, 1..9 (§2.15.4)."""
    walk, _, J = _cycles(bits)
    # Visits to −9..9 in one bincount; the walk stays in [−n, n].
    clipped = walk[(walk >= -9) & (walk <= 9)] + 9
    xi = np.bincount(clipped, minlength=19)[_VARIANT_STATES + 9]
    p = erfc(np.abs(xi - J) / np.sqrt(2.0 * J * (4 * np.abs(_VARIANT_STATES) - 2)))
    return J, xi, p


def random_excursions_variant(bits: Any, *, alpha: float = DEFAULT_ALPHA) -> NistTestResult:
    """Random excursions variant test (SP 800-22 §2.15): 18 P-values, −9..−1, 1..9.

    Parameters
    ----------
    bits
        The sequence, 0/1 values (NIST: n ≥ 10⁶).
    alpha
        Significance level.

    Returns
    -------
    NistTestResult
        ``random_excursions_variant``; not applicable when J < 500. ``details`` has
        ``J``, ``states`` and the visit totals ``xi``.

    References
    ----------
    .. [1] SP 800-22 rev 1a §2.15. :doi:`10.6028/NIST.SP.800-22r1a`
    """
    bits = as_bits(bits)
    J, xi, p = _variant_statistics(bits)
    if _excursion_constraint(bits.size) > J:
        return _not_applicable("random_excursions_variant", f"J = {J} cycles < 500 (§2.15.7)", alpha, J=J)
    return NistTestResult(
        "random_excursions_variant",
        tuple(float(v) for v in p),
        alpha=alpha,
        details={"J": J, "states": _VARIANT_STATES.tolist(), "xi": xi.tolist()},
    )


#: Tests 9–15 by result name, in SP 800-22 order.
ADVANCED_TESTS: dict[str, Callable[..., NistTestResult]] = {
    "universal": universal,
    "linear_complexity": linear_complexity,
    "serial": serial,
    "approximate_entropy": approximate_entropy,
    "cumulative_sums": cumulative_sums,
    "random_excursions": random_excursions,
    "random_excursions_variant": random_excursions_variant,
}
