"""Ripplet type-I transform as an undecimated discrete tight frame.

The ripplet type-I transform of Xu, Yang and Wu [1]_ generalises the curvelet
transform [2]_ with two parameters: the *support* ``c`` and the *degree* ``d``.
A ripplet at scale ``a`` is supported, in frequency, on a polar wedge of radial
extent ~``1/a`` and angular width ~``c^-1 a^(1 - 1/d)``; in space its length and
width obey ``width ~ length^d``. Curvelets are the case ``c = 1, d = 2``
(parabolic scaling, ``width ~ length^2``); ``d = 1`` gives wedges of constant
angular width at every scale (a polar, wavelet-like frame).

This module discretises the transform the way curvelet codes discretise curvelets
(the tight-frame recipe of [2]_), written from the definitions, not ported:

1. Radial partition (Meyer type). With ``r = |omega| / pi`` (``r = 1`` at the
   Nyquist frequency of an axis) and the smooth decreasing profile ``phi``
   (``1`` on ``[0, 1]``, ``0`` from ``2``, a ``cos(pi/2 nu(t - 1))`` ramp between),
   ``Phi_j(r) = phi(2^(J - j) r)`` for ``j = 0 .. J-1`` and ``Phi_J = 1``, where
   ``J`` is ``scales``. The low-pass window is ``Phi_0`` and the band-pass
   windows are ``W_j = sqrt(Phi_(j+1)^2 - Phi_j^2)``; the squares telescope to
   ``Phi_0^2 + sum_j W_j^2 = Phi_J^2 = 1``.
2. Angular partition. Scale ``j`` has ``L_j = round(c * coarse_angles *
   2^floor(j (1 - 1/d)))`` directions (:func:`angles_per_scale`, [1]_ Sec. 3:
   ``theta_l`` steps of ``2 pi / (c 2^floor(j(1 - 1/d)))``). Each direction is a
   *pair* of opposite wedges, ``theta`` and ``theta + pi``, so the window is an
   even function of frequency and the coefficients of a real image are real. The
   windows ``V_(j,l)`` are smooth functions of ``theta mod pi`` centred on
   ``l pi / L_j``; neighbours overlap on a ramp with ``V_left^2 + V_right^2 = 1``,
   so ``sum_l V_(j,l)^2 = 1``.
3. ``U_(j,l) = W_j V_(j,l)``; hence ``Phi_0^2 + sum U_(j,l)^2 = 1`` at every
   frequency of the grid. On even-sized grids the Nyquist row/column holds the
   frequency ``-1/2`` for both ``+1/2`` and ``-1/2``; there each window is
   replaced by ``sqrt((U(k)^2 + U(-k)^2) / 2)``, which keeps the sum of squares
   (``Phi_0`` is radial) and makes every window exactly even on the grid.

Forward: ``c_(j,l) = IFFT(FFT(x) U_(j,l))`` and ``lowpass = IFFT(FFT(x) Phi_0)``,
each real and the size of the image (undecimated). Because the windows' squares
sum to one, the frame is tight with bound 1: Parseval holds,
``||lowpass||^2 + sum ||c_(j,l)||^2 = ||x||^2``, and the inverse is the adjoint,
``x = IFFT(FFT(lowpass) Phi_0 + sum FFT(c_(j,l)) U_(j,l))``. Both use real FFTs
(the windows are even, so the half spectrum carries everything); the inverse sums
all bands in the frequency domain and needs a single inverse FFT.

Redundancy is ``1 + sum_j L_j``: a 512 x 512 image with the defaults has 6
scales, 112 bands and 113 image-sized coefficient arrays. The windows are cached
(:func:`functools.lru_cache`, a few entries: each is about half the coefficients'
size) per shape, parameters and dtype.

References
----------
.. [1] J. Xu, L. Yang and D. Wu, "Ripplet: A new transform for image
   processing", *Journal of Visual Communication and Image Representation*
   21(7), 627-639 (2010). :doi:`10.1016/j.jvcir.2010.04.002`
.. [2] E. Candes, L. Demanet, D. Donoho and L. Ying, "Fast discrete curvelet
   transforms", *Multiscale Modeling & Simulation* 5(3), 861-899 (2006).
   :doi:`10.1137/05064182X`
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import SupportsFloat, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RippletCoefficients",
    "RippletWindows",
    "angles_per_scale",
    "default_scales",
    "ripplet_forward",
    "ripplet_inverse",
    "ripplet_windows",
]

# Windows of a 512 x 512 float64 image with the defaults take ~110 MB (half
# spectrum), so only a handful of (shape, parameters, dtype) entries are kept.
_WINDOW_CACHE_SIZE = 4

# Half-width of the ramp between neighbouring angular windows, as a fraction of
# the angular step pi / L. A quarter leaves each window a flat top half a step
# wide: sharper direction selectivity than a full-step ramp (0.5), still smooth.
_ANGULAR_RAMP = 0.25


@dataclass(frozen=True)
class RippletCoefficients:
    """Coefficients of an undecimated ripplet type-I frame.

    Attributes
    ----------
    lowpass : numpy.ndarray
        Low-pass coefficient, real, the shape of the image.
    bands : tuple of tuple of numpy.ndarray
        ``bands[j][l]``: scale ``j`` (coarse to fine), direction ``l`` (angle
        ``l * pi / L_j`` of the frequency axis of the wedge pair, from the
        horizontal frequency axis); each real, the shape of the image.
    c : float
        Support parameter the coefficients were computed with.
    d : float
        Degree parameter the coefficients were computed with.
    coarse_angles : int
        Directions (wedge pairs) at the coarsest band-pass scale for ``c = 1``.
    """

    lowpass: np.ndarray
    bands: tuple[tuple[np.ndarray, ...], ...]
    c: float
    d: float
    coarse_angles: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the transformed image, ``(H, W)`` or ``(S, H, W)``."""
        return tuple(self.lowpass.shape)

    @property
    def scales(self) -> int:
        """Number of band-pass (directional) scales."""
        return len(self.bands)

    def finest(self) -> tuple[np.ndarray, ...]:
        """The bands of the finest scale, ``bands[-1]`` (noise estimation)."""
        return self.bands[-1]

    def map(self, fn: Callable[[np.ndarray, int, int], np.ndarray]) -> RippletCoefficients:
        """Apply ``fn(band, j, l)`` to every band; the low-pass is kept as is.

        Meant for thresholding: ``coefs.map(lambda b, j, l: soft(b, t[j]))``.
        ``fn`` must return an array of the band's shape.
        """
        bands = tuple(
            tuple(np.asarray(fn(band, j, angle)) for angle, band in enumerate(scale))
            for j, scale in enumerate(self.bands)
        )
        for j, scale in enumerate(bands):
            for angle, band in enumerate(scale):
                if band.shape != self.lowpass.shape:
                    raise ValueError(
                        f"map: fn returned shape {band.shape} for band ({j}, {angle}); "
                        f"every band must keep the image shape {self.lowpass.shape}"
                    )
        return RippletCoefficients(self.lowpass, bands, self.c, self.d, self.coarse_angles)


