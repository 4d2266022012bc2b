"""Zigzag scans: the three pixel orders of the Deep-KEDI zigzag cipher.

Deep-KEDI's generator, the zigzag GAN (ZZ-GAN), encrypts an image after reading
its pixels in one of three zigzag patterns -- vertical, horizontal and
diagonal -- and XORing the sequence with the generated key image (the paper's
figure "Three different zigzag patterns-based encryption process in the
generator", Figs. 3-4). The paper draws the patterns but does not spell them
out pixel by pixel; this module fixes them as follows, for an ``H x W`` plane
whose pixel ``(r, c)`` has the row-major flat index ``r * W + c``:

``VERTICAL``
    Down column 0, up column 1, down column 2, ... (column boustrophedon).
``HORIZONTAL``
    Along row 0 left to right, back along row 1 right to left, ... (row
    boustrophedon).
``DIAGONAL``
    The anti-diagonals ``d = r + c`` in turn, alternating direction exactly as
    JPEG's zigzag does: ``(0,0); (0,1),(1,0); (2,0),(1,1),(0,2); ...`` -- the
    row index increases along odd ``d`` and decreases along even ``d``. On
    non-square planes the positions outside the plane are skipped. On ``8 x 8``
    this is the JPEG zigzag table (ITU-T T.81, Figure A.6).

Each scan is a permutation of the flat indices. :func:`scan_order` and
:func:`inverse_order` return it (cached); :func:`zigzag_scan` and
:func:`zigzag_unscan` apply it to stacks of planes without a Python loop per
pixel. The horizontal and vertical scans are done with slicing (row copies,
reversed row copies and a cache-blocked transpose) rather than a gather, which
they beat by about 4x and 2x; the anti-diagonals have no such slicing form, so
the diagonal scan is a gather (:func:`numpy.take`) through the cached
permutation.

A zigzag scan only moves pixels: it is a fixed, public permutation and adds no
secrecy of its own.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI: Deep learning-based zigzag
   generative adversarial network for encryption and decryption of medical
   images", *Technology and Health Care* 32(5), 3231-3251 (2024).
   :doi:`10.3233/THC-231927`
.. [2] ITU-T Recommendation T.81 (1992) | ISO/IEC 10918-1, "Digital compression
   and coding of continuous-tone still images", Figure A.6 (zigzag sequence of
   quantized DCT coefficients).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deepkedi.transforms import _cv2_scan
from deepkedi.transforms.patterns import ZigzagPattern

__all__ = [
    "ZigzagPattern",
    "inverse_order",
    "scan_order",
    "zigzag_scan",
    "zigzag_unscan",
]

# The vertical scan is a transpose, the one step here whose speed depends on
# the cache. It is copied in strips of _TRANSPOSE_STRIP source rows, so the
# lines being read down the columns stay in L1, and from rows whose pitch is an
# odd multiple of 64 bytes, so those lines fall in different L1 sets (a pitch
# that is a multiple of 128 bytes, e.g. 512 uint16 pixels, maps a strip's rows
# onto a few sets, which evict each other). Together these make a 512 x 512
# uint16 transpose about 2.5x faster than one numpy.copyto of a transposed view
# (bench/bench_zigzag.py; strips of 96-256 rows measured alike).
_TRANSPOSE_STRIP = 128
_CACHE_LINE = 64
# Stacks of planes are transposed a few planes at a time, so that each batch
# and its staged copy stay in L2 (measured ~1.3x faster on 20 x 512 x 512).
_TRANSPOSE_BATCH_BYTES = 512 * 1024

# Bound on cached permutations per function: an entry for a 2048 x 2048 plane
# holds 32 MiB, and a study rarely mixes more than a few plane shapes.
_ORDER_CACHE_SIZE = 64


def _plane_size(name: str, value: Any) -> int:
    """A plane dimension as a positive ``int``, or a clear error."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not a bool")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if size < 1:
        raise ValueError(f"{name} must be at least 1, got {size}")
    return size


