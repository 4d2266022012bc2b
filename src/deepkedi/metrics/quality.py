"""Reconstruction quality: MSE, PSNR and SSIM between an image and its decryption.

A lossless scheme decrypts bit-exactly: MSE 0, PSNR ∞, SSIM 1. The figures matter for
lossy pipelines and for comparing a cipher image with its plain image (where low SSIM
and PSNR are wanted).

``data_range`` is the full range of the pixel *type* (255 for 8-bit, 4095 for 12-bit
CT, 65535 for 16-bit), never the span of the data: a guessed range changes the score.
PSNR and SSIM require it; MSE, in squared grey levels, uses it only to check the data.

The Deep-KEDI paper reports SSIM 0.618, MSE 2.62 and PSNR 25.32 dB for the same
images. The last two cannot both hold on an 8-bit scale: PSNR = 10·log₁₀(255²/MSE),
so MSE 2.62 is 43.9 dB and 25.32 dB is MSE 190. Any comparison with the paper must
say which figure it reproduces.

SSIM is :func:`skimage.metrics.structural_similarity` (scikit-image, a core
dependency), imported only when SSIM is computed so that importing this module stays light.

References
----------
.. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment:
   from error visibility to structural similarity", IEEE Transactions on Image
   Processing 13 (2004) 600–612. doi:10.1109/TIP.2003.819861
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepkedi.metrics._validate import check_pair, pair_chunks, resolve_data_range
from deepkedi.metrics.records import QualityResult

__all__ = ["compare", "mse", "psnr", "ssim"]

#: Side of SSIM's Gaussian-free uniform window when the image allows it (Wang et al.'s 7).
SSIM_WINDOW = 7
#: Volumes larger than this many voxels are scored in slabs of planes (:func:`ssim`), each
#: slab, its border planes included, at most this many voxels when a plane is small enough
#: (some 20 float64 copies of it: 320 MiB).
_SSIM_SLAB_VOXELS = 1 << 21


def _squared_error(a: np.ndarray, b: np.ndarray) -> float:
    if a.dtype.kind in "uib" and b.dtype.kind in "uib" and a.dtype.itemsize <= 2 and b.dtype.itemsize <= 2:
        total = 0  # exact: integer sums of squared integer differences
        for x, y in pair_chunks(a, b):
            difference = x.astype(np.int64) - y.astype(np.int64)
            total += int(np.dot(difference, difference))
        return total / a.size
    sum_of_squares = 0.0
    for x, y in pair_chunks(a, b):
        float_difference = x.astype(np.float64) - y.astype(np.float64)
        sum_of_squares += float(np.dot(float_difference, float_difference))
    return sum_of_squares / a.size


def mse(a: Any, b: Any, *, data_range: float | None = None) -> float:
    """Mean squared error between two images, in squared grey levels.

    Parameters
    ----------
    a, b
        Images of the same shape, 2-D or 3-D.
    data_range
        Optional: when given, each image must span no more than it (a check that the
        scale is what the caller believes); the MSE itself does not depend on it.

    Examples
    --------
    >>> mse(np.zeros((2, 2), np.uint8), np.full((2, 2), 3, np.uint8))
    9.0
    """
    first, second = check_pair(a, b)
    if data_range is not None:
        resolve_data_range(first, second, data_range, func="mse")
    return _squared_error(first, second)


def psnr(a: Any, b: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: 10·log₁₀(data_range² / MSE).

    Parameters
    ----------
    a, b
        Images of the same shape, 2-D or 3-D.
    data_range
        Required: the full range of the pixel type (255 for 8-bit). Omitting it raises
        TypeError.

    Returns
    -------
    float
        ``math.inf`` for identical images.

    References
    ----------
    Q. Huynh-Thu, M. Ghanbari, "Scope of validity of PSNR in image/video quality
    assessment", Electronics Letters 44 (2008) 800–801. doi:10.1049/el:20080522

    Examples
    --------
    >>> x = np.zeros((8, 8), np.uint8)
    >>> psnr(x, x, data_range=255)
    inf
    """
    first, second = check_pair(a, b)
    peak = resolve_data_range(first, second, data_range, func="psnr")
    error = _squared_error(first, second)
    if error == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / error)


def _structural_similarity() -> Any:
    from skimage.metrics import structural_similarity

    return structural_similarity


