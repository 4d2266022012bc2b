"""Tests for deepkedi.analysis.despeckle and bench/compare_despeckle.py.

The harness tests install stand-in modules through ``monkeypatch`` for
``deepkedi.transforms.speckle`` (its ``add_speckle``) and
``deepkedi.transforms.ripplet_despeckle`` (no ``despeckle_ripplet`` unless a test
adds one), so that they check the harness alone; the last test uses the real ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from deepkedi.analysis import (
    BASELINES,
    DespeckleRow,
    compare_despecklers,
    despeckle_methods,
    estimate_speckle_variance,
    frost_filter,
    lee_filter,
    median_despeckle,
    nl_means,
    normalise_unit,
    wavelet_bayes,
)
from deepkedi.datasets import phantom
from deepkedi.metrics import mse

ROOT = Path(__file__).resolve().parents[2]
SPECKLE = "deepkedi.transforms.speckle"
DESPECKLER = "deepkedi.transforms.ripplet_despeckle"


def _stand_in_add_speckle(image, *, model="gaussian", level=None, rng=None):
    """Multiplicative speckle g = f·n, n of unit mean and variance ``level``."""
    rng = np.random.default_rng() if rng is None else rng
    variance = 0.04 if level is None else level
    image = np.asarray(image, dtype=np.float64)
    if model == "gamma":
        n = rng.gamma(1.0 / variance, variance, image.shape)
    elif model == "uniform":
        n = 1.0 + rng.uniform(-0.5, 0.5, image.shape) * math.sqrt(12.0 * variance)
    else:
        n = 1.0 + rng.standard_normal(image.shape) * math.sqrt(variance)
    return image * n


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A speckle module with add_speckle only, and a ripplet despeckler module without despeckle_ripplet."""
    speckle = types.ModuleType(SPECKLE)
    speckle.add_speckle = _stand_in_add_speckle
    despeckler = types.ModuleType(DESPECKLER)
    monkeypatch.setitem(sys.modules, SPECKLE, speckle)
    monkeypatch.setitem(sys.modules, DESPECKLER, despeckler)
    return types.SimpleNamespace(speckle=speckle, despeckler=despeckler)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return normalise_unit(phantom("lung", "CXR", seed=3, shape=(128, 128)).pixels)


@pytest.fixture(scope="module")
def speckled(clean: np.ndarray) -> np.ndarray:
    return np.clip(_stand_in_add_speckle(clean, model="gamma", level=0.04, rng=np.random.default_rng(7)), 0, 1)


@pytest.mark.parametrize("name", list(BASELINES))
def test_each_baseline_reduces_mse(name: str, clean: np.ndarray, speckled: np.ndarray) -> None:
    estimate = np.clip(BASELINES[name](speckled), 0, 1)
    assert mse(clean, estimate) < 0.8 * mse(clean, speckled)


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_shape_and_dtype(name: str, dtype: type) -> None:
    image = (np.random.default_rng(1).random((40, 52)) * 200 + 20).astype(dtype)
    out = BASELINES[name](image)
    assert out.shape == image.shape and out.dtype == np.float64
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("func", [median_despeckle, lee_filter, frost_filter, wavelet_bayes, nl_means])
def test_rejects_non_planes(func) -> None:
    with pytest.raises(ValueError):
        func(np.zeros((4, 8, 8)))


@pytest.mark.parametrize("func", [median_despeckle, lee_filter, frost_filter])
def test_rejects_even_window(func) -> None:
    with pytest.raises(ValueError, match="odd"):
        func(np.ones((16, 16)), size=4)


def test_lee_and_frost_keep_flat_images_and_sharp_edges() -> None:
    step = np.where(np.arange(64)[None, :] < 32, 0.2, 0.8) * np.ones((64, 1))
    for out in (lee_filter(step, noise_variance=0.04), frost_filter(step)):
        np.testing.assert_allclose(out[:, :29], 0.2)
        np.testing.assert_allclose(out[:, 35:], 0.8)
    # Lee without noise is the identity.
    image = np.random.default_rng(0).random((32, 32)) + 0.5
    np.testing.assert_allclose(lee_filter(image, noise_variance=0.0), image)


def test_lee_filter_matches_a_direct_window_computation() -> None:
    rng = np.random.default_rng(5)
    image = rng.random((12, 12)) + 0.5
    out = lee_filter(image, size=3, noise_variance=0.05)
    r, c = 6, 4
    window = image[r - 1 : r + 2, c - 1 : c + 2]
    m, v = window.mean(), window.var()
    k = max(v - m * m * 0.05, 0) / (1.05 * v)
    assert out[r, c] == pytest.approx(m + k * (image[r, c] - m))


def test_frost_filter_matches_a_direct_window_computation() -> None:
    image = np.random.default_rng(6).random((12, 12)) + 0.5
    out = frost_filter(image, size=3, damping=2.0)
    r, c = 5, 7
    window = image[r - 1 : r + 2, c - 1 : c + 2]
    k = 2.0 * window.var() / window.mean() ** 2
    dist = np.hypot(*np.mgrid[-1:2, -1:2])
    weights = np.exp(-k * dist)
    assert out[r, c] == pytest.approx((weights * window).sum() / weights.sum())


