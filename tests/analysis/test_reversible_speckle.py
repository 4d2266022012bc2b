"""Tests for deepkedi.analysis.reversible_speckle: keyed speckle that the key holder removes exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepkedi.analysis.reversible_speckle import ReversibleSpeckle
from deepkedi.datasets import phantom, sample_corpus
from deepkedi.imaging import read_image

KEY = bytes(range(32))
INT_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]
LEVELS = [("gaussian", 0.01), ("gaussian", 0.04), ("uniform", 0.05), ("uniform", 0.3), ("gamma", 4.0), ("gamma", 1.0)]


def _variance(model: str, level: float) -> float:
    return 1.0 / level if model == "gamma" else level


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
        dtype=st.sampled_from([*INT_DTYPES, np.dtype(">u2"), np.dtype(">i2"), np.dtype(">i4")]),
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
    from deepkedi.analysis.reversible_speckle import _keystream_uniforms
    from deepkedi.transforms.speckle import _multiplier_from_uniforms

    u = _keystream_uniforms(KEY, b"u", 1 << 16)
    assert u.min() > 0 and u.max() < 1
    assert u.mean() == pytest.approx(0.5, abs=0.005)
    extremes = np.array([2.0**-53, 1 - 2.0**-53])
    assert np.all(extremes > 0) and np.all(extremes < 1)
    for model, level in LEVELS:
        assert np.isfinite(_multiplier_from_uniforms(extremes, model, level)).all()
