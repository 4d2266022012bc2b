"""Tests for deepkedi.metrics.differential: NPCR, UACI and the sensitivity experiments."""

from __future__ import annotations

import doctest
import json
import os

import numpy as np
import pytest
from scipy import stats

from _samples import DTYPES, SEEDS, binomial_band, random_image
from deepkedi.metrics import (
    differential,
    key_sensitivity,
    npcr,
    npcr_critical,
    plaintext_sensitivity,
    uaci,
    uaci_interval,
)


def test_doctests() -> None:
    assert doctest.testmod(differential).failed == 0


# Wu, Noonan, Agaian (2011), Tables: N*_α and (U*-, U*+) for 8-bit images.
PUBLISHED = [
    ((256, 256), 0.05, 99.5693, (33.2824, 33.6447)),
    ((256, 256), 0.01, 99.5527, (33.2255, 33.7016)),
    ((256, 256), 0.001, 99.5341, (33.1594, 33.7677)),
    ((512, 512), 0.05, 99.5893, (33.3730, 33.5541)),
]


@pytest.mark.parametrize("shape, alpha, npcr_star, uaci_star", PUBLISHED)
def test_published_critical_values(shape, alpha, npcr_star, uaci_star) -> None:
    assert round(npcr_critical(shape, alpha=alpha), 4) == npcr_star
    assert round(npcr_critical(shape[0] * shape[1], bits=8, alpha=alpha), 4) == npcr_star
    assert tuple(round(u, 4) for u in uaci_interval(shape, alpha=alpha)) == uaci_star


def test_ideal_values() -> None:
    x = np.zeros((4, 4), np.uint8)
    assert round(npcr(x, x).expected, 4) == 99.6094
    assert round(uaci(x, x).expected, 4) == 33.4635


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_image_against_itself(dtype: type, seed: int) -> None:
    image = random_image(dtype, (64, 80), seed)
    assert npcr(image, image).value == 0.0 and not npcr(image, image).passed
    assert uaci(image, image).value == 0.0 and not uaci(image, image).passed


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_uaci_and_npcr(dtype: type) -> None:
    info = np.iinfo(dtype)
    low, high = np.full((8, 8), info.min, dtype), np.full((8, 8), info.max, dtype)
    assert uaci(low, high).value == pytest.approx(100.0)
    assert npcr(low, high).value == 100.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_independent_random_pairs_pass_about_1_minus_alpha(dtype: type) -> None:
    trials, alpha = 200, 0.05
    first = random_image(dtype, (trials, 256, 256), 11)
    second = random_image(dtype, (trials, 256, 256), 12)
    npcr_passes = sum(npcr(a, b, alpha=alpha).passed for a, b in zip(first, second, strict=True))
    uaci_passes = sum(uaci(a, b, alpha=alpha).passed for a, b in zip(first, second, strict=True))
    # NPCR passes when the number K of equal pixels, Binomial(n, 1/2**bits), is small
    # enough: its exact pass probability is 0.95 for 8-bit but 0.92 for 16-bit at 256²,
    # where K is about Poisson(1) and the normal approximation is coarse.
    n, f = 256 * 256, np.iinfo(dtype).max
    most_equal = np.floor(n * (1 - npcr_critical(n, bits=8 * np.dtype(dtype).itemsize) / 100) + 1e-9)
    npcr_probability = stats.binom.cdf(most_equal, n, 1 / (f + 1))
    low, high = binomial_band(trials, npcr_probability)
    assert low <= npcr_passes <= high
    low, high = binomial_band(trials, 1 - alpha)
    assert low <= uaci_passes <= high


def test_os_urandom_pair_is_near_the_ideal() -> None:
    a, b = (np.frombuffer(os.urandom(512 * 512), np.uint8).reshape(512, 512) for _ in range(2))
    # 8 standard deviations: fails with probability ~1e-15 for a sound CSPRNG.
    n = 512 * 512
    assert abs(npcr(a, b).value - 100 * 255 / 256) < 8 * 100 * np.sqrt(255 / (256**2 * n))
    assert abs(uaci(a, b).value - 100 * 257 / 768) < 8 * 100 * np.sqrt(257 * (255**2 + 513) / (18 * 256**2 * n * 255))


def test_stack_uses_all_pixels() -> None:
    a = np.zeros((4, 32, 32), np.uint8)
    b = a.copy()
    b[3, 0, 0] = 1
    assert npcr(a, b).value == pytest.approx(100 / a.size)
    assert npcr(a, b).critical == pytest.approx(npcr_critical(a.size))


