"""The zigzag scans through OpenCV's SIMD kernels (flip, transpose, remap); NumPy stays the reference.

NumPy copies a reversed row at about a fifth of the speed of a plain copy, and
gathers through a permutation slower still; OpenCV's ``flip``, ``transpose`` and
``remap`` (nearest neighbour, exact integer coordinates) move the same words several
times faster. Only bytes move: words of 1, 2, 4 or 8 bytes are viewed as OpenCV's
8-bit, 16-bit, 32-bit float and 64-bit float element types, which it copies bit for
bit. :mod:`deepkedi.transforms.zigzag` calls :func:`scan_planes` / :func:`unscan_planes`
when OpenCV is installed and the planes are large enough for it to pay (or OpenCV is
loaded already), and its NumPy path otherwise; the tests hold both equal on every
shape, dtype and pattern.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from typing import Any

import numpy as np

from deepkedi.transforms.patterns import ZigzagPattern

__all__ = ["available", "scan_planes", "unscan_planes", "wanted"]

#: Below this many bytes NumPy's few microseconds beat loading OpenCV (about 15 ms) in a short process.
MIN_BYTES = 1 << 18
#: OpenCV's remap takes planes of fewer rows and columns than this.
_MAX_SIDE = 32767
#: Word size → the OpenCV element type that carries it unchanged.
_CARRIERS: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.float32),
    8: np.dtype(np.float64),
}


@functools.cache
def available() -> bool:
    """Whether OpenCV (``opencv-python-headless``) is installed."""
    return importlib.util.find_spec("cv2") is not None


def wanted(nbytes: int) -> bool:
    """Whether to take the OpenCV path for ``nbytes`` of pixel words."""
    return available() and (nbytes >= MIN_BYTES or "cv2" in sys.modules)


#: Row padding of the transpose buffer, in bytes: see :func:`_staging`.
_ROW_PAD = 64
#: Staging buffers up to this size stay with their thread for the next call (as the cipher's scratch).
_KEEP_LIMIT = 64 << 20
_KEEP_VIEWS = 16
_local = threading.local()


def _staging(rows: int, cols: int, carrier: np.dtype[Any], slot: str = "first") -> np.ndarray:
    """A per-thread (rows, cols) buffer whose row stride is *not* a multiple of 256 bytes.

    A transpose writes one element per destination row; with a row stride of a
    power of two (a 512-wide 16-bit plane: 1024 bytes) every write lands in the same
    few cache sets and OpenCV's transpose runs at a quarter of its speed (measured:
    69 µs against 16 µs for a 512² 16-bit plane). Transposing into this buffer and
    copying the rows out costs less than the conflicts. The caller zeroes it after
    use: it holds pixels.
    """
    views: dict[tuple[str, int, int, str], np.ndarray] = _local.__dict__.setdefault("views", {})
    view = views.get((slot, rows, cols, carrier.char))
    if view is not None:
        return view
    stride = -(-cols * carrier.itemsize // _ROW_PAD) * _ROW_PAD
    if stride % 256 == 0:
        stride += _ROW_PAD
    need = rows * stride
    raw = _local.__dict__.get(slot)
    keep = need <= _KEEP_LIMIT
    if raw is None or raw.nbytes < need:
        raw = np.empty(need, dtype=np.uint8)
        if keep:
            setattr(_local, slot, raw)
            views.clear()
    view = np.lib.stride_tricks.as_strided(
        raw[:need].view(carrier), shape=(rows, cols), strides=(stride, carrier.itemsize), writeable=True
    )
    if keep:
        if len(views) >= _KEEP_VIEWS:
            views.clear()
        views[(slot, rows, cols, carrier.char)] = view
    return view


def _cv2() -> Any:
    import cv2

    return cv2


def _into(result: np.ndarray, target: np.ndarray) -> None:
    """OpenCV writes into ``dst=`` when it can; should it ever return a new array instead, copy it."""
    if result is not target and not np.shares_memory(result, target):
        target[...] = result


def _boustrophedon(cv2: Any, source: np.ndarray, target: np.ndarray) -> None:
    """``target`` = ``source`` with every odd row reversed (the zigzag's back-and-forth rows), either way round."""
    target[0::2] = source[0::2]
    if len(source) > 1:
        _into(cv2.flip(source[1::2], 1, dst=target[1::2]), target[1::2])


def _fits(planes: np.ndarray, rows: int, cols: int) -> bool:
    return planes.dtype.itemsize in _CARRIERS and rows < _MAX_SIDE and cols < _MAX_SIDE


@functools.lru_cache(maxsize=8)
def _maps(rows: int, cols: int, pattern: ZigzagPattern, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """remap's float32 x and y maps of the permutation (or its inverse), shaped (rows, cols)."""
    from deepkedi.transforms.zigzag import inverse_order, scan_order

    order = (inverse_order if inverse else scan_order)(rows, cols, pattern)
    x = (order % cols).astype(np.float32).reshape(rows, cols)
    y = (order // cols).astype(np.float32).reshape(rows, cols)
    return x, y


def scan_planes(src: np.ndarray, dst: np.ndarray, pattern: ZigzagPattern) -> bool:
    """``dst[n] = zigzag scan of src[n]`` for (N, rows, cols) planes into (N, rows·cols); False if not taken."""
    _, rows, cols = src.shape
    if not _fits(src, rows, cols):
        return False
    carrier = _CARRIERS[src.dtype.itemsize]
    cv2 = _cv2()
    planes = src.view(carrier)
    if pattern is ZigzagPattern.VERTICAL:
        grids = dst.view(carrier).reshape(-1, cols, rows)
        staged = _staging(cols, rows, carrier)
        try:
            for n in range(len(planes)):
                # Columns become rows, then every other one is reversed on its way out.
                _into(cv2.transpose(np.ascontiguousarray(planes[n]), dst=staged), staged)
                _boustrophedon(cv2, staged, grids[n])
        finally:
            staged.fill(0)
        return True
    for n in range(len(planes)):
        plane = planes[n]
        if pattern is ZigzagPattern.HORIZONTAL:
            _boustrophedon(cv2, plane, dst[n].view(carrier).reshape(rows, cols))
        else:
            x, y = _maps(rows, cols, pattern, inverse=False)
            grid = dst[n].view(carrier).reshape(rows, cols)
            _into(cv2.remap(np.ascontiguousarray(plane), x, y, cv2.INTER_NEAREST, dst=grid), grid)
    return True


def unscan_planes(src: np.ndarray, dst: np.ndarray, pattern: ZigzagPattern) -> bool:
    """The inverse of :func:`scan_planes`: (N, rows·cols) sequences into (N, rows, cols) planes."""
    _, rows, cols = dst.shape
    if not _fits(dst, rows, cols):
        return False
    carrier = _CARRIERS[dst.dtype.itemsize]
    cv2 = _cv2()
    planes = dst.view(carrier)
    if pattern is ZigzagPattern.VERTICAL:
        # Straighten the reversed rows into one buffer, transpose into another, copy out.
        straight = _staging(cols, rows, carrier, "second")
        staged = _staging(rows, cols, carrier)
        try:
            for n in range(len(planes)):
                _boustrophedon(cv2, src[n].view(carrier).reshape(cols, rows), straight)
                _into(cv2.transpose(straight, dst=staged), staged)
                planes[n][...] = staged
        finally:
            straight.fill(0)
            staged.fill(0)
        return True
    for n in range(len(planes)):
        plane = planes[n]
        if pattern is ZigzagPattern.HORIZONTAL:
            _boustrophedon(cv2, src[n].view(carrier).reshape(rows, cols), plane)
        else:
            x, y = _maps(rows, cols, pattern, inverse=True)
            sequence = np.ascontiguousarray(src[n].view(carrier)).reshape(rows, cols)
            _into(cv2.remap(sequence, x, y, cv2.INTER_NEAREST, dst=plane), plane)
    return True
