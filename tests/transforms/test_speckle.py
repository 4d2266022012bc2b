"""Tests for deepkedi.transforms.speckle: research speckle, ripplet despeckling, keyed reversible speckle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepkedi.datasets import phantom, sample_corpus
from deepkedi.imaging import read_image
from deepkedi.metrics import psnr, ssim
from deepkedi.transforms.speckle import (
    DEFAULT_LEVELS,
    PAPER_LEVEL,
    PAPER_MODEL,
    SPECKLE_MODELS,
    ReversibleSpeckle,
    add_speckle,
    despeckle_ripplet,
    despeckle_working_bytes,
    log_multiplier_moments,
)

KEY = bytes(range(32))
INT_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]
LEVELS = [("gaussian", 0.01), ("gaussian", 0.04), ("uniform", 0.05), ("uniform", 0.3), ("gamma", 4.0), ("gamma", 1.0)]


def _variance(model: str, level: float) -> float:
    return 1.0 / level if model == "gamma" else level


# --------------------------------------------------------------------------- add_speckle


@pytest.mark.parametrize(("model", "level"), LEVELS)
def test_add_speckle_multiplier_moments(model: str, level: float) -> None:
    n = add_speckle(np.ones((512, 512)), model=model, level=level, rng=7)
    var = _variance(model, level)
    # Standard errors of the mean and variance over 2^18 samples are < 0.3 % of var.
    assert abs(n.mean() - 1.0) < 5 * math.sqrt(var / n.size)
    assert n.var() == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("model", SPECKLE_MODELS)
def test_add_speckle_defaults(model: str) -> None:
    n = add_speckle(np.ones((400, 400)), model=model, rng=3)
    assert n.var() == pytest.approx(_variance(model, DEFAULT_LEVELS[model]), rel=0.03)


def test_uniform_is_bounded_like_imnoise() -> None:
    n = add_speckle(np.ones((300, 300)), model="uniform", level=0.05, rng=0)
    half = math.sqrt(12 * 0.05) / 2
    assert n.min() >= 1 - half and n.max() <= 1 + half
    assert n.min() < 1 - 0.99 * half and n.max() > 1 + 0.99 * half


@pytest.mark.parametrize("model", SPECKLE_MODELS)
def test_add_speckle_zero_stays_zero_and_dtypes(model: str) -> None:
    f = np.zeros((20, 30), np.float32)
    f[5:10, 5:10] = 3
    g = add_speckle(f, model=model, rng=1)
    assert g.dtype == np.float32
    assert np.all(g[f == 0] == 0)
    assert np.all(g[f != 0] != 0)
    assert add_speckle(f.astype(np.uint16), model=model, rng=1).dtype == np.float64
    assert add_speckle(f.astype(np.float64), model=model, rng=1).dtype == np.float64


def test_add_speckle_deterministic_with_seed() -> None:
    f = np.arange(64.0).reshape(8, 8)
    assert np.array_equal(add_speckle(f, rng=5), add_speckle(f, rng=5))
    assert np.array_equal(add_speckle(f, rng=np.random.default_rng(5)), add_speckle(f, rng=5))
    assert not np.array_equal(add_speckle(f, rng=5), add_speckle(f, rng=6))
    assert not np.array_equal(add_speckle(f), add_speckle(f))


def test_add_speckle_rejects_bad_arguments() -> None:
    f = np.ones((4, 4))
    with pytest.raises(ValueError, match="model"):
        add_speckle(f, model="poisson")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        add_speckle(f, level=-0.1)
    with pytest.raises(ValueError, match="1/3"):
        add_speckle(f, model="uniform", level=0.5)
    with pytest.raises(TypeError):
        add_speckle(f, rng="seed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        add_speckle(np.array(["a"]))


def test_paper_default_is_matlab_imnoise() -> None:
    assert (PAPER_MODEL, PAPER_LEVEL) == ("uniform", 0.05)


@pytest.mark.parametrize(("model", "level"), LEVELS)
def test_log_multiplier_moments_match_monte_carlo(model: str, level: float) -> None:
    n = add_speckle(np.ones(1_000_000), model=model, level=level, rng=11)
    logs = np.log(np.maximum(n, 1e-3))
    mean, var = log_multiplier_moments(model, level)  # type: ignore[arg-type]
    assert mean == pytest.approx(logs.mean(), abs=5 * logs.std() / 1000 + 1e-4)
    assert var == pytest.approx(logs.var(), rel=0.02)


# --------------------------------------------------------------------------- despeckle_ripplet


def _corpus_pixels(name: str) -> np.ndarray:
    sample = next(s for s in sample_corpus() if s.name == name)
    return read_image(sample.path).pixels


def _benchmark_images() -> list[tuple[str, np.ndarray]]:
    return [
        ("phantom brain MR", phantom("brain", "MR").pixels),
        ("pydicom-examples_overlay.dcm", _corpus_pixels("pydicom-examples_overlay.dcm")),
        ("pydicom-CT_small.dcm", _corpus_pixels("pydicom-CT_small.dcm")),
        ("pydicom-J2K_pixelrep_mismatch.dcm", _corpus_pixels("pydicom-J2K_pixelrep_mismatch.dcm")),
        ("nibabel-0.dcm", _corpus_pixels("nibabel-0.dcm")),
    ]


@pytest.mark.parametrize(("name", "pixels"), _benchmark_images(), ids=lambda v: v if isinstance(v, str) else "")
def test_despeckle_beats_noisy_and_skimage_bayesshrink(name: str, pixels: np.ndarray) -> None:
    denoise_wavelet = pytest.importorskip("skimage.restoration").denoise_wavelet
    f = pixels.astype(np.float64)
    f -= f.min()
    peak = float(f.max())
    g = add_speckle(f, level=0.04, rng=2024)
    reference = denoise_wavelet(g / peak, method="BayesShrink", mode="soft", rescale_sigma=True) * peak
    ours = despeckle_ripplet(g)
    assert ours.shape == f.shape and ours.dtype == np.float64 and ours.min() >= 0

    def scores(x: np.ndarray) -> tuple[float, float]:
        x = np.clip(x, 0, peak)
        return psnr(f, x, data_range=peak), ssim(f, x, data_range=peak)

    noisy_psnr, noisy_ssim = scores(g)
    ref_psnr, ref_ssim = scores(reference)
    our_psnr, our_ssim = scores(ours)
    assert our_psnr > noisy_psnr + 4 and our_ssim > noisy_ssim
    assert our_psnr > ref_psnr + 3 and our_ssim > ref_ssim
    if name == "pydicom-examples_overlay.dcm":
        # REFERENCES.md calibration: 26.8 dB noisy, 27.5 dB BayesShrink, 33.3 dB cycle-spun log BayesShrink.
        assert noisy_psnr == pytest.approx(26.8, abs=0.5)
        assert ref_psnr == pytest.approx(27.5, abs=0.5)
        assert our_psnr > 33.3


@pytest.mark.parametrize("model", SPECKLE_MODELS)
def test_despeckle_bias_correction_keeps_the_mean(model: str) -> None:
    f = np.full((96, 96), 200.0)
    f[30:60, 20:70] = 600.0
    g = add_speckle(f, model=model, level=0.04 if model != "gamma" else 8.0, rng=3)
    for noise_model in (None, model):
        h = despeckle_ripplet(g, noise_model=noise_model)  # type: ignore[arg-type]
        assert h.mean() == pytest.approx(f.mean(), rel=0.03)
        assert np.mean((h - f) ** 2) < np.mean((g - f) ** 2) / 10


@pytest.mark.parametrize("level", [1.0, 4.0])
def test_blind_bias_correction_survives_heavy_speckle(level: float) -> None:
    f = phantom("brain", "MR", shape=(128, 128)).pixels.astype(np.float64)
    g = add_speckle(f, model="gamma", level=level, rng=9)
    h = despeckle_ripplet(g)
    assert h.mean() == pytest.approx(f.mean(), rel=0.02)
    assert np.mean((h - f) ** 2) < np.mean((g - f) ** 2) / 5


def test_despeckle_dtypes_zeros_and_stacks() -> None:
    f = np.zeros((3, 40, 48), np.float32)
    f[:, 10:30, 10:40] = 100
    g = add_speckle(f, rng=0)
    h = despeckle_ripplet(g)
    assert h.shape == f.shape and h.dtype == np.float32
    assert np.array_equal(h[1], despeckle_ripplet(g[1]))
    assert np.array_equal(despeckle_ripplet(np.zeros((32, 32))), np.zeros((32, 32)))
    assert np.all(h[f == 0] == 0) and np.all(h[f != 0] > 0)
    assert despeckle_ripplet(g[0].astype(np.float64), c=1.5, d=3.0, scales=2).shape == (40, 48)


def test_despeckle_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        despeckle_ripplet(np.ones(10))
    with pytest.raises(ValueError):
        despeckle_ripplet(np.ones((8, 8)), threshold="visu")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        despeckle_ripplet(np.ones((8, 8)), epsilon=0)
    with pytest.raises(ValueError):
        despeckle_ripplet(np.full((8, 8), np.nan))
    with pytest.raises(TypeError):
        despeckle_ripplet(np.ones((8, 8), complex))


# --------------------------------------------------------------------------- ReversibleSpeckle


def _roundtrip(speckle: ReversibleSpeckle, f: np.ndarray, tweak: bytes) -> np.ndarray:
    g = speckle.apply(f, tweak=tweak)
    assert g.dtype == (np.float64 if f.dtype.itemsize == 4 else np.float32)
    return speckle.remove(g, f.dtype, tweak=tweak)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize(("model", "level"), LEVELS)
def test_every_small_integer_value_round_trips(dtype: type, model: str, level: float) -> None:
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    draws = 32 if values.size == 65536 else 1024  # each value meets this many multipliers
    f = np.tile(values, draws).reshape(draws, -1)
    speckle = ReversibleSpeckle(KEY, model=model, level=level)  # type: ignore[arg-type]
    g = speckle.apply(f, tweak=b"exhaustive")
    n = speckle.multiplier(f.shape, tweak=b"exhaustive")
    # The docstring's bound: |g/n - f| <= |f| (2^-24 + 2^-52 + ...) < 2^-7.99 for |f| <= 2^16.
    error = np.abs(g.astype(np.float64) / n - f.astype(np.float64))
    assert error.max() <= np.abs(f.astype(np.float64)).max() * (2.0**-24 + 2.0**-51)
    assert np.array_equal(speckle.remove(g, dtype, tweak=b"exhaustive"), f)


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_32_bit_extremes_round_trip(dtype: type) -> None:
    info = np.iinfo(dtype)
    edges = np.array([info.min, info.min + 1, -1 if info.min else 2, 0, 1, info.max - 1, info.max], np.int64)
    f = np.tile(edges.astype(dtype), 4096)
    for model, level in LEVELS:
        assert np.array_equal(_roundtrip(ReversibleSpeckle(KEY, model=model, level=level), f, b"edges"), f)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(INT_DTYPES + [np.dtype(">u2"), np.dtype(">i2"), np.dtype(">i4")]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9),
    ),
    st.sampled_from(LEVELS),
    st.binary(max_size=24),
)
def test_random_arrays_of_every_dtype_and_shape_round_trip(f: np.ndarray, model_level: tuple, tweak: bytes) -> None:
    model, level = model_level
    restored = _roundtrip(ReversibleSpeckle(KEY, model=model, level=level), f, tweak)
    assert restored.dtype == f.dtype and restored.shape == f.shape
    assert np.array_equal(restored, f)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**31), 2**32 - 1), min_size=1, max_size=200), st.binary(min_size=32, max_size=32))
def test_random_32_bit_values_round_trip(values: list[int], key: bytes) -> None:
    unsigned = np.array([v for v in values if v >= 0], np.uint32)
    signed = np.array([v for v in values if v < 2**31], np.int32)
    speckle = ReversibleSpeckle(key, model="gamma", level=1.0)
    for f in (unsigned, signed):
        assert np.array_equal(_roundtrip(speckle, f, b"hyp"), f)


def test_every_corpus_image_round_trips() -> None:
    speckle = ReversibleSpeckle.from_master(b"corpus master secret", b"salt")
    samples = sample_corpus()
    assert samples
    for sample in samples:
        pixels = np.asarray(read_image(sample.path).pixels)
        tweak = sample.name.encode()
        if pixels.dtype.kind == "f":
            with pytest.raises(TypeError, match="floating-point"):
                speckle.apply(pixels, tweak=tweak)
            continue
        g = speckle.apply(pixels, tweak=tweak)
        assert not np.array_equal(g, pixels)
        restored = speckle.remove(g, pixels.dtype, tweak=tweak)
        assert restored.dtype == pixels.dtype
        assert np.array_equal(restored, pixels), sample.name


def test_wrong_key_or_tweak_does_not_restore() -> None:
    f = phantom("brain", "MR", shape=(64, 64)).pixels
    right = ReversibleSpeckle(KEY)
    g = right.apply(f, tweak=b"t")
    wrong_key = ReversibleSpeckle(bytes(31) + b"\x01")
    assert not np.array_equal(wrong_key.remove(g, f.dtype, tweak=b"t"), f)
    assert not np.array_equal(right.remove(g, f.dtype, tweak=b"u"), f)
    assert np.mean(wrong_key.remove(g, f.dtype, tweak=b"t") == f) < 0.5


@pytest.mark.parametrize(("model", "level"), LEVELS)
def test_keyed_multiplier_statistics(model: str, level: float) -> None:
    n = ReversibleSpeckle(KEY, model=model, level=level).multiplier((512, 512), tweak=b"stats")  # type: ignore[arg-type]
    assert n.dtype == np.float64 and n.min() >= 0.05
    var = _variance(model, level)
    assert abs(n.mean() - 1.0) < 5 * math.sqrt(var / n.size) + 1e-3
    assert n.var() == pytest.approx(var, rel=0.05)


def test_tweaks_keys_and_models_give_independent_fields() -> None:
    speckle = ReversibleSpeckle(KEY)
    a = speckle.multiplier((64, 64), tweak=b"a")
    assert np.array_equal(a, speckle.multiplier((64, 64), tweak=b"a"))
    assert np.array_equal(a.ravel()[:100], speckle.multiplier((100,), tweak=b"a"))
    b = speckle.multiplier((64, 64), tweak=b"b")
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05
    other = ReversibleSpeckle(bytes(32)).multiplier((64, 64), tweak=b"a")
    assert abs(np.corrcoef(a.ravel(), other.ravel())[0, 1]) < 0.05
    assert len(ReversibleSpeckle.new_tweak()) == 16
    assert ReversibleSpeckle.new_tweak() != ReversibleSpeckle.new_tweak()


def test_from_master_is_hkdf_sha256() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"s", info=b"deepkedi/v1 reversible speckle").derive(b"m")
    derived = ReversibleSpeckle.from_master(b"m", b"s")
    assert np.array_equal(derived.multiplier((50,), tweak=b"x"), ReversibleSpeckle(key).multiplier((50,), tweak=b"x"))
    assert not np.array_equal(
        derived.multiplier((50,), tweak=b"x"), ReversibleSpeckle.from_master(b"m", b"t").multiplier((50,), tweak=b"x")
    )
    assert key.hex() not in repr(derived) and repr(key) not in repr(derived)


def test_reversible_refuses_what_it_cannot_restore() -> None:
    speckle = ReversibleSpeckle(KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        ReversibleSpeckle(b"short")
    with pytest.raises(TypeError):
        ReversibleSpeckle("0" * 32)  # type: ignore[arg-type]
    for dtype in (np.float32, np.float64, np.int64, np.uint64, np.bool_):
        with pytest.raises(TypeError):
            speckle.apply(np.zeros((2, 2), dtype), tweak=b"t")
    with pytest.raises(TypeError):
        speckle.apply(np.zeros((2, 2), np.uint8), tweak="t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overflow"):
        ReversibleSpeckle(KEY, level=1e80).apply(np.full((64, 64), 60000, np.uint16), tweak=b"t")
    g = speckle.apply(np.ones((2, 2), np.int32), tweak=b"t")
    with pytest.raises(TypeError, match="carried as float64"):
        speckle.remove(g.astype(np.float32), np.int32, tweak=b"t")


def test_keystream_uniforms_stay_inside_the_open_interval() -> None:
    from deepkedi.transforms.speckle import _keystream_uniforms, _multiplier_from_uniforms

    u = _keystream_uniforms(KEY, b"u", 1 << 16)
    assert u.min() > 0 and u.max() < 1
    assert u.mean() == pytest.approx(0.5, abs=0.005)
    extremes = np.array([2.0**-53, 1 - 2.0**-53])
    assert np.all(extremes > 0) and np.all(extremes < 1)
    for model, level in LEVELS:
        assert np.isfinite(_multiplier_from_uniforms(extremes, model, level)).all()


def test_band_noise_gains_match_windows_and_white_noise() -> None:
    """Per-band noise std is sigma ||U_(j,l)||_2 / sqrt(N) in an undecimated tight frame."""
    from deepkedi.transforms.ripplet import ripplet_forward, ripplet_windows
    from deepkedi.transforms.speckle import _band_noise_gains

    shape = (96, 128)
    gains = _band_noise_gains(shape, 1.0, 2.0, None, 8)
    windows = ripplet_windows(shape)
    expected = [[math.sqrt(float(np.mean(u**2))) for u in scale] for scale in windows.bands]
    assert np.allclose([g for s in gains for g in s], [e for s in expected for e in s], rtol=1e-10)
    # Parseval: the squared gains plus the low-pass share sum to 1.
    assert sum(g * g for s in gains for g in s) + float(np.mean(windows.lowpass**2)) == pytest.approx(1.0)
    noise = np.random.default_rng(0).normal(0, 0.3, (512, 512))
    coefs = ripplet_forward(noise)
    big = _band_noise_gains((512, 512), 1.0, 2.0, None, 8)
    for band, gain in zip(coefs.finest(), big[-1]):
        assert np.median(np.abs(band)) / 0.6745 == pytest.approx(0.3 * gain, rel=0.05)


@pytest.mark.parametrize("shape", [(128, 128), (256, 192)])
def test_despeckle_working_bytes_bounds_the_measured_peak(shape: tuple[int, int]) -> None:
    """The estimate callers budget with is above the traced peak, and not wildly so."""
    import tracemalloc

    image = np.random.default_rng(3).random(shape) + 0.5
    tracemalloc.start()
    try:
        despeckle_ripplet(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = despeckle_working_bytes(shape)
    assert peak <= estimate < 3 * peak


def test_despeckle_working_bytes_grows_with_the_bands() -> None:
    assert despeckle_working_bytes((1024, 1024)) > 4 << 30  # what `kedi despeckle` refuses by default
    assert despeckle_working_bytes((512, 512)) < 800 << 20
    assert despeckle_working_bytes((64, 64), c=4.0) > despeckle_working_bytes((64, 64))
    with pytest.raises(ValueError):
        despeckle_working_bytes((0, 64))


@pytest.mark.parametrize("shape", [(1, 64), (64, 1), (1, 512)])
def test_despeckle_of_a_single_row_or_column(shape: tuple[int, int]) -> None:
    """A one-pixel-high plane has bands with no frequency at all (noise gain 0): no division by it."""
    image = np.random.default_rng(4).random(shape) + 0.5
    out = despeckle_ripplet(image)
    assert out.shape == shape and np.isfinite(out).all() and (out >= 0).all()


def test_despeckle_holds_one_set_of_bands_at_a_time() -> None:
    """The impulse transform behind the noise gains is freed before the image's bands exist,
    and the bands are shrunk in place: the traced peak stays under 2.8 sets of bands (it was
    3.4 with the impulse's bands alive beside the image's and a thresholded copy)."""
    import tracemalloc

    from deepkedi.transforms import ripplet, speckle
    from deepkedi.transforms.ripplet import angles_per_scale, default_scales

    shape = (256, 192)
    image = np.random.default_rng(3).random(shape) + 0.5
    speckle._band_noise_gains.cache_clear()
    ripplet._windows.cache_clear()
    tracemalloc.start()
    try:
        despeckle_ripplet(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_set = (sum(angles_per_scale(default_scales(shape))) + 1) * shape[0] * shape[1] * 8
    assert peak < 2.8 * one_set
