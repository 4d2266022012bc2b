"""FreeSurfer MGH volumes (``.mgh``, and gzipped ``.mgz``) through nibabel.

An MGH file is a 284-byte big-endian header (version 1, the four dimensions
width, height, depth and frames, the voxel type, the voxel-to-RAS geometry)
followed by the voxels, x fastest, then optional scan parameters after them.
As with NIfTI, the same bytes read in C order are the volume with its axes
reversed, ``(frames, depth, height, width)``, which puts a plane on the last two
axes. A ``.mgh`` is therefore a splice layout (a read-only memory map of the
big-endian words at byte 284); a ``.mgz`` is decompressed and carried verbatim.

MGH knows four voxel types: ``uchar`` (0), ``int`` (1, 32-bit), ``float`` (3,
32-bit) and ``short`` (4, 16-bit); FreeSurfer has no unsigned 16-bit type, so
writing a ``uint16`` image stores ``int32`` words (the values are kept).

References
----------
FreeSurfer, "MghFormat", https://surfer.nmr.mgh.harvard.edu/fswiki/FsTutorial/MghFormat;
nibabel's :mod:`nibabel.freesurfer.mghformat`.
"""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.fileholders import FileHolder

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging._reading import (
    affine_of,
    finite_or_none,
    map_splice,
    probe,
    read_into_array,
    translated_failures,
)
from deepkedi.imaging.image import MedicalImage, SourceLayout
from deepkedi.imaging.limits import check_decoded_size
from deepkedi.imaging.registry import SNIFF_BYTES
from deepkedi.imaging.sniff import MGH_START, mgh_gunzipped, sniff_mgh

__all__ = ["read_mgh", "sniff_mgh", "write_mgh"]

#: Version, width, height, depth, frames, type: the first 24 bytes of every MGH header.

#: MGH voxel type codes nibabel reads, with their stored (big-endian) dtypes.
_TYPES: dict[int, np.dtype] = {0: np.dtype(">u1"), 1: np.dtype(">i4"), 3: np.dtype(">f4"), 4: np.dtype(">i2")}
#: Bytes before the first voxel.
_DATA_OFFSET = 284
#: What each dtype is written as (MGH has no other integer widths).
_WRITE_AS = {
    np.dtype(np.uint8): np.uint8,
    np.dtype(np.bool_): np.uint8,
    np.dtype(np.int8): np.int16,
    np.dtype(np.int16): np.int16,
    np.dtype(np.uint16): np.int32,
    np.dtype(np.int32): np.int32,
    np.dtype(np.float16): np.float32,
    np.dtype(np.float32): np.float32,
}


