"""Differential-attack metrics: NPCR and UACI with Wu, Noonan and Agaian's critical values.

NPCR (number of pixels change rate) and UACI (unified averaged changed intensity)
compare two cipher images; for two independent uniform random images of M·N pixels
with F = 2**bits − 1 (Wu, Noonan, Agaian 2011, [1]_):

* NPCR = 100 %·mean(C₁ ≠ C₂), μ_N = F/(F+1), σ²_N = F/((F+1)²·MN); one-sided test,
  pass if NPCR ≥ N*_α = μ_N − Φ⁻¹(1 − α)·σ_N;
* UACI = 100 %·mean(|C₁ − C₂|)/F, μ_U = (F+2)/(3F+3),
  σ²_U = (F+2)(F²+2F+3)/(18(F+1)²·MN·F); two-sided test, pass if inside
  μ_U ± Φ⁻¹(1 − α/2)·σ_U.

For 256² 8-bit images at α = 0.05: NPCR ≥ 99.5693 %, UACI ∈ [33.2824, 33.6447] %.

The NPCR test is a normal approximation to the number K of equal pixels, which is
Binomial(MN, 1/(F+1)). It is good when MN/(F+1) is large (256 equal pixels expected
for 256² 8-bit images). For 16-bit data K is nearly Poisson with a small mean (one
equal pixel expected at 256²), so the real pass rate of random data differs from
1 − α (about 0.92 at α = 0.05 and 256²); use the figure with that in mind.

:func:`plaintext_sensitivity` and :func:`key_sensitivity` make the two cipher images
from inputs that differ in one pixel or one key bit. The cipher must be deterministic
for a given key: a scheme that draws a fresh nonce per call (the hybrid AES-GCM suite)
gives ≈ 99.6 % for any two calls, which says nothing about diffusion. Conversely for
C = P ⊕ K, with K independent of P, a one-pixel change of P changes exactly one pixel
of C: plaintext-sensitivity NPCR = 100 %/(MN). A high NPCR for such a cipher can only
come from comparing unrelated images.

References
----------
.. [1] Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
   encryption", Cyber Journals: Journal of Selected Areas in Telecommunications
   (JSAT), April 2011, 31–38.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from deepkedi.metrics._validate import (
    check_image,
    check_pair,
    level_range,
    pair_chunks,
    resolve_bits,
)
from deepkedi.metrics.records import NpcrResult, SensitivityResult, UaciResult

__all__ = [
    "key_sensitivity",
    "npcr",
    "npcr_critical",
    "plaintext_sensitivity",
    "uaci",
    "uaci_interval",
]


def _peak(bits: int) -> float:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 32:
        raise ValueError(f"bits must be an int in 1..32, got {bits!r}")
    return float((1 << int(bits)) - 1)


def _pixels(size: int | tuple[int, ...]) -> int:
    count = math.prod(size) if isinstance(size, tuple) else int(size)
    if count < 1:
        raise ValueError(f"size must be a positive pixel count or shape, got {size}")
    return count


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def npcr_critical(size: int | tuple[int, ...], *, bits: int = 8, alpha: float = 0.05) -> float:
    """Critical NPCR value N*_α in percent for images of ``size`` pixels (or shape).

    Examples
    --------
    >>> round(npcr_critical((256, 256), alpha=0.05), 4)
    99.5693
    """
    _check_alpha(alpha)
    n, f = _pixels(size), _peak(bits)
    mu = f / (f + 1)
    sigma = math.sqrt(f / ((f + 1) ** 2 * n))
    return 100.0 * (mu - float(stats.norm.ppf(1 - alpha)) * sigma)


def uaci_interval(size: int | tuple[int, ...], *, bits: int = 8, alpha: float = 0.05) -> tuple[float, float]:
    """Acceptance interval (U*₋, U*₊) of UACI in percent for images of ``size`` pixels.

    Examples
    --------
    >>> [round(u, 4) for u in uaci_interval(256 * 256, alpha=0.05)]
    [33.2824, 33.6447]
    """
    _check_alpha(alpha)
    n, f = _pixels(size), _peak(bits)
    mu = (f + 2) / (3 * f + 3)
    sigma = math.sqrt((f + 2) * (f * f + 2 * f + 3) / (18 * (f + 1) ** 2 * n * f))
    half = float(stats.norm.ppf(1 - alpha / 2)) * sigma
    return 100.0 * (mu - half), 100.0 * (mu + half)


def _pair_bits(c1: np.ndarray, c2: np.ndarray, bits: int | None) -> int:
    first = resolve_bits(c1, bits)
    second = resolve_bits(c2, first)
    return second


def npcr(c1: Any, c2: Any, *, bits: int | None = None, alpha: float = 0.05) -> NpcrResult:
    """Number of pixels change rate between two cipher images, in percent.

    Parameters
    ----------
    c1, c2
        Cipher images of the same shape (2-D or 3-D); all pixels count.
    bits
        Bit depth (F = 2**bits − 1); default from the dtype. Needed for float data.
    alpha
        Significance level of the one-sided test.

    References
    ----------
    Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
    encryption", Cyber Journals JSAT, April 2011, 31–38.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> npcr(x, x).value
    0.0
    """
    a, b = check_pair(c1, c2)
    bits = _pair_bits(a, b, bits)
    value = 100.0 * float(np.count_nonzero(a != b)) / a.size
    critical = npcr_critical(a.size, bits=bits, alpha=alpha)
    f = (1 << bits) - 1
    return NpcrResult(
        value=value,
        critical=critical,
        expected=100.0 * f / (f + 1),
        alpha=alpha,
        bits=bits,
        passed=value >= critical,
    )


def uaci(c1: Any, c2: Any, *, bits: int | None = None, alpha: float = 0.05) -> UaciResult:
    """Unified averaged changed intensity between two cipher images, in percent.

    Parameters
    ----------
    c1, c2
        Cipher images of the same shape (2-D or 3-D).
    bits
        Bit depth (F = 2**bits − 1); default from the dtype. Needed for float data.
    alpha
        Significance level of the two-sided test.

    References
    ----------
    Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
    encryption", Cyber Journals JSAT, April 2011, 31–38.

    Examples
    --------
    >>> zeros, full = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    >>> uaci(zeros, full).value
    100.0
    """
    a, b = check_pair(c1, c2)
    bits = _pair_bits(a, b, bits)
    f = (1 << bits) - 1
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2 and b.dtype.kind in "ui" and b.dtype.itemsize <= 2:
        total = float(
            sum(int(np.abs(x.astype(np.int32) - y.astype(np.int32)).sum(dtype=np.int64)) for x, y in pair_chunks(a, b))
        )
    else:
        total = sum(float(np.abs(x.astype(np.float64) - y.astype(np.float64)).sum()) for x, y in pair_chunks(a, b))
    value = 100.0 * total / (a.size * f)
    lower, upper = uaci_interval(a.size, bits=bits, alpha=alpha)
    return UaciResult(
        value=value,
        lower=lower,
        upper=upper,
        expected=100.0 * (f + 2) / (3 * f + 3),
        alpha=alpha,
        bits=bits,
        passed=lower <= value <= upper,
    )


def _one_grey_level_up(image: np.ndarray, position: tuple[int, ...], bits: int) -> np.ndarray:
    """A copy of ``image`` with one pixel raised by one grey level, wrapping at the range."""
    changed = image.copy()
    low, _ = level_range(image, bits)
    value = int(image[position])
    changed[position] = (value - low + 1) % (1 << bits) + low
    return changed


def plaintext_sensitivity(
    encrypt: Callable[[np.ndarray], Any],
    image: Any,
    *,
    position: tuple[int, ...] | None = None,
    seed: int = 0,
    bits: int | None = None,
    alpha: float = 0.05,
) -> SensitivityResult:
    """NPCR and UACI between the ciphers of an image and of a copy with one pixel changed.

    The pixel at ``position`` (random with ``seed`` when None) is raised by one grey
    level, wrapping from the top of the range to the bottom.

    Parameters
    ----------
    encrypt
        Deterministic cipher: array → cipher array of the same shape (fix the key and
        any nonce inside it).
    image
        Integer plain image, 2-D or 3-D.
    position
        Index of the pixel to change.
    seed
        Seed of the random position.
    bits
        Bit depth of the plain image and of the cipher images; default each from its
        dtype.
    alpha
        Significance level of the NPCR and UACI tests.

    References
    ----------
    Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
    encryption", Cyber Journals JSAT, April 2011, 31–38.

    Examples
    --------
    >>> pad = np.random.default_rng(7).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> image = np.zeros((64, 64), np.uint8)
    >>> result = plaintext_sensitivity(lambda p: p ^ pad, image)
    >>> result.npcr.value == 100 / (64 * 64)    # C = P xor K: one pixel changes
    True
    """
    plain = check_image(image)
    if plain.dtype.kind == "f":
        raise TypeError("plaintext_sensitivity needs an integer image to change by one grey level")
    plain_bits = resolve_bits(plain, bits)
    if position is None:
        rng = np.random.default_rng(seed)
        position = tuple(int(rng.integers(0, extent)) for extent in plain.shape)
    else:
        position = tuple(int(i) for i in position)
        if len(position) != plain.ndim or not all(0 <= i < s for i, s in zip(position, plain.shape, strict=True)):
            raise ValueError(f"position {position} is not a pixel of an image of shape {plain.shape}")
    first = np.asarray(encrypt(plain.copy()))
    second = np.asarray(encrypt(_one_grey_level_up(plain, position, plain_bits)))
    return SensitivityResult(
        npcr=npcr(first, second, bits=bits, alpha=alpha),
        uaci=uaci(first, second, bits=bits, alpha=alpha),
        position=position,
    )


def key_sensitivity(
    encrypt_with: Callable[[bytes, np.ndarray], Any],
    key: bytes,
    image: Any,
    *,
    bit: int | None = None,
    seed: int = 0,
    bits: int | None = None,
    alpha: float = 0.05,
) -> SensitivityResult:
    """NPCR and UACI between the ciphers of one image under two keys one bit apart.

    Bit i of the key is bit ``7 - i % 8`` of byte ``i // 8`` (most significant first,
    reading the key as a bit string); None picks one at random with ``seed``.

    Parameters
    ----------
    encrypt_with
        Deterministic cipher: (key bytes, image) → cipher array.
    key
        The reference key.
    image
        Plain image, 2-D or 3-D.
    bit
        Index of the key bit to flip, in ``0 .. 8·len(key) − 1``.
    seed
        Seed of the random bit.
    bits
        Bit depth of the cipher images; default from their dtype.
    alpha
        Significance level of the NPCR and UACI tests.

    References
    ----------
    Y. Wu, J. P. Noonan, S. Agaian, "NPCR and UACI randomness tests for image
    encryption", Cyber Journals JSAT, April 2011, 31–38.

    Examples
    --------
    >>> def toy(key, p):  # keystream from the key: a stand-in for a real cipher
    ...     seed = int.from_bytes(key, "big")
    ...     return p ^ np.random.default_rng(seed).integers(0, 256, p.shape, dtype=np.uint8)
    >>> image = np.zeros((256, 256), np.uint8)
    >>> key_sensitivity(toy, bytes(16), image, bit=5).npcr.passed
    True
    """
    key = bytes(key)
    if not key:
        raise ValueError("key is empty")
    plain = check_image(image)
    total_bits = 8 * len(key)
    if bit is None:
        bit = int(np.random.default_rng(seed).integers(0, total_bits))
    elif not 0 <= bit < total_bits:
        raise ValueError(f"bit must be in 0..{total_bits - 1} for a {len(key)}-byte key, got {bit}")
    flipped = bytearray(key)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    first = np.asarray(encrypt_with(key, plain.copy()))
    second = np.asarray(encrypt_with(bytes(flipped), plain.copy()))
    return SensitivityResult(
        npcr=npcr(first, second, bits=bits, alpha=alpha),
        uaci=uaci(first, second, bits=bits, alpha=alpha),
        bit=bit,
    )
