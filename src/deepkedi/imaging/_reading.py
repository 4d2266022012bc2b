"""What every format reader shares: failure translation, file probing, splice maps.

Private to :mod:`deepkedi.imaging`. Each reader wraps its work in
:func:`translated_failures` so that a corrupt file surfaces as one
:class:`~deepkedi.errors.UnsupportedImageError` naming the file, never as a
library's own exception; readers whose file stores raw pixel words call
:func:`map_splice` so that every splice layout is checked the same way.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging.image import SourceLayout

__all__ = ["failure_reason", "finite_or_none", "map_splice", "probe", "read_into_array", "translated_failures"]

#: Longest library message quoted in an error; pydicom and Pillow can be verbose.
_MAX_REASON = 200


def failure_reason(exc: BaseException) -> str:
    """A library exception's message on one line, shortened, for an error message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


#: Exceptions that stop the program rather than report a bad file.
_INTERRUPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit)


@contextmanager
def translated_failures(path: Path, problem: str) -> Iterator[None]:
    """Re-raise any failure inside the block as :class:`UnsupportedImageError`.

    The message reads ``"{path}: {problem} ({the library's reason})"``.

    Parameters
    ----------
    path
        The file being read, named first in the message.
    problem
        What went wrong, in the reader's words (``"not a readable DICOM file"``).
    """
    try:
        yield
    except UnsupportedImageError:
        raise
    except OSError as exc:
        # Pillow and nibabel raise OSError without errno for bad content; only
        # an errno means the operating system itself refused.
        if exc.errno is not None:
            raise UnsupportedImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        raise UnsupportedImageError(f"{path}: {problem} ({failure_reason(exc)})") from None
    except BaseException as exc:
        # BaseException, not Exception: Rust decoders (pylibjpeg-rle) signal a
        # malformed stream with pyo3's PanicException, which derives from it.
        if isinstance(exc, _INTERRUPTIONS):
            raise
        raise UnsupportedImageError(f"{path}: {problem} ({failure_reason(exc)})") from None


def probe(path: Path, nbytes: int) -> tuple[int, bytes]:
    """The size of the file at ``path`` and its first ``nbytes`` bytes.

    Raises
    ------
    UnsupportedImageError
        The path is a directory, cannot be opened, or the file is empty.
    """
    if path.is_dir():
        raise UnsupportedImageError(f"{path}: is a directory, not an image file")
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(nbytes)
    except OSError as exc:
        raise UnsupportedImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise UnsupportedImageError(f"{path}: the file is empty")
    return size, head


def map_splice(
    path: Path,
    *,
    size: int,
    offset: int,
    dtype: np.dtype,
    shape: tuple[int, ...],
) -> tuple[np.memmap, SourceLayout]:
    """Map the raw pixel words of a file read-only, with the layout that rebuilds it.

    Parameters
    ----------
    path
        The image file.
    size
        Its size in bytes when its header was read.
    offset
        Byte offset of the first pixel word.
    dtype
        Type of the stored words, byte order included.
    shape
        C-ordered shape of the pixel run.

    Raises
    ------
    UnsupportedImageError
        The image has no pixels, or the file ends before its pixel data does.
    """
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    if count == 0:
        raise UnsupportedImageError(f"{path}: the image has no pixels (shape {shape})")
    nbytes = count * dtype.itemsize
    if offset < 0 or offset + nbytes > size:
        raise UnsupportedImageError(
            f"{path}: the file is truncated (its pixel data needs {offset + nbytes} bytes, the file has {size})"
        )
    pixels = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="C")
    layout = SourceLayout(path=path, size=size, restore="splice", pixel_offset=offset, stored_dtype=dtype.str)
    return pixels, layout


#: Bytes copied at a time by :func:`read_into_array`.
_READ_CHUNK = 1 << 22


def read_into_array(path: Path, stream: io.BufferedIOBase, nbytes: int) -> np.ndarray:
    """The next ``nbytes`` bytes of ``stream`` as a ``uint8`` array, read in chunks.

    A gzip stream's ``read(n)`` (and nibabel's reads through it) holds the bytes
    twice at the end, once as ``bytes`` and once copied into the array; reading
    chunk by chunk into one preallocated array holds them once.

    Raises
    ------
    UnsupportedImageError
        The stream ends first.
    """
    buffer = np.empty(nbytes, dtype=np.uint8)
    view = buffer.data
    done = 0
    while done < nbytes:
        count = stream.readinto(view[done : done + _READ_CHUNK])
        if not count:
            raise UnsupportedImageError(
                f"{path}: the file is truncated (its voxel data needs {nbytes} bytes, it holds {done})"
            )
        done += count
    return buffer


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float for JSON, or None when it is missing, malformed or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def affine_of(image: Any) -> np.ndarray:
    """The 4 × 4 voxel-to-world matrix a volume writer stores: ``image.metadata["affine"]``
    when it is a finite 4 × 4 matrix, else a diagonal built from the spacing (1 mm when unknown)."""
    try:
        matrix = np.asarray(image.metadata.get("affine"), dtype=float)
        if matrix.shape == (4, 4) and np.isfinite(matrix).all():
            return matrix
    except (TypeError, ValueError):
        pass  # no usable affine: fall back to the spacing
    zooms = list(reversed(image.spacing or ()))[:3]
    zooms += [1.0] * (3 - len(zooms))
    return np.diag([*zooms, 1.0])
