"""NIfTI-1 and NIfTI-2 volumes through nibabel.

NIfTI stores voxels in Fortran order, x fastest. Read as a C-ordered array the
same bytes are the volume with its axes reversed, ``(..., t, z, y, x)``, which
puts an axial plane ``(y, x)`` on the last two axes as :class:`MedicalImage`
wants, without moving a byte. A ``.nii`` file is therefore a splice layout: a
read-only memory map at the voxel offset. A ``.nii.gz`` is decompressed and
carried verbatim. Values stay as stored: ``scl_slope`` and ``scl_inter`` are
reported in the metadata, never applied.

References
----------
NIfTI-1 Data Format, https://nifti.nimh.nih.gov/nifti-1 (header fields ``vox_offset``,
``scl_slope``, ``datatype``). NIfTI-2: https://nifti.nimh.nih.gov/nifti-2
"""

from __future__ import annotations

import gzip
import io
import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import imageglobals
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
from deepkedi.imaging.sniff import NIFTI_HEADERS, gzipped_nifti_version, nifti_version, sniff_nifti

__all__ = ["read_nifti", "sniff_nifti", "write_nifti"]

#: Millimetres per unit of NIfTI's ``xyzt_units`` spatial codes, as nibabel names them.
_MM_PER_UNIT = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3}


@contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Silence nibabel's log of each header field it repairs while loading.

    (nibabel's own ``LoggingOutputSuppressor`` leaves Python's last-resort
    handler printing.) Problems past nibabel's error level still raise.
    """
    logger = imageglobals.logger
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _file_map(fileobj: io.IOBase) -> dict[str, FileHolder]:
    # A single-file image: header and voxels share one stream. Passing the stream
    # instead of the name keeps nibabel from choosing a reader by file name.
    return {"header": FileHolder(fileobj=fileobj), "image": FileHolder(fileobj=fileobj)}


def read_nifti(path: Path) -> MedicalImage:
    """Read a NIfTI-1 or NIfTI-2 image (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    path
        The image file.

    Returns
    -------
    MedicalImage
        Stored voxel values, shape ``tuple(reversed(header.get_data_shape()))``;
        RGB24 and RGBA32 volumes become ``uint8`` with a trailing samples axis.
        A ``.nii`` gives a read-only memory map with a splice layout; a ``.nii.gz``
        gives an in-memory array with a verbatim layout.

    Raises
    ------
    InputTooLargeError
        A ``.nii.gz`` whose header declares more voxel bytes than allowed
        (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not NIfTI, a damaged header, truncated voxel data, complex voxels, or
        fewer than two dimensions.
    """
    path = Path(path)
    size, head = probe(path, SNIFF_BYTES)
    version, compressed = nifti_version(head), False
    if version is None:
        version, compressed = gzipped_nifti_version(head), True
    if version is None:
        raise UnsupportedImageError(f"{path}: not a NIfTI-1 or NIfTI-2 image (no NIfTI header found)")
    image_class = nib.Nifti2Image if version == 2 else nib.Nifti1Image
    with translated_failures(path, "not a readable NIfTI file"), _quiet_nibabel():
        if compressed:
            with gzip.open(path, "rb") as fh:
                # nibabel inflates what the header declares: extensions up to vox_offset
                # (into memory, even while reading the header), then the voxels. Both
                # are checked from the raw header before nibabel reads a byte.
                check_decoded_size(path, _declared_stream_bytes(fh.read(NIFTI_HEADERS[2][0])), file_size=size)
                fh.seek(0)
                header = _stored_header(image_class, fh)
                img = image_class.from_file_map(_file_map(fh))
                nbytes = _declared_bytes(img.header)
                stored, shape, samples = _pixel_layout(path, img.header)
                if nbytes == 0:
                    raise UnsupportedImageError(f"{path}: the image has no pixels (shape {shape})")
                fh.seek(int(img.dataobj.offset))
                # The voxels' bytes in file order are the same C-ordered view as the
                # memory map of a .nii gives.
                pixels = read_into_array(path, fh, nbytes).view(stored).reshape(shape)
            layout = SourceLayout(path=path, size=size, restore="verbatim")
        else:
            with open(path, "rb") as fh:
                header = _stored_header(image_class, fh)
                img = image_class.from_file_map(_file_map(fh))
                offset = int(img.dataobj.offset)
            stored, shape, samples = _pixel_layout(path, img.header)
            pixels, layout = map_splice(path, size=size, offset=offset, dtype=stored, shape=shape)
        return MedicalImage(
            pixels=pixels,
            format="nifti",
            photometric="RGB" if samples > 1 else "MONOCHROME2",
            samples_per_pixel=samples,
            channels_last=samples > 1,
            spacing=_spacing(img.header),
            metadata=_metadata(img, header, version),
            source=layout,
        )


def _stored_header(image_class: type[nib.Nifti1Image], fh: io.IOBase) -> Any:
    """The header as the file stores it, leaving ``fh`` at the start.

    nibabel moves ``scl_slope`` and ``scl_inter`` out of an image's header into its
    data proxy; the metadata reports them as stored.
    """
    header = image_class.header_class.from_fileobj(fh)
    fh.seek(0)
    return header


#: Bytes per voxel of each NIfTI datatype code (NIfTI-1 header, field ``datatype``).
_DATATYPE_BYTES = {
    2: 1,
    4: 2,
    8: 4,
    16: 4,
    32: 8,
    64: 8,
    128: 3,
    256: 1,
    512: 2,
    768: 4,
    1024: 8,
    1280: 8,
    1536: 16,
    1792: 16,
    2048: 32,
    2304: 4,
}


def _declared_stream_bytes(raw: bytes) -> int:
    """Bytes a reader inflates for the image whose header starts ``raw``: everything
    up to ``vox_offset`` (header and extensions), then dims x voxel size.

    Fields as the NIfTI-1 and NIfTI-2 specifications place them; a header too
    damaged to say gives 0 and is left for nibabel to refuse.
    """
    version = nifti_version(raw)
    if version is None:
        return 0
    sizeof_hdr = NIFTI_HEADERS[version][0]
    order = "<" if struct.unpack_from("<i", raw)[0] == sizeof_hdr else ">"
    if version == 1:
        dims = struct.unpack_from(order + "8h", raw, 40)
        (datatype,) = struct.unpack_from(order + "h", raw, 70)
        (vox_offset,) = struct.unpack_from(order + "f", raw, 108)
    else:
        dims = struct.unpack_from(order + "8q", raw, 16)
        (datatype,) = struct.unpack_from(order + "h", raw, 12)
        (vox_offset,) = struct.unpack_from(order + "q", raw, 168)
    ndim = min(max(int(dims[0]), 0), 7)
    voxels = math.prod(max(int(d), 0) for d in dims[1 : ndim + 1])
    offset = int(vox_offset) if math.isfinite(vox_offset) and vox_offset > sizeof_hdr else sizeof_hdr
    return offset + voxels * _DATATYPE_BYTES.get(datatype, 0)


def _declared_bytes(header: Any) -> int:
    """Bytes of voxel data the header declares (Python integers: no overflow)."""
    return math.prod(int(n) for n in header.get_data_shape()) * header.get_data_dtype().itemsize


def _pixel_layout(path: Path, header: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """Stored dtype, C-ordered pixel shape and samples per voxel."""
    dtype = header.get_data_dtype()
    shape = tuple(int(n) for n in reversed(header.get_data_shape()))
    if len(shape) < 2:
        raise UnsupportedImageError(
            f"{path}: an image needs at least two dimensions; the volume has shape {shape[::-1]}"
        )
    if dtype.fields is not None:
        # RGB24 / RGBA32: one uint8 per colour channel, interleaved per voxel.
        if any(dtype.fields[name][0] != np.uint8 for name in dtype.names):
            raise UnsupportedImageError(f"{path}: voxel type {dtype} is not supported")
        samples = len(dtype.names)
        return np.dtype(np.uint8), (*shape, samples), samples
    if dtype.kind not in "uifb":
        raise UnsupportedImageError(f"{path}: {dtype} voxels (complex or other) are not supported")
    return dtype, shape, 1


def _spacing(header: Any) -> tuple[float, ...] | None:
    n_spatial = min(3, len(header.get_data_shape()))
    unit = _MM_PER_UNIT.get(header.get_xyzt_units()[0], 1.0)  # "unknown" is taken as mm
    zooms = [finite_or_none(z) for z in header.get_zooms()[:n_spatial]]
    positive = [z for z in zooms if z is not None and z > 0]
    if len(positive) != len(zooms):
        return None
    return tuple(z * unit for z in reversed(positive))


def _metadata(img: Any, header: Any, version: int) -> dict[str, Any]:
    intent_name, intent_parameters, _ = header.get_intent()
    return {
        "nifti_version": version,
        "dims": [int(n) for n in header.get_data_shape()],
        "affine": [[finite_or_none(v) for v in row] for row in np.asarray(img.affine).tolist()],
        "datatype": int(header["datatype"]),
        "datatype_name": str(header.get_value_label("datatype")),
        "scl_slope": finite_or_none(header["scl_slope"]),
        "scl_inter": finite_or_none(header["scl_inter"]),
        "intent": intent_name,
        "intent_code": int(header["intent_code"]),
        "intent_parameters": [finite_or_none(p) for p in intent_parameters],
        "qform_code": int(header["qform_code"]),
        "sform_code": int(header["sform_code"]),
        "xyzt_units": list(header.get_xyzt_units()),
    }


def write_nifti(image: MedicalImage, path: Path) -> None:
    """Write ``image`` as a NIfTI-1 file, gzipped when the name ends in ``.gz``.

    The pixels' C order becomes NIfTI's Fortran order, so the axes are reversed
    (``(z, y, x)`` pixels give an ``(x, y, z)`` volume) and reading the file back
    gives the same array. The affine comes from ``image.metadata["affine"]`` when
    present, else from :attr:`MedicalImage.spacing`. Values are written unscaled.

    Raises
    ------
    ValueError
        Interleaved samples other than 3 or 4 ``uint8`` channels (RGB24, RGBA32).
    """
    pixels = np.asarray(image.pixels)
    if image.channels_last:
        samples = pixels.shape[-1]
        if pixels.dtype != np.uint8 or samples not in (3, 4):
            raise ValueError("NIfTI stores colour only as 3 or 4 uint8 channels (RGB24, RGBA32)")
        rgb = np.dtype([(name, "u1") for name in "RGBA"[:samples]])
        volume = np.ascontiguousarray(pixels).view(rgb)[..., 0]
    elif pixels.dtype == np.bool_:
        volume = pixels.astype(np.uint8)
    elif pixels.dtype == np.float16:
        volume = pixels.astype(np.float32)
    else:
        volume = pixels
    img = nib.Nifti1Image(volume.T, affine_of(image))
    img.header.set_data_dtype(volume.dtype)
    img.header.set_xyzt_units("mm", "sec")
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "wb") as fh:
        img.to_file_map(_file_map(fh))
