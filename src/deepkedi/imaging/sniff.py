"""Recognising image formats by their first bytes, with the standard library only.

The registry (:mod:`deepkedi.imaging.registry`) sniffs a file with these before it
imports the reader of the one format that matches, so that reading a ``.npy`` never
loads pydicom, nibabel or Pillow.
"""

from __future__ import annotations

import struct
import zlib

__all__ = [
    "MGH_START",
    "MGH_TYPE_CODES",
    "NIFTI_HEADERS",
    "gzipped_nifti_version",
    "mgh_gunzipped",
    "nifti_version",
    "sniff_dicom",
    "sniff_jpeg",
    "sniff_mgh",
    "sniff_nifti",
    "sniff_npy",
    "sniff_png",
    "sniff_tiff",
]

# DICOM
_UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_VRS = _LONG_VRS | frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
#: Groups a bare data set (no preamble, no "DICM") can begin with: file meta, identifying.
_FIRST_GROUPS = (0x0002, 0x0008)
#: Elements walked by the sniffer; two in ascending order are convincing.
_SNIFF_ELEMENTS = 4

# NIfTI
_GZIP_MAGIC = b"\x1f\x8b"
#: ``sizeof_hdr``, magic and its offset, per NIfTI version (single-file ``.nii`` magics only).
NIFTI_HEADERS = {1: (348, b"n+1\0", 344), 2: (540, b"n+2\0", 4)}

# FreeSurfer MGH
#: Version, the four dimensions and the voxel type code, big-endian.
MGH_START = struct.Struct(">6i")
#: MGH voxel type codes nibabel reads (uchar, int, float, short).
MGH_TYPE_CODES = frozenset({0, 1, 3, 4})

# NumPy
_NPY_MAGIC = b"\x93NUMPY"

# Raster
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_JPEG_MAGIC = b"\xff\xd8\xff"


def sniff_dicom(head: bytes) -> bool:
    """Whether ``head`` starts a DICOM file.

    True for a PS3.10 file (``b"DICM"`` after the 128-byte preamble) and for a
    bare data set whose first elements parse as group 0x0002 or 0x0008 elements
    in ascending tag order, in any of the three native encodings.
    """
    if head[128:132] == b"DICM":
        return True
    return _walks_like_dataset(head, "<") or _walks_like_dataset(head, ">")


def _walks_like_dataset(head: bytes, order: str) -> bool:
    pos, previous, walked = 0, -1, 0
    while walked < _SNIFF_ELEMENTS and pos + 8 <= len(head):
        group, element = struct.unpack_from(order + "HH", head, pos)
        tag = group << 16 | element
        if (walked == 0 and group not in _FIRST_GROUPS) or tag <= previous:
            return False
        vr = head[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                break
            if head[pos + 6 : pos + 8] != b"\0\0":
                return False
            (length,) = struct.unpack_from(order + "I", head, pos + 8)
            pos += 12
        elif vr in _VRS:
            (length,) = struct.unpack_from(order + "H", head, pos + 6)
            pos += 8
        elif order == "<":  # implicit VR exists only in little endian
            (length,) = struct.unpack_from("<I", head, pos + 4)
            pos += 8
        else:
            return False
        walked += 1
        if length == _UNDEFINED_LENGTH:
            # A sequence of undefined length: its items cannot be skipped cheaply.
            return True
        # Values have even length (PS3.5 7.1.1); a huge first one is random bytes.
        if length % 2 or (walked == 1 and length >= 0x10000):
            return False
        pos += length
        previous = tag
    # One element is enough only when the head ends before a second one could start.
    return walked >= 2 or (walked == 1 and pos + 8 > len(head))


def nifti_version(head: bytes) -> int | None:
    for version, (sizeof_hdr, magic, at) in NIFTI_HEADERS.items():
        if len(head) < 4 or head[at : at + 4] != magic:
            continue
        if sizeof_hdr in (struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]):
            return version
    return None


def gzipped_nifti_version(head: bytes) -> int | None:
    if not head.startswith(_GZIP_MAGIC):
        return None
    try:
        # wbits=31: a gzip stream. The head is a partial stream, which is fine:
        # decompressobj returns what it could inflate.
        inner = zlib.decompressobj(wbits=31).decompress(head, 1024)
    except zlib.error:
        return None
    return nifti_version(inner)


def sniff_nifti(head: bytes) -> bool:
    """Whether ``head`` starts a single-file NIfTI-1 or NIfTI-2 image, plain or gzipped."""
    return nifti_version(head) is not None or gzipped_nifti_version(head) is not None


def _mgh_plausible(head: bytes) -> bool:
    if len(head) < MGH_START.size:
        return False
    version, *dims, kind = MGH_START.unpack_from(head)
    return version == 1 and kind in MGH_TYPE_CODES and all(0 < d < 1 << 24 for d in dims)


def mgh_gunzipped(head: bytes) -> bytes | None:
    if not head.startswith(b"\x1f\x8b"):
        return None
    try:
        return zlib.decompressobj(wbits=31).decompress(head, MGH_START.size)
    except zlib.error:
        return None


def sniff_mgh(head: bytes) -> bool:
    """Whether ``head`` starts an MGH volume, plain or gzipped (version 1, a known voxel type, sane sizes)."""
    inner = mgh_gunzipped(head)
    return _mgh_plausible(head if inner is None else inner)


def sniff_npy(head: bytes) -> bool:
    """Whether ``head`` starts with the ``.npy`` magic string."""
    return head.startswith(_NPY_MAGIC)


def sniff_png(head: bytes) -> bool:
    """Whether ``head`` starts with the PNG signature."""
    return head.startswith(_PNG_MAGIC)


def sniff_tiff(head: bytes) -> bool:
    """Whether ``head`` starts with a TIFF or BigTIFF byte-order mark and magic number."""
    return head[:4] in _TIFF_MAGICS


def sniff_jpeg(head: bytes) -> bool:
    """Whether ``head`` starts with a JPEG start-of-image marker and another marker."""
    return head.startswith(_JPEG_MAGIC)
