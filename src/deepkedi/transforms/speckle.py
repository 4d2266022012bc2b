"""Speckle noise models: multiplicative speckle to add, and the moments of its log.

Deep-KEDI's pre-processing adds speckle to a medical image before encryption and
removes it after decryption with the discrete ripplet transform (seed paper,
Sec. "pre-processing", Eq. (2) and Eq. (11)). Speckle is multiplicative,

    g = f * n,        E[n] = 1,

and the paper turns it additive with a log transform (homomorphic filtering),
``log g = log f + log n``. This module holds the noise itself:

- :func:`add_speckle` -- research noise in the conventions of scikit-image
  (Gaussian ``n``), MATLAB ``imnoise`` (uniform ``n``) and fully developed
  ``L``-look speckle (Gamma ``n``).
- :func:`log_multiplier_moments` -- mean and variance of ``log n``, which a
  homomorphic filter needs to undo its bias.

Its removal lives beside it: the paper's blind removal in the ripplet domain is
:func:`deepkedi.transforms.ripplet_despeckle.despeckle_ripplet` (it only
*estimates* ``f``); keyed speckle that the key holder removes *exactly* is
:class:`deepkedi.analysis.reversible_speckle.ReversibleSpeckle` (research code,
outside any suite); classic filters to compare against are in
:mod:`deepkedi.analysis.despeckle`.

Neither kind of speckle is encryption: speckle hides nothing from an attacker
(the structure of the image stays visible, see the paper's own Fig. 6b).

Paper default (our assumption)
------------------------------
The paper gives neither the noise distribution nor its variance. Its figures
and tooling are MATLAB-style (``imnoise``), so the pipeline default here is
MATLAB's ``imnoise(I, 'speckle')``: uniform ``n`` of variance 0.05
(:data:`PAPER_MODEL`, :data:`PAPER_LEVEL`), and so is `kedi speckle`'s. This is
our choice, not the paper's statement. :func:`add_speckle` called without
``model`` keeps scikit-image's Gaussian ``n`` of variance 0.01, the Python
convention.

References
----------
.. [1] J. W. Goodman, "Some fundamental properties of speckle", *J. Opt. Soc.
   Am.* 66(11), 1145-1150 (1976). :doi:`10.1364/JOSA.66.001145`
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

# The names and default levels live apart, without NumPy, for the command line's options.
from deepkedi.transforms.speckle_models import (
    DEFAULT_LEVELS,
    PAPER_LEVEL,
    PAPER_MODEL,
    SPECKLE_MODELS,
    SpeckleModel,
)

__all__ = [
    "DEFAULT_LEVELS",
    "PAPER_LEVEL",
    "PAPER_MODEL",
    "SPECKLE_MODELS",
    "add_speckle",
    "log_multiplier_moments",
]


# --------------------------------------------------------------------------- models


def _check_model(model: object, level: object) -> tuple[SpeckleModel, float]:
    if model not in SPECKLE_MODELS:
        raise ValueError(f"model must be one of {SPECKLE_MODELS}, got {model!r}")
    value = DEFAULT_LEVELS[str(model)] if level is None else level
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"level must be a real number, got {level!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"level must be finite and > 0 (a variance, or looks for 'gamma'), got {level!r}")
    if model == "uniform" and value >= 1 / 3:
        # a = sqrt(3 v) >= 1 lets n reach 0: the image would be wiped out there.
        raise ValueError(f"uniform speckle needs variance < 1/3 (so that n > 0), got {value}")
    return cast(SpeckleModel, str(model)), value  # one of SPECKLE_MODELS, checked above


def _multiplier_from_uniforms(u: NDArray[np.float64], model: str, level: float) -> NDArray[np.float64]:
    """Speckle multiplier ``n`` from uniforms in the open interval (0, 1), by inverse CDF."""
    from scipy import special

    if model == "gaussian":
        return 1.0 + math.sqrt(level) * special.ndtri(u)
    if model == "uniform":
        return 1.0 + math.sqrt(12.0 * level) * (u - 0.5)
    return np.asarray(special.gammaincinv(level, u) / level, dtype=np.float64)


def _draw_multiplier(shape: tuple[int, ...], model: str, level: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """Research multiplier field from a NumPy generator (not keyed, not secret)."""
    if model == "gaussian":
        return 1.0 + rng.normal(0.0, math.sqrt(level), size=shape)
    if model == "uniform":
        half = math.sqrt(3.0 * level)
        return 1.0 + rng.uniform(-half, half, size=shape)
    return rng.gamma(level, 1.0 / level, size=shape)


def log_multiplier_moments(model: SpeckleModel, level: float | None = None) -> tuple[float, float]:
    """Mean and variance of ``log n`` for a speckle model.

    Needed to undo the bias of homomorphic filtering: ``E[log g] = log f +
    E[log n]`` with ``E[log n] < 0`` (Jensen), so ``exp`` of a filtered log image
    is ``f * exp(E[log n])`` and must be divided by ``exp(E[log n])``.

    Parameters
    ----------
    model : {"gaussian", "uniform", "gamma"}
        Speckle model of :func:`add_speckle`.
    level : float, optional
        Its variance (``gamma``: looks ``L``); default :data:`DEFAULT_LEVELS`.

    Returns
    -------
    mean, variance : float
        ``gamma``: exactly ``psi(L) - log L`` and ``psi'(L)``. ``uniform``: the
        closed form ``((1+a) log(1+a) - (1-a) log(1-a)) / (2a) - 1`` and the
        matching second moment, ``a = sqrt(3 v)``. ``gaussian``: 64-point
        Gauss-Hermite quadrature of ``log max(n, 1e-3)`` (``n = 1 + sqrt(v) z``
        is negative with probability ``Phi(-1/sqrt(v))``, 3e-7 at ``v = 0.04``;
        those pixels are clipped by the log transform in the same way).

    Examples
    --------
    >>> mean, var = log_multiplier_moments("gamma", 1.0)   # exponential intensity
    >>> round(mean, 4)   # -Euler's gamma
    -0.5772
    """
    from scipy import special

    model, level = _check_model(model, level)
    if model == "gamma":
        return float(special.digamma(level) - math.log(level)), float(special.polygamma(1, level))
    if model == "uniform":
        a = math.sqrt(3.0 * level)

        # int t^k log t: antiderivatives of log t and log^2 t on [1-a, 1+a].
        def first(t: float) -> float:
            return t * math.log(t) - t

        def second(t: float) -> float:
            return t * (math.log(t) ** 2 - 2 * math.log(t) + 2)

        mean = (first(1 + a) - first(1 - a)) / (2 * a)
        square = (second(1 + a) - second(1 - a)) / (2 * a)
        return mean, square - mean * mean
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    weights = weights / weights.sum()
    logs = np.log(np.maximum(1.0 + math.sqrt(level) * nodes, 1e-3))
    mean = float(weights @ logs)
    return mean, float(weights @ (logs - mean) ** 2)


# --------------------------------------------------------------------------- research noise


def _as_real_image(image: ArrayLike, *, func: str) -> np.ndarray:
    x = np.asarray(image)
    if x.dtype == object or np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise TypeError(f"{func}: image must be a real numeric array, got dtype {x.dtype}")
    return x


def _add_speckle(image: np.ndarray, model: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """Deterministic core of :func:`add_speckle`: the generator is an argument."""
    real = np.float32 if image.dtype == np.float32 else np.float64
    n = _draw_multiplier(image.shape, model, level, rng)
    return np.asarray(image.astype(np.float64) * n).astype(real, copy=False)


def add_speckle(
    image: ArrayLike,
    *,
    model: SpeckleModel = "gaussian",
    level: float | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Multiplicative speckle ``g = f * n`` with ``E[n] = 1`` (seed paper, Eq. (2)).

    Parameters
    ----------
    image : array_like
        Real image of any shape (integer images are converted to float first;
        nothing is clipped or rescaled).
    model : {"gaussian", "uniform", "gamma"}, optional
        ``"gaussian"``: ``n = 1 + N(0, v)``, scikit-image's
        ``random_noise(mode='speckle')`` (which computes ``f + f n'``, the same
        thing) without its clipping. ``"uniform"``: ``n = 1 + U(-a, a)`` with
        variance ``a^2/3 = v``, MATLAB's ``imnoise(I, 'speckle', v)``.
        ``"gamma"``: fully developed ``L``-look intensity speckle, ``n ~
        Gamma(L, 1/L)`` (mean 1, variance ``1/L``) [1]_.
    level : float, optional
        Variance ``v`` (``gaussian``, ``uniform``; must be < 1/3 for
        ``uniform``) or looks ``L`` (``gamma``). Defaults: 0.01, 0.05, 4
        (:data:`DEFAULT_LEVELS`). The Deep-KEDI pipeline default is
        ``model=PAPER_MODEL, level=PAPER_LEVEL`` (uniform, 0.05), our
        assumption: the paper gives no distribution or variance.
    rng : numpy.random.Generator or int, optional
        Source of the noise, or a seed for :func:`numpy.random.default_rng`.
        Default: fresh OS entropy. Research noise is not a secret; for keyed,
        removable noise use
        :class:`deepkedi.analysis.reversible_speckle.ReversibleSpeckle`.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, else ``float64``; the shape of
        ``image``. Zeros stay zero. A Gaussian ``n`` can be negative (with
        probability ``Phi(-1/sqrt(v))``); it is not clipped.

    References
    ----------
    .. [1] J. W. Goodman, "Some fundamental properties of speckle", *J. Opt.
       Soc. Am.* 66(11), 1145-1150 (1976). :doi:`10.1364/JOSA.66.001145`

    Examples
    --------
    >>> g = add_speckle(np.full((256, 256), 100.0), model="gamma", level=4, rng=0)
    >>> round(float(g.mean()) / 100, 1), round(float(g.var()) / 100**2, 2)
    (1.0, 0.25)
    """
    x = _as_real_image(image, func="add_speckle")
    model_name, value = _check_model(model, level)
    if isinstance(rng, np.random.Generator):
        generator = rng
    elif rng is None or isinstance(rng, (int, np.integer)):
        generator = np.random.default_rng(rng)
    else:
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
    return _add_speckle(x, model_name, value, generator)
