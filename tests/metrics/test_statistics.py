"""Tests for deepkedi.metrics.statistics: entropy, χ² and adjacent correlation."""

from __future__ import annotations

import doctest
import json
import math
import sys

import numpy as np
import pytest
from scipy import stats

from _samples import DTYPES, SEEDS, binomial_band, random_image
from deepkedi.metrics import (
    adjacent_correlation,
    adjacent_correlations,
    histogram_chi_square,
    local_entropy,
    shannon_entropy,
    statistics,
    uniform_entropy_moments,
)


def test_doctests() -> None:
    assert doctest.testmod(statistics, optionflags=doctest.ELLIPSIS).failed == 0


# --- global entropy ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [*DTYPES, np.int8])
@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_of_constant_image_is_zero(dtype: type, seed: int) -> None:
    value = random_image(dtype, (1,), seed)[0]
    result = shannon_entropy(np.full((32, 48), value, dtype=dtype))
    assert result.value == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_entropy_of_flat_8bit_histogram_is_eight(dtype: type) -> None:
    levels = np.arange(256).astype(np.uint8).view(dtype)
    result = shannon_entropy(np.tile(levels, (64, 1)))
    assert result.value == pytest.approx(8.0, abs=1e-12)
    assert result.bits == 8 and result.maximum == 8.0 and result.per_byte is None


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_entropy_of_flat_16bit_histogram_is_sixteen(dtype: type) -> None:
    levels = np.arange(65536).astype(np.uint16).view(dtype).reshape(256, 256)
    result = shannon_entropy(levels)
    assert result.value == pytest.approx(16.0, abs=1e-12)
    assert result.bits == 16
    assert result.per_byte == pytest.approx(8.0, abs=1e-12)


def test_per_byte_reads_little_endian_bytes() -> None:
    # 0x0100 is the bytes 00 01: two equally frequent byte values, one bit.
    result = shannon_entropy(np.full((8, 8), 0x0100, dtype=np.uint16))
    assert result.value == 0.0
    assert result.per_byte == pytest.approx(1.0)