@dataclass(frozen=True)
class RippletWindows:
    """Frequency windows of a ripplet frame on a full FFT grid.

    Arrays are in :func:`numpy.fft.fft2` order (zero frequency at ``[0, 0]``;
    apply :func:`numpy.fft.fftshift` to centre it), read-only, and satisfy
    ``lowpass**2 + sum(U**2 for U in all bands) == 1`` to rounding.

    Attributes
    ----------
    lowpass : numpy.ndarray
        ``Phi_0``, shape ``(H, W)``.
    bands : tuple of tuple of numpy.ndarray
        ``bands[j][l] = U_(j,l)``, each ``(H, W)``.
    """

    lowpass: np.ndarray
    bands: tuple[tuple[np.ndarray, ...], ...]


def default_scales(shape: tuple[int, ...]) -> int:
    """Default number of band-pass scales, ``max(2, ceil(log2(min(H, W))) - 3)``.

    Leaves a low-pass square of about 16 x 16 frequencies (``2^(1 - J)`` of the
    Nyquist band); 512 x 512 gets 6 scales, 64 x 64 gets 3.
    """
    rows, cols = int(shape[-2]), int(shape[-1])
    return max(2, math.ceil(math.log2(max(1, min(rows, cols)))) - 3)


def angles_per_scale(scales: int, *, c: float = 1.0, d: float = 2.0, coarse_angles: int = 8) -> tuple[int, ...]:
    """Number of directions (wedge pairs) at each band-pass scale, coarse to fine.

    ``L_j = max(1, round(c * coarse_angles * 2**floor(j * (1 - 1/d))))`` for
    ``j = 0 .. scales - 1`` ([1]_, Sec. 3). A direction is a pair of opposite
    wedges (``theta`` and ``theta + pi``), so ``L_j`` pairs cover ``2 L_j``
    wedges of the full circle; the curvelet default of 16 coarse wedges is
    ``coarse_angles = 8``.

    Parameters
    ----------
    scales : int
        Number of band-pass scales, >= 1.
    c : float, optional
        Support, > 0. Multiplies the number of directions at every scale.
    d : float, optional
        Degree, >= 1. ``d = 2`` (curvelets) doubles the directions every second
        scale; ``d = 1`` keeps them constant; ``d -> inf`` doubles every scale.
    coarse_angles : int, optional
        Directions at the coarsest band-pass scale when ``c = 1``.

    Returns
    -------
    tuple of int
        ``L_0, ..., L_(scales-1)``.

    References
    ----------
    .. [1] J. Xu, L. Yang and D. Wu, "Ripplet: A new transform for image
       processing", *J. Vis. Commun. Image Represent.* 21(7), 627-639 (2010).
       :doi:`10.1016/j.jvcir.2010.04.002`

    Examples
    --------
    >>> angles_per_scale(6)
    (8, 8, 16, 16, 32, 32)
    >>> angles_per_scale(4, d=1.0)
    (8, 8, 8, 8)
    """
    scales, c, d, coarse_angles = _check_parameters(scales, c, d, coarse_angles)
    # Exact rational exponent for d = 2 etc.; the small tolerance keeps
    # floor(j * (1 - 1/d)) from dropping an integer like 3 * (1 - 1/1.5) = 2.
    growth = 1.0 - 1.0 / d
    return tuple(max(1, round(c * coarse_angles * 2 ** math.floor(j * growth + 1e-9))) for j in range(scales))


