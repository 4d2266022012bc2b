"""DICOM-native encryption: a valid, de-identified DICOM file that carries its original inside.

``encrypt_dicom_native(IN.dcm, OUT.dcm, key)`` writes a DICOM file of the same
SOP Class as ``IN.dcm`` in which

- the header is de-identified with the Basic Application Level Confidentiality
  Profile (PS3.15 Annex E, :mod:`deepkedi.imaging.confidentiality`): ``D`` →
  dummy value of the VR (Patient ID: a keyed pseudonym), ``Z`` → empty, ``X`` →
  removed, ``U`` → a new UID, the same for every file of a study; the compound
  codes take the choice that keeps *every* IOD conformant (:func:`resolved_action`);
  private data elements, curves and the
  Overlay Plane modules are removed; Patient Identity Removed (0012,0062) is
  ``YES`` and De-identification Method (0012,0063) and its code sequence
  (0012,0064, DCM 113100) say what was done;
- Pixel Data holds the *cipher image* of the hybrid container of the whole
  original file (:func:`deepkedi.cipher.layout.cipher_image`): same rows,
  columns, frames, samples and bits allocated, stored uncompressed (Explicit VR
  Little Endian), so a viewer shows noise and burned-in text is gone;
- Encrypted Attributes Sequence (0400,0500) holds one item whose Encrypted
  Content (0400,0520) is that container *without its pixel ciphertext* (the
  pixel words already sit in Pixel Data; decryption puts them back). Pixel Data
  is written straight from the container as it is sealed (one pass, no scratch copy)
  and read back in batches of whole planes to decrypt, so memory stays bounded.

``decrypt_dicom_native`` rebuilds the container from those two parts and
decrypts it: the original file comes back byte for byte (its SHA-256 is checked),
and a wrong key, a changed Encrypted Content or changed Pixel Data raise
:class:`~deepkedi.errors.AuthenticationError` with no output written.

Deviation from PS3.15 E.1.2 / PS3.3 C.12.1.1.4.1: the standard wants a CMS
EnvelopedData (RFC 5652) in Encrypted Content whose plaintext is a data set
with a Modified Attributes Sequence. We store our own authenticated container
(``docs/FORMAT.md``; AES-256-GCM under HKDF-SHA256 keys), and its plaintext is
the whole original Part 10 file. A standard CMS reader (GDCM's ``gdcmanon -d``,
DCMTK) sees a well-formed sequence but cannot decrypt it (``gdcmanon -d`` exits 1);
only deepkedi with the key restores the original. See ``docs/DICOM_NATIVE.md``.

New UIDs (action ``U``) are ``2.25.<int>`` where ``<int>`` is a UUID (version
8, RFC 9562) made from the first 16 bytes of HMAC-SHA256(uid key, old UID); the
uid key is derived from the master key with HKDF (info
``"deepkedi/v1 dicom-native uid key"``), so every file of one study encrypted
with one key gets the same new Study/Series/Frame of Reference UIDs, in one run
or many. A per-run secret (``uid_secret``) breaks the link between runs.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import hmac
import io
import math
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from deepkedi.cipher.format import TAG_SIZE, ContainerHeader, Suite, parse_header
from deepkedi.cipher.hybrid import (
    DEFAULT_PATTERN,
    Progress,
    decrypt_file,
    decrypt_stream,
    held_length,
    prepare_file,
    seal_file,
)
from deepkedi.cipher.keytypes import Key
from deepkedi.cipher.layout import (
    batch_sizes,
    pixel_ranges,
    plane_layout,
    read_exactly,
    scanned_view,
    unscan_batch,
)
from deepkedi.errors import AuthenticationError, DeepKediError, FormatError, UnsupportedImageError
from deepkedi.fileio import atomic_output, check_distinct
from deepkedi.imaging import MedicalImage
from deepkedi.imaging.confidentiality import BASIC_PROFILE_VERSION, basic_profile_action
from deepkedi.imaging.dicom import check_deflated_size, read_dicom_dataset
from deepkedi.imaging.sniff import sniff_dicom
from deepkedi.inputs import check_regular_input, file_sha256
from deepkedi.transforms.zigzag import ZigzagPattern, zigzag_scan

__all__ = [
    "DEIDENTIFICATION_MARKER",
    "UID_HKDF_INFO",
    "DeidentificationSummary",
    "DicomNative",
    "decrypt_dicom_native",
    "decrypt_dicom_native_stream",
    "deidentification_summary",
    "deidentified_uid",
    "deidentify_dataset",
    "encrypt_dicom_native",
    "is_dicom_native",
    "open_dicom_native",
    "patient_pseudonym",
    "read_dicom_native_header",
    "resolved_action",
]

#: Second value of De-identification Method (0012,0063): how deepkedi recognises its files.
DEIDENTIFICATION_MARKER = "deepkedi DICOM-native v1: hybrid container in (0400,0500)"
_PROFILE_METHOD = f"DICOM Basic Application Confidentiality Profile ({BASIC_PROFILE_VERSION})"
UID_HKDF_INFO = b"deepkedi/v1 dicom-native uid key"
_UID_HMAC_LABEL = b"deepkedi/v1 dicom-native uid\x00"
_PATIENT_ID_HMAC_LABEL = b"deepkedi/v1 dicom-native patient id\x00"

_ENCRYPTED_ATTRIBUTES = 0x04000500
#: Decryption reads Pixel Data back into the container in batches of whole planes of about this size.
_BATCH_BYTES = 16 << 20
_ENCRYPTED_SYNTAX = 0x04000510
_ENCRYPTED_CONTENT = 0x04000520
_DEID_METHOD = 0x00120063
_PIXEL_TAGS = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}
#: Pixel-data companions that would be wrong once the pixels are replaced and stored uncompressed.
_STALE_PIXEL_ELEMENTS = (
    0x00280106,  # Smallest Image Pixel Value
    0x00280107,  # Largest Image Pixel Value
    0x00280108,  # Smallest Pixel Value in Series
    0x00280109,  # Largest Pixel Value in Series
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
    0x7FE00003,  # Encapsulated Pixel Data Value Total Length
    0x7FE00008,
    0x7FE00009,
    0x7FE00010,
)
#: Photometric interpretations valid for uncompressed pixel data (PS3.3 C.7.6.3.1.2).
_NATIVE_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "ARGB", "CMYK"})

#: D (dummy) values by VR; UIDs are replaced through the UID map instead.
_DUMMY: dict[str, Any] = {
    "AE": "DEIDENTIFIED",
    "AS": "000Y",
    "CS": "DEIDENTIFIED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "DEIDENTIFIED",
    "LT": "DEIDENTIFIED",
    "SH": "DEIDENTIFIED",
    "ST": "DEIDENTIFIED",
    "UC": "DEIDENTIFIED",
    "UT": "DEIDENTIFIED",
    "PN": "DEIDENTIFIED^",  # family name component only (a PN without "^" is the retired form)
    "UR": "urn:deidentified",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
}


# --------------------------------------------------------------------------- UIDs


def _uid_key(key: Key, uid_secret: bytes | None) -> bytes:
    if uid_secret is not None:
        return uid_secret
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=UID_HKDF_INFO).derive(key.secret)


def deidentified_uid(uid_key: bytes, old_uid: str) -> str:
    """The replacement of ``old_uid``: ``2.25.<UUID as an integer>`` (PS3.5 B.2).

    The UUID is version 8 (RFC 9562, custom) over HMAC-SHA256(``uid_key``,
    label ‖ ``old_uid``): the same old UID always gives the same new one under
    one key, and nothing about the old UID can be learnt without the key.

    Examples
    --------
    >>> deidentified_uid(b"k" * 32, "1.2.3") == deidentified_uid(b"k" * 32, "1.2.3")
    True
    >>> deidentified_uid(b"k" * 32, "1.2.3").startswith("2.25.")
    True
    """
    digest = hmac.new(uid_key, _UID_HMAC_LABEL + old_uid.strip("\x00 ").encode("ascii", "replace"), hashlib.sha256)
    value = int.from_bytes(digest.digest()[:16], "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return f"2.25.{value}"


# --------------------------------------------------------------------------- de-identification


def _empty(elem: DataElement) -> None:
    elem.value = Sequence() if elem.VR == "SQ" else None


def _dummy(elem: DataElement, new_uid: Callable[[str], str]) -> None:
    vr = elem.VR
    if vr == "SQ":
        # A dummy sequence with nothing identifying in it: no items.
        elem.value = Sequence()
    elif vr == "UI":
        _replace_uids(elem, new_uid)
    elif vr in _DUMMY:
        elem.value = _DUMMY[vr]
    else:  # OB, OW, OD, OF, OL, OV, UN: two zero bytes
        elem.value = b"\x00\x00"


def _replace_uids(elem: DataElement, new_uid: Callable[[str], str]) -> None:
    value = elem.value
    if value is None or value == "":
        return
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        elem.value = [new_uid(str(v)) for v in value]
    else:
        elem.value = new_uid(str(value))


def _is_repeating_module_group(group: int) -> bool:
    """Curve (50xx) and Overlay Plane (60xx) groups: even groups 0x..00 to 0x..1E."""
    return (group & 0xFF00) in (0x5000, 0x6000) and (group & 0xFF) <= 0x1E and group % 2 == 0


#: The choice taken for each compound action code. The profile's first choice (X, then Z)
#: is allowed only where the IOD makes the attribute Type 3 (or 2); which one it is
#: depends on the IOD and the module (Content Date is Type 1 in the enhanced multi-frame
#: IODs, Type 2C in CT). Without the IOD tables of PS3.3 at hand, the codes are resolved
#: to the option that is conformant for every Type: a zero-length value is valid for
#: Type 2 and Type 3 attributes, a dummy value for all three, and a sequence whose
#: items are cleaned with their UIDs replaced (U*) keeps a Type 1 reference sequence.
#: None of them leaves an identifying value behind.
_RESOLVED_ACTION = {"X/Z": "Z", "X/D": "D", "X/Z/D": "D", "Z/D": "D", "X/Z/U*": "U*"}
#: Sequences under a compound code, by the choice that keeps every IOD conformant. An empty
#: sequence is what Z means, but dciodvfy (rightly) rejects a Type 3 sequence with no item, and
#: a Type 1 one needs an item: a *reference* sequence, whose items hold SOP Class and Instance
#: UIDs only, keeps its items with the instance UIDs replaced, as U* does (Referenced Study
#: Sequence is Type 3 in the General Study module, Referenced Performed Procedure Step Sequence
#: Type 3 in General Series; kept items are valid whatever the Type). A code sequence that names
#: a person or an institution would identify through its items, so it is removed (Institution
#: Code Sequence, Operator Identification Sequence: Type 3 in the General Equipment and General
#: Series modules).
_RESOLVED_SEQUENCE_ACTION = {"X/Z": "Z", "X/D": "X", "X/Z/D": "X", "Z/D": "Z", "X/Z/U*": "U*"}
_REFERENCE_SEQUENCES = frozenset({0x00081110, 0x00081111})  # Referenced Study / Performed Procedure Step
_PATIENT_ID = 0x00100020


def resolved_action(action: str, *, tag: int | None = None, sequence: bool = False) -> str:
    """The single action :func:`encrypt_dicom_native` applies for a Table E.1-1 action code.

    ``X/Z`` → ``Z``; ``X/D``, ``X/Z/D``, ``Z/D`` → ``D``; ``X/Z/U*`` → ``U*`` (the
    sequence is kept and its items are cleaned, their instance UIDs replaced); single
    codes stay as they are.

    For a sequence (``sequence=True``) an empty value or a dummy without items is not
    conformant where the IOD makes it Type 1 or 3, so: the reference sequences
    Referenced Study Sequence (0008,1110) and Referenced Performed Procedure Step
    Sequence (0008,1111) take ``U*`` (items kept, instance UIDs replaced); ``X/D`` and
    ``X/Z/D`` take ``X`` (the identifying code sequences they name are Type 3); ``X/Z``
    and ``Z/D`` take ``Z`` (an empty sequence, valid where it is Type 2).

    Examples
    --------
    >>> [resolved_action(code) for code in ("X", "X/Z", "Z/D", "X/Z/U*")]
    ['X', 'Z', 'D', 'U*']
    >>> resolved_action("X/Z", tag=0x00081110, sequence=True)  # Referenced Study Sequence
    'U*'
    >>> resolved_action("X/Z/D", tag=0x00080082, sequence=True)  # Institution Code Sequence
    'X'
    """
    if sequence and "/" in action:
        if tag in _REFERENCE_SEQUENCES:
            return "U*"
        return _RESOLVED_SEQUENCE_ACTION.get(action, action)
    return _RESOLVED_ACTION.get(action, action)


def patient_pseudonym(uid_key: bytes, patient_id: str) -> str:
    """The dummy Patient ID: ``"DK-"`` and 24 hex digits of HMAC-SHA256(``uid_key``, label ‖ id).

    One patient keeps one pseudonym across studies encrypted under one key (as the
    study UIDs do), so a PACS files them under one pseudonymous patient instead of
    merging every encrypted study into a single "DEIDENTIFIED" one.

    Examples
    --------
    >>> patient_pseudonym(b"k" * 32, "12345") == patient_pseudonym(b"k" * 32, "12345 ")
    True
    >>> len(patient_pseudonym(b"k" * 32, "12345"))
    27
    """
    digest = hmac.new(uid_key, _PATIENT_ID_HMAC_LABEL + patient_id.strip("\x00 ").encode("utf-8"), hashlib.sha256)
    return "DK-" + digest.hexdigest()[:24].upper()


def deidentify_dataset(ds: Dataset, new_uid: Callable[[str], str], pseudonym: Callable[[str], str]) -> None:
    """Apply the PS3.15 Basic Application Level Confidentiality Profile to ``ds`` in place.

    Each attribute gets the action of Table E.1-1 (``imaging/data``) as
    :func:`resolved_action` reads it: removed (X), emptied (Z), replaced by a dummy (D),
    kept (K) or, for UIDs (U), replaced by ``new_uid(old)``; Patient ID is replaced by
    ``pseudonym(patient_id)``. Group lengths, overlays and curves are removed, and every
    sequence item goes through the profile too. ``kedi encrypt --as-dicom`` and the
    service's researcher view (docs/SERVICE.md) both de-identify with it, each with its
    own keyed ``new_uid`` and ``pseudonym``.
    """
    for key in list(ds.keys()):
        tag = BaseTag(key)
        if tag.element == 0 or _is_repeating_module_group(tag.group):
            # Group lengths would be wrong after the edit; overlays and curves are dropped
            # whole, because Overlay Data (X) is Type 1 inside its module.
            del ds[tag]
            continue
        code = basic_profile_action(int(tag))
        if code == "X":
            del ds[tag]  # unread: a private element's odd value is never parsed
            continue
        elem = ds[tag]
        action = resolved_action(code, tag=int(tag), sequence=elem.VR == "SQ")
        if action == "X":
            del ds[tag]
            continue
        if action == "Z":
            _empty(elem)
        elif action == "D" and int(tag) == _PATIENT_ID:
            elem.value = pseudonym(str(elem.value or ""))
        elif action == "D":
            _dummy(elem, new_uid)
        elif action == "U":
            if elem.VR == "UI":
                _replace_uids(elem, new_uid)
            else:
                _empty(elem)
        elif elem.VR == "SQ":
            # K for a sequence means "cleaned", U* "cleaned with its instance UIDs
            # replaced": either way its items go through the profile too.
            for item in elem.value:
                deidentify_dataset(item, new_uid, pseudonym)
        elif action == "U*":
            _empty(elem)  # U* names sequences; an element of another VR keeps nothing


def _output_photometric(image: MedicalImage) -> str:
    photometric = image.photometric.upper()
    if photometric in _NATIVE_PHOTOMETRIC:
        return photometric
    # JPEG 2000's RCT/ICT and subsampled YCbCr have no uncompressed form; the decoder gave full samples.
    return "RGB" if image.samples_per_pixel == 3 else "MONOCHROME2"


def _describe_pixels(ds: Dataset, image: MedicalImage, header: ContainerHeader) -> tuple[int, str]:
    """Set the Image Pixel attributes for the cipher image; returns the Pixel Data tag and VR to write."""
    for tag in _STALE_PIXEL_ELEMENTS:
        if tag in ds:
            del ds[tag]
    bits = header.dtype.itemsize * 8
    ds.BitsAllocated = bits
    bits_stored = int(ds.get("BitsStored", bits) or bits)
    if bits_stored > bits or bits_stored < 1:
        bits_stored = bits
    if ds.get("SegmentationType") == "BINARY":
        # A binary segmentation stores 1-bit words, its cipher image 8-bit ones; the only
        # Segmentation with 8-bit words is a fractional one (PS3.3 C.8.20.2), so the noise
        # is labelled as such. The original, restored on decryption, stays binary.
        ds.SegmentationType = "FRACTIONAL"
        ds.SegmentationFractionalType = "PROBABILITY"
        ds.MaximumFractionalValue = 255
        bits_stored = bits
    keyword = str(image.metadata.get("pixel_data_element") or "PixelData")
    if keyword == "PixelData":
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
    # Float and Double Float Pixel Data have no Bits Stored or High Bit (PS3.3 C.7.6.24, the
    # Floating Point Image Pixel module): the words are IEEE 754 values, all bits significant.
    ds.SamplesPerPixel = image.samples_per_pixel
    ds.PhotometricInterpretation = _output_photometric(image)
    if image.samples_per_pixel > 1:
        ds.PlanarConfiguration = 0 if image.channels_last else 1
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    tag = _PIXEL_TAGS.get(keyword, 0x7FE00010)
    vr = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}.get(keyword, "OW" if bits > 8 else "OB")
    return tag, vr


#: Bytes per word of the VRs whose values pydicom keeps as raw bytes in the file's byte order.
_WORD_VRS = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _words_to_little_endian(ds: Dataset) -> None:
    """Byte-swap every OW/OL/OF/OD/OV value of a data set read from a big-endian file.

    pydicom converts numbers of the other VRs while reading, but keeps these as bytes in
    the file's order; written unchanged into the Explicit VR Little Endian output they would
    mean something else (a palette LUT whose 16-bit entries 0x00FF read as 0xFF00).
    """
    for elem in ds.iterall():
        size = _WORD_VRS.get(elem.VR)
        if size is None or not isinstance(elem.value, (bytes, bytearray)) or len(elem.value) % size:
            continue
        elem.value = np.frombuffer(elem.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def _mark(ds: Dataset, content: bytes, original_syntax: str | None) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [_PROFILE_METHOD, DEIDENTIFICATION_MARKER]
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    # Dates of the Basic Profile are removed, emptied or replaced by a dummy, never shifted (PS3.3 C.7.1.3).
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    item = Dataset()
    # Deviation: the standard names the transfer syntax of an encrypted data set; our plaintext is
    # the original Part 10 file, and this is the transfer syntax of its data set.
    item.EncryptedContentTransferSyntaxUID = original_syntax or ExplicitVRLittleEndian
    item.EncryptedContent = content
    ds.EncryptedAttributesSequence = Sequence([item])


# --------------------------------------------------------------------------- container <-> pixels


def _payload_batches(pixels: BinaryIO, start: int, header: ContainerHeader) -> Iterator[bytes]:
    """Pixel Data words (from ``start`` in ``pixels``) back in payload order, batch by batch: the inverse of
    what :func:`_write_pixel_data` writes."""
    position = start
    for size in batch_sizes(header, _BATCH_BYTES):
        raw = np.frombuffer(read_exactly(pixels, position, size), dtype=header.dtype)
        position += size
        planes = raw.reshape((-1, *plane_layout(header)))
        words = zigzag_scan(planes, header.pattern, channels_last=header.channels_last)
        yield np.ascontiguousarray(words, dtype=header.dtype).tobytes()


def _rebuild(out: BinaryIO, skeleton: bytes, header: ContainerHeader, words: Iterator[bytes]) -> None:
    """Write the container: the skeleton with the pixel ciphertext put back between its segment tags."""
    if len(skeleton) + header.pixel_length != header.container_length:
        raise AuthenticationError()
    pending = memoryview(b"")
    position = taken = 0
    for offset, length in pixel_ranges(header):
        out.write(skeleton[taken : taken + offset - position])
        taken += offset - position
        position, left = offset + length, length
        while left:
            if not pending:
                pending = memoryview(next(words))
            n = min(left, len(pending))
            out.write(pending[:n])
            pending, left = pending[n:], left - n
    out.write(skeleton[taken:])


class _NativeSink:
    """Lays the container out as the DICOM-native file while :func:`~deepkedi.cipher.hybrid.seal_file` writes it.

    The container arrives as one stream (``write``, and ``seek`` back for the
    segments sealed last). Its bytes outside the pixel ciphertext are kept: they are
    Encrypted Content (the *skeleton*). The pixel ciphertext, in the pattern's zigzag
    order, is put back in raster order plane by plane and written straight into the
    output's Pixel Data, at ``pixel_start``. Nothing is written twice, and memory
    holds the skeleton and a few planes (those of the segments sealed last wait for
    them, about one segment's worth).
    """

    def __init__(
        self, header: ContainerHeader, out: BinaryIO, pixel_start: int, held_bytes: int, advance: Callable[[int], None]
    ) -> None:
        self._header = header
        self._out = out
        self._pixel_start = pixel_start
        self._advance = advance
        self.skeleton = bytearray(header.container_length - header.pixel_length)
        # (container offset, length, pixel-stream offset) of every run of pixel ciphertext.
        self._runs: list[tuple[int, int, int]] = []
        pixels = 0
        for offset, length in pixel_ranges(header):
            self._runs.append((offset, length, pixels))
            pixels += length
        self._starts = [run[0] for run in self._runs]
        self._plane_bytes = math.prod(plane_layout(header)) * header.dtype.itemsize
        self._planes: dict[int, tuple[bytearray, list[int]]] = {}
        # The room of the segments sealed last is first written as zeros: their pixel bytes
        # are taken only when the real ciphertext comes, after the seek back.
        self._held = (header.encoded_length, header.encoded_length + held_bytes)
        self._late = False
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise ValueError("only absolute seeks")
        self._late = True
        self._pos = offset
        return offset

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        pos, end = self._pos, self._pos + len(view)
        placeholder = not self._late and self._held[0] <= pos < self._held[1]
        while pos < end:
            index = bisect.bisect_right(self._starts, pos) - 1
            run = self._runs[index] if index >= 0 else None
            if run is not None and pos < run[0] + run[1]:
                take = min(end, run[0] + run[1]) - pos
                if not placeholder:
                    self._pixels(run[2] + pos - run[0], view[pos - self._pos : pos - self._pos + take])
            else:
                following = self._starts[index + 1] if index + 1 < len(self._starts) else end
                take = min(end, following) - pos
                at = pos - (run[2] + run[1] if run is not None else 0)  # less the pixel bytes before pos
                self.skeleton[at : at + take] = view[pos - self._pos : pos - self._pos + take]
            pos += take
        self._pos = end
        return len(view)

    def _pixels(self, offset: int, data: memoryview) -> None:
        """Pixel ciphertext bytes at ``offset`` of the pixel stream (planes in zigzag order)."""
        done = 0
        while done < len(data):
            plane, within = divmod(offset + done, self._plane_bytes)
            take = min(len(data) - done, self._plane_bytes - within)
            buffer, filled = self._planes.setdefault(plane, (bytearray(self._plane_bytes), [0]))
            buffer[within : within + take] = data[done : done + take]
            filled[0] += take
            done += take
            if filled[0] == self._plane_bytes:
                del self._planes[plane]
                scanned = scanned_view(np.frombuffer(buffer, dtype=np.uint8), self._header)
                raster = unscan_batch(scanned, self._header)
                self._out.seek(self._pixel_start + plane * self._plane_bytes)
                self._out.write(raster.tobytes())
                self._advance(self._plane_bytes)

    def finish(self) -> bytes:
        """The skeleton, once every pixel byte has arrived."""
        if self._planes:
            raise AssertionError("pixel planes left incomplete")
        return bytes(self.skeleton)


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's warnings about the input's own oddities (invalid UIDs, odd VRs):
    values are parsed lazily, so they surface while the data set is edited and written,
    and the edit replaces or removes what they complain about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _read_dataset(path: Path, **options: Any) -> Dataset:
    check_deflated_size(path)  # pydicom would inflate a deflated data set whole, whatever it claims
    with _quiet():
        return pydicom.dcmread(path, force=True, **options)


def _uid_value(value: Any) -> str:
    """A UID value as text without padding; "" for a missing or empty one."""
    return "" if value is None else str(value).strip("\x00 ")


def _require_dicom(path: Path) -> None:
    try:
        check_regular_input(path)  # a FIFO would block the open below
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise UnsupportedImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not sniff_dicom(head):
        raise UnsupportedImageError(
            f"{path}: not a DICOM file; DICOM-native encryption (--as-dicom) needs DICOM input "
            "(encrypt other formats into .kedi containers without --as-dicom)"
        )


def encrypt_dicom_native(
    input: str | Path,
    output: str | Path,
    key: Key,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    force: bool = False,
    uid_secret: bytes | None = None,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Encrypt the DICOM file ``input`` into the de-identified DICOM file ``output``.

    Parameters
    ----------
    input
        A DICOM image file (any transfer syntax deepkedi reads).
    output
        The DICOM file to write (atomically; an existing one is kept unless ``force``).
    key
        The master key (hybrid suite).
    pattern
        Zigzag scan order of the pixel words in the container.
    uid_secret
        Secret for the UID map; default: derived from ``key``, so every file of a
        study encrypted with one key maps each old UID to the same new one.
    progress
        Called with (bytes done, bytes total): the container, then the Pixel Data written from it.

    Returns
    -------
    ContainerHeader
        The header of the embedded container.

    Raises
    ------
    UnsupportedImageError
        ``input`` is not a DICOM image deepkedi can read.
    OutputExistsError
        ``output`` exists and ``force`` is false.
    """
    src, dst = Path(input), Path(output)
    check_distinct(src, dst)
    _require_dicom(src)
    # One parse: the image (pixels, layout) and the data set whose header is de-identified.
    image, ds = read_dicom_dataset(src)
    with _quiet():
        # The pixels travel in the container; Pixel Data and anything after it are rewritten.
        for tag in [t for t in ds.keys() if int(t) >= min(_PIXEL_TAGS.values())]:  # noqa: SIM118 - tags, not elements
            del ds[tag]
    sop_class = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    if not sop_class:
        raise UnsupportedImageError(f"{src}: the DICOM file has no SOP Class UID to keep")
    original_syntax = image.metadata.get("transfer_syntax_uid")
    big_endian = getattr(ds, "original_encoding", (None, True))[1] is False
    uid_key = _uid_key(key, uid_secret)
    uid_map: dict[str, str] = {}

    def new_uid(old: str) -> str:
        if old not in uid_map:
            uid_map[old] = deidentified_uid(uid_key, old)
        return uid_map[old]

    # One pass over the input: the container is sealed straight into the output, its pixel
    # ciphertext put back in raster order as Pixel Data and the rest kept for Encrypted Content.
    prepared = prepare_file(src, key, pattern=pattern, image=image)  # the image, read above: decoded once
    header = prepared.header
    sealed = written = 0

    def report() -> None:
        if progress is not None:
            progress(sealed + written, header.payload_length + header.pixel_length)

    def on_sealed(done: int, total: int) -> None:
        nonlocal sealed
        sealed = done
        report()

    def on_written(nbytes: int) -> None:
        nonlocal written
        written += nbytes
        report()

    skeleton_length = header.container_length - header.pixel_length
    # Encrypted Content is written with a placeholder of the skeleton's length, found again by its
    # random first bytes, and filled in once the skeleton is known (after the last segment is sealed).
    placeholder = os.urandom(32) + bytes(max(0, skeleton_length - 32))
    with _quiet():
        deidentify_dataset(ds, new_uid, lambda patient_id: patient_pseudonym(uid_key, patient_id))
        ds.SOPClassUID = sop_class
        if not _uid_value(ds.get("SOPInstanceUID")):
            # Type 1, and the file meta needs it: an input without one (or with an empty
            # one) gets a new UID made from its Media Storage SOP Instance UID, or else
            # from its content, so that one file always maps to one new UID under a key.
            media = _uid_value(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPInstanceUID", None))
            ds.SOPInstanceUID = new_uid(media or "sha256:" + file_sha256(src))
        if big_endian:
            _words_to_little_endian(ds)
        pixel_tag, pixel_vr = _describe_pixels(ds, image, header)
        _mark(ds, placeholder[:skeleton_length], original_syntax)
        # Pixel Data is appended last: nothing may follow it (trailing padding, signatures).
        # Iterating a Dataset converts every element; its keys are the tags.
        for tag in [t for t in ds.keys() if int(t) >= min(_PIXEL_TAGS.values())]:  # noqa: SIM118 - see above
            del ds[tag]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "DEEPKEDI_1"
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    dataset = io.BytesIO()
    with _quiet():
        pydicom.dcmwrite(dataset, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    head = dataset.getvalue()
    content_at = head.find(placeholder[:32]) if skeleton_length >= 32 else head.find(placeholder[:skeleton_length])
    if content_at < 0 or head.find(placeholder[:32], content_at + 1) >= 0:
        raise AssertionError("the Encrypted Content placeholder is not where it was put")
    pad = header.pixel_length % 2  # PS3.5 7.1.1: values have even length
    element = struct.pack(
        "<HH2sHI", pixel_tag >> 16, pixel_tag & 0xFFFF, pixel_vr.encode("ascii"), 0, header.pixel_length + pad
    )
    with atomic_output(dst, force=force, size_hint=len(head) + header.pixel_length) as fh:
        fh.write(head)
        fh.write(element)
        pixel_start = len(head) + len(element)
        sink = _NativeSink(header, fh, pixel_start, _held_container_bytes(header, held_length(prepared)), on_written)
        seal_file(prepared, sink, progress=on_sealed)  # type: ignore[arg-type]
        skeleton = sink.finish()
        fh.seek(content_at)
        fh.write(skeleton)
        fh.seek(pixel_start + header.pixel_length)
        fh.write(b"\x00" * pad)
    return header


def _held_container_bytes(header: ContainerHeader, held_payload: int) -> int:
    """Container bytes (ciphertext and tags) of the segments covering the first ``held_payload`` payload bytes."""
    segments = -(-held_payload // header.segment_size)
    payload = min(segments * header.segment_size, header.payload_length)
    return payload + segments * TAG_SIZE


def _native_item(ds: Dataset) -> Dataset | None:
    method = ds.get(_DEID_METHOD)
    values = [] if method is None or method.value is None else method.value
    values = [values] if isinstance(values, str) else list(values)
    if DEIDENTIFICATION_MARKER not in [str(v) for v in values]:
        return None
    sequence = ds.get(_ENCRYPTED_ATTRIBUTES)
    if sequence is None or sequence.VR != "SQ" or len(sequence.value) == 0:
        return None
    return sequence.value[0]


def is_dicom_native(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM-native file written by :func:`encrypt_dicom_native`.

    Recognised by De-identification Method (0012,0063) naming deepkedi's
    marker and an Encrypted Attributes Sequence (0400,0500). Never raises: an
    unreadable or non-DICOM file is simply not one. To decrypt, call
    :func:`open_dicom_native` instead: it recognises the file in the same parse.
    """
    path = Path(path)
    try:
        check_regular_input(path)
        with open(path, "rb") as fh:
            if not sniff_dicom(fh.read(4096)):
                return False
        ds = _read_dataset(path, stop_before_pixels=True, specific_tags=[_DEID_METHOD, _ENCRYPTED_ATTRIBUTES])
        return _native_item(ds) is not None
    except Exception:  # noqa: BLE001 - any failure to parse means "not one of ours"
        return False


@dataclass(frozen=True, repr=False)
class DicomNative:
    """A DICOM-native file parsed once: the container it carries, less its pixel words, and where those lie.

    Made by :func:`open_dicom_native`; :func:`decrypt_dicom_native` restores the
    original from it without parsing the DICOM again. ``header`` is public (no
    key needed): it names the key, the suite and the image.
    """

    header: ContainerHeader
    name: str
    skeleton: bytes = field(repr=False)
    #: Where the cipher image's words start: a file (read in batches) or bytes in memory.
    pixel_file: Path | None
    pixel_offset: int
    pixel_bytes: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"DicomNative({self.name!r}, key_id={self.header.key_id.hex()!r})"


def open_dicom_native(source: str | Path | bytes | bytearray | Dataset) -> DicomNative:
    """Parse a DICOM-native file (a path, its bytes, or a pydicom :class:`~pydicom.dataset.Dataset`) once.

    Values over 1 MiB (Pixel Data) stay in the file and are read in batches when decrypting.

    Raises
    ------
    FormatError
        ``source`` is not a DICOM-native deepkedi file (not DICOM, or DICOM without
        deepkedi's Encrypted Attributes Sequence).
    AuthenticationError
        It is one, but its Encrypted Content or Pixel Data element is damaged.
    """
    if isinstance(source, Dataset):
        ds, name, path = source, "the data set", None
    elif isinstance(source, (bytes, bytearray)):
        if not sniff_dicom(bytes(source[:4096])):
            raise FormatError("the data is not a DICOM-native deepkedi file (not DICOM)")
        try:
            with _quiet():
                ds = pydicom.dcmread(io.BytesIO(source), force=True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on malformed input
            raise FormatError(f"the data is not a readable DICOM file ({exc})") from None
        name, path = "the data", None
    else:
        path = Path(source)
        name = str(path)
        try:
            check_regular_input(path, error=FormatError)  # a FIFO would block the open below
            with open(path, "rb") as fh:
                dicom = sniff_dicom(fh.read(4096))
        except OSError as exc:
            raise FormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if not dicom:
            raise FormatError(f"{path}: not a DICOM-native deepkedi file (not DICOM)")
        try:
            ds = _read_dataset(path, defer_size=1 << 20)
        except DeepKediError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise FormatError(f"{path}: not a readable DICOM file ({exc})") from None
    item = _native_item(ds)
    if item is None:
        raise FormatError(f"{name}: not a DICOM-native deepkedi file (no deepkedi Encrypted Attributes Sequence)")
    try:
        skeleton = bytes(item[_ENCRYPTED_CONTENT].value)
        header = parse_header(skeleton)
    except (KeyError, TypeError, FormatError, AuthenticationError):
        raise AuthenticationError() from None
    if header.suite is not Suite.HYBRID or header.opaque:  # writers never put an opaque container here
        raise AuthenticationError()
    expected = header.container_length - header.pixel_length
    if len(skeleton) == expected + 1 and skeleton[-1] == 0:
        skeleton = skeleton[:-1]  # the pad byte of an odd-length OB value (PS3.5 7.1.1)
    pixel_tag = next((t for t in _PIXEL_TAGS.values() if t in ds), None)
    if pixel_tag is None:
        raise AuthenticationError()
    element = ds.get_item(pixel_tag, keep_deferred=True)
    if path is not None and isinstance(element, RawDataElement) and element.value is None:
        # Deferred: the words are read from the file, where they start at value_tell. Anything but
        # little-endian native words (a re-encoded or compressed copy) cannot be the cipher image.
        undefined = element.length == 0xFFFFFFFF  # encapsulated (compressed) frames
        if not element.is_little_endian or undefined or element.length < header.pixel_length:
            raise AuthenticationError()
        return DicomNative(header, name, skeleton, path, element.value_tell)
    raw = ds[pixel_tag].value
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < header.pixel_length:
        raise AuthenticationError()
    return DicomNative(header, name, skeleton, None, 0, bytes(raw))


def read_dicom_native_header(path: str | Path) -> ContainerHeader:
    """The public header of the container inside a DICOM-native file (no key needed).

    Raises
    ------
    FormatError
        ``path`` is not a DICOM-native file.
    AuthenticationError
        Its Encrypted Content is damaged.
    """
    return open_dicom_native(path).header


@contextlib.contextmanager
def _rebuilt(native: DicomNative) -> Iterator[Path]:
    """The container of the original file, rebuilt from the skeleton and the Pixel Data in a scratch file.

    The container is ciphertext, so a scratch copy in the temporary folder leaks nothing.
    """
    with contextlib.ExitStack() as stack:
        if native.pixel_file is not None:
            pixels: BinaryIO = stack.enter_context(open(native.pixel_file, "rb"))
        else:
            pixels = io.BytesIO(native.pixel_bytes or b"")
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kedi-dicom-native-"))
        scratch = Path(tmp) / "original.kedi"
        with open(scratch, "wb") as out:
            _rebuild(out, native.skeleton, native.header, _payload_batches(pixels, native.pixel_offset, native.header))
        yield scratch


def decrypt_dicom_native(
    input: str | Path | DicomNative,
    output: str | Path,
    key: Key,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Restore the original file of the DICOM-native file ``input`` into ``output``, byte for byte.

    ``input`` is a path, or what :func:`open_dicom_native` made of one (then the
    DICOM is not parsed again).

    Raises
    ------
    FormatError
        ``input`` is not a DICOM-native file.
    AuthenticationError
        Wrong key, or the Encrypted Content or the Pixel Data was modified (one
        message for all); nothing is written.
    OutputExistsError
        ``output`` exists and ``force`` is false.
    """
    dst = Path(output)
    if not isinstance(input, DicomNative):
        check_distinct(Path(input), dst)
        input = open_dicom_native(input)
    elif input.pixel_file is not None:
        check_distinct(input.pixel_file, dst)
    if input.header.key_id != key.key_id:
        raise AuthenticationError()
    with _rebuilt(input) as scratch:
        return decrypt_file(scratch, dst, key, force=force, progress=progress)


def decrypt_dicom_native_stream(
    native: DicomNative, sink: BinaryIO, key: Key, *, progress: Progress | None = None
) -> ContainerHeader:
    """Write the original file of a DICOM-native file to ``sink``.

    See :func:`deepkedi.cipher.hybrid.decrypt_stream`.
    """
    if native.header.key_id != key.key_id:
        raise AuthenticationError()
    with _rebuilt(native) as scratch, open(scratch, "rb") as container:
        return decrypt_stream(container, sink, key, progress=progress)


@dataclass(frozen=True)
class DeidentificationSummary:
    """What a DICOM-native file shows in clear, against the original it was made from."""

    #: The SOP Class's name (kept from the original).
    sop_class: str
    #: Patient Identity Removed (0012,0062).
    identity_removed: str
    #: The keyed pseudonym that replaced Patient ID.
    patient_id: str
    #: The original's Patient's Name, Patient ID and Birth Date values found anywhere in the new header.
    left_in_clear: tuple[str, ...]


def deidentification_summary(original: str | Path, protected: str | Path) -> DeidentificationSummary:
    """Compare the headers of an original DICOM file and its DICOM-native encryption (neither is changed)."""
    with _quiet():
        before = _read_dataset(Path(original), stop_before_pixels=True)
        after = _read_dataset(Path(protected), stop_before_pixels=True)
        identity = [str(before.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate")]
        shown = str(after)
        sop_class = after.get("SOPClassUID")
        return DeidentificationSummary(
            sop_class=getattr(sop_class, "name", str(sop_class)),
            identity_removed=str(after.get("PatientIdentityRemoved", "?")),
            patient_id=str(after.get("PatientID", "")),
            left_in_clear=tuple(v for v in identity if v and v in shown),
        )
