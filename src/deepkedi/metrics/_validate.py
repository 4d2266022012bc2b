"""The one place where metric inputs are checked and their pixel range resolved.

Every metric in :mod:`deepkedi.metrics` calls :func:`check_image` or :func:`check_pair`
first, then :func:`resolve_bits` (statistics, NPCR/UACI) or :func:`resolve_data_range`
(MSE, PSNR, SSIM). Ranges are never guessed from the data: they come from the dtype
(8 bits for ``uint8``/``int8``, 16 bits for ``uint16``/``int16``) or from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = [
    "check_image",
    "check_pair",
    "default_bits",
    "level_range",
    "resolve_bits",
    "resolve_data_range",
    "to_unsigned",
]

#: Largest bit depth a histogram-based metric accepts (65 536 bins).
MAX_HISTOGRAM_BITS = 16


def check_image(image: object, *, name: str = "image", channel_axis: int | None = None) -> np.ndarray:
    """Return ``image`` as an array after checking it is a 2-D slice or 3-D stack of numbers.

    With ``channel_axis`` (colour images), that axis holds the samples of a pixel and
    the other axes must form the 2-D slice or 3-D stack.

    Raises
    ------
    TypeError
        If the dtype is not boolean, integer or floating point.
    ValueError
        If the array is not 2-D or 3-D, or is empty.
    """
    array = np.asarray(image)
    if array.dtype.kind not in "buif":
        raise TypeError(f"{name} must hold numbers (bool, int, uint or float), not dtype {array.dtype}")
    spatial = array.ndim
    if channel_axis is not None:
        if not -array.ndim <= channel_axis < array.ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for {name} of shape {array.shape}")
        spatial -= 1
    if spatial not in (2, 3):
        beside = " beside the channel axis" if channel_axis is not None else ""
        raise ValueError(
            f"{name} must be 2-D (rows, cols) or a 3-D stack (planes, rows, cols){beside}; "
            f"got shape {array.shape} (spatial axes: {spatial})"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    return array


def check_pair(a: object, b: object, *, channel_axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return both images as arrays after checking they are valid and of the same shape.

    ``channel_axis`` is passed on to :func:`check_image` (colour images).

    Examples
    --------
    >>> a, b = check_pair(np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8))
    >>> a.shape == b.shape
    True
    """
    first = check_image(a, name="first image", channel_axis=channel_axis)
    second = check_image(b, name="second image", channel_axis=channel_axis)
    if first.shape != second.shape:
        raise ValueError(f"the two images must have the same shape; got {first.shape} and {second.shape}")
    return first, second