def ripplet_windows(
    shape: tuple[int, int],
    *,
    c: float = 1.0,
    d: float = 2.0,
    scales: int | None = None,
    coarse_angles: int = 8,
    dtype: type | np.dtype = np.float64,
) -> RippletWindows:
    """The ripplet frequency windows on a full ``(H, W)`` FFT grid.

    For figures and tests; the transform itself uses the half spectrum of the
    same windows. See the module docstring for the construction.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image (the last two entries are used).
    c, d, scales, coarse_angles
        As in :func:`ripplet_forward`.
    dtype : numpy dtype, optional
        ``float64`` or ``float32``.

    Returns
    -------
    RippletWindows
        ``lowpass`` and ``bands[j][l]``, each ``(H, W)``, read-only.

    Examples
    --------
    >>> w = ripplet_windows((32, 48))
    >>> total = w.lowpass**2 + sum(u**2 for s in w.bands for u in s)
    >>> bool(np.allclose(total, 1.0))
    True
    """
    rows, cols = _check_shape(shape)
    scales = default_scales((rows, cols)) if scales is None else scales
    scales, c, d, coarse_angles = _check_parameters(scales, c, d, coarse_angles)
    real = _check_window_dtype(dtype)
    low, stack = _windows(rows, cols, scales, c, d, coarse_angles, real.str, False)
    counts = angles_per_scale(scales, c=c, d=d, coarse_angles=coarse_angles)
    return RippletWindows(low, _split(stack, counts))


