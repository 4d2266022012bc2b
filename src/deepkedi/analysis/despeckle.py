"""Classic speckle filters and a harness that scores them against the ripplet despeckler.

Speckle is multiplicative, ``g = f · n`` with ``E[n] = 1``; the filters here are the
baselines a new despeckler is measured against:

* :func:`median_despeckle` — a plain median;
* :func:`lee_filter` — Lee's local linear minimum-mean-square-error filter (1980);
* :func:`frost_filter` — Frost's adaptive exponential kernel (1982);
* :func:`wavelet_bayes` — BayesShrink soft thresholding of wavelet coefficients;
* :func:`nl_means` — non-local means with an estimated noise level.

Every filter takes one 2-D float image and returns float64 of the same shape; the
neighbourhood statistics are computed with :mod:`scipy.ndimage` box filters, never a
Python loop over pixels.

:func:`compare_despecklers` adds speckle with
:func:`deepkedi.transforms.speckle.add_speckle`, runs each method, and scores it with
:func:`deepkedi.metrics.psnr`, :func:`~deepkedi.metrics.ssim` and
:func:`~deepkedi.metrics.mse` on images normalised to [0, 1] (``data_range=1``). The
ripplet despeckler (``DRT c=… d=…`` methods) is included when
:func:`deepkedi.transforms.ripplet_despeckle.despeckle_ripplet` imports; when it does not, its
rows say ``status="unavailable"`` with the reason, never silently missing.
"""

from __future__ import annotations

import functools
import importlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from deepkedi.metrics import mse, psnr, ssim

__all__ = [
    "BASELINES",
    "DRT_SETTINGS",
    "DespeckleRow",
    "compare_despecklers",
    "despeckle_methods",
    "estimate_speckle_variance",
    "frost_filter",
    "lee_filter",
    "median_despeckle",
    "nl_means",
    "normalise_unit",
    "wavelet_bayes",
]

Despeckler = Callable[[np.ndarray], np.ndarray]

#: ``(c, d)`` ripplet parameters compared by default, as ``"DRT c=… d=…"`` methods.
DRT_SETTINGS: tuple[tuple[float, float], ...] = ((1.0, 2.0), (1.0, 3.0), (2.0, 2.0))

# Local means below this fraction of the image's peak are treated as background: a
# multiplicative model carries no information about noise where the signal is ~0.
_BACKGROUND = 1e-3
# The speckle estimate uses only local means above this fraction of the peak: in the dark
# background of a medical image additive acquisition noise, not speckle, sets var/mean².
_ESTIMATE_FLOOR = 0.1


def _as_plane(image: Any, *, func: str) -> np.ndarray:
    """One 2-D finite image as float64 (a copy when the input is not float64)."""
    plane = np.asarray(image)
    if plane.ndim != 2:
        raise ValueError(f"{func}() needs one 2-D image plane, got shape {plane.shape}")
    if plane.dtype.kind not in "uifb":
        raise TypeError(f"{func}() needs a numeric image, not {plane.dtype}")
    plane = plane.astype(np.float64, copy=False)
    if not np.all(np.isfinite(plane)):
        raise ValueError(f"{func}() got an image holding NaN or infinite values")
    return plane


def _check_size(size: int, *, func: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"{func}() needs an odd positive window size, got {size!r}")
    return int(size)


