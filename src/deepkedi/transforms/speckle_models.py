"""The speckle models' names and default levels (no NumPy: the command line's options use them).

The noise itself is drawn in :mod:`deepkedi.transforms.speckle`, which re-exports
these names. The paper names neither the distribution nor the variance of its
speckle (seed paper, Sec. "Data pre-processing", Eq. (2)); its figures and tooling
are MATLAB-style, so the Deep-KEDI pipeline and `kedi speckle` default to MATLAB's
``imnoise(I, 'speckle')``: uniform ``n`` of variance 0.05. That is our reading, not
the paper's statement (docs/SPECKLE.md).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["DEFAULT_LEVELS", "PAPER_LEVEL", "PAPER_MODEL", "SPECKLE_MODELS", "SpeckleModel"]

SpeckleModel = Literal["gaussian", "uniform", "gamma"]

#: The speckle models: ``n = 1 + N(0, v)``, ``n = 1 + U(-a, a)`` with ``a^2/3 = v``,
#: ``n ~ Gamma(L, 1/L)``.
SPECKLE_MODELS: Final = ("gaussian", "uniform", "gamma")

#: Default ``level`` per model: variance 0.01 (scikit-image ``random_noise``),
#: variance 0.05 (MATLAB ``imnoise``), 4 looks.
DEFAULT_LEVELS: Final = {"gaussian": 0.01, "uniform": 0.05, "gamma": 4.0}

#: Model the Deep-KEDI pipeline and `kedi speckle` use by default: MATLAB ``imnoise``
#: speckle (our assumption; the paper names no distribution).
PAPER_MODEL: Final[SpeckleModel] = "uniform"
#: Variance the pipeline uses by default (MATLAB's default; our assumption).
PAPER_LEVEL: Final = DEFAULT_LEVELS[PAPER_MODEL]