def ripplet_forward(
    image: ArrayLike,
    *,
    c: float = 1.0,
    d: float = 2.0,
    scales: int | None = None,
    coarse_angles: int = 8,
) -> RippletCoefficients:
    """Forward ripplet type-I transform (undecimated tight frame).

    Parameters
    ----------
    image : array_like
        Real image, ``(H, W)``, or a stack ``(S, H, W)`` transformed slice by
        slice. ``float32`` gives ``float32`` coefficients (computed in
        ``complex64``); any other real dtype is computed in ``float64``.
    c : float, optional
        Support, > 0 (curvelets: 1). Scales the number of directions.
    d : float, optional
        Degree, >= 1 (curvelets: 2). Directions grow as ``2^(j (1 - 1/d))``.
    scales : int, optional
        Band-pass scales, >= 1; default :func:`default_scales`.
    coarse_angles : int, optional
        Directions (opposite-wedge pairs) at the coarsest band-pass scale for
        ``c = 1``, >= 1; default 8 (16 wedges, as curvelets).

    Returns
    -------
    RippletCoefficients
        Low-pass and ``bands[j][l]``, real, each the shape of ``image``, with
        ``||lowpass||^2 + sum ||band||^2 == ||image||^2``.

    Raises
    ------
    TypeError
        If ``image`` is not a real numeric array.
    ValueError
        If ``image`` is not 2-D or 3-D, is empty, holds NaN or infinity, or a
        parameter is out of range.

    References
    ----------
    .. [1] J. Xu, L. Yang and D. Wu, "Ripplet: A new transform for image
       processing", *J. Vis. Commun. Image Represent.* 21(7), 627-639 (2010).
       :doi:`10.1016/j.jvcir.2010.04.002`

    Examples
    --------
    >>> x = np.random.default_rng(0).random((40, 56))
    >>> coefs = ripplet_forward(x)
    >>> coefs.scales, [len(s) for s in coefs.bands]
    (3, [8, 8, 16])
    >>> bool(np.allclose(ripplet_inverse(coefs), x))
    True
    """
    x = _check_image(image)
    rows, cols = x.shape[-2:]
    scales = default_scales((rows, cols)) if scales is None else scales
    scales, c, d, coarse_angles = _check_parameters(scales, c, d, coarse_angles)
    low, stack = _windows(rows, cols, scales, c, d, coarse_angles, x.dtype.str, True)
    spectrum = np.fft.rfft2(x)
    lowpass = np.fft.irfft2(spectrum * low, s=(rows, cols))
    counts = angles_per_scale(scales, c=c, d=d, coarse_angles=coarse_angles)
    bands: list[tuple[np.ndarray, ...]] = []
    start = 0
    for count in counts:
        # One batched inverse FFT per scale: (..., L, H, W//2+1) -> (..., L, H, W).
        block = np.fft.irfft2(spectrum[..., None, :, :] * stack[start : start + count], s=(rows, cols))
        bands.append(tuple(block[..., angle, :, :] for angle in range(count)))
        start += count
    return RippletCoefficients(lowpass, tuple(bands), c, d, coarse_angles)


def ripplet_inverse(coefficients: RippletCoefficients) -> np.ndarray:
    """Inverse ripplet type-I transform: the adjoint of :func:`ripplet_forward`.

    ``x = IFFT(FFT(lowpass) Phi_0 + sum_(j,l) FFT(bands[j][l]) U_(j,l))``. On
    coefficients of an image this reconstructs it to rounding (the frame is
    tight); on modified coefficients (thresholded bands) it gives the
    least-squares image whose coefficients are closest to them.

    Parameters
    ----------
    coefficients : RippletCoefficients
        From :func:`ripplet_forward`, possibly modified with
        :meth:`RippletCoefficients.map`.

    Returns
    -------
    numpy.ndarray
        Real image of ``coefficients.shape``, ``float32`` when the low-pass is
        ``float32``, else ``float64``.

    Raises
    ------
    TypeError
        If ``coefficients`` is not a :class:`RippletCoefficients`.
    ValueError
        If the number of bands per scale does not match ``c``, ``d`` and
        ``coarse_angles``, or a band's shape differs from the low-pass.

    Examples
    --------
    >>> x = np.random.default_rng(1).random((3, 33, 20)).astype(np.float32)
    >>> y = ripplet_inverse(ripplet_forward(x))
    >>> y.dtype, bool(np.allclose(y, x, atol=1e-5))
    (dtype('float32'), True)
    """
    if not isinstance(coefficients, RippletCoefficients):
        raise TypeError(
            f"ripplet_inverse expects RippletCoefficients from ripplet_forward, got {type(coefficients).__name__}"
        )
    low_coef = _check_image(coefficients.lowpass)
    rows, cols = low_coef.shape[-2:]
    scales, c, d, coarse_angles = _check_parameters(
        coefficients.scales, coefficients.c, coefficients.d, coefficients.coarse_angles
    )
    counts = angles_per_scale(scales, c=c, d=d, coarse_angles=coarse_angles)
    found = tuple(len(scale) for scale in coefficients.bands)
    if found != counts:
        raise ValueError(
            f"coefficients have {found} bands per scale but c={c}, d={d}, "
            f"coarse_angles={coarse_angles} give {counts}; keep the band "
            "structure that ripplet_forward produced"
        )
    low, stack = _windows(rows, cols, scales, c, d, coarse_angles, low_coef.dtype.str, True)
    spectrum = np.fft.rfft2(low_coef) * low
    index = 0
    for j, scale in enumerate(coefficients.bands):
        for angle, given in enumerate(scale):
            band = np.asarray(given)
            if band.shape != low_coef.shape:
                raise ValueError(
                    f"band ({j}, {angle}) has shape {band.shape}, expected the low-pass shape {low_coef.shape}"
                )
            # Accumulate in the frequency domain: one inverse FFT in all.
            spectrum += np.fft.rfft2(band.astype(low_coef.dtype, copy=False)) * stack[index]
            index += 1
    return np.fft.irfft2(spectrum, s=(rows, cols))


