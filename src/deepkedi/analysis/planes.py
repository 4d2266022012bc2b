"""What the paper's statistics are computed on: an image's planes, or a container's cipher image.

``kedi metrics`` measures an image file or the cipher image of a container (the
ciphertext of its pixel words put back in place, Figs. 8-10 of the paper) as one
stack of 2-D planes; colour samples become planes of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepkedi.cipher.format import ContainerHeader, read_header_from
from deepkedi.cipher.layout import cipher_image
from deepkedi.errors import FormatError, UnsupportedImageError
from deepkedi.imaging import detect_format, read_image
from deepkedi.inputs import open_input

__all__ = ["leading_bytes", "load_planes"]


def load_planes(path: str | Path) -> tuple[np.ndarray, str, int]:
    """The image (or a container's cipher image) as a stack of planes, what it is, and its samples.

    Colour samples become planes of their own, sample-major within each pixel plane
    (``(..., samples, rows, cols)`` before the leading axes are flattened), so that a
    caller can give SSIM its channel axis back. A container's header knows
    interleaved colour only; planar colour in a container counts as grey planes.

    Raises
    ------
    UnsupportedImageError
        ``path`` is not a readable image or container, or its pixels are floating
        point (no bit depth for the statistics).
    AuthenticationError
        ``path`` starts like a container but its header is damaged.
    """
    path = Path(path)
    header = _container_header(path)
    if header is not None:
        pixels, channels_last, what = cipher_image(path), header.channels_last, "cipher image of a container"
        samples = int(pixels.shape[-1]) if channels_last else 1
    else:
        image = read_image(path)
        pixels, channels_last, what = np.asarray(image.pixels), image.channels_last, f"{image.format} image"
        samples = image.samples_per_pixel if image.channel_axis is not None else 1
    if channels_last:
        pixels = np.moveaxis(pixels, -1, -3)
    if samples > 1 and (pixels.ndim < 3 or pixels.shape[-3] != samples):
        samples = 1  # a samples count the pixels do not bear out: measure grey planes
    if pixels.ndim > 3:
        pixels = pixels.reshape((-1, *pixels.shape[-2:]))
    if pixels.dtype.kind == "b":
        pixels = pixels.astype(np.uint8)
    if pixels.dtype.kind == "f":
        raise UnsupportedImageError(f"{path}: floating-point pixels have no bit depth for these statistics")
    return pixels, what, samples


def _container_header(path: Path) -> ContainerHeader | None:
    """The header of the container ``path``; None for any other file (AuthenticationError if damaged)."""
    with open_input(path, error=FormatError) as fh:
        try:
            return read_header_from(fh)[0]
        except FormatError:
            return None


def _words_prefix(words: np.ndarray, n_bytes: int) -> bytes:
    """The first ``n_bytes`` bytes of an array's words in memory order, without copying the rest."""
    return np.ascontiguousarray(words).reshape(-1).view(np.uint8)[:n_bytes].tobytes()


def leading_bytes(path: str | Path, n_bytes: int) -> tuple[bytes, str]:
    """The first ``n_bytes`` bytes whose bits ``kedi nist`` tests, and what they are.

    A container's cipher image, an image's pixel words, or the file's raw bytes; of
    a raw file only the bytes needed are read. A FIFO or a device (``/dev/urandom``
    never ends) is refused before it is opened.
    """
    path = Path(path)
    if _container_header(path) is not None:
        return _words_prefix(cipher_image(path), n_bytes), "cipher image of a container"
    try:
        detect_format(path)
    except UnsupportedImageError:
        with open_input(path) as fh:
            return fh.read(n_bytes), "raw bytes"
    image = read_image(path)
    return _words_prefix(image.pixels, n_bytes), f"pixel words of a {image.format} image"
