"""Small files that decode to a lot: decompression bombs of every format read into memory.

Each writer streams its zeros through the compressor, so building a file that
decodes to gigabytes takes megabytes of memory. ``claimed`` is the decoded size
the headers declare; a writer given ``stored`` fewer bytes writes a header that lies.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

_CHUNK = 1 << 20


def _zeros(out, nbytes: int) -> None:
    block = bytes(_CHUNK)
    while nbytes > 0:
        out.write(block[: min(nbytes, _CHUNK)])
        nbytes -= _CHUNK


def nifti_gz(path: Path, shape: tuple[int, ...], *, dtype=np.int16, stored: int | None = None) -> Path:
    """A gzipped NIfTI-1 of ``shape`` (x fastest) zeros; ``stored`` voxel bytes only, when given."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header.binaryblock + b"\0" * 4)
        _zeros(fh, nbytes if stored is None else stored)
    return path


def mgz(path: Path, dims: tuple[int, int, int, int], *, kind: int = 3, stored: int | None = None) -> Path:
    """A gzipped MGH volume of ``dims`` (width, height, depth, frames) zeros; type 3 is float32."""
    itemsize = {0: 1, 1: 4, 3: 4, 4: 2}[kind]
    header = bytearray(284)
    struct.pack_into(">6i", header, 0, 1, *dims, kind)
    struct.pack_into(">h", header, 28, 1)  # goodRASFlag
    struct.pack_into(">3f", header, 30, 1.0, 1.0, 1.0)  # voxel sizes
    struct.pack_into(">9f", header, 42, 1, 0, 0, 0, 1, 0, 0, 0, 1)  # direction cosines
    nbytes = int(np.prod(dims, dtype=np.int64)) * itemsize
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(bytes(header))
        _zeros(fh, nbytes if stored is None else stored)
    return path


def deflated_dicom(path: Path, *, rows: int, cols: int, frames: int = 1) -> Path:
    """A Deflated Explicit VR Little Endian DICOM whose native 16-bit pixel data is all zeros."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)  # explicit VR little endian, everything before the pixel data
    nbytes = rows * cols * frames * 2
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, nbytes)
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    with open(path, "wb") as fh:
        fh.write(head.getvalue())
        deflater = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        fh.write(deflater.compress(body.getvalue() + pixel_header))
        block = bytes(_CHUNK)
        left = nbytes
        while left > 0:
            fh.write(deflater.compress(block[: min(left, _CHUNK)]))
            left -= _CHUNK
        fh.write(deflater.flush())
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path: Path, *, width: int, height: int) -> Path:
    """An 8-bit greyscale PNG of zeros (each row: filter byte 0, then ``width`` zeros)."""
    deflater = zlib.compressobj(1)
    row = bytes(width + 1)
    idat = bytearray()
    for _ in range(height):
        idat += deflater.compress(row)
    idat += deflater.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        fh.write(_chunk(b"IDAT", bytes(idat)))
        fh.write(_chunk(b"IEND", b""))
    return path


def tiff(path: Path, *, pages: int, side: int) -> Path:
    """A deflate-compressed TIFF of ``pages`` identical ``side`` x ``side`` 8-bit pages of zeros."""
    from PIL import Image

    page = Image.new("L", (side, side))
    page.save(path, format="TIFF", compression="tiff_adobe_deflate", save_all=True, append_images=[page] * (pages - 1))
    return path