def test_float_ciphers_need_bits() -> None:
    a, b = np.zeros((4, 4)), np.full((4, 4), 255.0)
    with pytest.raises(ValueError, match="bits="):
        npcr(a, b)
    assert uaci(a, b, bits=8).value == pytest.approx(100.0)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="same shape"):
        npcr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        uaci(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), alpha=1.5)
    with pytest.raises(ValueError, match="size"):
        npcr_critical(0)


# --- sensitivity ---------------------------------------------------------------------


def xor_cipher(pad: np.ndarray):
    return lambda plain: plain ^ pad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_xor_cipher_changes_one_pixel(dtype: type, seed: int) -> None:
    """For C = P xor K (K independent of P) the plaintext-sensitivity NPCR is 1/(MN)."""
    pad = random_image(dtype, (128, 128), 100 + seed)
    image = random_image(dtype, (128, 128), seed)
    result = plaintext_sensitivity(xor_cipher(pad), image, seed=seed)
    assert result.npcr.value == pytest.approx(100 / image.size)
    assert not result.npcr.passed and not result.uaci.passed
    assert result.bit is None and len(result.position) == 2
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "dtype, before, after",
    [(np.uint8, 255, 0), (np.uint16, 65535, 0), (np.int16, 32767, -32768), (np.int8, 5, 6)],
)
def test_one_grey_level_wraps_at_the_range(dtype: type, before: int, after: int) -> None:
    image = np.zeros((4, 4), dtype)
    image[1, 2] = before
    seen: list[np.ndarray] = []

    def identity(plain: np.ndarray) -> np.ndarray:
        seen.append(plain)
        return plain

    plaintext_sensitivity(identity, image, position=(1, 2))
    assert seen[1][1, 2] == after
    assert np.count_nonzero(seen[0] != seen[1]) == 1


def test_narrow_bit_depth_wraps_within_it() -> None:
    ct = np.zeros((4, 4), np.int16)
    ct[0, 0] = 4095  # 12-bit CT stored in int16, all values >= 0: read as unsigned
    seen: list[np.ndarray] = []
    plaintext_sensitivity(lambda p: seen.append(p) or p, ct, position=(0, 0), bits=12)
    assert seen[1][0, 0] == 0
    signed = np.full((4, 4), -1, np.int16)
    signed[0, 0] = 2047  # a negative value: read as 12-bit two's complement
    seen.clear()
    plaintext_sensitivity(lambda p: seen.append(p) or p, signed, position=(0, 0), bits=12)
    assert seen[1][0, 0] == -2048


def test_position_is_seeded_and_checked() -> None:
    image = np.zeros((32, 32), np.uint8)

    def identity(plain: np.ndarray) -> np.ndarray:
        return plain

    first = plaintext_sensitivity(identity, image, seed=5).position
    assert first == plaintext_sensitivity(identity, image, seed=5).position
    with pytest.raises(ValueError, match="position"):
        plaintext_sensitivity(identity, image, position=(32, 0))
    with pytest.raises(TypeError):
        plaintext_sensitivity(identity, image.astype(float), bits=8)


def keystream_cipher(key: bytes, plain: np.ndarray) -> np.ndarray:
    """A toy keyed cipher: XOR with a keystream seeded by the whole key."""
    stream = np.random.default_rng(list(key)).integers(0, 256, plain.shape, dtype=np.uint8)
    return plain ^ stream


@pytest.mark.parametrize("seed", SEEDS)
def test_key_sensitivity_of_a_keystream_cipher(seed: int) -> None:
    image = random_image(np.uint8, (512, 512), seed)
    result = key_sensitivity(keystream_cipher, bytes(range(32)), image, seed=seed)
    assert 0 <= result.bit < 256 and result.position is None
    assert result.npcr.value > 99.5 and 33.0 < result.uaci.value < 34.0


def test_key_bit_numbering_is_most_significant_first() -> None:
    keys: list[bytes] = []

    def record(key: bytes, plain: np.ndarray) -> np.ndarray:
        keys.append(key)
        return plain

    key_sensitivity(record, bytes(4), np.zeros((4, 4), np.uint8), bit=9)
    assert keys[0] == bytes(4) and keys[1] == bytes([0, 0x40, 0, 0])
    with pytest.raises(ValueError, match="bit"):
        key_sensitivity(record, bytes(4), np.zeros((4, 4), np.uint8), bit=32)
