"""Statistical tests of a single (cipher) image: entropy, histogram uniformity, correlation.

An ideal cipher image looks like i.i.d. uniform grey levels. Each function here measures
one aspect of that and, where a reference distribution exists, says whether the image
passes at significance level ``alpha``:

* :func:`shannon_entropy` — global entropy of the histogram (max ``bits``), with the
  value expected of uniform random data of the same size;
* :func:`local_entropy` — Wu et al.'s (2013) mean entropy of k random blocks with an
  acceptance interval;
* :func:`histogram_chi_square` — χ² of the histogram against uniform;
* :func:`adjacent_correlation` / :func:`adjacent_correlations` — Pearson correlation of
  neighbouring pixels.

Images are 2-D slices or 3-D stacks ``(planes, rows, cols)``; statistics run over all
planes, neighbour pairs and blocks stay within a plane. The bit depth comes from the
dtype (8 for ``uint8``/``int8``, 16 for ``uint16``/``int16``) unless ``bits=`` is given;
signed data is shifted to ``[0, 2**bits)`` first.

References
----------
.. [1] Y. Wu, Y. Zhou, G. Saveriades, S. Agaian, J. P. Noonan, P. Natarajan, "Local
   Shannon entropy measure with statistical tests for image randomness", Information
   Sciences 222 (2013) 323–342. doi:10.1016/j.ins.2012.07.049
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from deepkedi.metrics._validate import check_image, to_unsigned
from deepkedi.metrics.records import (
    ChiSquareResult,
    CorrelationResult,
    EntropyResult,
    LocalEntropyResult,
)

__all__ = [
    "DIRECTIONS",
    "adjacent_correlation",
    "adjacent_correlations",
    "histogram_chi_square",
    "local_entropy",
    "pearson",
    "shannon_entropy",
    "uniform_entropy_moments",
]

Direction = Literal["horizontal", "vertical", "diagonal"]
#: The neighbour directions of :func:`adjacent_correlation`.
DIRECTIONS: tuple[Direction, ...] = ("horizontal", "vertical", "diagonal")
#: Most pairs kept in a :class:`CorrelationResult` for a scatter plot.
SCATTER_PAIRS = 10_000


def _entropy_of_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Entropy in bits of each row of a histogram with ``total`` samples per row."""
    p = counts / total
    logs = np.log2(p, out=np.zeros_like(p), where=counts > 0)
    return -(p * logs).sum(axis=-1)


@lru_cache(maxsize=64)
def uniform_entropy_moments(n: int, bits: int, *, variance: bool = True) -> tuple[float, float]:
    """Mean and variance of the entropy of ``n`` i.i.d. uniform ``bits``-bit values.

    Computed exactly (no simulation) from the multinomial distribution of the
    histogram. With f(x) = −(x/n)·log₂(x/n) and m = 2**bits bins, each count is
    Binomial(n, 1/m), any two counts are jointly trinomial, and

        E[H] = m·E[f(X)],   Var[H] = m·Var[f(X)] + m(m−1)·Cov[f(X), f(Y)].

    Sums run over counts within 12 standard deviations (plus 40) of n/m; the rest
    has probability far below double precision. For m = 2 the two counts are tied,
    Y = n − X, and H is summed directly. The result is cached.

    Examples
    --------
    >>> mean, var = uniform_entropy_moments(1936, 8)
    >>> round(mean, 4), round(math.sqrt(var), 4)
    (7.9025, 0.0087)
    """
    m = 1 << bits
    p = 1.0 / m
    centre, spread = n * p, math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(centre - 12 * spread - 40))
    hi = min(n, math.ceil(centre + 12 * spread + 40))
    x = np.arange(lo, hi + 1, dtype=np.float64)
    pmf = stats.binom.pmf(x, n, p)
    q = x / n
    f = -q * np.log2(q, out=np.zeros_like(q), where=x > 0)
    if m == 2:
        # The two counts are x and n − x: H is a function of x alone.
        rest = 1 - q
        h = f - rest * np.log2(rest, out=np.zeros_like(rest), where=rest > 0)
        mean = float((pmf * h).sum())
        return mean, float((pmf * (h - mean) ** 2).sum())
    mean_f = float((pmf * f).sum())
    if not variance:
        return m * mean_f, math.nan
    var_f = float((pmf * (f - mean_f) ** 2).sum())
    # Joint pmf of two counts of a multinomial with cell probabilities p, p, 1 − 2p.
    xs, ys = x[:, None], x[None, :]
    rest = n - xs - ys
    valid = rest >= 0
    log_joint = (
        special.gammaln(n + 1)
        - special.gammaln(xs + 1)
        - special.gammaln(ys + 1)
        - special.gammaln(np.where(valid, rest, 0) + 1)
        + (xs + ys) * math.log(p)
        + np.where(valid, rest, 0) * math.log1p(-2 * p)
    )
    joint = np.where(valid, np.exp(np.where(valid, log_joint, -np.inf)), 0.0)
    centred = f - mean_f
    cov = float((joint * centred[:, None] * centred[None, :]).sum())
    return m * mean_f, m * var_f + m * (m - 1) * cov


