"""How pixel words lie in a container: planes, zigzag-scanned batches, and the cipher image.

Shared by the hybrid suite (:mod:`deepkedi.cipher.hybrid`), DICOM-native files
(:mod:`deepkedi.cipher.dicom_native`, whose Pixel Data *is* the cipher image)
and ``kedi inspect --cipher-image``. The payload of a hybrid container is
``restoration section ‖ pixel words``, the words of each plane in the pattern's
zigzag order (docs/FORMAT.md); :func:`cipher_image` puts their ciphertext back in
raster order, the picture the paper's statistics are computed on (Figs. 8-10).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from deepkedi.cipher.format import TAG_SIZE, ContainerHeader, Suite, read_header_from
from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.inputs import check_regular_input
from deepkedi.transforms.zigzag import zigzag_unscan

__all__ = [
    "BATCH_BYTES",
    "as_planes",
    "batch_sizes",
    "cipher_image",
    "pixel_ranges",
    "plane_layout",
    "read_exactly",
    "scanned_batches",
    "scanned_view",
    "scratch_bytes",
    "unscan_batch",
]

#: Pixel words handed to the cipher per step when streaming files.
BATCH_BYTES = 4 << 20


def as_planes(pixels: np.ndarray, channels_last: bool) -> np.ndarray:
    """``pixels`` as a stack of planes: (planes, H, W) or (planes, H, W, S)."""
    plane_ndim = 3 if channels_last else 2
    return pixels.reshape((-1, *pixels.shape[pixels.ndim - plane_ndim :]))


_ALIGN = 64
_scratch = threading.local()


#: Payloads up to this size reuse a per-thread buffer: fresh large allocations
#: cost page faults that would dominate a slice's encryption.
_SCRATCH_LIMIT = 64 << 20


def scratch_bytes(name: str, length: int, align_at: int) -> np.ndarray:
    """``length`` uninitialised bytes whose offset ``align_at`` is 64-byte aligned.

    The restoration section has any length; without the alignment the pixel
    words would sit at an odd address and NumPy would take its slow unaligned
    copies. Buffers up to :data:`_SCRATCH_LIMIT` are kept per thread and reused.
    """
    raw, address = _scratch.__dict__.get(name, (None, 0))
    if raw is None or len(raw) < length + _ALIGN:
        raw = np.empty(length + _ALIGN, dtype=np.uint8)
        address = raw.__array_interface__["data"][0]
        if length <= _SCRATCH_LIMIT:
            setattr(_scratch, name, (raw, address))
    shift = (-(address + align_at)) % _ALIGN
    return raw[shift : shift + length]


def scanned_view(buffer: np.ndarray, header: ContainerHeader) -> np.ndarray:
    """A byte buffer of pixel words viewed as (planes, H·W[, S]) in the payload dtype."""
    rows, cols = header.plane_shape
    samples = (header.shape[-1],) if header.channels_last else ()
    return buffer.view(header.dtype).reshape((-1, rows * cols, *samples))


def pixel_ranges(header: ContainerHeader) -> list[tuple[int, int]]:
    """(offset, length) of every run of pixel ciphertext in a hybrid container, in payload order."""
    step = header.segment_size + TAG_SIZE
    base = header.encoded_length
    begin, end = header.residual_length, header.payload_length
    ranges = []
    for i in range(begin // header.segment_size, header.segment_count):
        seg_start = i * header.segment_size
        lo, hi = max(begin, seg_start), min(end, seg_start + header.segment_size)
        if lo < hi:
            ranges.append((base + i * step + (lo - seg_start), hi - lo))
    return ranges


def read_exactly(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    data = fh.read(length)
    if len(data) != length:
        raise AuthenticationError()  # a file shorter than its header says
    return data


def plane_layout(header: ContainerHeader) -> tuple[int, ...]:
    """The shape of one plane of the image: (H, W) or (H, W, S)."""
    return header.plane_shape + ((header.shape[-1],) if header.channels_last else ())


def batch_sizes(header: ContainerHeader, batch_bytes: int) -> Iterator[int]:
    """Byte sizes of successive batches of whole planes, about ``batch_bytes`` each, covering the pixel words."""
    plane = math.prod(plane_layout(header)) * header.dtype.itemsize
    step = max(1, batch_bytes // plane) * plane
    for start in range(0, header.pixel_length, step):
        yield min(step, header.pixel_length - start)


def scanned_batches(container: io.BufferedIOBase, header: ContainerHeader, batch_bytes: int) -> Iterator[np.ndarray]:
    """The pixel ciphertext of a hybrid container in payload (zigzag) order, read across its
    segments in batches of whole planes, each viewed as (n, H·W[, S]). One buffer is reused:
    a batch is valid until the next one is asked for."""
    ranges = iter(pixel_ranges(header))
    offset = left = 0
    buffer = np.empty(next(batch_sizes(header, batch_bytes)), dtype=np.uint8)
    for size in batch_sizes(header, batch_bytes):
        filled = 0
        while filled < size:
            if left == 0:
                offset, left = next(ranges)
            n = min(left, size - filled)
            container.seek(offset)
            if container.readinto(buffer.data[filled : filled + n]) != n:
                raise AuthenticationError()  # a file shorter than its header says
            offset, left, filled = offset + n, left - n, filled + n
        yield scanned_view(buffer[:size], header)


def unscan_batch(scanned: np.ndarray, header: ContainerHeader, out: np.ndarray | None = None) -> np.ndarray:
    """Planes (n, H, W[, S]) in raster order from a batch of :func:`scanned_batches`."""
    rows, cols = header.plane_shape
    return zigzag_unscan(scanned, rows, cols, header.pattern, channels_last=header.channels_last, out=out)


def cipher_image(path_or_data: str | Path | bytes, *, out: np.ndarray | None = None) -> np.ndarray:
    """The cipher image of a container: the ciphertext of its pixel words, put back in place.

    No key is needed. Pixel (r, c) of each plane holds the ciphertext word that
    encrypts plain pixel (r, c), so the paper's statistics (entropy, NPCR,
    UACI, correlation) can be computed on it. Same shape and dtype as the
    encrypted pixels. For a ``paper`` container it is the stored cipher image
    itself (zigzag-scanned speckled pixels XOR the key image, raster order).

    A container file is read in batches of whole planes, never whole: with
    ``out`` (an array of the image's shape and the header's dtype, for instance a
    :func:`numpy.lib.format.open_memmap`) memory stays bounded for volumes of any size.

    Raises
    ------
    FormatError
        Not a container, or an opaque one (a file sealed whole has no cipher image).
    AuthenticationError
        The container's length contradicts its header.
    ValueError
        ``out`` has another shape or dtype.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(path_or_data, (str, Path)):
            check_regular_input(path_or_data, error=FormatError)
            container: io.BufferedReader | io.BytesIO = stack.enter_context(open(path_or_data, "rb"))
            length = os.fstat(container.fileno()).st_size
        else:
            data = memoryview(path_or_data).cast("B")
            container, length = io.BytesIO(data), len(data)
        header, _ = read_header_from(container)
        if header.opaque:
            raise FormatError(
                "this is an opaque container: it holds a file's bytes, not an image, and has no cipher image"
            )
        if length != header.container_length:
            raise AuthenticationError()
        if out is None:
            out = np.empty(header.shape, dtype=header.dtype)
        elif out.shape != header.shape or out.dtype != header.dtype:
            raise ValueError(f"out must have shape {header.shape} and dtype {header.dtype}")
        flat = out.reshape((-1, *plane_layout(header)))
        if header.suite is Suite.PAPER:
            # The paper suite stores its cipher image as it is, in raster order.
            words = read_exactly(container, header.encoded_length, header.pixel_length)
            flat[...] = np.frombuffer(words, dtype=header.dtype).reshape(flat.shape)
            return out
        done = 0
        for scanned in scanned_batches(container, header, BATCH_BYTES):
            unscan_batch(scanned, header, out=flat[done : done + len(scanned)])
            done += len(scanned)
        return out