@pytest.mark.parametrize("variance", [0.01, 0.04, 0.1])
def test_speckle_variance_estimate_on_a_flat_field(variance: float) -> None:
    rng = np.random.default_rng(2)
    field = 0.6 * rng.gamma(1 / variance, variance, (128, 128))
    assert estimate_speckle_variance(field) == pytest.approx(variance, rel=0.2)
    assert estimate_speckle_variance(np.zeros((16, 16))) == 0.0


def test_harness_rows(stand_in, clean: np.ndarray) -> None:
    images = {"brain": clean, "ramp": np.tile(np.linspace(0.1, 1.0, 64), (48, 1)) * 100}
    rows = compare_despecklers(images, model="gaussian", level=0.04, seed=1)
    assert all(isinstance(row, DespeckleRow) for row in rows)
    for name in images:
        mine = [row for row in rows if row.image == name]
        assert mine[0].method == "noisy" and mine[0].status == "ok"
        ok = [row for row in mine if row.status == "ok"]
        assert [row.method for row in ok] == ["noisy", *BASELINES]
        for row in ok:
            assert all(math.isfinite(x) for x in (row.psnr, row.ssim, row.mse, row.seconds))
            assert row.model == "gaussian" and row.level == 0.04
        # The stand-in despeckler module has no despeckle_ripplet: every DRT setting is listed as unavailable.
        missing = [row for row in mine if row.status == "unavailable"]
        assert [row.method for row in missing] == ["DRT c=1 d=2", "DRT c=1 d=3", "DRT c=2 d=2"]
        assert all("despeckle_ripplet" in row.note and math.isnan(row.psnr) for row in missing)
        assert len(mine) == 1 + len(BASELINES) + 3


def test_harness_is_seeded(stand_in, clean: np.ndarray) -> None:
    methods = {"median 3x3": median_despeckle}
    first = compare_despecklers({"a": clean}, level=0.1, seed=4, methods=methods)
    again = compare_despecklers({"a": clean}, level=0.1, seed=4, methods=methods)
    other = compare_despecklers({"a": clean}, level=0.1, seed=5, methods=methods)
    assert [r.psnr for r in first] == [r.psnr for r in again]
    assert first[0].psnr != other[0].psnr


def test_harness_uses_the_ripplet_despeckler_when_it_imports(stand_in, clean: np.ndarray) -> None:
    calls = []

    def despeckle_ripplet(image, *, c=1.0, d=2.0, scales=None):
        calls.append((c, d))
        return median_despeckle(image)

    stand_in.despeckler.despeckle_ripplet = despeckle_ripplet
    methods, unavailable = despeckle_methods()
    assert unavailable == {}
    assert list(methods)[-3:] == ["DRT c=1 d=2", "DRT c=1 d=3", "DRT c=2 d=2"]
    rows = compare_despecklers({"a": clean}, level=0.04)
    assert sorted(calls) == [(1.0, 2.0), (1.0, 3.0), (2.0, 2.0)]
    assert all(row.status == "ok" for row in rows)


def test_harness_reports_failing_and_unavailable_methods(stand_in, clean: np.ndarray) -> None:
    def broken(image):
        raise RuntimeError("boom")

    rows = compare_despecklers({"a": clean}, methods={"broken": broken}, unavailable={"gone": "not installed"})
    assert [(r.method, r.status) for r in rows] == [("noisy", "ok"), ("broken", "failed"), ("gone", "unavailable")]
    assert "boom" in rows[1].note and rows[2].note == "not installed"


def test_harness_names_the_missing_noise_model(monkeypatch: pytest.MonkeyPatch, clean: np.ndarray) -> None:
    monkeypatch.setitem(sys.modules, SPECKLE, types.ModuleType(SPECKLE))
    with pytest.raises(ImportError, match="add_speckle"):
        compare_despecklers({"a": clean})


def test_quick_script_run(stand_in, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("compare_despeckle", ROOT / "bench" / "compare_despeckle.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--quick", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "despeckle_comparison.md").read_text()
    assert "| noisy |" in table and "| Lee 7x7 |" in table and "unavailable" in table
    assert (tmp_path / "figures" / "despeckle_comparison.png").stat().st_size > 0
    csv_lines = (tmp_path / "despeckle_comparison.csv").read_text().splitlines()
    assert csv_lines[0].startswith("setting,image,method")
    assert len(csv_lines) == 1 + 2 * (1 + len(BASELINES) + 3)
    assert "# Despeckling comparison" in capsys.readouterr().out


def test_harness_with_the_real_speckle_module(clean: np.ndarray) -> None:
    speckle = importlib.import_module(SPECKLE)
    assert hasattr(speckle, "add_speckle")
    assert hasattr(importlib.import_module(DESPECKLER), "despeckle_ripplet")
    rows = compare_despecklers({"cxr": clean[:64, :64]}, model="gaussian", level=0.04, seed=0)
    assert rows[0].method == "noisy"
    assert [row.method for row in rows if row.method.startswith("DRT")] == ["DRT c=1 d=2", "DRT c=1 d=3", "DRT c=2 d=2"]
    for row in rows:
        assert row.status == "ok", row.note
        assert all(math.isfinite(x) for x in (row.psnr, row.ssim, row.mse, row.seconds))
