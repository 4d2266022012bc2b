"""Tests for deepkedi.transforms.speckle: the research speckle models and the moments of their log."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepkedi.transforms.speckle import (
    DEFAULT_LEVELS,
    PAPER_LEVEL,
    PAPER_MODEL,
    SPECKLE_MODELS,
    add_speckle,
    log_multiplier_moments,
)

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
