"""Smooth Gaussian random fields: organ and parenchyma textures, smooth in z too."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepkedi.datasets.phantoms._geometry import _F, _Grid

# ----------------------------------------------------------------------- textures


def _interp_weights(pos: np.ndarray, nodes: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian kernel weights from node positions to sample positions, unit L2 rows."""
    w = np.exp(-0.5 * ((pos[:, None] - nodes[None, :]) / sigma) ** 2)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))
    return w.astype(_F)


class _Field:
    """A smooth Gaussian random field with unit variance, smooth in z too.

    White noise on a coarse lattice (spacing ``corr / 2``) is blurred onto the
    pixels by a separable Gaussian kernel: ``Wr @ Z @ Wc.T``. Two small matrix
    products replace a full-image filter, and rows of unit L2 norm make the
    variance exactly one everywhere.
    """

    def __init__(self, rng: np.random.Generator, grid: _Grid, corr: float, zs: Sequence[float]) -> None:
        sigma = corr / 2.0  # image units, since textures need not follow the anatomy's tilt

        def nodes(lo: float, hi: float) -> np.ndarray:
            n = max(math.ceil((hi - lo) / sigma) + 7, 2)
            return lo - 3 * sigma + sigma * np.arange(n)

        ny, nx = nodes(float(grid.y[0]), float(grid.y[-1])), nodes(float(grid.x[0]), float(grid.x[-1]))
        self.wr = _interp_weights(grid.y.astype(np.float64), ny, sigma)
        self.wc = _interp_weights(grid.x.astype(np.float64), nx, sigma).T.copy()
        self.zn = nodes(min(zs), max(zs))
        self.sigma = sigma
        self.noise = rng.standard_normal((len(self.zn), len(ny), len(nx)), dtype=_F)

    def at(self, z: float) -> np.ndarray:
        wz = np.exp(-0.5 * ((z - self.zn) / self.sigma) ** 2)
        wz /= np.sqrt((wz * wz).sum())
        coarse = np.tensordot(wz.astype(_F), self.noise, axes=1)
        return self.wr @ coarse @ self.wc
