"""DICOM (PS3.10 files, or bare data sets without the preamble) through pydicom.

Native transfer syntaxes (implicit VR little endian, explicit VR little and big
endian) store the pixel words raw in the Pixel Data value, so they are read as
splice layouts: a read-only memory map over the value, typed with the byte order
of the data set. Everything else (encapsulated JPEG, JPEG-LS, JPEG 2000 and RLE,
deflated data sets, 1-bit packed pixels, subsampled ``YBR_FULL_422``) is decoded
by pydicom's pixel decoders and carried verbatim.

Only technical attributes reach :attr:`MedicalImage.metadata`; patient and study
identifiers never leave the file.

References
----------
NEMA PS3.5, "Data Structures and Encoding", sections 7.1 and 8 (pixel data encoding).
NEMA PS3.3, section C.7.6.3 (Image Pixel module).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from deepkedi.errors import InputTooLargeError, UnsupportedImageError
from deepkedi.imaging._reading import finite_or_none, map_splice, probe, translated_failures
from deepkedi.imaging.image import MedicalImage, SourceLayout
from deepkedi.imaging.limits import check_decoded_size, inflated_size_within
from deepkedi.imaging.registry import SNIFF_BYTES
from deepkedi.imaging.sniff import sniff_dicom

__all__ = ["check_deflated_size", "read_dicom", "read_dicom_dataset", "sniff_dicom", "write_dicom"]

#: Values longer than this stay on disk while the header is parsed, so reading a
#: 1 GiB volume touches only its header; the pixel value is mapped, not loaded.
_DEFER_BYTES = 4096

_UNDEFINED_LENGTH = 0xFFFFFFFF

#: The three ways DICOM stores pixel words, with the element keyword.
_PIXEL_ELEMENTS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}

_NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})
_J2K_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K})
_JPEG_SYNTAXES = frozenset(
    {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless}
)
#: JPEG start-of-frame markers (ITU T.81 table B.1; 0xF7 is JPEG-LS's SOF55).
_SOF_MARKERS = frozenset(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}

# PS3.5 section 7.1.2: these explicit VRs have two reserved bytes and a 32-bit length.


# --------------------------------------------------------------------------- read


def read_dicom(path: Path) -> MedicalImage:
    """Read a DICOM image.

    Parameters
    ----------
    path
        A DICOM file, with or without the 128-byte preamble and ``DICM`` marker.

    Returns
    -------
    MedicalImage
        Stored pixel words (no rescale, no lookup table) shaped ``(rows, cols)``,
        ``(frames, rows, cols)``, ``(..., rows, cols, samples)`` for interleaved
        colour or ``(..., samples, rows, cols)`` for planar colour. A native
        transfer syntax gives a read-only memory map with a splice layout; any
        other gives the decoded array with a verbatim layout.

    Raises
    ------
    InputTooLargeError
        A deflated data set that inflates past the decoded-size limit, or pixel
        data to decode (compressed, deflated, 1-bit) whose Rows x Columns x
        frames x samples words are more bytes than allowed
        (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not DICOM, no pixel data, a damaged or truncated file, or a transfer
        syntax no installed decoder handles.
    """
    return read_dicom_dataset(path)[0]


def read_dicom_dataset(path: str | Path) -> tuple[MedicalImage, Dataset]:
    """:func:`read_dicom`, and the data set it parsed: for callers that need both, parsed once.

    The data set's values over 1 MiB stay in the file until asked for. Raises as
    :func:`read_dicom` does.
    """
    path = Path(path)
    size, head = probe(path, SNIFF_BYTES)
    if not sniff_dicom(head):
        raise UnsupportedImageError(f"{path}: not a DICOM file (no 'DICM' marker and no DICOM data set at its start)")
    with translated_failures(path, "not a readable DICOM file"), warnings.catch_warnings():
        # pydicom warns about every non-conformant value; the reader either
        # succeeds or says plainly why not, so the warnings are noise here.
        warnings.simplefilter("ignore")
        check_deflated_size(path)
        dataset = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
        return _image_from_dataset(path, size, dataset), dataset


def check_deflated_size(path: str | Path) -> None:
    """Refuse a deflated DICOM file whose data set inflates past the decoded-size limit.

    pydicom inflates a Deflated Explicit VR Little Endian data set whole, into
    memory, before it parses a byte of it, even for ``stop_before_pixels``, and
    nothing outside the deflated stream says how large it is; so the stream is
    inflated once here, in chunks, keeping nothing, and stopped as soon as it
    passes the limit (:mod:`deepkedi.imaging.limits`). Call it before any
    ``pydicom.dcmread`` of an untrusted file. Files of other transfer syntaxes
    pass at once; a file pydicom cannot parse is left for it to report.

    Raises
    ------
    InputTooLargeError
        The data set inflates to more bytes than allowed.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            read_preamble(fh, force=True)
            deflated = _read_file_meta_info(fh).get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
            if deflated:
                inflated_size_within(path, fh, wbits=-zlib.MAX_WBITS, file_size=size)
    except InputTooLargeError:
        raise
    except Exception:  # noqa: BLE001 - not readable as DICOM: pydicom's own read says why
        return


class _PixelModule(NamedTuple):
    """The Image Pixel module attributes that say how the pixel words are laid out."""

    rows: int
    cols: int
    frames: int
    samples: int
    planar: int
    bits_allocated: int
    pixel_representation: int
    photometric: str

    @classmethod
    def of(cls, path: Path, ds: Dataset) -> _PixelModule:
        samples = _integer(path, ds, "SamplesPerPixel", default=1)
        module = cls(
            rows=_integer(path, ds, "Rows"),
            cols=_integer(path, ds, "Columns"),
            frames=_integer(path, ds, "NumberOfFrames", default=1),
            samples=samples,
            planar=_integer(path, ds, "PlanarConfiguration", default=0) if samples > 1 else 0,
            bits_allocated=_integer(path, ds, "BitsAllocated"),
            pixel_representation=_integer(path, ds, "PixelRepresentation", default=0),
            photometric=_text(ds, "PhotometricInterpretation").upper() or ("MONOCHROME2" if samples == 1 else "RGB"),
        )
        if min(module.rows, module.cols, module.frames, module.samples, module.bits_allocated) <= 0:
            raise UnsupportedImageError(
                f"{path}: invalid image geometry ({module.rows} rows, {module.cols} columns, "
                f"{module.frames} frames, {module.samples} samples, {module.bits_allocated} bits)"
            )
        return module

    @property
    def decoded_bytes(self) -> int:
        """Bytes the decoded pixels take: 1-bit samples unpack to bytes, others to whole words."""
        itemsize = 1
        while itemsize * 8 < self.bits_allocated:
            itemsize *= 2
        return self.rows * self.cols * self.frames * self.samples * itemsize

    @property
    def shape(self) -> tuple[int, ...]:
        """C-ordered shape of the native pixel words (PS3.5 8.1.3: planar 1 is sample-major)."""
        lead = (self.frames,) if self.frames > 1 else ()
        if self.samples == 1:
            return (*lead, self.rows, self.cols)
        if self.planar == 0:
            return (*lead, self.rows, self.cols, self.samples)
        return (*lead, self.samples, self.rows, self.cols)


def _image_from_dataset(path: Path, size: int, ds: Dataset) -> MedicalImage:
    syntax = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) else None
    if syntax != DeflatedExplicitVRLittleEndian:
        # Offsets in a deflated data set count inflated bytes, not file bytes.
        _check_extent(path, ds, size)
    tag = next((t for t in _PIXEL_ELEMENTS if t in ds), None)
    if tag is None:
        if "Rows" in ds:
            raise UnsupportedImageError(
                f"{path}: the DICOM file describes an image but its pixel data is missing (is the file truncated?)"
            )
        kind = _text(ds, "SOPClassUID")
        kind = f" (SOP class {pydicom.uid.UID(kind).name})" if kind else ""
        raise UnsupportedImageError(f"{path}: the DICOM file holds no pixel data{kind}")
    # Taken before any decoding: the raw element still knows where its value starts.
    raw = ds.get_item(tag, keep_deferred=True)
    module = _PixelModule.of(path, ds)

    length = getattr(raw, "length", _UNDEFINED_LENGTH)
    native = syntax in _NATIVE_SYNTAXES or (syntax is None and length != _UNDEFINED_LENGTH)
    if native and length == _UNDEFINED_LENGTH:
        raise UnsupportedImageError(f"{path}: encapsulated pixel data under an uncompressed transfer syntax")
    stored = _splice_dtype(raw, tag, module) if native else None
    pixels: np.ndarray  # a memory map of the file, or the decoder's array
    if stored is not None:
        pixels, layout = _mapped(path, size, raw, stored, module)
        samples, photometric = module.samples, module.photometric
        channels_last = module.samples > 1 and module.planar == 0
    else:
        if syntax is None:
            if not native:
                raise UnsupportedImageError(
                    f"{path}: compressed pixel data but no transfer syntax says how it is compressed"
                )
            # The meta header is missing; the data set's own encoding tells the decoder.
            syntax = _syntax_of(raw)
            ds.file_meta.TransferSyntaxUID = syntax
        # The decoders allocate Rows x Columns x frames x samples words up front.
        check_decoded_size(path, module.decoded_bytes, file_size=size)
        _check_codestreams(path, ds, syntax, module)
        pixels, properties = _decoded(path, ds, syntax)
        # The decoders interleave colour samples whatever the file's planar configuration,
        # and report the colour space they produce (JPEG 2000's RCT comes out RGB).
        samples = int(properties.get("samples_per_pixel", module.samples))
        photometric = str(properties.get("photometric_interpretation", module.photometric))
        channels_last = samples > 1
        layout = SourceLayout(path=path, size=size, restore="verbatim")

    return MedicalImage(
        pixels=pixels,
        format="dicom",
        photometric=photometric,
        samples_per_pixel=samples,
        channels_last=channels_last,
        spacing=_spacing(ds, module.frames),
        modality=_text(ds, "Modality") or None,
        bits_stored=_optional_integer(ds, "BitsStored"),
        metadata={
            "transfer_syntax_uid": str(syntax) if syntax else None,
            "sop_class_uid": _text(ds, "SOPClassUID") or None,
            "pixel_data_element": _PIXEL_ELEMENTS[tag],
            "bits_allocated": module.bits_allocated,
            "pixel_representation": module.pixel_representation,
            "planar_configuration": module.planar if module.samples > 1 else None,
            "number_of_frames": module.frames,
            "rescale_slope": finite_or_none(_value(ds, "RescaleSlope")),
            "rescale_intercept": finite_or_none(_value(ds, "RescaleIntercept")),
            "window_center": _numbers(_value(ds, "WindowCenter")),
            "window_width": _numbers(_value(ds, "WindowWidth")),
        },
        source=layout,
    )