def ssim(a: Any, b: Any, *, data_range: float | None = None, channel_axis: int | None = None) -> float:
    """Structural similarity index (Wang et al. 2004) of two slices or two volumes.

    2-D images use the 7 × 7 uniform window of scikit-image's default; a 3-D stack is
    treated as one volume with a 7 × 7 × 7 window. When a spatial axis is shorter than 7,
    the window shrinks to the largest odd size that fits every spatial axis (a 3-slice
    stack gets 3 × 3 × 3); a spatial axis under 3 pixels is refused.

    Colour images name their samples axis with ``channel_axis``: SSIM is then computed
    per colour channel over the spatial axes and averaged over the channels, as
    scikit-image's ``channel_axis`` does. Without it an RGB image's samples axis would be
    taken for a third spatial axis and scored with a 3-deep window across the colours
    (0.99 for a pair that scores 0.62 per channel).

    Parameters
    ----------
    a, b
        Images of the same shape: 2-D or 3-D spatially, plus the samples axis when
        ``channel_axis`` is given.
    data_range
        Required: the full range of the pixel type (255 for 8-bit).
    channel_axis
        The axis holding the colour samples of a pixel (``-1`` for interleaved RGB,
        :attr:`deepkedi.imaging.MedicalImage.channel_axis` for an image read from a
        file), or None for grey images.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
       assessment: from error visibility to structural similarity", IEEE Transactions
       on Image Processing 13 (2004) 600–612. doi:10.1109/TIP.2003.819861

    Examples
    --------
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(np.uint8)
    >>> round(ssim(x, x, data_range=255), 12)
    1.0
    >>> rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    >>> round(ssim(rgb, rgb, data_range=255, channel_axis=-1), 12)
    1.0
    """
    first, second = check_pair(a, b, channel_axis=channel_axis)
    peak = resolve_data_range(first, second, data_range, func="ssim")
    if channel_axis is not None:
        # Samples last, as scikit-image's channel_axis=-1; the spatial axes keep their order.
        first, second = np.moveaxis(first, channel_axis, -1), np.moveaxis(second, channel_axis, -1)
        spatial = first.shape[:-1]
    else:
        spatial = first.shape
    shortest = min(spatial)
    if shortest < 3:
        raise ValueError(f"ssim needs at least 3 pixels along every spatial axis; got shape {first.shape}")
    window = min(SSIM_WINDOW, shortest if shortest % 2 else shortest - 1)
    structural_similarity = _structural_similarity()
    skimage_axis = None if channel_axis is None else -1
    if len(spatial) == 2 or first.size <= _SSIM_SLAB_VOXELS:
        return float(
            structural_similarity(
                first.astype(np.float64),
                second.astype(np.float64),
                data_range=peak,
                win_size=window,
                channel_axis=skimage_axis,
            )
        )
    # A volume, in slabs of planes: scikit-image averages the SSIM map without a border of
    # `pad` voxels, so every voxel it keeps sees a window that lies wholly inside the
    # volume; a slab with `pad` extra planes on each side gives exactly those voxels'
    # values for its inner planes. Memory: some 20 float64 copies of one slab of at most
    # _SSIM_SLAB_VOXELS voxels with its border (for planes up to 1/7 of it), not of the
    # volume (80 times the size of a uint16 volume). Colour channels all have the same
    # number of kept voxels, so the mean over all of them is the mean of the per-channel
    # means that scikit-image reports.
    pad = (window - 1) // 2
    inner = (slice(pad, -pad),) * 3
    step = max(1, _SSIM_SLAB_VOXELS // first[0].size - 2 * pad)
    total, count = 0.0, 0
    for start in range(pad, first.shape[0] - pad, step):
        stop = min(start + step, first.shape[0] - pad)
        _, ssim_map = structural_similarity(
            first[start - pad : stop + pad].astype(np.float64),
            second[start - pad : stop + pad].astype(np.float64),
            data_range=peak,
            win_size=window,
            channel_axis=skimage_axis,
            full=True,
        )
        kept = ssim_map[inner]
        total += float(kept.sum(dtype=np.float64))
        count += kept.size
    return total / count


def compare(a: Any, b: Any, *, data_range: float | None = None, channel_axis: int | None = None) -> QualityResult:
    """MSE, PSNR and SSIM of two images on one stated ``data_range``.

    ``channel_axis`` names the colour samples axis of colour images (see :func:`ssim`);
    MSE and PSNR do not depend on it.

    Examples
    --------
    >>> x = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(np.uint8)
    >>> compare(x, x, data_range=255).to_dict()["psnr"]
    'inf'
    """
    first, second = check_pair(a, b, channel_axis=channel_axis)
    peak = resolve_data_range(first, second, data_range, func="compare")
    error = _squared_error(first, second)
    return QualityResult(
        mse=error,
        psnr=math.inf if error == 0 else 10.0 * math.log10(peak * peak / error),
        ssim=ssim(first, second, data_range=peak, channel_axis=channel_axis),
        data_range=peak,
    )