def scan_order(rows: int, cols: int, pattern: ZigzagPattern | str) -> NDArray[np.intp]:
    """The flat pixel indices of an ``rows x cols`` plane in zigzag order.

    Parameters
    ----------
    rows, cols
        Plane height and width, each at least 1.
    pattern
        A :class:`ZigzagPattern` or its string value.

    Returns
    -------
    numpy.ndarray
        Read-only 1-D ``intp`` array ``order`` of length ``rows * cols``, a
        permutation of ``range(rows * cols)``: the ``k``-th pixel visited is
        ``plane.ravel()[order[k]]``. Results are cached per
        ``(rows, cols, pattern)``.

    Raises
    ------
    TypeError
        ``rows`` or ``cols`` is not an integer.
    ValueError
        ``rows`` or ``cols`` is below 1, or ``pattern`` is not a pattern.

    See Also
    --------
    inverse_order : the inverse permutation.
    zigzag_scan : applies the order to planes, with faster paths.

    Examples
    --------
    >>> scan_order(2, 3, "horizontal").tolist()
    [0, 1, 2, 5, 4, 3]
    >>> scan_order(3, 3, "diagonal").tolist()
    [0, 1, 3, 6, 4, 2, 5, 7, 8]
    """
    return _scan_order(_plane_size("rows", rows), _plane_size("cols", cols), ZigzagPattern(pattern))


def inverse_order(rows: int, cols: int, pattern: ZigzagPattern | str) -> NDArray[np.intp]:
    """The inverse of :func:`scan_order`: each pixel's position in the scan.

    Parameters
    ----------
    rows, cols
        Plane height and width, each at least 1.
    pattern
        A :class:`ZigzagPattern` or its string value.

    Returns
    -------
    numpy.ndarray
        Read-only 1-D ``intp`` array ``inverse`` with
        ``inverse[scan_order(rows, cols, pattern)] == arange(rows * cols)``;
        ``sequence[inverse]`` puts a scanned sequence back in row-major order.
        Cached per ``(rows, cols, pattern)``.

    Raises
    ------
    TypeError
        ``rows`` or ``cols`` is not an integer.
    ValueError
        ``rows`` or ``cols`` is below 1, or ``pattern`` is not a pattern.

    Examples
    --------
    >>> inverse_order(3, 2, "vertical").tolist()
    [0, 5, 1, 4, 2, 3]
    """
    return _inverse_order(_plane_size("rows", rows), _plane_size("cols", cols), ZigzagPattern(pattern))


@functools.lru_cache(maxsize=_ORDER_CACHE_SIZE)
def _scan_order(rows: int, cols: int, pattern: ZigzagPattern) -> NDArray[np.intp]:
    # Closed forms for the k-th visited pixel, independent of the slicing fast
    # paths of zigzag_scan so that each checks the other.
    k = np.arange(rows * cols, dtype=np.intp)
    if pattern is ZigzagPattern.HORIZONTAL:
        r, j = np.divmod(k, cols)
        c = np.where(r & 1, cols - 1 - j, j)
    elif pattern is ZigzagPattern.VERTICAL:
        c, j = np.divmod(k, rows)
        r = np.where(c & 1, rows - 1 - j, j)
    else:
        # Anti-diagonal d holds the rows lo[d]..hi[d]; it is walked with the row
        # increasing for odd d, decreasing for even d (T.81 Figure A.6).
        diagonals = np.arange(rows + cols - 1, dtype=np.intp)
        lo = np.maximum(diagonals - (cols - 1), 0)
        hi = np.minimum(diagonals, rows - 1)
        length = hi - lo + 1
        start = np.cumsum(length) - length
        d = np.repeat(diagonals, length)
        j = k - start[d]
        r = np.where(d & 1, lo[d] + j, hi[d] - j)
        c = d - r
    order = r * cols + c
    order.flags.writeable = False
    return order


@functools.lru_cache(maxsize=_ORDER_CACHE_SIZE)
def _inverse_order(rows: int, cols: int, pattern: ZigzagPattern) -> NDArray[np.intp]:
    order = _scan_order(rows, cols, pattern)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size, dtype=np.intp)
    inverse.flags.writeable = False
    return inverse


