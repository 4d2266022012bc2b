"""Tests for deepkedi.transforms.ripplet: the ripplet type-I tight frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepkedi.datasets import sample_corpus
from deepkedi.imaging import read_image
from deepkedi.transforms import (
    RippletCoefficients,
    angles_per_scale,
    default_scales,
    ripplet_forward,
    ripplet_inverse,
    ripplet_windows,
)
from deepkedi.transforms.ripplet import _windows

# Exactness bounds of the brief; float64 reaches ~1e-15, float32 ~2e-7.
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]
# Corpus planes larger than this are centre-cropped: the frame is exact at any
# size (odd and non-square sizes are tested below), while a 1411 x 1411 plane
# has 240 undecimated bands (3.8 GB of float64 coefficients).
MAX_SIDE = 512
SAMPLES = sample_corpus()


def corpus_planes(sample) -> np.ndarray:
    """Up to two planes (colour samples as planes) of a corpus image, (S, H, W)."""
    image = read_image(sample.path)
    pixels = np.asarray(image.pixels)
    if image.channels_last:
        pixels = np.moveaxis(pixels, -1, 0)
    rows, cols = image.plane_shape
    planes = pixels.reshape(-1, rows, cols)[:2]
    top, left = max(0, (rows - MAX_SIDE) // 2), max(0, (cols - MAX_SIDE) // 2)
    return planes[:, top : top + MAX_SIDE, left : left + MAX_SIDE]


def relative_error(x: np.ndarray, y: np.ndarray) -> float:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    return float(np.linalg.norm(x64 - y64) / np.linalg.norm(x64))


def energy(coefs: RippletCoefficients) -> float:
    total = np.sum(coefs.lowpass.astype(np.float64) ** 2)
    for scale in coefs.bands:
        for band in scale:
            total += np.sum(band.astype(np.float64) ** 2)
    return float(total)


def check_exact(x: np.ndarray, dtype, **params) -> RippletCoefficients:
    coefs = ripplet_forward(x, **params)
    back = ripplet_inverse(coefs)
    assert back.dtype == dtype
    assert back.shape == x.shape
    assert relative_error(x, back) < TOLERANCE[dtype]
    norm2 = float(np.sum(x.astype(np.float64) ** 2))
    assert abs(energy(coefs) - norm2) <= TOLERANCE[dtype] * norm2
    return coefs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_corpus_reconstruction_and_parseval(sample, dtype):
    planes = corpus_planes(sample).astype(dtype)
    # Slice-wise 3-D on up to two planes (2-D vs 3-D agreement is tested below);
    # a single plane is passed as 2-D.
    check_exact(planes if len(planes) > 1 else planes[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(31, 47), (64, 17), (16, 16), (17, 16), (47, 31), (33, 64), (2, 40, 25)])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"d": 1.0},
        {"d": 1.5, "scales": 4},
        {"c": 2.0, "d": 3.0},
        {"c": 0.5, "coarse_angles": 6, "scales": 3},
        {"scales": 1},
    ],
    ids=["curvelet", "d1", "d1.5", "c2-d3", "c0.5", "one-scale"],
)
def test_random_sizes_exact(shape, params, dtype):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    coefs = check_exact(x, dtype, **params)
    assert coefs.lowpass.dtype == dtype
    assert all(band.dtype == dtype and band.shape == shape for s in coefs.bands for band in s)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    c=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    d=st.sampled_from([1.0, 1.5, 2.0, 3.0, 8.0]),
    scales=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_exact_any_size_and_parameters(rows, cols, c, d, scales, seed):
    # Down to 1 x 1 and with more scales than the grid resolves: still exact.
    x = np.random.default_rng(seed).standard_normal((rows, cols))
    check_exact(x, np.float64, c=c, d=d, scales=scales)


@pytest.mark.parametrize("shape", [(32, 48), (31, 47), (64, 17), (16, 16), (128, 96)])
@pytest.mark.parametrize("params", [{}, {"d": 1.0}, {"c": 1.5, "d": 2.5, "coarse_angles": 5}])
def test_partition_of_unity_and_even_windows(shape, params):
    windows = ripplet_windows(shape, **params)
    total = windows.lowpass**2
    for scale in windows.bands:
        for u in scale:
            assert u.shape == shape and np.all(u >= 0)
            # Even on the FFT grid, U[k] == U[-k]: real images, real coefficients.
            mirror = np.roll(np.flip(u, (0, 1)), 1, axis=(0, 1))
            assert np.array_equal(u, mirror)
            total = total + u**2
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-13)
    assert windows.lowpass[0, 0] == 1.0
    half_low, half_stack = _windows(*shape, len(windows.bands), *_params(params), "<f8", True)
    # The transform's half-spectrum windows are the full ones' first W//2+1 columns.
    cols = shape[1] // 2 + 1
    np.testing.assert_array_equal(half_low, windows.lowpass[:, :cols])
    full = np.stack([u for s in windows.bands for u in s])
    np.testing.assert_array_equal(half_stack, full[..., :cols])


def _params(params: dict) -> tuple[float, float, int]:
    return float(params.get("c", 1.0)), float(params.get("d", 2.0)), params.get("coarse_angles", 8)


def test_partition_float32_windows():
    windows = ripplet_windows((40, 30), dtype=np.float32)
    assert windows.lowpass.dtype == np.float32
    total = windows.lowpass.astype(np.float64) ** 2
    total += sum(u.astype(np.float64) ** 2 for s in windows.bands for u in s)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)


def test_coefficients_are_real_and_match_complex_fft():
    x = np.random.default_rng(3).random((36, 50))
    coefs = ripplet_forward(x)
    windows = ripplet_windows(x.shape)
    spectrum = np.fft.fft2(x)
    for scale_c, scale_w in zip(coefs.bands, windows.bands, strict=True):
        for band, u in zip(scale_c, scale_w, strict=True):
            assert np.isrealobj(band)
            full = np.fft.ifft2(spectrum * u)
            assert np.max(np.abs(full.imag)) < 1e-14 * np.max(np.abs(x))
            np.testing.assert_allclose(band, full.real, rtol=0, atol=1e-13)
    np.testing.assert_allclose(coefs.lowpass, np.fft.ifft2(spectrum * windows.lowpass).real, rtol=0, atol=1e-13)


def test_angles_curvelet_doubles_every_second_scale():
    assert angles_per_scale(6) == (8, 8, 16, 16, 32, 32)
    assert angles_per_scale(7, c=1, d=2, coarse_angles=4) == (4, 4, 8, 8, 16, 16, 32)
    coefs = ripplet_forward(np.random.default_rng(0).random((256, 200)), scales=5)
    assert [len(s) for s in coefs.bands] == [8, 8, 16, 16, 32]


def test_angles_degree_one_constant_and_support_scales_count():
    assert angles_per_scale(5, d=1.0) == (8,) * 5
    coefs = ripplet_forward(np.zeros((64, 64)), d=1.0, scales=4)
    assert [len(s) for s in coefs.bands] == [8, 8, 8, 8]
    for scales in (1, 3, 6):
        base = angles_per_scale(scales)
        more = angles_per_scale(scales, c=2.0)
        assert more == tuple(2 * n for n in base)
        assert all(m > n for m, n in zip(angles_per_scale(scales, c=1.5), base, strict=True))
    # Larger degree: faster growth (d -> inf doubles every scale).
    assert angles_per_scale(4, d=1e15) == (8, 16, 32, 64)
    assert angles_per_scale(4, d=1.5) == (8, 8, 8, 16)
    assert angles_per_scale(3, c=0.01) == (1, 1, 1)


def test_default_scales():
    assert default_scales((512, 512)) == 6
    assert default_scales((64, 64)) == 3
    assert default_scales((300, 484)) == 6
    assert default_scales((16, 16)) == 2
    assert default_scales((3, 17, 900)) == 2
    assert ripplet_forward(np.zeros((128, 128))).scales == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_slicewise_3d_equals_per_slice(dtype):
    stack = np.random.default_rng(5).random((3, 29, 40)).astype(dtype)
    coefs = ripplet_forward(stack, d=1.5, scales=3)
    assert coefs.shape == stack.shape
    for k in range(stack.shape[0]):
        single = ripplet_forward(stack[k], d=1.5, scales=3)
        np.testing.assert_array_equal(coefs.lowpass[k], single.lowpass)
        for scale_3d, scale_2d in zip(coefs.bands, single.bands, strict=True):
            for band_3d, band_2d in zip(scale_3d, scale_2d, strict=True):
                np.testing.assert_allclose(band_3d[k], band_2d, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)
    back = ripplet_inverse(coefs)
    for k in range(stack.shape[0]):
        single = ripplet_inverse(ripplet_forward(stack[k], d=1.5, scales=3))
        np.testing.assert_allclose(back[k], single, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("source", [np.float32, np.float64, np.int16, np.uint8, np.float16, bool])
def test_dtypes(source):
    x = (np.random.default_rng(2).random((20, 24)) * 100).astype(source)
    coefs = ripplet_forward(x)
    expected = np.float32 if source == np.float32 else np.float64
    assert coefs.lowpass.dtype == expected
    assert coefs.finest()[0].dtype == expected
    assert ripplet_inverse(coefs).dtype == expected


def test_plane_wave_lands_in_its_direction():
    # A horizontal-frequency cosine (vertical stripes) at half Nyquist: scale
    # J-2 or J-1, direction 0 holds nearly all its energy.
    cols = np.arange(128)
    x = np.tile(np.cos(2 * np.pi * 0.25 * cols), (128, 1))
    coefs = ripplet_forward(x, scales=4)
    energies = {(j, angle): float(np.sum(b**2)) for j, s in enumerate(coefs.bands) for angle, b in enumerate(s)}
    best = max(energies, key=energies.get)
    assert best[1] == 0
    assert energies[best] > 0.45 * energy(coefs)
    # Rotated by 90 degrees: direction L/2 (vertical frequency).
    coefs_t = ripplet_forward(x.T, scales=4)
    counts = [len(s) for s in coefs_t.bands]
    e_t = {(j, angle): float(np.sum(b**2)) for j, s in enumerate(coefs_t.bands) for angle, b in enumerate(s)}
    best_t = max(e_t, key=e_t.get)
    assert best_t[1] == counts[best_t[0]] // 2


def test_map_thresholding_and_lowpass_untouched():
    x = np.random.default_rng(7).random((40, 40))
    coefs = ripplet_forward(x)
    seen = []
    zeroed = coefs.map(lambda band, j, angle: (seen.append((j, angle)), np.zeros_like(band))[1])
    assert len(seen) == sum(len(s) for s in coefs.bands)
    assert zeroed.lowpass is coefs.lowpass
    assert (zeroed.c, zeroed.d, zeroed.coarse_angles) == (coefs.c, coefs.d, coefs.coarse_angles)
    low_only = ripplet_inverse(zeroed)
    windows = ripplet_windows(x.shape)
    expected = np.fft.ifft2(np.fft.fft2(x) * windows.lowpass**2).real
    np.testing.assert_allclose(low_only, expected, atol=1e-13)
    identity = coefs.map(lambda band, j, angle: band)
    np.testing.assert_allclose(ripplet_inverse(identity), x, atol=1e-12)
    with pytest.raises(ValueError, match="image shape"):
        coefs.map(lambda band, j, angle: band[:-1])


def test_windows_cached_read_only():
    _windows.cache_clear()
    ripplet_forward(np.zeros((20, 20)))
    ripplet_forward(np.ones((20, 20)))
    info = _windows.cache_info()
    assert info.maxsize is not None and info.maxsize <= 8
    assert info.hits >= 1
    w = ripplet_windows((20, 20))
    with pytest.raises(ValueError):
        w.lowpass[0, 0] = 0.5


@pytest.mark.parametrize(
    ("image", "kwargs", "error", "match"),
    [
        (np.zeros(10), {}, ValueError, "2-D"),
        (np.zeros((2, 2, 8, 8)), {}, ValueError, "2-D"),
        (np.zeros((0, 8)), {}, ValueError, "empty"),
        (np.zeros((8, 8), complex), {}, TypeError, "real"),
        (np.array([["a", "b"]]), {}, TypeError, "numeric"),
        (np.full((8, 8), np.nan), {}, ValueError, "NaN"),
        (np.zeros((8, 8)), {"c": 0}, ValueError, "c must"),
        (np.zeros((8, 8)), {"c": -1.0}, ValueError, "c must"),
        (np.zeros((8, 8)), {"d": 0.5}, ValueError, "degree d"),
        (np.zeros((8, 8)), {"d": float("inf")}, ValueError, "degree d"),
        (np.zeros((8, 8)), {"scales": 0}, ValueError, "scales"),
        (np.zeros((8, 8)), {"scales": 2.5}, TypeError, "scales"),
        (np.zeros((8, 8)), {"coarse_angles": 0}, ValueError, "coarse_angles"),
    ],
)
def test_validation(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        ripplet_forward(image, **kwargs)


def test_inverse_validation():
    coefs = ripplet_forward(np.zeros((16, 16)))
    with pytest.raises(TypeError, match="RippletCoefficients"):
        ripplet_inverse((coefs.lowpass, coefs.bands))  # type: ignore[arg-type]
    broken = RippletCoefficients(coefs.lowpass, (coefs.bands[0], coefs.bands[1][:-1]), 1.0, 2.0, 8)
    with pytest.raises(ValueError, match="bands per scale"):
        ripplet_inverse(broken)
    with pytest.raises(TypeError, match="dtype"):
        ripplet_windows((8, 8), dtype=np.int32)