def _mapped(path: Path, size: int, raw: Any, stored: np.dtype, module: _PixelModule) -> tuple[np.memmap, SourceLayout]:
    """The native pixel words mapped where they lie in the file."""
    expected = math.prod(module.shape) * stored.itemsize
    if raw.length < expected:
        raise UnsupportedImageError(
            f"{path}: the pixel data holds {raw.length} bytes but {module.rows} rows x "
            f"{module.cols} columns x {module.frames} frames x {module.samples} samples of "
            f"{module.bits_allocated} bits need {expected}"
        )
    # A longer value (an odd-length pad byte, trailing junk) leaves its rest in the suffix.
    return map_splice(path, size=size, offset=raw.value_tell, dtype=stored, shape=module.shape)


def _decoded(path: Path, ds: Dataset, syntax: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixels from pydicom's decoders, without colour conversion."""
    # Each decoder plugin fails its own way, some of them from Rust.
    with translated_failures(path, f"cannot decode its {getattr(syntax, 'name', syntax)} pixel data"):
        decoded, properties = get_decoder(syntax).as_array(ds, raw=True)
    pixels = np.ascontiguousarray(decoded)
    if pixels.dtype.kind not in "uifb" or pixels.size == 0:
        raise UnsupportedImageError(
            f"{path}: the pixel data decodes to no usable pixels ({pixels.dtype}, {pixels.shape})"
        )
    return pixels, properties


def _check_extent(path: Path, ds: Dataset, size: int) -> None:
    """Refuse a data set whose elements claim bytes past the end of the file.

    pydicom skips over deferred values without reading them, so a truncated file
    or a garbled length parses "successfully"; the recorded extents tell.
    """
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset converts every element; its keys are the tags
        # pydicom annotates get_item as returning a DataElement, but an element nothing has
        # converted yet comes back raw, and only a raw element records where its value lies.
        element: DataElement | RawDataElement = ds.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
            continue
        if element.value_tell + element.length > size:
            raise UnsupportedImageError(
                f"{path}: the file is truncated or its header is damaged (element {tag} at byte "
                f"{element.value_tell} claims {element.length} bytes, the file has {size})"
            )


def _check_codestreams(path: Path, ds: Dataset, syntax: UID, module: _PixelModule) -> None:
    """Refuse compressed frames whose own headers disagree with the data set.

    Decoders size their buffers from the codestream header, not from Rows and
    Columns: one flipped bit in a JPEG 2000 SIZ marker made openjpeg claim tens
    of gigabytes. Checking every frame's header first turns that into a refusal.
    """
    if syntax in _J2K_SYNTAXES:
        header_of = _j2k_geometry
    elif syntax in _JPEG_SYNTAXES:
        header_of = _jpeg_geometry
    else:
        return  # RLE and the rest decode into buffers sized from the data set
    count = 0
    for count, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=module.frames), 1):
        geometry = header_of(frame)
        if geometry is None:
            raise UnsupportedImageError(f"{path}: frame {count} is not a valid {syntax.name} codestream")
        rows, cols, samples = geometry
        # JPEG may defer its height to a DNL marker (height 0).
        if (rows not in (0, module.rows)) or cols != module.cols or samples != module.samples:
            raise UnsupportedImageError(
                f"{path}: frame {count} holds {rows} x {cols} pixels of {samples} samples, "
                f"but the data set says {module.rows} x {module.cols} of {module.samples}"
            )
    if count < module.frames:
        raise UnsupportedImageError(f"{path}: the pixel data holds {count} frames, the data set says {module.frames}")