def zigzag_scan(
    planes: ArrayLike,
    pattern: ZigzagPattern | str,
    *,
    channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read planes into 1-D sequences in a zigzag order.

    Parameters
    ----------
    planes
        Array of shape ``(..., H, W)``, or ``(..., H, W, S)`` with
        ``channels_last``. Each ``H x W`` plane (each slice of a volume, each
        image of a batch) is scanned on its own. Any dtype and byte order; a
        read-only array or :class:`numpy.memmap` is fine.
    pattern
        A :class:`ZigzagPattern` or its string value.
    channels_last
        The last axis holds the ``S`` samples of a pixel (RGB, RGBA...), which
        move together.
    out
        Optional C-contiguous, writeable array of the result's shape to write
        into instead of allocating. If its dtype differs from the input's, the
        values are cast as :func:`numpy.copyto` casts them (``"same_kind"``).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., H * W)`` (or ``(..., H * W, S)``): element ``k`` of each
        sequence is pixel ``scan_order(H, W, pattern)[k]`` of its plane. The
        input's dtype unless ``out`` is given, in which case ``out`` is returned.

    Raises
    ------
    ValueError
        Too few dimensions, an unknown pattern, or an ``out`` of the wrong
        shape or layout.
    TypeError
        ``out`` is not an array, or its dtype cannot hold the input's values
        under ``"same_kind"`` casting.

    See Also
    --------
    zigzag_unscan : the exact inverse.
    scan_order : the permutation applied.

    Notes
    -----
    Horizontal and vertical scans are slice copies, not gathers. The diagonal
    scan gathers through the cached :func:`scan_order`.

    Examples
    --------
    >>> import numpy as np
    >>> plane = np.arange(6).reshape(2, 3)
    >>> zigzag_scan(plane, "vertical").tolist()
    [0, 3, 4, 1, 2, 5]
    >>> zigzag_scan(plane, ZigzagPattern.DIAGONAL).tolist()
    [0, 1, 3, 4, 2, 5]
    """
    pattern = ZigzagPattern(pattern)
    source = np.asarray(planes)
    *lead, rows, cols = _plane_shape(source.shape, channels_last)
    samples = source.shape[-1:] if channels_last else ()
    target = _checked_out(out, (*lead, rows * cols, *samples), source.dtype)
    if target.size == 0:
        return target
    src, dst = _pixel_views(_ready_source(source, target), target, channels_last)
    if src.shape[-1] == 1 and _cv2_scan.wanted(target.nbytes):
        sequences = dst[..., 0].reshape(-1, rows * cols)
        if np.shares_memory(sequences, target) and _cv2_scan.scan_planes(
            src[..., 0].reshape(-1, rows, cols), sequences, pattern
        ):
            return target
    if pattern is ZigzagPattern.HORIZONTAL:
        grid = dst.reshape(*lead, rows, cols, -1)
        for dst_plane, src_plane in _per_sample(grid, src):
            _boustrophedon_rows(dst_plane, src_plane)
    elif pattern is ZigzagPattern.VERTICAL:
        # Column j of the plane becomes row j of a (W, H) grid: even columns
        # are copied down, odd columns up.
        grid = dst.reshape(*lead, cols, rows, -1)
        for dst_batch, src_batch in _slice_batches(grid, src):
            for dst_plane, src_plane in _per_sample(dst_batch, _transposable(src_batch)):
                _transpose_into(dst_plane[..., 0::2, :], src_plane[..., :, 0::2])
                _transpose_into(dst_plane[..., 1::2, :], src_plane[..., ::-1, 1::2])
    else:
        # The order is a valid permutation, so mode="clip" only skips the
        # per-index bounds error path (measured faster than "raise"; int32
        # indices and fancy indexing were not faster).
        flat = src.reshape(*lead, rows * cols, -1)
        np.take(flat, _scan_order(rows, cols, pattern), axis=-2, out=dst, mode="clip")
    return target


def zigzag_unscan(
    sequences: ArrayLike,
    rows: int,
    cols: int,
    pattern: ZigzagPattern | str,
    *,
    channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Put zigzag sequences back into planes: the inverse of :func:`zigzag_scan`.

    Parameters
    ----------
    sequences
        Array of shape ``(..., rows * cols)``, or ``(..., rows * cols, S)`` with
        ``channels_last``. Any dtype and byte order.
    rows, cols
        Plane height and width, each at least 1.
    pattern
        The :class:`ZigzagPattern` (or its string value) the sequences were
        scanned with.
    channels_last
        The last axis holds the ``S`` samples of each pixel.
    out
        Optional C-contiguous, writeable array of shape ``(..., rows, cols)``
        (or ``(..., rows, cols, S)``) to write into; values are cast as
        :func:`numpy.copyto` casts them.

    Returns
    -------
    numpy.ndarray
        The planes, shape ``(..., rows, cols)`` (or ``(..., rows, cols, S)``),
        with ``zigzag_unscan(zigzag_scan(x, p), H, W, p)`` equal to ``x``.

    Raises
    ------
    TypeError
        ``rows``/``cols`` not integers, ``out`` not an array, or an impossible
        cast into ``out``.
    ValueError
        A sequence length other than ``rows * cols``, an unknown pattern, or
        an ``out`` of the wrong shape or layout.

    Examples
    --------
    >>> import numpy as np
    >>> zigzag_unscan(np.array([0, 3, 4, 1, 2, 5]), 2, 3, "vertical").tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    pattern = ZigzagPattern(pattern)
    rows = _plane_size("rows", rows)
    cols = _plane_size("cols", cols)
    source = np.asarray(sequences)
    sequence_ndim = 2 if channels_last else 1
    if source.ndim < sequence_ndim:
        raise ValueError(f"sequences need at least {sequence_ndim} dimension(s), got shape {source.shape}")
    length_axis = source.ndim - sequence_ndim
    if source.shape[length_axis] != rows * cols:
        raise ValueError(
            f"sequences have length {source.shape[length_axis]} on axis {length_axis}, "
            f"expected rows * cols = {rows * cols}"
        )
    lead = source.shape[:length_axis]
    samples = source.shape[-1:] if channels_last else ()
    target = _checked_out(out, (*lead, rows, cols, *samples), source.dtype)
    if target.size == 0:
        return target
    src, dst = _pixel_views(_ready_source(source, target), target, channels_last)
    if src.shape[-1] == 1 and _cv2_scan.wanted(target.nbytes):
        planes = dst[..., 0].reshape(-1, rows, cols)
        if np.shares_memory(planes, target) and _cv2_scan.unscan_planes(
            src[..., 0].reshape(-1, rows * cols), planes, pattern
        ):
            return target
    if pattern is ZigzagPattern.HORIZONTAL:
        # The row boustrophedon is its own inverse on the (H, W) grid.
        grid = src.reshape(*lead, rows, cols, -1)
        for dst_plane, src_plane in _per_sample(dst, grid):
            _boustrophedon_rows(dst_plane, src_plane)
    elif pattern is ZigzagPattern.VERTICAL:
        grid = src.reshape(*lead, cols, rows, -1)
        for dst_batch, src_batch in _slice_batches(dst, grid):
            for dst_plane, src_plane in _per_sample(dst_batch, _transposable(src_batch)):
                _transpose_into(dst_plane[..., :, 0::2], src_plane[..., 0::2, :])
                _transpose_into(dst_plane[..., ::-1, 1::2], src_plane[..., 1::2, :])
    else:
        flat = src.reshape(*lead, rows * cols, -1)
        np.take(
            flat,
            _inverse_order(rows, cols, pattern),
            axis=-2,
            out=dst.reshape(*lead, rows * cols, -1),
            mode="clip",
        )
    return target


def _plane_shape(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    """``shape`` without its sample axis, checked to end in a non-empty plane."""
    needed = 3 if channels_last else 2
    if len(shape) < needed:
        layout = "(..., H, W, S)" if channels_last else "(..., H, W)"
        raise ValueError(f"planes must have shape {layout}, got {shape}")
    spatial = shape[:-1] if channels_last else shape
    if spatial[-2] < 1 or spatial[-1] < 1:
        raise ValueError(f"planes must have at least one row and one column, got {shape}")
    return spatial


def _checked_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """``out`` checked against the result's shape, or a fresh result array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the result has shape {shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous; pass numpy.ascontiguousarray(out) or None")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _ready_source(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The input in the target's dtype, and in memory the target does not share."""
    if source.dtype != target.dtype:
        cast = np.empty(source.shape, dtype=target.dtype)
        np.copyto(cast, source)  # numpy.copyto's "same_kind" rule and errors
        return cast
    if np.may_share_memory(source, target):
        return source.copy()
    return source


def _pixel_views(source: np.ndarray, target: np.ndarray, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``source`` and ``target`` with one trailing axis of pixel samples.

    The samples of a pixel are folded into one unsigned integer when their
    bytes are contiguous and add up to 1, 2, 4 or 8, so that pixels move as
    single elements (only bytes move, so the reinterpretation is exact).
    """
    if not channels_last:
        return source[..., np.newaxis], target[..., np.newaxis]
    samples = source.shape[-1]
    width = samples * source.dtype.itemsize
    if samples > 1 and width in (1, 2, 4, 8) and source.strides[-1] == source.dtype.itemsize:
        word = np.dtype(f"u{width}")
        return source.view(word), target.view(word)
    return source, target


