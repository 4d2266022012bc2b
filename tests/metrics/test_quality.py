"""Tests for deepkedi.metrics.quality: MSE, PSNR, SSIM and compare."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from deepkedi.metrics import QualityResult, compare, mse, psnr, quality, ssim

DTYPES = [np.uint8, np.uint16, np.int16]
SEEDS = [0, 1, 2]
RANGE = {np.uint8: 255, np.uint16: 65535, np.int16: 65535}


def random_image(dtype: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def test_doctests() -> None:
    assert doctest.testmod(quality).failed == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(48, 64), (5, 32, 40)])
def test_image_against_itself(dtype: type, seed: int, shape: tuple[int, ...]) -> None:
    image = random_image(dtype, shape, seed)
    data_range = RANGE[dtype]
    assert mse(image, image) == 0.0
    assert psnr(image, image, data_range=data_range) == math.inf
    assert ssim(image, image, data_range=data_range) == pytest.approx(1.0, abs=1e-12)
    result = compare(image, image, data_range=data_range)
    assert result == QualityResult(mse=0.0, psnr=math.inf, ssim=result.ssim, data_range=float(data_range))
    assert result.to_dict()["psnr"] == "inf"
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("offset", [1, 3, 16])
def test_psnr_of_a_constant_offset(offset: int) -> None:
    a = np.full((32, 32), 100, np.uint8)
    b = a + np.uint8(offset)
    assert mse(a, b) == offset**2
    assert psnr(a, b, data_range=255) == pytest.approx(10 * math.log10(255**2 / offset**2))


def test_paper_mse_and_psnr_are_inconsistent() -> None:
    """MSE 2.62 on an 8-bit scale is 43.9 dB, not the paper's 25.32 dB."""
    assert round(10 * math.log10(255**2 / 2.62), 1) == 43.9
    a = np.zeros(100, np.uint8).reshape(10, 10)
    b = a.copy()
    b.flat[:2] = [11, 11]  # MSE 2.42: any MSE near 2.62 sits far above 25 dB
    assert psnr(a, b, data_range=255) > 40


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_independent_images_are_dissimilar(dtype: type, seed: int) -> None:
    a, b = random_image(dtype, (128, 128), seed), random_image(dtype, (128, 128), seed + 50)
    assert abs(ssim(a, b, data_range=RANGE[dtype])) < 0.05
    assert psnr(a, b, data_range=RANGE[dtype]) < 10


@pytest.mark.parametrize("func", [psnr, ssim, compare])
def test_data_range_is_required(func) -> None:
    x = np.zeros((8, 8), np.uint8)
    with pytest.raises(TypeError, match=r"data_range=.*255 for 8-bit"):
        func(x, x)


def test_data_range_is_checked() -> None:
    x = np.zeros((8, 8), np.uint16)
    y = x.copy()
    y[0, 0] = 4000
    with pytest.raises(ValueError, match="spans"):
        psnr(x, y, data_range=255)
    with pytest.raises(ValueError, match="spans"):
        mse(x, y, data_range=255)
    with pytest.raises(ValueError, match="positive"):
        ssim(x, y, data_range=0)
    assert psnr(x, y, data_range=4095) == pytest.approx(10 * math.log10(4095**2 * 64 / 4000**2))


def test_ssim_window_fits_small_images() -> None:
    volume = random_image(np.uint8, (3, 16, 16), 0)
    noisy = volume.copy()
    noisy[1, 5, 5] ^= 0xFF
    assert 0 < ssim(volume, noisy, data_range=255) < 1
    assert ssim(volume[0, :5, :6], volume[0, :5, :6], data_range=255) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        ssim(volume[:2], volume[:2], data_range=255)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="same shape"):
        mse(np.zeros((4, 4)), np.zeros((4, 5)))


def test_records_write_non_finite_numbers_as_strings() -> None:
    record = QualityResult(mse=math.nan, psnr=-math.inf, ssim=np.float64(0.5), data_range=255)
    assert record.to_dict() == {"mse": "nan", "psnr": "-inf", "ssim": 0.5, "data_range": 255}
    json.dumps(record.to_dict(), allow_nan=False)


@pytest.mark.parametrize("shape", [(40, 60, 50), (9, 80, 70), (4, 90, 80)])
def test_volume_ssim_in_slabs_is_the_whole_volume_ssim(shape: tuple[int, int, int], monkeypatch) -> None:
    """Scored in slabs of a few planes (window 7, or 3 for a 4-plane stack), a volume gets
    scikit-image's SSIM of the whole volume."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 4096, shape).astype(np.uint16)
    b = np.clip(a.astype(np.int32) + rng.integers(-300, 300, shape), 0, 4095).astype(np.uint16)
    window = 7 if min(shape) >= 7 else 3
    whole = structural_similarity(a.astype(float), b.astype(float), data_range=4095, win_size=window, channel_axis=None)
    monkeypatch.setattr(quality, "_SSIM_SLAB_VOXELS", 2 * shape[1] * shape[2])  # two planes a slab
    assert ssim(a, b, data_range=4095) == pytest.approx(whole, abs=1e-12)


def _noisy_astronaut() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    clean = data.astronaut()[:160, :200]
    noise = np.random.default_rng(5).normal(0, 30, clean.shape)
    return clean, np.clip(clean + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("layout", ["interleaved", "planar"])
def test_colour_ssim_is_per_channel_as_scikit_image(layout: str) -> None:
    """An RGB image is scored per channel, not as a 3-deep volume across the colours."""
    from skimage.metrics import structural_similarity

    clean, noisy = _noisy_astronaut()
    expected = structural_similarity(clean, noisy, data_range=255, channel_axis=-1)
    assert expected < 0.8  # the 3-deep volume reading gives 0.99 here
    if layout == "planar":
        clean, noisy, axis = np.moveaxis(clean, -1, 0), np.moveaxis(noisy, -1, 0), 0
    else:
        axis = -1
    assert ssim(clean, noisy, data_range=255, channel_axis=axis) == pytest.approx(expected, abs=1e-12)
    assert compare(clean, noisy, data_range=255, channel_axis=axis).ssim == pytest.approx(expected, abs=1e-12)
    assert ssim(clean, clean, data_range=255, channel_axis=axis) == pytest.approx(1.0, abs=1e-12)


def test_colour_volume_ssim_in_slabs_is_the_whole_volume_ssim(monkeypatch: pytest.MonkeyPatch) -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(9)
    a = rng.integers(0, 256, (12, 40, 30, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(
        a.astype(np.float64), b.astype(np.float64), data_range=255, win_size=7, channel_axis=-1
    )
    monkeypatch.setattr(quality, "_SSIM_SLAB_VOXELS", 2 * 40 * 30 * 3)
    assert ssim(a, b, data_range=255, channel_axis=-1) == pytest.approx(expected, abs=1e-12)


def test_colour_ssim_checks_the_channel_axis() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="out of range"):
        ssim(rgb, rgb, data_range=255, channel_axis=3)
    with pytest.raises(ValueError, match="beside the channel axis"):
        ssim(np.zeros((8, 3), np.uint8), np.zeros((8, 3), np.uint8), data_range=255, channel_axis=-1)