# --------------------------------------------------------------------------
# Window construction


def _meyer_nu(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Meyer's auxiliary polynomial: 0 below 0, 1 above 1, nu(t) + nu(1-t) = 1."""
    t = np.clip(t, 0.0, 1.0)
    return t**4 * (35.0 - 84.0 * t + 70.0 * t**2 - 20.0 * t**3)


def _radial_profile(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """phi: 1 on [0, 1], smooth decreasing cos ramp on [1, 2], 0 from 2."""
    return np.where(t >= 2.0, 0.0, np.cos(0.5 * np.pi * _meyer_nu(t - 1.0)))


def _window_values(
    fy: NDArray[np.floating],
    fx: NDArray[np.floating],
    scales: int,
    counts: tuple[int, ...],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Phi_0 and the stacked U_(j,l) at frequencies (fy, fx) in cycles/sample."""
    fy, fx = np.broadcast_arrays(fy, fx)
    # r = 1 at the Nyquist frequency of an axis; corners reach sqrt(2) and fall
    # in the finest band, whose outer Phi_J is 1 everywhere.
    r = np.hypot(fy, fx) / 0.5
    # Orientation of the wedge pair: theta and theta + pi are the same direction.
    # It is taken from the representative of {f, -f} in the half-plane fx > 0
    # (or fx = 0, fy >= 0), so f and -f get bitwise the same window: exactly
    # even windows, exactly real coefficients.
    flip = (fx < 0) | ((fx == 0) & (fy < 0))
    theta = np.mod(np.arctan2(np.where(flip, -fy, fy), np.where(flip, -fx, fx)), np.pi).ravel()
    phis = [_radial_profile(r * 2.0 ** (scales - j)) for j in range(scales)]
    phis.append(np.ones_like(r))
    stack = np.zeros((sum(counts), r.size))
    index = 0
    for j, count in enumerate(counts):
        radial = np.sqrt(np.maximum(phis[j + 1] ** 2 - phis[j] ** 2, 0.0)).ravel()
        if count == 1:
            stack[index] = radial
            index += 1
            continue
        # Only the band's support is evaluated, and at each frequency only the
        # two directions whose windows can be non-zero there (the ramp is
        # narrower than a step): the nearest centre and its neighbour on the
        # other side. Angles are in steps of pi / L, pi-periodic.
        where = np.flatnonzero(radial)
        t = theta[where] * (count / np.pi)
        nearest = np.floor(t + 0.5)
        offset = t - nearest  # in [-1/2, 1/2]
        neighbour = nearest + np.where(offset >= 0, 1.0, -1.0)
        for centre, distance in ((nearest, np.abs(offset)), (neighbour, 1.0 - np.abs(offset))):
            ramp = (distance - (0.5 - _ANGULAR_RAMP)) / (2.0 * _ANGULAR_RAMP)
            # cos(pi/2 nu(a))^2 + cos(pi/2 nu(1-a))^2 = 1 between neighbours.
            angular = np.where(ramp >= 1.0, 0.0, np.cos(0.5 * np.pi * _meyer_nu(ramp)))
            direction = np.mod(centre, count).astype(np.intp)
            stack[index + direction, where] = radial[where] * angular
        index += count
    return phis[0], stack.reshape((sum(counts), *r.shape))


@functools.lru_cache(maxsize=_WINDOW_CACHE_SIZE)
def _windows(
    rows: int,
    cols: int,
    scales: int,
    c: float,
    d: float,
    coarse_angles: int,
    dtype: str,
    half: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Cached (Phi_0, stacked U) on the half (rfft2) or full (fft2) grid."""
    counts = angles_per_scale(scales, c=c, d=d, coarse_angles=coarse_angles)
    fy = np.fft.fftfreq(rows)[:, None]
    fx = (np.fft.rfftfreq(cols) if half else np.fft.fftfreq(cols))[None, :]
    low, stack = _window_values(fy, fx, scales, counts)
    # On an even axis index N/2 stands for both +1/2 and -1/2 (fftfreq says
    # -1/2, rfftfreq +1/2), so U at k and at its mirror -k are two different
    # directions there. Evaluating at the opposite sign gives U(-k); the root
    # mean square of the two is even on the grid and keeps the sum of squares,
    # Phi_0 being radial. Only the Nyquist row and column need it.
    if rows % 2 == 0:
        line = slice(rows // 2, rows // 2 + 1)
        _, mirrored = _window_values(-fy[line], fx, scales, counts)
        stack[:, line] = np.sqrt(0.5 * (stack[:, line] ** 2 + mirrored**2))
    if cols % 2 == 0:
        line = slice(cols // 2, cols // 2 + 1)
        _, mirrored = _window_values(fy, -fx[:, line], scales, counts)
        stack[:, :, line] = np.sqrt(0.5 * (stack[:, :, line] ** 2 + mirrored**2))
    if rows % 2 == 0 and cols % 2 == 0:
        # The corner (1/2, 1/2) aliases both diagonals: give it their RMS, the
        # same on the full and the half grid (which store it as -/+ 1/2).
        half_freq = np.full((1, 1), 0.5)
        _, diag = _window_values(half_freq, half_freq, scales, counts)
        _, anti = _window_values(half_freq, -half_freq, scales, counts)
        stack[:, rows // 2, cols // 2] = np.sqrt(0.5 * (diag**2 + anti**2))[:, 0, 0]
    real = np.dtype(dtype)
    low = low.astype(real)
    stack = stack.astype(real, copy=False)
    low.flags.writeable = False
    stack.flags.writeable = False
    return low, stack


def _split(stack: np.ndarray, counts: tuple[int, ...]) -> tuple[tuple[np.ndarray, ...], ...]:
    """Stacked windows -> bands[j][l] views."""
    out = []
    start = 0
    for count in counts:
        out.append(tuple(stack[start + angle] for angle in range(count)))
        start += count
    return tuple(out)


# --------------------------------------------------------------------------
# Validation


def _check_image(image: ArrayLike) -> np.ndarray:
    """Real 2-D/3-D finite array, as float32 (if float32) or float64."""
    x = np.asarray(image)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise TypeError(f"image must be a real numeric array, got dtype {x.dtype}")
    if np.iscomplexobj(x):
        raise TypeError("image must be real; transform the real and imaginary parts separately")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"image must be 2-D (H, W) or 3-D (S, H, W), got shape {x.shape}; split colour images into planes first"
        )
    if x.size == 0:
        raise ValueError(f"image is empty (shape {x.shape})")
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("image holds NaN or infinite values; replace them first")
    return x


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    try:
        rows, cols = (operator.index(n) for n in tuple(shape)[-2:])
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a tuple of ints (H, W), got {shape!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be positive, got {shape!r}")
    return rows, cols


def _check_parameters(
    scales: SupportsIndex, c: SupportsFloat, d: SupportsFloat, coarse_angles: SupportsIndex
) -> tuple[int, float, float, int]:
    try:
        scales_i = operator.index(scales)
    except TypeError:
        raise TypeError(f"scales must be an int, got {scales!r}") from None
    if scales_i < 1:
        raise ValueError(f"scales must be >= 1, got {scales_i}")
    try:
        coarse_i = operator.index(coarse_angles)
    except TypeError:
        raise TypeError(f"coarse_angles must be an int, got {coarse_angles!r}") from None
    if coarse_i < 1:
        raise ValueError(f"coarse_angles must be >= 1, got {coarse_i}")
    try:
        c_f, d_f = float(c), float(d)
    except (TypeError, ValueError):
        raise TypeError(f"c and d must be real numbers, got c={c!r}, d={d!r}") from None
    if not (math.isfinite(c_f) and c_f > 0):
        raise ValueError(f"support c must be finite and > 0, got {c!r}")
    if not (math.isfinite(d_f) and d_f >= 1):
        raise ValueError(f"degree d must be finite and >= 1 (curvelets: d=2), got {d!r}")
    return scales_i, c_f, d_f, coarse_i


def _check_window_dtype(dtype: type | np.dtype) -> np.dtype:
    real = np.dtype(dtype)
    if real not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {real}")
    return real