#: Values per call of numpy.bincount in :func:`_level_counts`: it converts its input to
#: int64, so chunks keep that copy small, and 2¹⁸ values keep the 65 536 bins in cache
#: (13× faster than one call on 134 M 16-bit values).
_COUNT_CHUNK = 1 << 18


def _level_counts(levels: np.ndarray, length: int) -> np.ndarray:
    """``numpy.bincount(levels.ravel(), minlength=length)``, chunk by chunk: memory stays bounded.

    Examples
    --------
    >>> _level_counts(np.array([[0, 1], [1, 3]], np.uint8), 4).tolist()
    [1, 2, 0, 1]
    """
    flat = levels.reshape(-1)
    counts = np.zeros(max(length, 1), dtype=np.int64)
    for start in range(0, flat.size, _COUNT_CHUNK):
        chunk = np.bincount(flat[start : start + _COUNT_CHUNK], minlength=length)
        if chunk.size > counts.size:  # values beyond ``length``: bincount's own behaviour
            counts = np.pad(counts, (0, chunk.size - counts.size))
        counts[: chunk.size] += chunk
    return counts


def shannon_entropy(image: Any, *, bits: int | None = None) -> EntropyResult:
    """Global Shannon entropy of an image's grey-level histogram.

    H = −Σ p_i log₂ p_i over the ``2**bits`` grey levels; an ideal cipher image comes
    close to ``bits``. ``expected_random`` is the exact mean entropy of as many i.i.d.
    uniform pixels (≈ bits − (2**bits − 1)/(2n ln 2), the Miller–Madow bias; 7.9972
    for a 256² 8-bit image), the fair target for a finite image.

    Parameters
    ----------
    image
        2-D or 3-D array of integers.
    bits
        Bit depth; default from the dtype (8 for 1-byte, 16 for 2-byte integers).

    Returns
    -------
    EntropyResult
        ``per_byte`` is set for data over 8 bits: the entropy of the little-endian byte
        stream of the 16-bit words (max 8), comparable with 8-bit figures.

    References
    ----------
    C. E. Shannon, "A mathematical theory of communication", Bell System Technical
    Journal 27 (1948) 379–423. doi:10.1002/j.1538-7305.1948.tb01338.x

    Examples
    --------
    >>> ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    >>> shannon_entropy(ramp).value
    8.0
    """
    array = check_image(image)
    levels, bits = to_unsigned(array, bits)
    n = levels.size
    counts = _level_counts(levels, 1 << bits)
    value = float(_entropy_of_counts(counts, n))
    per_byte = None
    if bits > 8:
        # The bytes of a 16-bit word are its high and low halves: their histogram is the
        # 16-bit one summed over the other half (exact, and no second pass over the image).
        halves = np.pad(counts, (0, (1 << 16) - counts.size)).reshape(256, 256)
        per_byte = float(_entropy_of_counts(halves.sum(axis=0) + halves.sum(axis=1), 2 * n))
    expected, _ = uniform_entropy_moments(n, bits, variance=False)
    return EntropyResult(
        value=max(value, 0.0),
        bits=bits,
        maximum=float(bits),
        expected_random=expected,
        pixels=n,
        per_byte=per_byte,
    )