def default_bits(dtype: np.dtype) -> int | None:
    """The bit depth a dtype implies: 1 for bool, 8 for 1-byte and 16 for 2-byte integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 1
    if dtype.kind in "ui" and dtype.itemsize in (1, 2):
        return 8 * dtype.itemsize
    return None


def resolve_bits(array: np.ndarray, bits: int | None, *, max_bits: int = 32) -> int:
    """Bit depth of ``array``: ``bits`` if given, else from the dtype; values are checked.

    Unsigned and float data must lie in ``[0, 2**bits - 1]``. Signed data is read as
    two's complement, ``[-2**(bits-1), 2**(bits-1) - 1]``, when ``bits`` is the
    dtype's own width or a value is negative; otherwise (12-bit CT in ``int16`` or
    ``int32``, all values ≥ 0) as unsigned. See :func:`level_range`.

    Raises
    ------
    ValueError
        If ``bits`` is missing for a dtype that does not imply it (float, 32/64-bit
        integers), is out of ``1..max_bits``, or the values do not fit.
    """
    if bits is None:
        bits = default_bits(array.dtype)
        if bits is None:
            raise ValueError(
                f"cannot infer the bit depth of dtype {array.dtype}; pass bits= "
                "(e.g. bits=12 for 12-bit CT stored in a wider type)"
            )
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, not {type(bits).__name__}")
    bits = int(bits)
    if not 1 <= bits <= max_bits:
        raise ValueError(f"bits must be in 1..{max_bits}, got {bits}")
    lo, hi = array.min(), array.max()
    low, high = _level_range(array.dtype, bits, negative=bool(lo < 0))
    if array.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("image holds NaN or infinite values")
    if lo < low or hi > high:
        raise ValueError(
            f"values span [{lo}, {hi}], outside the {bits}-bit range [{low}, {high}] "
            f"for dtype {array.dtype}; pass a larger bits="
        )
    return bits


def _level_range(dtype: np.dtype, bits: int, *, negative: bool) -> tuple[int, int]:
    if dtype.kind == "i" and (negative or bits == 8 * dtype.itemsize):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def level_range(array: np.ndarray, bits: int) -> tuple[int, int]:
    """The grey-level range ``(lowest, highest)`` of ``array`` read with ``bits`` bits.

    Examples
    --------
    >>> level_range(np.zeros((2, 2), np.int16), 16), level_range(np.zeros((2, 2), np.int16), 12)
    ((-32768, 32767), (0, 4095))
    """
    return _level_range(array.dtype, bits, negative=bool(array.min() < 0))


def to_unsigned(array: np.ndarray, bits: int | None) -> tuple[np.ndarray, int]:
    """Integer ``array`` as non-negative grey levels in ``[0, 2**bits)``, with ``bits``.

    Signed data read as two's complement is shifted up by ``2**(bits-1)`` so that the
    order of values is kept (int16 −32768 becomes 0). Floats are refused: histograms need discrete levels.
    """
    if array.dtype.kind == "f":
        raise TypeError(
            "histogram metrics need integer grey levels; convert first, e.g. np.rint(image).astype(np.uint16)"
        )
    bits = resolve_bits(array, bits, max_bits=MAX_HISTOGRAM_BITS)
    low, _ = level_range(array, bits)
    out_type = np.uint8 if bits <= 8 else np.uint16
    if low >= 0:
        return array.astype(out_type, copy=False), bits
    # The shift in the output type's own modular arithmetic: the same levels as shifting in
    # int64 and narrowing, with one output-sized copy instead of two int64 ones (a 16-bit
    # volume took 5 times its size more).
    levels = array.astype(out_type)
    levels -= out_type(low % (1 << (8 * levels.itemsize)))
    return levels, bits


def resolve_data_range(a: np.ndarray, b: np.ndarray, data_range: float | None, *, func: str) -> float:
    """Check ``data_range`` is a positive finite number that both images fit in.

    Raises
    ------
    TypeError
        If ``data_range`` is None or not a number: it must be given, never guessed.
    ValueError
        If it is not positive and finite, or an image spans more than it.
    """
    if data_range is None:
        raise TypeError(
            f"{func}() needs data_range=, the full range of the pixel type, e.g. 255 for "
            "8-bit, 4095 for 12-bit CT, 65535 for 16-bit; it is not guessed from the data "
            "because a guess changes the score"
        )
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)):
        raise TypeError(f"data_range must be a number, not {type(data_range).__name__}")
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"data_range must be positive and finite, got {data_range}")
    for name, image in (("first", a), ("second", b)):
        span = float(image.max()) - float(image.min())
        if not math.isfinite(span):
            raise ValueError(f"{name} image holds NaN or infinite values")
        if span > value:
            raise ValueError(f"the {name} image spans {span:g} grey levels, more than data_range={value:g}")
    return value


#: Elements per chunk when a pairwise measure walks two images (a few MiB of temporaries).
PAIR_CHUNK = 1 << 20


def pair_chunks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Equal flat chunks of two equally shaped images, so that pairwise measures of whole
    volumes convert a few MiB at a time instead of copying the volumes into wider types."""
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    for start in range(0, flat_a.size, PAIR_CHUNK):
        yield flat_a[start : start + PAIR_CHUNK], flat_b[start : start + PAIR_CHUNK]