def _local_moments(plane: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-window mean and (biased) variance at every pixel, reflecting at the border."""
    mean = ndimage.uniform_filter(plane, size=size, mode="reflect")
    mean_sq = ndimage.uniform_filter(plane * plane, size=size, mode="reflect")
    return mean, np.maximum(mean_sq - mean * mean, 0.0)


def _signal_mask(mean: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(mean))) if mean.size else 0.0
    return np.abs(mean) > _BACKGROUND * peak if peak > 0 else np.zeros(mean.shape, bool)


def estimate_speckle_variance(image: Any, *, size: int = 7) -> float:
    """Estimate the variance of unit-mean multiplicative noise from one speckled image.

    Under ``g = f · n`` the squared local coefficient of variation ``var(g) / mean(g)²``
    equals ``var(n)`` wherever ``f`` is flat, and exceeds it at edges and texture. The
    median over the pixels whose local mean is at least 10 % of the peak local mean is
    therefore a robust estimate that errs high on strongly textured images. Darker
    pixels are left out: in the background of a medical image additive acquisition
    noise, not speckle, sets the ratio, and it can be many times ``var(n)``.

    Parameters
    ----------
    image
        A 2-D speckled image.
    size
        Odd side of the square window of the local statistics.

    Returns
    -------
    float
        The estimated ``var(n)``; 0.0 for an image without signal.

    References
    ----------
    .. [1] J.-S. Lee, "Digital image enhancement and noise filtering by use of local
       statistics", IEEE TPAMI 2 (1980) 165–168. doi:10.1109/TPAMI.1980.4766994

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = np.full((128, 128), 0.5) * rng.gamma(25.0, 1 / 25.0, (128, 128))
    >>> round(estimate_speckle_variance(g), 2)  # Gamma(25) noise: variance 1/25
    0.04
    """
    plane = _as_plane(image, func="estimate_speckle_variance")
    size = _check_size(size, func="estimate_speckle_variance")
    mean, var = _local_moments(plane, size)
    peak = float(np.max(np.abs(mean)))
    mask = np.abs(mean) >= _ESTIMATE_FLOOR * peak
    if peak <= 0 or not mask.any():
        return 0.0
    return float(np.median(var[mask] / (mean[mask] * mean[mask])))


def median_despeckle(image: Any, *, size: int = 3) -> np.ndarray:
    """Median of each ``size × size`` neighbourhood (reflecting at the border).

    Examples
    --------
    >>> spike = np.zeros((5, 5)); spike[2, 2] = 9.0
    >>> float(median_despeckle(spike).max())  # an isolated bright speckle is removed
    0.0
    """
    plane = _as_plane(image, func="median_despeckle")
    size = _check_size(size, func="median_despeckle")
    return ndimage.median_filter(plane, size=size, mode="reflect").astype(np.float64, copy=False)


def lee_filter(image: Any, *, size: int = 7, noise_variance: float | None = None) -> np.ndarray:
    """Lee's local-statistics MMSE filter for multiplicative speckle.

    With local mean ``m`` and variance ``v`` of the observed ``g`` over a
    ``size × size`` window and ``σ²`` the variance of the unit-mean noise, the
    signal variance is ``v_f = (v − m² σ²) / (1 + σ²)`` (clipped at 0) and the
    estimate is ``f̂ = m + k (g − m)`` with ``k = v_f / v`` ([1]_, eqs. 10–11): flat
    regions are replaced by their mean, edges (``v ≫ m² σ²``) kept.

    Parameters
    ----------
    image
        A 2-D speckled image.
    size
        Odd side of the square window.
    noise_variance
        ``σ²``, the variance of the multiplicative noise (``σ`` is its coefficient of
        variation). When None it is estimated from the image with
        :func:`estimate_speckle_variance` (median squared local coefficient of
        variation over the pixels at least 10 % as bright as the brightest window).

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``image``.

    References
    ----------
    .. [1] J.-S. Lee, "Digital image enhancement and noise filtering by use of local
       statistics", IEEE TPAMI 2 (1980) 165–168. doi:10.1109/TPAMI.1980.4766994

    Examples
    --------
    >>> flat = np.full((16, 16), 2.0)
    >>> bool(np.allclose(lee_filter(flat), flat))
    True
    """
    plane = _as_plane(image, func="lee_filter")
    size = _check_size(size, func="lee_filter")
    if noise_variance is None:
        noise_variance = estimate_speckle_variance(plane, size=size)
    sigma2 = float(noise_variance)
    if not (math.isfinite(sigma2) and sigma2 >= 0):
        raise ValueError(f"noise_variance must be finite and non-negative, got {noise_variance!r}")
    mean, var = _local_moments(plane, size)
    signal_var = np.maximum(var - mean * mean * sigma2, 0.0) / (1.0 + sigma2)
    gain = np.divide(signal_var, var, out=np.zeros_like(var), where=var > 0)
    return mean + gain * (plane - mean)


def frost_filter(image: Any, *, size: int = 7, damping: float = 2.0) -> np.ndarray:
    """Frost's adaptive filter: an exponential kernel sharpened where the image varies.

    At each pixel the output is the weighted mean of its ``size × size`` neighbours
    with weights ``exp(−K |t|)``, ``|t|`` the Euclidean distance to the centre and
    ``K = damping · v / m²`` the damped squared local coefficient of variation ([1]_,
    eq. 19): a flat region (small ``K``) is averaged widely, an edge (large ``K``)
    keeps its centre pixel. The loop runs over the ``size²`` window offsets, each a
    whole-image shift, so a 7 × 7 window costs 49 vectorised passes.

    Parameters
    ----------
    image
        A 2-D speckled image.
    size
        Odd side of the square window.
    damping
        The damping factor (2 is customary); larger keeps more detail.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``image``.

    References
    ----------
    .. [1] V. S. Frost, J. A. Stiles, K. S. Shanmugan, J. C. Holtzman, "A model for
       radar images and its application to adaptive digital filtering of
       multiplicative noise", IEEE TPAMI 4 (1982) 157–166.
       doi:10.1109/TPAMI.1982.4767223

    Examples
    --------
    >>> flat = np.full((16, 16), 3.0)
    >>> bool(np.allclose(frost_filter(flat), flat))
    True
    """
    plane = _as_plane(image, func="frost_filter")
    size = _check_size(size, func="frost_filter")
    damping = float(damping)
    if not (math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be finite and non-negative, got {damping!r}")
    mean, var = _local_moments(plane, size)
    ratio = np.divide(var, mean * mean, out=np.zeros_like(var), where=_signal_mask(mean))
    k = damping * ratio
    half = size // 2
    padded = np.pad(plane, half, mode="reflect") if half else plane
    rows, cols = plane.shape
    numerator = np.zeros_like(plane)
    denominator = np.zeros_like(plane)
    for dr in range(-half, half + 1):
        for dc in range(-half, half + 1):
            weight = np.exp(-k * math.hypot(dr, dc))
            shifted = padded[half + dr : half + dr + rows, half + dc : half + dc + cols]
            numerator += weight * shifted
            denominator += weight
    return numerator / denominator


def _skimage_restoration() -> Any:
    # scikit-image and PyWavelets (its wavelet denoiser's backend) are core dependencies,
    # imported here so that importing this module stays light.
    from skimage import restoration

    return restoration


def wavelet_bayes(image: Any) -> np.ndarray:
    """BayesShrink soft thresholding of the wavelet coefficients (scikit-image).

    Calls ``skimage.restoration.denoise_wavelet(method="BayesShrink", mode="soft",
    rescale_sigma=True)``: per band the threshold is ``σ_n² / σ_x`` with
    ``σ_n = median(|finest diagonal band|) / 0.6745``. The noise is treated as
    additive; no logarithm is taken.

    References
    ----------
    .. [1] S. G. Chang, B. Yu, M. Vetterli, "Adaptive wavelet thresholding for image
       denoising and compression", IEEE TIP 9 (2000) 1532–1546. doi:10.1109/83.862633

    Examples
    --------
    >>> noisy = 0.5 + 0.05 * np.random.default_rng(0).standard_normal((64, 64))
    >>> bool(wavelet_bayes(noisy).std() < noisy.std())
    True
    """
    plane = _as_plane(image, func="wavelet_bayes")
    restoration = _skimage_restoration()
    out = restoration.denoise_wavelet(plane, method="BayesShrink", mode="soft", rescale_sigma=True, channel_axis=None)
    return np.asarray(out, dtype=np.float64)


def nl_means(image: Any) -> np.ndarray:
    """Non-local means (scikit-image, fast mode) at the estimated noise level.

    ``σ`` comes from ``skimage.restoration.estimate_sigma`` (wavelet MAD); the filter
    runs with 5 × 5 patches searched over a 13 × 13 area, ``h = 0.8 σ`` and
    ``sigma=σ``, scikit-image's documented setting for fast mode.

    References
    ----------
    .. [1] A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image
       denoising", CVPR 2005, 60–65. doi:10.1109/CVPR.2005.38

    Examples
    --------
    >>> noisy = 0.5 + 0.05 * np.random.default_rng(0).standard_normal((64, 64))
    >>> bool(nl_means(noisy).std() < noisy.std())
    True
    """
    plane = _as_plane(image, func="nl_means")
    restoration = _skimage_restoration()
    sigma = float(restoration.estimate_sigma(plane, channel_axis=None))
    out = restoration.denoise_nl_means(
        plane, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=None
    )
    return np.asarray(out, dtype=np.float64)


#: The classic despecklers, in the order tables list them.
BASELINES: dict[str, Despeckler] = {
    "median 3x3": median_despeckle,
    "Lee 7x7": lee_filter,
    "Frost 7x7": frost_filter,
    "BayesShrink": wavelet_bayes,
    "NL-means": nl_means,
}


def _drt_name(c: float, d: float) -> str:
    return f"DRT c={c:g} d={d:g}"


def despeckle_methods(
    drt_settings: Iterable[tuple[float, float]] = DRT_SETTINGS,
) -> tuple[dict[str, Despeckler], dict[str, str]]:
    """The available despecklers and the reasons any are not.

    Parameters
    ----------
    drt_settings
        ``(c, d)`` pairs of the ripplet despeckler to include.

    Returns
    -------
    methods : dict
        :data:`BASELINES` followed by ``"DRT c=… d=…"`` entries when
        :func:`deepkedi.transforms.ripplet_despeckle.despeckle_ripplet` imports.
    unavailable : dict
        Method name → why it cannot run (the import error), for every DRT entry
        when the ripplet despeckler does not import.
    """
    methods: dict[str, Despeckler] = dict(BASELINES)
    unavailable: dict[str, str] = {}
    settings = list(drt_settings)
    try:
        despeckle_ripplet = importlib.import_module("deepkedi.transforms.ripplet_despeckle").despeckle_ripplet
    except (ImportError, AttributeError) as error:
        reason = (
            f"deepkedi.transforms.ripplet_despeckle.despeckle_ripplet not importable ({type(error).__name__}: {error})"
        )
        for c, d in settings:
            unavailable[_drt_name(c, d)] = reason
    else:
        for c, d in settings:
            methods[_drt_name(c, d)] = functools.partial(despeckle_ripplet, c=c, d=d)
    return methods, unavailable


@dataclass(frozen=True)
class DespeckleRow:
    """One method on one speckled image: scores against the clean image and runtime.

    Attributes
    ----------
    image, method
        Names; ``method="noisy"`` scores the speckled input itself.
    model, level
        The speckle setting as passed to ``add_speckle`` (``None``: its default).
    psnr, ssim, mse
        Against the clean image, both in [0, 1] with ``data_range=1``; NaN when
        ``status`` is not ``"ok"``.
    seconds
        Wall-clock time of the method call (0 for ``"noisy"``; NaN when not run).
    status
        ``"ok"``, ``"unavailable"`` (cannot be imported) or ``"failed"`` (raised).
    note
        Why a method is unavailable or failed; empty otherwise.
    """

    image: str
    method: str
    model: str | None
    level: float | None
    psnr: float
    ssim: float
    mse: float
    seconds: float
    status: str = "ok"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict (JSON/CSV-safe values)."""
        return asdict(self)


def normalise_unit(image: Any) -> np.ndarray:
    """Min–max scale a 2-D image to [0, 1] as float64 (a constant image becomes zeros).

    Examples
    --------
    >>> normalise_unit(np.array([[2, 4], [6, 10]])).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    """
    plane = _as_plane(image, func="normalise_unit")
    lo, hi = float(plane.min()), float(plane.max())
    if hi <= lo:
        return np.zeros_like(plane)
    return (plane - lo) / (hi - lo)


def _add_speckle() -> Callable[..., np.ndarray]:
    try:
        return importlib.import_module("deepkedi.transforms.speckle").add_speckle
    except (ImportError, AttributeError) as error:
        raise ImportError(
            f"compare_despecklers() needs deepkedi.transforms.speckle.add_speckle, which did not import: {error}"
        ) from error


def _score(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float, float]:
    return (
        psnr(clean, estimate, data_range=1.0),
        ssim(clean, estimate, data_range=1.0),
        mse(clean, estimate, data_range=1.0),
    )


def compare_despecklers(
    images: Mapping[str, Any] | Sequence[tuple[str, Any]],
    *,
    model: str | None = None,
    level: float | None = None,
    seed: int = 0,
    methods: Mapping[str, Despeckler] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> list[DespeckleRow]:
    """Speckle each image, despeckle it with every method, and score the results.

    Each clean image is min–max normalised to [0, 1] float64, speckled with
    ``add_speckle(clean, model=model, level=level, rng=...)`` (arguments left None are
    not passed, so ``add_speckle``'s defaults apply) and clipped back to [0, 1], as
    MATLAB ``imnoise`` and scikit-image ``random_noise(clip=True)`` do. Every
    estimate is clipped to [0, 1] too before PSNR, SSIM and MSE are computed with
    ``data_range=1``.

    Parameters
    ----------
    images
        ``name → 2-D image`` (a mapping or ``(name, image)`` pairs).
    model, level
        The speckle model and its level, passed to ``add_speckle``.
    seed
        Image ``i`` is speckled with ``numpy.random.default_rng([seed, i])``: the same
        seed gives the same noise, whatever the methods.
    methods
        ``name → despeckler``; default :func:`despeckle_methods` (the baselines and
        the ripplet despeckler when it imports).
    unavailable
        ``name → reason`` of methods that cannot run; with ``methods=None`` the
        reasons :func:`despeckle_methods` gives. Each yields a row per image with
        ``status="unavailable"`` and NaN scores.

    Returns
    -------
    list of DespeckleRow
        Per image: the ``"noisy"`` row, then one row per method in order, then the
        unavailable methods. A method that raises gives a ``"failed"`` row with the
        error as its note.

    Examples
    --------
    >>> from deepkedi.datasets import phantom
    >>> rows = compare_despecklers({"brain MR": phantom("brain", "MR").pixels},
    ...                            methods={"Lee 7x7": lee_filter})  # doctest: +SKIP
    >>> [(r.method, r.psnr > 0) for r in rows]  # doctest: +SKIP
    [('noisy', True), ('Lee 7x7', True)]
    """
    if methods is None:
        methods, found_unavailable = despeckle_methods()
        unavailable = {**found_unavailable, **(unavailable or {})}
    unavailable = dict(unavailable or {})
    add_speckle = _add_speckle()
    kwargs: dict[str, Any] = {}
    if model is not None:
        kwargs["model"] = model
    if level is not None:
        kwargs["level"] = level
    pairs = list(images.items()) if isinstance(images, Mapping) else list(images)
    nan = math.nan
    rows: list[DespeckleRow] = []
    for index, (name, image) in enumerate(pairs):
        clean = normalise_unit(image)
        rng = np.random.default_rng([seed, index])
        noisy = np.clip(np.asarray(add_speckle(clean, rng=rng, **kwargs), dtype=np.float64), 0.0, 1.0)
        rows.append(DespeckleRow(name, "noisy", model, level, *_score(clean, noisy), 0.0))
        for method, despeckle in methods.items():
            start = time.perf_counter()
            try:
                estimate = np.asarray(despeckle(noisy), dtype=np.float64)
            except Exception as error:  # noqa: BLE001 - a broken method is reported, not fatal to the table
                rows.append(
                    DespeckleRow(
                        name, method, model, level, nan, nan, nan, nan, "failed", f"{type(error).__name__}: {error}"
                    )
                )
                continue
            seconds = time.perf_counter() - start
            if estimate.shape != clean.shape or not np.all(np.isfinite(estimate)):
                rows.append(
                    DespeckleRow(
                        name,
                        method,
                        model,
                        level,
                        nan,
                        nan,
                        nan,
                        seconds,
                        "failed",
                        f"returned shape {estimate.shape} or non-finite values",
                    )
                )
                continue
            rows.append(DespeckleRow(name, method, model, level, *_score(clean, np.clip(estimate, 0.0, 1.0)), seconds))
        for method, reason in unavailable.items():
            rows.append(DespeckleRow(name, method, model, level, nan, nan, nan, nan, "unavailable", reason))
    return rows
