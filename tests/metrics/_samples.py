"""Shared by the metric tests: seeded random images and binomial acceptance bands."""

from __future__ import annotations

import numpy as np
from scipy import stats

DTYPES = [np.uint8, np.uint16, np.int16]
SEEDS = [0, 1, 2]


def random_image(dtype: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def binomial_band(trials: int, p: float) -> tuple[int, int]:
    """Pass counts outside this band happen with probability about 0.001."""
    return int(stats.binom.ppf(0.0005, trials, p)), int(stats.binom.ppf(0.9995, trials, p))