def read_mgh(path: Path) -> MedicalImage:
    """Read a FreeSurfer ``.mgh`` or ``.mgz`` volume.

    Returns
    -------
    MedicalImage
        Stored voxel values, shape ``(frames, depth, height, width)`` with axes of
        length one dropped from the front (a single-frame volume is 3-D), big-endian
        words as stored. A ``.mgh`` gives a read-only memory map with a splice layout,
        a ``.mgz`` an in-memory array with a verbatim layout.

    Raises
    ------
    InputTooLargeError
        A ``.mgz`` whose header declares more voxel bytes than allowed
        (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not MGH, a damaged header, truncated voxel data, or an unsupported voxel type.
    """
    path = Path(path)
    size, head = probe(path, SNIFF_BYTES)
    compressed = mgh_gunzipped(head) is not None
    if not sniff_mgh(head):
        raise UnsupportedImageError(f"{path}: not a FreeSurfer MGH volume (no MGH header found)")
    # A damaged header can make nibabel's geometry overflow: that is a warning, not the
    # reader's business to print; the values are reported (or refused) as they are.
    with translated_failures(path, "not a readable MGH file"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if compressed:
            # Before nibabel, which inflates the whole stream to find what follows the voxels.
            check_decoded_size(path, _declared_bytes(mgh_gunzipped(head) or b""), file_size=size)
            with gzip.open(path, "rb") as fh:
                img = nib.MGHImage.from_file_map({"image": FileHolder(fileobj=fh)})
                stored, shape = _pixel_layout(img.header)
                fh.seek(_DATA_OFFSET)
                # The big-endian words in file order are the C-ordered view a .mgh's memory map gives.
                nbytes = math.prod(shape) * stored.itemsize
                pixels = read_into_array(path, fh, nbytes).view(stored).reshape(shape)
            layout = SourceLayout(path=path, size=size, restore="verbatim")
        else:
            with open(path, "rb") as fh:
                img = nib.MGHImage.from_file_map({"image": FileHolder(fileobj=fh)})
            stored, shape = _pixel_layout(img.header)
            pixels, layout = map_splice(path, size=size, offset=_DATA_OFFSET, dtype=stored, shape=shape)
        return MedicalImage(
            pixels=pixels,
            format="mgh",
            photometric="MONOCHROME2",
            spacing=_spacing(img.header),
            metadata=_metadata(img),
            source=layout,
        )


def _declared_bytes(start: bytes) -> int:
    """Bytes of voxels the header's first 24 bytes declare (the sniffer has checked them)."""
    _, *dims, kind = MGH_START.unpack_from(start)
    return math.prod(dims) * _TYPES[kind].itemsize


def _pixel_layout(header: Any) -> tuple[np.dtype, tuple[int, ...]]:
    kind = int(header["type"])
    if kind not in _TYPES:
        raise UnsupportedImageError(f"MGH voxel type {kind} is not supported")
    dims = [int(d) for d in header["dims"]]
    shape = tuple(reversed(dims))
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]  # no frame axis for one frame (nor depth for one slice)
    return _TYPES[kind], shape


def _spacing(header: Any) -> tuple[float, ...] | None:
    zooms = [finite_or_none(z) for z in header["delta"]]
    positive = [z for z in zooms if z is not None and z > 0]
    if len(positive) != len(zooms):
        return None
    return tuple(reversed(positive))


def _metadata(img: Any) -> dict[str, Any]:
    header = img.header
    return {
        "dims": [int(d) for d in header["dims"]],
        "type": int(header["type"]),
        "dtype": str(header.get_data_dtype()),
        "affine": [[finite_or_none(v) for v in row] for row in np.asarray(img.affine).tolist()],
        "good_ras_flag": int(header["goodRASFlag"]),
        "tr_ms": finite_or_none(header["tr"]),
        "flip_angle_rad": finite_or_none(header["flip_angle"]),
        "te_ms": finite_or_none(header["te"]),
        "ti_ms": finite_or_none(header["ti"]),
    }


def write_mgh(image: MedicalImage, path: Path) -> None:
    """Write ``image`` as an MGH volume, gzipped when the name ends in ``.mgz``.

    The pixels' C order becomes MGH's x-fastest order (axes reversed), so reading
    the file back gives the same values. ``uint16`` is stored as ``int32`` and
    ``int8`` as ``int16`` (MGH has no such types); the affine comes from
    ``image.metadata["affine"]`` when present, else from the spacing.

    Raises
    ------
    ValueError
        Colour images, more than four dimensions, or a dtype MGH cannot hold
        without loss (``float64``, 64-bit or unsigned 32-bit integers).
    """
    pixels = np.asarray(image.pixels)
    if image.channels_last or image.samples_per_pixel != 1:
        raise ValueError("MGH volumes hold one value per voxel; write colour images as PNG, TIFF or NIfTI")
    if pixels.ndim > 4:
        raise ValueError(f"MGH holds at most 4 dimensions; the image has {pixels.ndim}")
    target = _WRITE_AS.get(pixels.dtype.newbyteorder("="))
    if target is None:
        raise ValueError(f"MGH cannot hold {pixels.dtype} values without loss; write .nii or .npy instead")
    img = nib.MGHImage(np.asarray(pixels, dtype=target).T, affine_of(image))
    data = img.to_bytes()
    opener = gzip.open if str(path).lower().endswith(".mgz") else open
    with opener(path, "wb") as fh:
        fh.write(data)