@pytest.mark.parametrize("bits", [9, 12, 16])
def test_histograms_are_counted_in_chunks_exactly(bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk boundaries inside the image change nothing: the counts, the entropy and the
    per-byte entropy (now taken from the 16-bit histogram) match one direct pass."""
    rng = np.random.default_rng(bits)
    image = (rng.integers(0, 1 << bits, (37, 53)) ** 2 >> bits).astype(np.uint16)  # skewed, not flat
    monkeypatch.setattr(statistics, "_COUNT_CHUNK", 100)
    direct = np.bincount(image.ravel(), minlength=1 << bits)
    np.testing.assert_array_equal(statistics._level_counts(image, 1 << bits), direct)
    result = shannon_entropy(image, bits=bits)
    p = direct[direct > 0] / image.size
    assert result.value == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-12)
    stream = np.bincount(image.astype("<u2").view(np.uint8).ravel(), minlength=256)
    q = stream[stream > 0] / stream.sum()
    assert result.per_byte == pytest.approx(-(q * np.log2(q)).sum(), abs=1e-12)
    chi = histogram_chi_square(image, bits=bits)
    expected = image.size / (1 << bits)
    assert chi.value == pytest.approx(((direct - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("dtype, shift", [(np.int8, 128), (np.int16, 32768)])
@pytest.mark.parametrize("seed", SEEDS)
def test_signed_images_shift_to_unsigned(dtype: type, shift: int, seed: int) -> None:
    image = random_image(dtype, (64, 64), seed)
    unsigned = (image.astype(np.int64) + shift).astype(np.uint16 if shift > 128 else np.uint8)
    assert shannon_entropy(image) == shannon_entropy(unsigned)
    assert histogram_chi_square(image) == histogram_chi_square(unsigned)


@pytest.mark.parametrize(
    "dtype, bits", [(np.int8, None), (np.int16, None), (np.int16, 8), (np.int32, 16), (np.int32, 12)]
)
def test_shift_to_unsigned_is_exact_and_copies_the_image_once(dtype: type, bits: int | None) -> None:
    import tracemalloc

    from deepkedi.metrics._validate import to_unsigned

    image = random_image(dtype, (256, 1024), 0)
    width = np.iinfo(dtype).bits if bits is None else bits
    image = np.clip(image, -(1 << (width - 1)), (1 << (width - 1)) - 1).astype(dtype)
    expected = (image.astype(np.int64) + (1 << (width - 1))).astype(np.uint8 if width <= 8 else np.uint16)
    tracemalloc.start()
    try:
        levels, _ = to_unsigned(image, bits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(levels, expected)
    # One output-sized copy (it shifted through two int64 copies, 8 bytes a pixel each).
    assert peak <= levels.nbytes + 4096, peak


@pytest.mark.parametrize("side, expected", [(256, 7.9972), (512, 7.9993)])
def test_expected_entropy_of_random_bytes_matches_design(side: int, expected: float) -> None:
    result = shannon_entropy(np.zeros((side, side), np.uint8))
    assert round(result.expected_random, 4) == expected
    n = side * side
    assert result.expected_random == pytest.approx(8 - 255 / (2 * n * math.log(2)), abs=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_of_random_image_is_near_expected(seed: int) -> None:
    result = shannon_entropy(random_image(np.uint8, (512, 512), seed))
    mean, variance = uniform_entropy_moments(512 * 512, 8)
    assert abs(result.value - mean) < 5 * math.sqrt(variance)


def test_explicit_bits_for_wider_types() -> None:
    image = np.arange(4096, dtype=np.int32).reshape(64, 64)
    assert shannon_entropy(image, bits=12).value == pytest.approx(12.0)
    with pytest.raises(ValueError, match="bits="):
        shannon_entropy(image)
    with pytest.raises(ValueError, match="outside"):
        shannon_entropy(image, bits=8)


def test_bad_inputs_raise() -> None:
    with pytest.raises(TypeError, match="integer"):
        shannon_entropy(np.zeros((4, 4)), bits=8)
    with pytest.raises(ValueError, match="2-D"):
        shannon_entropy(np.zeros(16, np.uint8))
    with pytest.raises(TypeError, match="numbers"):
        shannon_entropy(np.array([["a", "b"]]))


# --- local entropy -------------------------------------------------------------------


def test_local_entropy_moments_match_simulation() -> None:
    mean, variance = uniform_entropy_moments(1936, 8)
    assert mean == pytest.approx(7.902469, abs=1e-6)
    assert math.sqrt(variance) == pytest.approx(0.0087, abs=0.0001)
    rng = np.random.default_rng(2013)
    samples = rng.integers(0, 256, (4000, 1936))
    counts = np.stack([np.bincount(row, minlength=256) for row in samples]) / 1936
    entropies = -(counts * np.log2(np.where(counts > 0, counts, 1))).sum(axis=1)
    assert abs(entropies.mean() - mean) < 4 * math.sqrt(variance / 4000)
    assert entropies.std() == pytest.approx(math.sqrt(variance), rel=0.06)


def test_local_entropy_interval_at_default_parameters() -> None:
    result = local_entropy(random_image(np.uint8, (512, 512), 0))
    assert (round(result.lower, 4), round(result.upper, 4)) == (7.8994, 7.9056)
    assert result.blocks == 30 and result.block_pixels == 1936
    assert len(result.block_entropies) == 30
    assert result.value == pytest.approx(np.mean(result.block_entropies))


def test_csprng_images_pass_local_entropy_about_95_percent() -> None:
    trials = 200
    stack = random_image(np.uint8, (trials, 264, 264), 95)  # 36 blocks of 44 x 44 each
    passed = sum(local_entropy(plane, seed=i).passed for i, plane in enumerate(stack))
    low, high = binomial_band(trials, 0.95)
    assert low <= passed <= high


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_local_entropy_of_constant_image_fails(dtype: type, seed: int) -> None:
    image = np.full((2, 300, 300), random_image(dtype, (1,), seed)[0], dtype=dtype)
    result = local_entropy(image, seed=seed)
    assert result.value == 0.0 and not result.passed


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_local_entropy_of_random_16bit_data(dtype: type) -> None:
    result = local_entropy(random_image(dtype, (512, 512), 4))
    assert result.bits == 16
    assert result.lower < result.expected_random < result.upper
    assert result.expected_random == pytest.approx(10.8895, abs=1e-4)


def test_local_entropy_blocks_come_from_a_seeded_choice() -> None:
    image = random_image(np.uint8, (512, 512), 5)
    assert local_entropy(image, seed=3) == local_entropy(image, seed=3)
    assert local_entropy(image, seed=3).value != local_entropy(image, seed=4).value


def test_local_entropy_refuses_too_small_images() -> None:
    with pytest.raises(ValueError, match="blocks=25"):
        local_entropy(np.zeros((256, 256), np.uint8))
    assert local_entropy(np.zeros((256, 256), np.uint8), blocks=25).blocks == 25
    assert local_entropy(np.zeros((2, 256, 256), np.uint8)).blocks == 30
    with pytest.raises(ValueError, match="perfect square"):
        local_entropy(np.zeros((512, 512), np.uint8), block_pixels=2000)


# --- chi-square ----------------------------------------------------------------------


@pytest.mark.parametrize("alpha, critical", [(0.05, 293.25), (0.01, 310.46)])
def test_chi_square_critical_values(alpha: float, critical: float) -> None:
    result = histogram_chi_square(np.zeros((16, 16), np.uint8), alpha=alpha)
    assert round(result.critical, 2) == critical
    assert result.dof == 255 and not result.passed


def test_chi_square_of_flat_histogram_is_zero() -> None:
    result = histogram_chi_square(np.tile(np.arange(256, dtype=np.uint8), (128, 1)))
    assert result.value == 0.0 and result.passed


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_csprng_images_pass_chi_square_about_95_percent(dtype: type) -> None:
    trials = 200
    stack = random_image(dtype, (trials, 256, 256), 293)
    passed = sum(histogram_chi_square(plane).passed for plane in stack)
    low, high = binomial_band(trials, 0.95)
    assert low <= passed <= high


# --- adjacent correlation ------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("direction", statistics.DIRECTIONS)
def test_correlation_of_random_image_is_near_zero(dtype: type, seed: int, direction: str) -> None:
    result = adjacent_correlation(random_image(dtype, (256, 256), seed), direction=direction)
    assert abs(result.coefficient) < 3 / math.sqrt(result.pairs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direction", statistics.DIRECTIONS)
def test_correlation_of_smooth_gradient_is_near_one(dtype: type, direction: str) -> None:
    gradient = (np.add.outer(np.arange(200), 2 * np.arange(200)) // 3).astype(dtype)  # 0..199
    assert adjacent_correlation(gradient, direction=direction).coefficient > 0.999


@pytest.mark.parametrize("seed", SEEDS)
def test_sampled_pairs(seed: int) -> None:
    image = random_image(np.uint8, (256, 256), seed)
    result = adjacent_correlation(image, direction="vertical", pairs=3000, seed=seed)
    assert result.pairs == 3000 and result.x.shape == result.y.shape == (3000,)
    assert abs(result.coefficient) < 3 / math.sqrt(3000)
    assert result == adjacent_correlation(image, direction="vertical", pairs=3000, seed=seed)
    full = adjacent_correlation(image)
    assert full.pairs == 256 * 255 and full.x.size == 10_000
    assert np.array_equal(full.y.astype(int) >= 0, np.ones(10_000, bool))


def test_scatter_pairs_are_neighbours() -> None:
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    for direction, step in [("horizontal", 1), ("vertical", 64), ("diagonal", 65)]:
        result = adjacent_correlation(image, direction=direction)
        assert np.all(result.y.astype(int) - result.x.astype(int) == step)


def test_stack_pairs_stay_within_planes() -> None:
    stack = np.stack([np.full((10, 12), 0, np.uint8), np.full((10, 12), 200, np.uint8)])
    stack[:, :, ::2] += 1
    result = adjacent_correlation(stack, direction="vertical")
    assert result.pairs == 2 * 9 * 12
    assert result.coefficient == pytest.approx(1.0)
    assert adjacent_correlation(stack, direction="horizontal").pairs == 2 * 10 * 11


def test_correlations_of_all_directions_and_json() -> None:
    results = adjacent_correlations(random_image(np.uint8, (64, 64), 0), pairs=500)
    assert set(results) == {"horizontal", "vertical", "diagonal"}
    for direction, result in results.items():
        data = result.to_dict()
        assert data["direction"] == direction and "x" not in data and "y" not in data
        json.dumps(data, allow_nan=False)
    with pytest.raises(TypeError):
        adjacent_correlations(np.zeros((4, 4)), direction="vertical")


def test_correlation_of_constant_image_is_nan_and_errors() -> None:
    assert math.isnan(adjacent_correlation(np.zeros((8, 8), np.uint8)).coefficient)
    with pytest.raises(ValueError, match="direction"):
        adjacent_correlation(np.zeros((8, 8)), direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pairs"):
        adjacent_correlation(np.zeros((8, 8)), pairs=1000)


def test_records_are_json_safe() -> None:
    image = random_image(np.uint16, (512, 512), 1)
    for record in (shannon_entropy(image), local_entropy(image), histogram_chi_square(image)):
        json.dumps(record.to_dict(), allow_nan=False)
    assert isinstance(local_entropy(image).to_dict()["block_entropies"], list)


@pytest.mark.parametrize("seed", SEEDS)
def test_narrow_bit_depth_in_a_signed_type(seed: int) -> None:
    """12-bit CT in int16: non-negative data reads as unsigned, negative as two's complement."""
    rng = np.random.default_rng(seed)
    unsigned = rng.integers(0, 4096, (128, 128)).astype(np.int16)
    signed = (unsigned - 2048).astype(np.int16)
    assert shannon_entropy(unsigned, bits=12) == shannon_entropy(signed, bits=12)
    assert shannon_entropy(unsigned, bits=12).bits == 12
    with pytest.raises(ValueError, match="outside"):
        shannon_entropy(signed - 1000, bits=12)


def test_metrics_import_is_light() -> None:
    """Importing deepkedi.metrics loads neither scikit-image nor the NIST subpackage."""
    import subprocess

    code = "import sys, deepkedi.metrics; print('skimage' in sys.modules, 'deepkedi.metrics.nist' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("n", [16, 1000, 1936])
def test_binary_entropy_moments_match_the_full_sum(n: int) -> None:
    x = np.arange(n + 1)
    weights = stats.binom.pmf(x, n, 0.5)
    q = x / n
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nan_to_num(q * np.log2(q)) - np.nan_to_num((1 - q) * np.log2(1 - q))
    mean, variance = uniform_entropy_moments(n, 1)
    assert mean == pytest.approx((weights * h).sum(), rel=1e-12)
    assert variance == pytest.approx((weights * (h - mean) ** 2).sum(), rel=1e-9)


def test_entropy_moments_of_large_blocks_stay_cheap() -> None:
    mean, variance = uniform_entropy_moments(512 * 512, 8)
    assert mean == pytest.approx(8 - 255 / (2 * 512 * 512 * math.log(2)), abs=1e-6)
    assert 0 < variance < 1e-8


def test_pearson_matches_numpy_and_says_nan_for_a_constant() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4096, (40, 50)).astype(np.uint16)
    y = (x // 2 + rng.integers(0, 2048, (40, 50))).astype(np.uint16)
    assert statistics.pearson(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-12)
    assert math.isnan(statistics.pearson(np.full(9, 3), np.arange(9)))
    with pytest.raises(ValueError, match="equally sized"):
        statistics.pearson(np.arange(3), np.arange(4))