def local_entropy(
    image: Any,
    *,
    bits: int | None = None,
    blocks: int = 30,
    block_pixels: int = 1936,
    seed: int = 0,
    alpha: float = 0.05,
) -> LocalEntropyResult:
    """Local Shannon entropy: the mean entropy of ``blocks`` random non-overlapping blocks.

    Following Wu et al. [1]_ with their parameters (k, T_B) = (30, 1936): the image is
    cut into a grid of √T_B × √T_B squares (44 × 44), ``blocks`` distinct squares are
    drawn at random (seeded), and the entropies of their histograms are averaged.

    The acceptance interval is analytic: for uniform random data one block's entropy
    has the exact mean μ and variance σ² of :func:`uniform_entropy_moments` (for
    8-bit, 1936 pixels: μ = 7.902469, σ = 0.0087); the mean of k independent blocks is
    taken as normal, so the image passes if the mean lies in
    μ ± Φ⁻¹(1 − α/2)·σ/√k ([7.8994, 7.9056] for k = 30, α = 0.05). The interval
    [7.901722, 7.903014] often quoted from [1]_ is narrower than this distribution
    allows and could not be reproduced; it is not used.

    Parameters
    ----------
    image
        2-D or 3-D array of integers. A plane holds only (rows // 44)·(cols // 44)
        squares: a single 256² slice has 25, fewer than k = 30; pass ``blocks=25`` or a
        stack or larger image then.
    bits
        Bit depth; default from the dtype.
    blocks
        Number k of blocks.
    block_pixels
        Pixels T_B per block; must be a perfect square.
    seed
        Seed of the block choice.
    alpha
        Significance level of the two-sided interval.

    References
    ----------
    .. [1] Y. Wu, Y. Zhou, G. Saveriades, S. Agaian, J. P. Noonan, P. Natarajan, "Local
       Shannon entropy measure with statistical tests for image randomness",
       Information Sciences 222 (2013) 323–342. doi:10.1016/j.ins.2012.07.049

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> result = local_entropy(rng.integers(0, 256, (512, 512), dtype=np.uint8))
    >>> round(result.lower, 4), round(result.upper, 4)
    (7.8994, 7.9056)
    """
    array = check_image(image)
    levels, bits = to_unsigned(array, bits)
    _check_alpha(alpha)
    side = math.isqrt(block_pixels) if block_pixels > 0 else 0
    if side < 1 or side * side != block_pixels:
        raise ValueError(f"block_pixels must be a positive perfect square, got {block_pixels}")
    if blocks < 1:
        raise ValueError(f"blocks must be at least 1, got {blocks}")
    stack = levels.reshape((-1, *levels.shape[-2:]))
    planes, rows, cols = stack.shape
    grid_rows, grid_cols = rows // side, cols // side
    cells = planes * grid_rows * grid_cols
    if cells < blocks:
        raise ValueError(
            f"an image of shape {array.shape} holds only {cells} non-overlapping "
            f"{side}x{side} blocks, fewer than blocks={blocks}; pass blocks={cells} "
            "or a smaller block_pixels"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(cells, size=blocks, replace=False)
    p, r, c = np.unravel_index(chosen, (planes, grid_rows, grid_cols))
    offsets = np.arange(side)
    rows_index = (r * side)[:, None, None] + offsets[None, :, None]
    cols_index = (c * side)[:, None, None] + offsets[None, None, :]
    patches = stack[p[:, None, None], rows_index, cols_index].reshape(blocks, block_pixels)
    m = 1 << bits
    keyed = patches.astype(np.int64) + (np.arange(blocks, dtype=np.int64) * m)[:, None]
    counts = np.bincount(keyed.ravel(), minlength=blocks * m).reshape(blocks, m)
    entropies = _entropy_of_counts(counts, block_pixels)
    value = float(entropies.mean())
    mu, variance = uniform_entropy_moments(block_pixels, bits)
    half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(variance / blocks)
    lower, upper = mu - half, mu + half
    return LocalEntropyResult(
        value=value,
        bits=bits,
        blocks=blocks,
        block_pixels=block_pixels,
        alpha=alpha,
        lower=lower,
        upper=upper,
        passed=bool(lower <= value <= upper),
        expected_random=mu,
        block_entropies=tuple(float(e) for e in entropies),
    )


def histogram_chi_square(image: Any, *, bits: int | None = None, alpha: float = 0.05) -> ChiSquareResult:
    """χ² test of the grey-level histogram against the uniform distribution.

    χ² = Σ (o_i − e)²/e with e = n/2**bits, on 2**bits − 1 degrees of freedom; the
    image passes if χ² is below the (1 − α) quantile (293.25 for 8-bit at α = 0.05).
    The χ² approximation wants e ≳ 5: for 16-bit data that takes over 327 680 pixels.

    References
    ----------
    K. Pearson, "On the criterion that a given system of deviations from the probable
    ...", Philosophical Magazine 50 (1900) 157–175. doi:10.1080/14786440009463897

    Examples
    --------
    >>> flat = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    >>> result = histogram_chi_square(flat)
    >>> result.value, round(result.critical, 2), result.passed
    (0.0, 293.25, True)
    """
    array = check_image(image)
    levels, bits = to_unsigned(array, bits)
    _check_alpha(alpha)
    m = 1 << bits
    counts = _level_counts(levels, m).astype(np.float64)
    expected = levels.size / m
    value = float(((counts - expected) ** 2).sum() / expected)
    dof = m - 1
    critical = float(stats.chi2.ppf(1 - alpha, dof))
    return ChiSquareResult(value=value, dof=dof, critical=critical, alpha=alpha, passed=value < critical)


def _neighbours(stack: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    if direction == "horizontal":
        return stack[:, :, :-1], stack[:, :, 1:]
    if direction == "vertical":
        return stack[:, :-1, :], stack[:, 1:, :]
    if direction == "diagonal":
        return stack[:, :-1, :-1], stack[:, 1:, 1:]
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")


def adjacent_correlation(
    image: Any,
    *,
    direction: Direction = "horizontal",
    pairs: int | None = None,
    seed: int = 0,
) -> CorrelationResult:
    """Pearson correlation of each pixel with its neighbour in one direction.

    Plain images correlate strongly (≈ 1 for smooth anatomy); a cipher image should
    give ≈ 0, within about 3/√N for N pairs. Pairs stay within a plane of a 3-D stack.

    Parameters
    ----------
    image
        2-D or 3-D numeric array.
    direction
        ``"horizontal"`` (right neighbour), ``"vertical"`` (below) or ``"diagonal"``
        (below right).
    pairs
        None uses every pair; N draws N distinct pairs at random with ``seed``, as
        papers that quote "N randomly selected pairs" do.
    seed
        Seed of the pair choice and of the ≤ 10 000 pairs kept for a scatter plot.

    Returns
    -------
    CorrelationResult
        ``coefficient`` is NaN when either side is constant.

    References
    ----------
    G. Chen, Y. Mao, C. K. Chui, "A symmetric image encryption scheme based on 3D
    chaotic cat maps", Chaos, Solitons & Fractals 21 (2004) 749–761.
    doi:10.1016/j.chaos.2003.12.022

    Examples
    --------
    >>> ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)
    >>> round(adjacent_correlation(ramp).coefficient, 6)
    1.0
    """
    array = check_image(image)
    stack = array.reshape((-1, *array.shape[-2:]))
    first, second = _neighbours(stack, direction)
    total = first.size
    if total < 2:
        raise ValueError(f"an image of shape {array.shape} has fewer than 2 {direction} pairs")
    rng = np.random.default_rng(seed)
    if pairs is None:
        # Centre the whole image on its mean (close to both sides' means, which keeps the
        # moments accurate) and sum the moments over the strided neighbour views, a batch
        # of planes at a time, so a volume is never copied whole into float64.
        mean = float(stack.mean(dtype=np.float64))
        step = max(1, _MOMENT_CHUNK // max(1, stack[0].size))
        moments = np.zeros(6)
        for start in range(0, stack.shape[0], step):
            data = stack[start : start + step].astype(np.float64)
            data -= mean
            moments += _moments(*_neighbours(data, direction))
        coefficient = _pearson_of(moments)
        used, sample_from = total, (first, second)
    else:
        if not 2 <= pairs <= total:
            raise ValueError(f"pairs must be in 2..{total} for this image, got {pairs}")
        index = np.unravel_index(rng.choice(total, size=pairs, replace=False), first.shape)
        chosen_x, chosen_y = first[index], second[index]
        coefficient = pearson(chosen_x, chosen_y)
        used, sample_from = pairs, (chosen_x, chosen_y)
    if used > SCATTER_PAIRS:
        keep = np.unravel_index(rng.choice(used, size=SCATTER_PAIRS, replace=False), sample_from[0].shape)
        scatter_x, scatter_y = sample_from[0][keep], sample_from[1][keep]
    else:
        scatter_x, scatter_y = sample_from[0].ravel().copy(), sample_from[1].ravel().copy()
    return CorrelationResult(coefficient=coefficient, direction=direction, pairs=used, x=scatter_x, y=scatter_y)


#: Pixels of float64 per batch of planes when correlations sum their moments (32 MiB).
_MOMENT_CHUNK = 1 << 22


def _moments(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[n, Σx, Σy, Σxx, Σyy, Σxy] of two equally shaped arrays (any strides), without copying them."""
    axes = "ijk"[: x.ndim]
    spec = f"{axes},{axes}->"
    return np.array([x.size, x.sum(), y.sum(), np.einsum(spec, x, x), np.einsum(spec, y, y), np.einsum(spec, x, y)])


def pearson(x: Any, y: Any) -> float:
    """Pearson's r of two equally sized arrays, pixel with pixel; NaN when either is constant.

    Examples
    --------
    >>> pearson(np.arange(10), 3 * np.arange(10) + 1)
    1.0
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"pearson needs equally sized arrays, got {a.size} and {b.size} values")
    return _pearson_of(_moments(a - a.mean(), b - b.mean()))


def _pearson_of(moments: np.ndarray) -> float:
    """Pearson's r from :func:`_moments` (summed over batches); NaN if either side is constant."""
    n, sx, sy, sxx, syy, sxy = moments
    mean_x, mean_y = sx / n, sy / n
    cov = sxy / n - mean_x * mean_y
    var_x = sxx / n - mean_x * mean_x
    var_y = syy / n - mean_y * mean_y
    if var_x <= 0 or var_y <= 0:
        return math.nan
    return float(min(max(cov / math.sqrt(var_x * var_y), -1.0), 1.0))


def adjacent_correlations(image: Any, **kwargs: Any) -> dict[str, CorrelationResult]:
    """:func:`adjacent_correlation` in all three directions, keyed by direction.

    Examples
    --------
    >>> ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)
    >>> sorted(adjacent_correlations(ramp))
    ['diagonal', 'horizontal', 'vertical']
    """
    if "direction" in kwargs:
        raise TypeError("adjacent_correlations() computes every direction; use adjacent_correlation()")
    return {direction: adjacent_correlation(image, direction=direction, **kwargs) for direction in DIRECTIONS}


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
