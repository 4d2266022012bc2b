"""Speckle noise: add it, remove it blindly in the ripplet domain, or reversibly with a key.

Deep-KEDI's pre-processing adds speckle to a medical image before encryption and
removes it after decryption with the discrete ripplet transform (seed paper,
Sec. "pre-processing", Eq. (2) and Eq. (11)). Speckle is multiplicative,

    g = f * n,        E[n] = 1,

and the paper turns it additive with a log transform (homomorphic filtering),
``log g = log f + log n``, filters the ripplet coefficients of ``log g`` and
inverts. This module gives three tools:

- :func:`add_speckle` -- research noise in the conventions of scikit-image
  (Gaussian ``n``), MATLAB ``imnoise`` (uniform ``n``) and fully developed
  ``L``-look speckle (Gamma ``n``).
- :func:`despeckle_ripplet` -- the paper's blind removal: log, ripplet forward,
  BayesShrink per band with the noise estimated from the finest scale,
  inverse, exp with bias correction. It only *estimates* ``f``.
- :class:`ReversibleSpeckle` -- keyed speckle whose holder removes it
  *exactly*: the multiplier field comes from a ChaCha20 keystream, so the key
  holder regenerates it and divides it out. This is what a pipeline that must
  give back the original pixels needs; the paper's blind despeckling cannot.

Neither kind of speckle is encryption: speckle hides nothing from an attacker
(the structure of the image stays visible, see the paper's own Fig. 6b).

Paper default (our assumption)
------------------------------
The paper gives neither the noise distribution nor its variance. Its figures
and tooling are MATLAB-style (``imnoise``), so the pipeline default here is
MATLAB's ``imnoise(I, 'speckle')``: uniform ``n`` of variance 0.05
(:data:`PAPER_MODEL`, :data:`PAPER_LEVEL`). This is our choice, not the paper's
statement. :func:`add_speckle` itself defaults to scikit-image's Gaussian
``n`` of variance 0.01, the Python convention.

References
----------
.. [1] J. W. Goodman, "Some fundamental properties of speckle", *J. Opt. Soc.
   Am.* 66(11), 1145-1150 (1976). :doi:`10.1364/JOSA.66.001145`
.. [2] S. G. Chang, B. Yu and M. Vetterli, "Adaptive wavelet thresholding for
   image denoising and compression", *IEEE Trans. Image Process.* 9(9),
   1532-1546 (2000). :doi:`10.1109/83.862633`
.. [3] J. Xu, L. Yang and D. Wu, "Ripplet: A new transform for image
   processing", *J. Vis. Commun. Image Represent.* 21(7), 627-639 (2010).
   :doi:`10.1016/j.jvcir.2010.04.002`
.. [4] D. J. Bernstein, "ChaCha, a variant of Salsa20" (2008); Y. Nir and
   A. Langley, RFC 8439 (2018). :doi:`10.17487/RFC8439`
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import operator
import os
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deepkedi.transforms.ripplet import angles_per_scale, default_scales, ripplet_forward, ripplet_inverse

__all__ = [
    "DEFAULT_LEVELS",
    "PAPER_LEVEL",
    "PAPER_MODEL",
    "SPECKLE_MODELS",
    "ReversibleSpeckle",
    "add_speckle",
    "despeckle_ripplet",
    "despeckle_working_bytes",
    "log_multiplier_moments",
]

SpeckleModel = Literal["gaussian", "uniform", "gamma"]

#: The speckle models: ``n = 1 + N(0, v)``, ``n = 1 + U(-a, a)`` with ``a^2/3 = v``,
#: ``n ~ Gamma(L, 1/L)``.
SPECKLE_MODELS: Final = ("gaussian", "uniform", "gamma")

#: Default ``level`` per model: variance 0.01 (scikit-image ``random_noise``),
#: variance 0.05 (MATLAB ``imnoise``), 4 looks.
DEFAULT_LEVELS: Final = {"gaussian": 0.01, "uniform": 0.05, "gamma": 4.0}

#: Model the Deep-KEDI pipeline uses by default: MATLAB ``imnoise`` speckle
#: (our assumption; the paper names no distribution).
PAPER_MODEL: Final = "uniform"
#: Variance the pipeline uses by default (MATLAB's default; our assumption).
PAPER_LEVEL: Final = 0.05

# Smallest keyed multiplier: keeps g / n well conditioned and n > 0 (a Gaussian
# n = 1 + sigma z goes negative at z < -1/sigma).
_REVERSIBLE_FLOOR: Final = 0.05
_HKDF_INFO: Final = b"deepkedi/v1 reversible speckle"
_TWEAK_LABEL: Final = b"deepkedi/v1 reversible speckle tweak"
# ChaCha20's 32-bit block counter covers 2^32 blocks of 64 bytes; 8 bytes a pixel.
_MAX_PIXELS: Final = (1 << 32) * 64 // 8
# Integer dtypes ReversibleSpeckle accepts, by itemsize: the float type that
# carries them exactly (see ReversibleSpeckle's docstring for the bound).
_CARRIER: Final = {1: np.float32, 2: np.float32, 4: np.float64}
# Log level given to the zero pixels of a speckled image before filtering: a low
# percentile of the non-zero pixels' log (5 % won over 1 %, the minimum and the
# mean on the corpus; see despeckle_ripplet).
_FILL_PERCENTILE: Final = 5.0
# MAD of a standard normal: median(|z|) = 0.6745 (Donoho-Johnstone).
_MAD_NORMAL: Final = 0.6744897501960817


# --------------------------------------------------------------------------- models


def _check_model(model: object, level: object) -> tuple[str, float]:
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
    return str(model), value


def _multiplier_from_uniforms(u: NDArray[np.float64], model: str, level: float) -> NDArray[np.float64]:
    """Speckle multiplier ``n`` from uniforms in the open interval (0, 1), by inverse CDF."""
    from scipy import special

    if model == "gaussian":
        return 1.0 + math.sqrt(level) * special.ndtri(u)
    if model == "uniform":
        return 1.0 + math.sqrt(12.0 * level) * (u - 0.5)
    return special.gammaincinv(level, u) / level


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
        removable noise use :class:`ReversibleSpeckle`.

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


# --------------------------------------------------------------------------- blind despeckling


@functools.lru_cache(maxsize=8)
def _band_noise_gains(
    shape: tuple[int, int], c: float, d: float, scales: int | None, coarse_angles: int
) -> tuple[tuple[float, ...], ...]:
    """``||psi_(j,l)||_2`` per band: the std of band ``(j, l)`` under unit white noise.

    Band ``(j, l)`` of white noise ``e`` (variance ``s^2``) is the circular
    convolution of ``e`` with the atom ``psi = IFFT(U_(j,l))``, so each
    coefficient has variance ``s^2 ||psi||^2 = s^2 ||U||^2 / N`` (Parseval).
    ``psi`` is the band of a unit impulse, which reuses the transform's cached
    windows.
    """
    impulse = np.zeros(shape, dtype=np.float64)
    impulse[0, 0] = 1.0
    atoms = ripplet_forward(impulse, c=c, d=d, scales=scales, coarse_angles=coarse_angles)
    return tuple(tuple(math.sqrt(float(np.sum(band * band))) for band in scale) for scale in atoms.bands)


def _estimate_log_sigma(finest: tuple[np.ndarray, ...], gains: tuple[float, ...], mask: np.ndarray) -> float:
    """Noise std of the log image: median over the finest bands of MAD / 0.6745 / gain.

    A band whose window holds no frequency of the grid (gain 0: a 1-pixel-high image has
    no vertical frequencies) carries no noise and is left out; with none left the noise
    is not measurable and 0 is returned (no band is then shrunk for noise).
    """
    estimates = []
    for band, gain in zip(finest, gains):
        if gain <= 0:
            continue
        values = np.abs(band[mask]) if mask.any() else np.abs(band).ravel()
        estimates.append(float(np.median(values)) / _MAD_NORMAL / gain)
    return float(np.median(estimates)) if estimates else 0.0


def _soft(band: np.ndarray, threshold: float) -> np.ndarray:
    if math.isinf(threshold):
        return np.zeros_like(band)
    return np.sign(band) * np.maximum(np.abs(band) - threshold, 0.0)


def _soft_in_place(band: np.ndarray, threshold: float) -> None:
    """:func:`_soft` written over ``band`` (one band-sized temporary instead of three)."""
    if math.isinf(threshold):
        band[...] = 0.0
        return
    magnitude = np.abs(band)
    magnitude -= threshold
    np.maximum(magnitude, 0.0, out=magnitude)
    np.copysign(magnitude, band, out=band)


def _bayes_threshold(band: np.ndarray, sigma_band: float) -> float:
    """BayesShrink ``T = sigma_n^2 / sigma_x``, ``sigma_x = sqrt(max(sigma_y^2 - sigma_n^2, 0))`` [2]_."""
    sigma_y2 = float(np.mean(band.astype(np.float64) ** 2))
    sigma_x2 = sigma_y2 - sigma_band * sigma_band
    if sigma_x2 <= 0:
        return math.inf
    return sigma_band * sigma_band / math.sqrt(sigma_x2)


def despeckle_ripplet(
    image: ArrayLike,
    *,
    c: float = 1.0,
    d: float = 2.0,
    scales: int | None = None,
    coarse_angles: int = 8,
    threshold: Literal["bayes"] = "bayes",
    noise_model: SpeckleModel | None = None,
    epsilon: float = 1e-3,
) -> np.ndarray:
    """Blind speckle removal in the ripplet domain (seed paper, Eqs. (2)-(11)).

    Steps:

    1. Log transform. With ``s = max(g)``, ``y = log(max(g, 0) / s + epsilon)``.
       For ``f >> epsilon s`` this is ``log f - log s + log n``: the
       multiplicative noise becomes additive, of variance ``Var(log n)``
       wherever the image is not dark. ``epsilon`` bounds the log of dark
       pixels and the scale ``s`` makes the result independent of the
       grey-level unit. Speckle keeps zeros (``g = 0`` iff ``f = 0``), so zero
       pixels of ``g`` are known exactly: they are set back to 0 in the result,
       and in ``y`` they are filled with the 5th percentile of ``y`` over the
       non-zero pixels. Left at ``log epsilon`` the zero background of a CT or
       MR slice is a cliff that thresholding smears into the tissue (on the
       512 x 512 CT of the corpus: 30.0 dB without the fill, 36.0 dB with it).
    2. Ripplet forward (:func:`~deepkedi.transforms.ripplet.ripplet_forward`,
       ``c, d, scales, coarse_angles``).
    3. Noise level. The frame is undecimated and tight: band ``(j, l)`` of white
       noise of std ``sigma`` is that noise filtered by ``U_(j,l)``, with
       per-coefficient std ``sigma ||U_(j,l)||_2 / sqrt(N) = sigma
       ||psi_(j,l)||_2`` (the bands of an undecimated frame are not
       orthonormal, so their noise std is not ``sigma``). ``sigma`` is estimated
       from each finest band as ``median(|band|) / 0.6745 / ||psi||_2``
       (Donoho's MAD, taken over pixels that are not zero in ``g``, since the
       zero background of a medical image carries no noise), then the median
       over the finest directions.
    4. Thresholding, soft, per band. ``"bayes"``: BayesShrink [2]_, ``T =
       sigma_n^2 / sigma_x`` with ``sigma_n = sigma ||psi||_2`` and ``sigma_x =
       sqrt(max(mean(band^2) - sigma_n^2, 0))`` (``sigma_x = 0``: the band is
       zeroed). Cycle spinning, the usual cure for the shift variance of
       decimated wavelets, is not needed: the undecimated frame is already
       shift invariant (a spatially adaptive variant, ``sigma_x`` from a 7 x 7
       neighbourhood, was tried and lost 0.4-4 dB on the corpus, so it is not
       offered).
    5. Inverse and bias correction. The filtered log image estimates ``log f +
       E[log n]``; ``E[log n] < 0`` (about ``-Var(log n)/2``), so the result
       ``s (exp(y' - E[log n]) - epsilon)``, clipped at 0, divides the bias
       out. Blind (the default, no ``noise_model``): ``E[n] = 1`` and ``n``
       independent of ``f`` give ``E[mean(g)] = mean(f)``, so ``exp(-E[log
       n])`` is estimated as the factor that gives the result the mean of
       ``g``; this needs no distribution and no variance. With
       ``noise_model``, ``E[log n]`` is that model's at the level whose
       ``Var(log n)`` equals the estimated ``sigma^2``
       (:func:`log_multiplier_moments`). On the corpus the blind rule keeps the
       mean within 1 % for Gaussian, uniform and 1- to 4-look Gamma speckle and
       is never worse in PSNR; the model rule inherits the error of the MAD
       estimate of ``sigma`` when ``log n`` is far from Gaussian (1-look Gamma:
       means 7-19 % low, up to 1 dB worse).

    Parameters
    ----------
    image : array_like
        Speckled image ``(H, W)``, or a stack ``(S, H, W)`` despeckled slice by
        slice; any real dtype, expected non-negative (negative values, from a
        Gaussian ``n < 0``, are treated as 0).
    c, d, scales, coarse_angles
        Ripplet parameters (support, degree, band-pass scales, coarsest
        directions), see :func:`~deepkedi.transforms.ripplet.ripplet_forward`.
    threshold : {"bayes"}, optional
        Per-band BayesShrink, see step 4 (the only rule for now).
    noise_model : {"gaussian", "uniform", "gamma"}, optional
        Model used for the bias ``E[log n]``; default: none, the model-free
        mean-matching rule of step 5.
    epsilon : float, optional
        Offset of the log, relative to ``max(g)``; default ``1e-3``.

    Returns
    -------
    numpy.ndarray
        Estimate of ``f``, same shape, ``float32`` for ``float32`` input else
        ``float64``, non-negative, exactly 0 where ``image`` is 0.

    References
    ----------
    .. [1] J. Xu, L. Yang and D. Wu, "Ripplet: A new transform for image
       processing", *J. Vis. Commun. Image Represent.* 21(7), 627-639
       (2010). :doi:`10.1016/j.jvcir.2010.04.002`
    .. [2] S. G. Chang, B. Yu and M. Vetterli, "Adaptive wavelet thresholding
       for image denoising and compression", *IEEE Trans. Image Process.*
       9(9), 1532-1546 (2000). :doi:`10.1109/83.862633`
    .. [3] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by
       wavelet shrinkage", *Biometrika* 81(3), 425-455 (1994).
       :doi:`10.1093/biomet/81.3.425`

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> f = 50.0 + 100.0 * ((yy - 32) ** 2 + (xx - 32) ** 2 < 400)
    >>> g = add_speckle(f, level=0.04, rng=1)
    >>> bool(np.mean((despeckle_ripplet(g) - f) ** 2) < np.mean((g - f) ** 2) / 4)
    True
    """
    x = _as_real_image(image, func="despeckle_ripplet")
    if x.ndim == 3:
        return np.stack(
            [
                despeckle_ripplet(
                    s,
                    c=c,
                    d=d,
                    scales=scales,
                    coarse_angles=coarse_angles,
                    threshold=threshold,
                    noise_model=noise_model,
                    epsilon=epsilon,
                )
                for s in x
            ]
        )
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"despeckle_ripplet: image must be (H, W) or (S, H, W) and non-empty, got shape {x.shape}")
    if threshold != "bayes":
        raise ValueError(f"threshold must be 'bayes', got {threshold!r}")
    epsilon = float(epsilon)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be finite and > 0, got {epsilon}")
    if noise_model is not None and noise_model not in SPECKLE_MODELS:
        raise ValueError(f"noise_model must be None or one of {SPECKLE_MODELS}, got {noise_model!r}")
    real = np.float32 if x.dtype == np.float32 else np.float64
    g = np.maximum(x.astype(np.float64), 0.0)
    if not np.isfinite(g).all():
        raise ValueError("despeckle_ripplet: image holds NaN or infinite values")
    peak = float(g.max())
    if peak == 0.0:
        return np.zeros(x.shape, dtype=real)

    y = np.log(g / peak + epsilon)
    # Speckle keeps zeros (g = f n = 0 iff f = 0): those pixels are known exactly.
    # Left at log(epsilon) they form a cliff far below the tissue that thresholding
    # smears into the image, so they are filled with a low tissue level instead and
    # set back to 0 at the end. (g < 0, from a Gaussian n < 0, is filled too.)
    empty = g <= 0
    tissue = ~empty
    if empty.any() and tissue.any():
        y[empty] = np.percentile(y[tissue], _FILL_PERCENTILE)
    # The gains come from a transform of an impulse: done first, so that its bands are
    # freed before the image's are made (both at once doubled the peak).
    gains = _band_noise_gains(tuple(x.shape), float(c), float(d), scales, int(coarse_angles))
    coefs = ripplet_forward(y, c=c, d=d, scales=scales, coarse_angles=coarse_angles)
    sigma = _estimate_log_sigma(coefs.finest(), tuple(gains[-1]), tissue)

    # Shrunk in place: a thresholded copy of every band would double the coefficients'
    # memory, the largest part of the peak (the frame is undecimated).
    for j, scale in enumerate(coefs.bands):
        for l, band in enumerate(scale):
            _soft_in_place(band, _bayes_threshold(band, sigma * gains[j][l]))
    restored = ripplet_inverse(coefs)

    if noise_model is None:
        # Model-free: E[n] = 1 and n independent of f give E[mean(g)] = mean(f) over
        # the non-zero pixels, so exp(-E[log n]) is the factor that matches the means.
        level = np.exp(restored)
        keep = tissue if tissue.any() else np.ones_like(tissue)
        bias = -math.log((float(np.mean(g[keep])) / peak + epsilon) / float(np.mean(level[keep])))
        out = peak * np.maximum(level * math.exp(-bias) - epsilon, 0.0)
    else:
        bias = _model_bias(noise_model, sigma * sigma) if sigma > 0 else 0.0
        out = peak * np.maximum(np.exp(restored - bias) - epsilon, 0.0)
    out[x == 0] = 0.0
    return out.astype(real, copy=False)


#: Bytes per pixel per ripplet band that :func:`despeckle_ripplet` holds at its peak: the
#: coefficients (float64), one scale's complex spectra and the window stack. Measured
#: 18.5-22.7 from 256² to 768² (peak RSS of `kedi despeckle` less the interpreter's).
_DESPECKLE_BYTES_PER_PIXEL_BAND: Final = 24


def despeckle_working_bytes(
    shape: tuple[int, int],
    *,
    c: float = 1.0,
    d: float = 2.0,
    scales: int | None = None,
    coarse_angles: int = 8,
) -> int:
    """Estimated peak memory, in bytes, of :func:`despeckle_ripplet` on one ``(H, W)`` plane.

    The ripplet frame is undecimated: every band is a full-size plane, and the number of
    bands grows with the image (48 at 128², 112 at 512², 176 at 1024²), so memory grows
    faster than the pixel count: about 0.7 GB at 512², 4.5 GB at 1024². Callers that must
    stay within a budget (the ``kedi despeckle`` command) check this first.

    Examples
    --------
    >>> round(despeckle_working_bytes((512, 512)) / 2**20)
    678
    """
    rows, cols = (int(n) for n in shape)
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be two positive sizes, got {shape}")
    scales = default_scales((rows, cols)) if scales is None else scales
    bands = sum(angles_per_scale(scales, c=c, d=d, coarse_angles=coarse_angles))
    return _DESPECKLE_BYTES_PER_PIXEL_BAND * rows * cols * (bands + 1)


def _model_bias(model: str, log_variance: float) -> float:
    """``E[log n]`` of the model whose ``Var(log n)`` equals ``log_variance`` (bisection on the level)."""
    if model == "gamma":
        # Var(log n) = psi'(L) decreases in L.
        lo, hi = 1e-3, 1e6
        for _ in range(100):
            mid = math.sqrt(lo * hi)
            if log_multiplier_moments("gamma", mid)[1] > log_variance:
                lo = mid
            else:
                hi = mid
        return log_multiplier_moments("gamma", math.sqrt(lo * hi))[0]
    top = 0.33 if model == "uniform" else 0.5
    lo, hi = 1e-9, top
    if log_multiplier_moments(model, hi)[1] < log_variance:  # type: ignore[arg-type]
        return log_multiplier_moments(model, hi)[0]  # type: ignore[arg-type]
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if log_multiplier_moments(model, mid)[1] < log_variance:  # type: ignore[arg-type]
            lo = mid
        else:
            hi = mid
    return log_multiplier_moments(model, 0.5 * (lo + hi))[0]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reversible keyed speckle


def _keystream_uniforms(key: bytes, tweak: bytes, count: int) -> NDArray[np.float64]:
    """``count`` uniforms in (0, 1) from ChaCha20 under a per-tweak subkey.

    Subkey ``= HMAC-SHA256(key, label || tweak)`` (a PRF, so distinct tweaks
    give independent streams); ChaCha20 with a zero nonce encrypts zeros; each
    little-endian 64-bit word keeps its top 52 bits ``k`` and gives ``u = (2k +
    1) 2^-53``: the midpoints of a ``2^-52`` grid, exact in float64, symmetric
    about 1/2 and never 0 or 1 (so inverse CDFs stay finite). ``(k + 0.5)
    2^-53`` with 53 bits would not do: ``2^53 - 0.5`` rounds to ``2^53``, ``u =
    1``.
    """
    from deepkedi.keystream import chacha20_keystream

    if count > _MAX_PIXELS:
        raise ValueError(f"at most {_MAX_PIXELS} pixels per tweak, got {count}")
    subkey = hmac.new(key, _TWEAK_LABEL + tweak, hashlib.sha256).digest()
    stream = chacha20_keystream(subkey, 8 * count)
    k = np.frombuffer(stream, dtype="<u8") >> np.uint64(12)
    return (2.0 * k.astype(np.float64) + 1.0) * 2.0**-53


class ReversibleSpeckle:
    r"""Keyed multiplicative speckle that the key holder removes exactly.

    ``apply`` multiplies an integer image by a field ``n`` regenerated from the
    key and a per-image ``tweak``; ``remove`` divides it out and rounds:
    ``f = rint(g / n)``. The field comes from a ChaCha20 keystream [1]_ under
    ``HMAC-SHA256(key, label || tweak)``: uniforms on a ``2^-52`` grid, mapped by the inverse
    CDF of the model (``scipy.special.ndtri`` for Gaussian,
    ``gammaincinv`` for Gamma), then clipped to ``n >= 0.05`` so the division
    is well conditioned. For the default Gaussian ``v = 0.01`` the clip cannot
    fire (the most extreme uniform gives ``n = 1 - 0.1 * 8.2 = 0.18``); for
    1-look Gamma it moves 4.9 % of the multipliers up to 0.05.

    Speckle is *not* encryption: ``g`` shows the image. Use it as the paper's
    reversible pre-processing step, inside real encryption.

    Exactness
    ---------
    Let ``f`` be an integer, ``n >= 0.05`` the float64 multiplier,
    ``u = 2^-53`` and ``u_c`` the unit roundoff of the carrier (``2^-24`` for
    float32, ``2^-53`` for float64). ``apply`` computes ``g = fl_c(fl64(f n))
    = f n (1 + d1)(1 + d2)`` with ``|d1| <= u``, ``|d2| <= u_c`` (``f`` is
    exact in float64; ``|f n| >= 0.05`` or 0, so no underflow; ``apply``
    refuses a level so large that ``f n`` overflows the carrier). ``remove`` computes ``fl64(g / n) = f (1 + d1)(1 +
    d2)(1 + d3)``, ``|d3| <= u``. Hence

    .. math:: |g/n - f| \le |f| (u_c + 2u + O(u u_c)).

    float32 carrier for 8/16-bit integers, ``|f| <= 2^16``: ``<= 2^16 (2^-24 +
    2^-52 + ...) < 2^-7.99``, far below 1/2. float64 carrier for 32-bit
    integers, ``|f| <= 2^32``: ``<= 2^32 * 3 * 2^-53 < 2^-19``. So ``rint``
    returns ``f`` exactly, and ``f`` fits the original dtype. Zeros stay zero.
    64-bit integers (not exactly representable in float64) and floating-point
    images (not integers, so ``rint`` cannot restore them) are refused.

    Parameters
    ----------
    key : bytes
        32 secret bytes. Derive them with :meth:`from_master` or draw them with
        ``os.urandom(32)``.
    model : {"gaussian", "uniform", "gamma"}, optional
        Distribution of ``n`` before clipping, as in :func:`add_speckle`.
    level : float, optional
        Variance or looks; default :data:`DEFAULT_LEVELS`.

    References
    ----------
    .. [1] Y. Nir and A. Langley, "ChaCha20 and Poly1305 for IETF Protocols",
       RFC 8439 (2018). :doi:`10.17487/RFC8439`
    .. [2] H. Krawczyk and P. Eronen, "HMAC-based Extract-and-Expand Key
       Derivation Function (HKDF)", RFC 5869 (2010). :doi:`10.17487/RFC5869`

    Examples
    --------
    >>> speckle = ReversibleSpeckle(bytes(range(32)))
    >>> f = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    >>> g = speckle.apply(f, tweak=b"image 1")
    >>> g.dtype
    dtype('float32')
    >>> bool(np.array_equal(speckle.remove(g, np.uint16, tweak=b"image 1"), f))
    True
    """

    __slots__ = ("_key", "_level", "_model")

    def __init__(self, key: bytes, *, model: SpeckleModel = "gaussian", level: float | None = None) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError(f"key must be bytes, got {type(key).__name__}")
        key = bytes(key)
        if len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {len(key)}; derive one with ReversibleSpeckle.from_master")
        self._key = key
        self._model, self._level = _check_model(model, level)

    def __repr__(self) -> str:
        return f"ReversibleSpeckle(<key>, model={self._model!r}, level={self._level!r})"

    @property
    def model(self) -> str:
        """Distribution of the multiplier."""
        return self._model

    @property
    def level(self) -> float:
        """Variance (or looks, for ``gamma``) of the multiplier."""
        return self._level

    @classmethod
    def from_master(
        cls, secret: bytes, salt: bytes, *, model: SpeckleModel = "gaussian", level: float | None = None
    ) -> ReversibleSpeckle:
        """Derive the key with HKDF-SHA256 [2]_ (``info = b"deepkedi/v1 reversible speckle"``).

        Parameters
        ----------
        secret : bytes
            Master secret (high entropy; this is not a password hash).
        salt : bytes
            HKDF salt.
        model, level
            As in the constructor.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not isinstance(secret, (bytes, bytearray)) or not isinstance(salt, (bytes, bytearray)):
            raise TypeError("secret and salt must be bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(salt), info=_HKDF_INFO).derive(bytes(secret))
        return cls(key, model=model, level=level)

    @staticmethod
    def new_tweak() -> bytes:
        """16 random bytes from ``os.urandom``: a fresh per-image tweak to store beside the image."""
        return os.urandom(16)

    def multiplier(self, shape: tuple[int, ...], *, tweak: bytes) -> NDArray[np.float64]:
        """The field ``n`` (float64, ``>= 0.05``) for an image of ``shape`` and this tweak."""
        tweak = _check_tweak(tweak)
        shape = tuple(operator.index(s) for s in shape)
        count = math.prod(shape)
        u = _keystream_uniforms(self._key, tweak, count)
        n = _multiplier_from_uniforms(u, self._model, self._level)
        return np.maximum(n, _REVERSIBLE_FLOOR).reshape(shape)

    def apply(self, image: ArrayLike, *, tweak: bytes) -> np.ndarray:
        """Speckle an integer image: ``g = f * n``.

        Parameters
        ----------
        image : array_like of int
            8-, 16- or 32-bit signed or unsigned integers, any shape and byte order.
        tweak : bytes
            Per-image value, never reused with the same key for another image
            (:meth:`new_tweak`); ``remove`` needs the same one.

        Returns
        -------
        numpy.ndarray
            ``float32`` for 8/16-bit input, ``float64`` for 32-bit input.

        Raises
        ------
        TypeError
            For float, bool, complex or 64-bit integer images.
        """
        f = np.asarray(image)
        carrier = _carrier(f.dtype, func="apply")
        n = self.multiplier(f.shape, tweak=tweak)
        with np.errstate(over="ignore"):
            g = np.asarray(f.astype(np.float64) * n).astype(carrier)
        if not np.isfinite(g).all():
            # Only a huge variance (or very few looks) can push f * n past float32's range.
            raise ValueError(f"level={self._level} makes f * n overflow {g.dtype}; use a smaller speckle level")
        return g

    def remove(self, noisy: ArrayLike, dtype: np.dtype | type | str, *, tweak: bytes) -> np.ndarray:
        """Undo :meth:`apply`: ``rint(g / n)`` cast back to ``dtype``, exactly the original.

        Parameters
        ----------
        noisy : array_like
            Output of :meth:`apply`.
        dtype : numpy dtype
            The original image's dtype.
        tweak : bytes
            The tweak given to :meth:`apply`.

        Returns
        -------
        numpy.ndarray
            The original image (with the right key and tweak); with a wrong one,
            values clipped to the dtype's range that are not the original.
        """
        target = np.dtype(dtype)
        carrier = _carrier(target, func="remove")
        g = np.asarray(noisy)
        if g.dtype != carrier:
            raise TypeError(f"remove: a {target} image is carried as {np.dtype(carrier)}, got {g.dtype}")
        n = self.multiplier(g.shape, tweak=tweak)
        info = np.iinfo(target)
        with np.errstate(invalid="ignore", over="ignore"):
            values = np.clip(np.rint(g.astype(np.float64) / n), info.min, info.max)
        return np.asarray(values).astype(target)


def _check_tweak(tweak: object) -> bytes:
    if not isinstance(tweak, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"tweak must be bytes (one per image, e.g. ReversibleSpeckle.new_tweak()), got {type(tweak).__name__}"
        )
    return bytes(tweak)


def _carrier(dtype: np.dtype, *, func: str) -> type:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize not in _CARRIER:
        raise TypeError(
            f"ReversibleSpeckle.{func}: only 8/16/32-bit integer images are restored exactly, got {dtype}; "
            "floating-point images cannot be rounded back (quantise them first), 64-bit integers do not fit float64"
        )
    return _CARRIER[dtype.itemsize]