def _per_sample(dst: np.ndarray, src: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The ``(..., A, B)`` planes of each sample of ``(..., A, B, S)`` arrays.

    Slicing paths copy one sample at a time: with a short sample axis innermost
    NumPy would call its copy loop once per pixel (about 5x slower for RGB).
    """
    for sample in range(dst.shape[-1]):
        yield dst[..., sample], src[..., sample]


def _slice_batches(dst: np.ndarray, src: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(dst, src)`` as ``(n, A, B, S)`` stacks, cut into L2-sized batches of planes."""
    plane_shape = dst.shape[-3:]
    dst_stack = dst.reshape(-1, *plane_shape)
    src_stack = src.reshape(-1, *src.shape[-3:])
    per_batch = max(1, _TRANSPOSE_BATCH_BYTES // max(1, dst_stack[0].nbytes))
    for begin in range(0, dst_stack.shape[0], per_batch):
        yield dst_stack[begin : begin + per_batch], src_stack[begin : begin + per_batch]


def _transposable(src: np.ndarray) -> np.ndarray:
    """``src`` (``(..., A, B, S)``), or a copy whose rows do not alias in L1.

    The ``_TRANSPOSE_STRIP`` rows of a strip are read together; with a row
    pitch that is a multiple of 128 bytes they share a few L1 sets. The copy's
    pitch is an odd multiple of 64 bytes where the pixel size allows it, so
    rows one or two apart land in different sets.
    """
    row_bytes = src.strides[-3]
    if src.flags.c_contiguous and row_bytes % (2 * _CACHE_LINE) != 0:
        return src
    *lead, height, width, samples = src.shape
    pixel_bytes = samples * src.dtype.itemsize
    pitch = next(
        (
            columns
            for columns in range(width, width + 2 * _CACHE_LINE)
            if (columns * pixel_bytes) % (2 * _CACHE_LINE) == _CACHE_LINE
        ),
        width + 1,
    )
    staged = np.empty((*lead, height, pitch, samples), dtype=src.dtype)[..., :width, :]
    staged[...] = src
    return staged


def _boustrophedon_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[..., r, :] = src[..., r, :]`` with the odd rows reversed."""
    dst[..., 0::2, :] = src[..., 0::2, :]
    dst[..., 1::2, :] = src[..., 1::2, ::-1]


def _transpose_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[..., a, b] = src[..., b, a]``, one strip of source rows at a time.

    NumPy walks an assignment with the destination's fastest axis innermost,
    so each strip reads ``_TRANSPOSE_STRIP`` source rows down their columns;
    those rows' cache lines stay in L1 while the strip is copied.
    """
    width = dst.shape[-1]
    for begin in range(0, width, _TRANSPOSE_STRIP):
        end = min(begin + _TRANSPOSE_STRIP, width)
        dst[..., :, begin:end] = np.swapaxes(src[..., begin:end, :], -2, -1)
