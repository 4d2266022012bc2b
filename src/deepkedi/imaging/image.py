"""`MedicalImage`: the one image type that flows between layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepkedi.errors import UnsupportedImageError

__all__ = ["MedicalImage", "SourceLayout"]


@dataclass(frozen=True)
class SourceLayout:
    """How the file an image was read from is rebuilt byte for byte.

    Two strategies exist:

    ``"splice"``
        The file holds the pixel words uncompressed in one contiguous run starting
        at ``pixel_offset``, C-ordered exactly like :attr:`MedicalImage.pixels`
        and typed ``stored_dtype`` (byte order included). The file is rebuilt as
        ``file[:pixel_offset] + pixels.astype(stored_dtype).tobytes() + file[pixel_offset + nbytes:]``,
        so only the bytes around the pixels need to be carried beside them.
    ``"verbatim"``
        Anything else (compressed DICOM, ``.nii.gz``, PNG, TIFF): the original
        bytes are carried whole; the decoded pixels travel beside them for the
        cipher image and the in-memory API.

    Parameters
    ----------
    path
        The file the image was read from.
    size
        Its size in bytes when it was read, checked again before it is used.
    restore
        ``"splice"`` or ``"verbatim"``.
    pixel_offset
        Splice only: byte offset of the first pixel word in the file.
    stored_dtype
        Splice only: NumPy dtype string of the pixel words as stored, with byte
        order (``"<u2"``, ``">i2"``, ``"|u1"``...).
    """

    path: Path
    size: int
    restore: Literal["splice", "verbatim"]
    pixel_offset: int = 0
    stored_dtype: str | None = None

    def read_surrounding(self, pixel_nbytes: int) -> tuple[bytes, bytes]:
        """The file's bytes before and after its pixel words (splice layouts).

        Raises
        ------
        UnsupportedImageError
            The file changed size since it was read, or cannot be read.
        """
        if self.restore != "splice":
            raise ValueError("only splice layouts have bytes around the pixels")
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, 2)
                if fh.tell() != self.size:
                    raise UnsupportedImageError(f"{self.path}: the file changed while it was being read")
                fh.seek(0)
                prefix = fh.read(self.pixel_offset)
                fh.seek(self.pixel_offset + pixel_nbytes)
                suffix = fh.read()
        except OSError as exc:
            raise UnsupportedImageError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        return prefix, suffix

    def __post_init__(self) -> None:
        if self.restore not in ("splice", "verbatim"):
            raise ValueError(f"restore must be 'splice' or 'verbatim', not {self.restore!r}")
        if self.restore == "splice" and self.stored_dtype is None:
            raise ValueError("a splice layout needs stored_dtype")


@dataclass(frozen=True, eq=False)
class MedicalImage:
    """Pixels plus the metadata needed to use them and to rebuild their source.

    Parameters
    ----------
    pixels
        The stored pixel values, C-ordered with the image plane on the last two
        axes: ``(rows, cols)``, ``(frames, rows, cols)``, ``(..., rows, cols)``, or
        with a trailing samples axis ``(..., rows, cols, samples)`` when
        :attr:`channels_last` holds. Values are the words as stored (no rescale
        slope, no lookup table applied). May be a read-only memory map.
    format
        Name of the registered format the image was read from (``"dicom"``,
        ``"nifti"``, ``"png"``, ``"tiff"``, ``"npy"``) or ``"array"``.
    photometric
        DICOM photometric interpretation vocabulary: ``MONOCHROME1``,
        ``MONOCHROME2``, ``RGB``, ``PALETTE COLOR``, ``YBR_FULL``...
    samples_per_pixel
        1 for grey images, 3 for colour.
    channels_last
        True when the last axis of ``pixels`` holds the samples of one pixel
        (interleaved colour). Planar colour keeps one plane per slice instead.
    spacing
        Physical size of a pixel, in millimetres, for the trailing spatial axes
        (slice, row, column order), when known.
    modality
        DICOM modality code (``CT``, ``MR``, ``CR``, ``DX``, ``US``...) when known.
    bits_stored
        Significant bits of each stored word (12 for most CT), when known.
    metadata
        Format-specific, JSON-serialisable details (transfer syntax, affine...).
    source
        How to rebuild the original file, or None for images made in memory.
    """

    pixels: np.ndarray
    format: str = "array"
    photometric: str = "MONOCHROME2"
    samples_per_pixel: int = 1
    channels_last: bool = False
    spacing: tuple[float, ...] | None = None
    modality: str | None = None
    bits_stored: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: SourceLayout | None = None

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray):
            raise TypeError(f"pixels must be a NumPy array, not {type(pixels).__name__}")
        min_ndim = 3 if self.channels_last else 2
        if pixels.ndim < min_ndim:
            raise ValueError(
                f"pixels must have at least {min_ndim} dimensions "
                f"(rows, cols{', samples' if self.channels_last else ''}); got shape {pixels.shape}"
            )
        if pixels.dtype.kind not in "uifb":
            raise TypeError(f"pixels must be boolean, integer or floating point, not {pixels.dtype}")

    @property
    def plane_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of one image plane."""
        shape = self.pixels.shape
        return (shape[-3], shape[-2]) if self.channels_last else (shape[-2], shape[-1])

    @property
    def channel_axis(self) -> int | None:
        """Axis of :attr:`pixels` that holds the colour samples, or None for grey images.

        ``-1`` for interleaved colour (:attr:`channels_last`), ``-3`` for planar colour
        (``(..., samples, rows, cols)``). Metrics that treat the samples differently from
        the spatial axes (SSIM's ``channel_axis``) take it from here.
        """
        if self.samples_per_pixel <= 1:
            return None
        return -1 if self.channels_last else -3

    @property
    def rows(self) -> int:
        return self.plane_shape[0]

    @property
    def cols(self) -> int:
        return self.plane_shape[1]

    @property
    def n_planes(self) -> int:
        """Number of image planes (slices × frames × planar samples)."""
        lead = self.pixels.shape[:-3] if self.channels_last else self.pixels.shape[:-2]
        return int(np.prod(lead, dtype=np.int64))

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    def with_pixels(self, pixels: np.ndarray) -> MedicalImage:
        """A copy carrying other pixels of the same shape; the source is dropped."""
        if pixels.shape != self.pixels.shape:
            raise ValueError(f"shape {pixels.shape} differs from the image's {self.pixels.shape}")
        return replace(self, pixels=pixels, source=None)