def _j2k_geometry(frame: bytes) -> tuple[int, int, int] | None:
    """``(rows, cols, components)`` from a JPEG 2000 SIZ marker (ISO/IEC 15444-1 A.5.1)."""
    # SOC then SIZ; a JP2 wrapper, when present, comes before them.
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(frame) < start + 42:
        return None
    xsiz, ysiz, x_origin, y_origin = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    return ysiz - y_origin, xsiz - x_origin, components


def _jpeg_geometry(frame: bytes) -> tuple[int, int, int] | None:
    """``(rows, cols, components)`` from a JPEG or JPEG-LS frame header (ITU T.81 B.2.2)."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(frame):
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            pos += 2
            continue
        if marker in _SOF_MARKERS:
            if pos + 10 > len(frame):
                return None
            rows, cols = struct.unpack_from(">HH", frame, pos + 5)
            return rows, cols, frame[pos + 9]
        if marker == 0xDA:  # a scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", frame, pos + 2)
        pos += 2 + length
    return None


def _splice_dtype(raw: Any, tag: int, module: _PixelModule) -> np.dtype | None:
    """The dtype of the stored words when they can be mapped as they lie, else None."""
    order = "<" if raw.is_little_endian else ">"
    bits = module.bits_allocated
    if tag == 0x7FE00008:
        return np.dtype(order + "f4") if bits == 32 else None
    if tag == 0x7FE00009:
        return np.dtype(order + "f8") if bits == 64 else None
    if bits not in (8, 16, 32):
        return None  # 1-bit packed (or exotic) words need unpacking
    if module.photometric == "YBR_FULL_422":
        return None  # two luminance samples share one chroma pair: not one word per sample
    if bits == 8 and order == ">" and raw.VR == "OW":
        return None  # OW in big endian swaps each pair of 8-bit samples (PS3.5 7.3)
    kind = "i" if module.pixel_representation == 1 else "u"
    return np.dtype(f"{order}{kind}{bits // 8}")


def _syntax_of(raw: Any) -> pydicom.uid.UID:
    if not raw.is_little_endian:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if raw.is_implicit_VR else ExplicitVRLittleEndian


def _value(ds: Dataset, keyword: str) -> Any:
    """An attribute's value, or None when absent or undecodable (a malformed value
    in an attribute we only report must not make the image unreadable)."""
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001
        return None


def _text(ds: Dataset, keyword: str) -> str:
    value = _value(ds, keyword)
    return str(value).strip() if value is not None else ""


def _integer(path: Path, ds: Dataset, keyword: str, *, default: int | None = None) -> int:
    value = _value(ds, keyword) if keyword in ds else None
    if value is None or value == "":
        if default is None:
            raise UnsupportedImageError(f"{path}: the image lacks the {keyword} attribute")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UnsupportedImageError(f"{path}: invalid {keyword} {value!r}") from None


def _optional_integer(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(_value(ds, keyword))
    except (TypeError, ValueError):
        return None


def _numbers(value: Any) -> float | list[float | None] | None:
    if isinstance(value, (MultiValue, list, tuple)):
        return [finite_or_none(v) for v in value]
    return finite_or_none(value)


def _spacing(ds: Dataset, frames: int) -> tuple[float, ...] | None:
    source = ds
    if "PixelSpacing" not in ds:
        # Enhanced multi-frame objects keep it in the shared functional groups.
        try:
            source = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
    in_plane = _numbers(_value(source, "PixelSpacing"))
    if not isinstance(in_plane, list) or len(in_plane) != 2:
        return None
    row, col = in_plane
    if row is None or col is None or row <= 0 or col <= 0:
        return None
    if frames > 1:
        between = finite_or_none(_value(source, "SpacingBetweenSlices"))
        between = between or finite_or_none(_value(source, "SliceThickness"))
        if between and between > 0:
            return (between, row, col)
    return (row, col)


# --------------------------------------------------------------------------- write


def write_dicom(image: MedicalImage, path: Path) -> None:
    """Write ``image`` as a new Secondary Capture DICOM file (explicit VR little endian).

    Fresh study, series and instance UIDs are generated; no patient or study
    identifiers are written. Interleaved colour is written with Planar
    Configuration 0, planar colour (``(..., samples, rows, cols)``) with 1, and
    every leading axis becomes frames. Rescale and window values in
    ``image.metadata`` are kept.

    Raises
    ------
    ValueError
        Pixels DICOM cannot hold: 64-bit integers, float colour, or a samples
        count other than 1 or 3.
    """
    pixels = np.asarray(image.pixels)
    bits_stored = image.bits_stored
    if pixels.dtype == np.bool_:
        pixels, bits_stored = pixels.astype(np.uint8), 1
    elif pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    if pixels.dtype.kind in "ui" and pixels.dtype.itemsize == 8:
        raise ValueError("DICOM has no 64-bit integer pixels; cast the image to 32 bits first")

    samples, planar = 1, 0
    if image.channels_last:
        samples, (rows, cols), lead = pixels.shape[-1], pixels.shape[-3:-1], pixels.shape[:-3]
    elif image.samples_per_pixel > 1 and pixels.ndim >= 3 and pixels.shape[-3] == image.samples_per_pixel:
        samples, planar, lead = image.samples_per_pixel, 1, pixels.shape[:-3]
        rows, cols = pixels.shape[-2:]
    else:
        (rows, cols), lead = pixels.shape[-2:], pixels.shape[:-2]
    if samples not in (1, 3):
        raise ValueError(f"DICOM stores 1 or 3 samples per pixel, not {samples}; drop the alpha channel first")
    if pixels.dtype.kind == "f" and samples != 1:
        raise ValueError("DICOM float pixel data is greyscale only")
    if rows > 0xFFFF or cols > 0xFFFF:
        raise ValueError(f"DICOM images have at most 65535 rows and columns, not {rows} x {cols}")
    frames = math.prod(lead)
    bits_allocated = pixels.dtype.itemsize * 8
    data = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(data) >= _UNDEFINED_LENGTH - 1:
        raise ValueError("the pixel data exceeds the 4 GiB a DICOM element can hold")

    photometric = _photometric_for(image, pixels, samples)
    ds = Dataset()
    sop_class = _sop_class_for(pixels, samples, frames, photometric, bits_stored)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    # Type 2 attributes of the patient, study and series modules: present, empty.
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "SeriesNumber",
        "InstanceNumber",
    ):
        setattr(ds, keyword, "")
    ds.Modality = image.modality or "OT"
    ds.ConversionType = "WSD"  # workstation: the image was made by software

    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = planar
    if frames > 1:
        ds.NumberOfFrames = frames
        if sop_class != SecondaryCaptureImageStorage:
            # The multi-frame SC objects need a frame increment pointer (PS3.3 C.8.6.3).
            ds.FrameIncrementPointer = 0x00182001  # Page Number Vector
            ds.PageNumberVector = list(range(1, frames + 1))
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = bits_allocated
    if pixels.dtype.kind == "f":
        ds.add_new(0x7FE00008 if bits_allocated == 32 else 0x7FE00009, "OF" if bits_allocated == 32 else "OD", data)
    else:
        bits_stored = _bits_stored_for(pixels, bits_stored)
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = int(pixels.dtype.kind == "i")
        if photometric == "PALETTE COLOR":
            _add_palette(ds, image.metadata["palette"], bits_allocated)
        ds.add_new(0x7FE00010, "OB" if bits_allocated == 8 else "OW", data)
    _add_presentation(ds, image)
    ds.save_as(path, enforce_file_format=True)


def _photometric_for(image: MedicalImage, pixels: np.ndarray, samples: int) -> str:
    if samples == 3:
        return image.photometric if image.photometric in ("RGB", "YBR_FULL") else "RGB"
    if image.photometric in ("MONOCHROME1", "MONOCHROME2"):
        return image.photometric
    palette = image.metadata.get("palette")
    if (
        image.photometric == "PALETTE COLOR"
        and pixels.dtype in (np.uint8, np.uint16)
        and isinstance(palette, (list, tuple))
        and 3 <= len(palette) <= 3 * 65536
        and len(palette) % 3 == 0
    ):
        return "PALETTE COLOR"
    return "MONOCHROME2"


def _sop_class_for(pixels: np.ndarray, samples: int, frames: int, photometric: str, bits_stored: int | None) -> UID:
    # The multi-frame SC objects constrain their pixels (PS3.3 A.8.3-A.8.5); anything
    # outside those constraints is still a valid Secondary Capture image.
    if frames > 1:
        if samples == 3 and pixels.dtype == np.uint8:
            return MultiFrameTrueColorSecondaryCaptureImageStorage
        if photometric == "MONOCHROME2" and pixels.dtype == np.uint8 and bits_stored in (None, 8):
            return MultiFrameGrayscaleByteSecondaryCaptureImageStorage
        if photometric == "MONOCHROME2" and pixels.dtype in (np.uint16, np.int16):
            return MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    return SecondaryCaptureImageStorage


def _bits_stored_for(pixels: np.ndarray, requested: int | None) -> int:
    """``requested`` when every value fits in that many bits, else all allocated bits.

    Readers sign-extend from Bits Stored, so a narrower field than the values
    need would change them on the way back.
    """
    allocated = pixels.dtype.itemsize * 8
    if requested is None or not 1 <= requested < allocated or pixels.size == 0:
        return allocated
    if pixels.dtype.kind == "i":
        low, high = -(1 << (requested - 1)), (1 << (requested - 1)) - 1
    else:
        low, high = 0, (1 << requested) - 1
    fits = int(pixels.min()) >= low and int(pixels.max()) <= high
    return requested if fits else allocated


def _add_palette(ds: Dataset, palette: list[int], bits_allocated: int) -> None:
    table = np.asarray(palette, dtype=np.uint16).reshape(-1, 3)
    entries = len(table)
    # 16-bit entries: 8-bit palettes scale by 257 so that 255 maps to 65535.
    words = (table * 257).astype("<u2")
    descriptor = [entries % 65536, 0, 16]
    for channel, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", descriptor)
        setattr(ds, f"{colour}PaletteColorLookupTableData", words[:, channel].tobytes())


def _add_presentation(ds: Dataset, image: MedicalImage) -> None:
    meta = image.metadata
    slope, intercept = finite_or_none(meta.get("rescale_slope")), finite_or_none(meta.get("rescale_intercept"))
    if slope is not None and intercept is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
    centre, width = meta.get("window_center"), meta.get("window_width")
    if centre is not None and width is not None:
        try:
            ds.WindowCenter = [_ds(v) for v in np.atleast_1d(np.asarray(centre, dtype=float))]
            ds.WindowWidth = [_ds(v) for v in np.atleast_1d(np.asarray(width, dtype=float))]
        except (TypeError, ValueError):
            pass  # malformed window values are dropped; they only steer display
    if image.spacing and len(image.spacing) >= 2:
        ds.PixelSpacing = [_ds(image.spacing[-2]), _ds(image.spacing[-1])]
        if len(image.spacing) >= 3 and int(ds.get("NumberOfFrames", 1)) > 1:
            ds.SpacingBetweenSlices = _ds(image.spacing[-3])


def _ds(value: float) -> str:
    """A Decimal String value: at most 16 characters (PS3.5 6.2)."""
    return pydicom.valuerep.format_number_as_ds(float(value))
