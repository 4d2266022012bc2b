"""DICOM-native encryption: valid de-identified DICOM out, the original back byte for byte."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import subprocess
import uuid as uuid_module
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from external_tools import require_tool
from pydicom.dataset import Dataset

from deepkedi.cipher.dicom_native import (
    DEIDENTIFICATION_MARKER,
    decrypt_dicom_native,
    deidentified_uid,
    encrypt_dicom_native,
    is_dicom_native,
    resolved_action,
)
from deepkedi.datasets import sample_corpus
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.imaging import read_image
from deepkedi.imaging.confidentiality import (
    ACTION_CODES,
    BASIC_PROFILE,
    BASIC_PROFILE_VERSION,
    basic_profile_action,
    basic_profile_entries,
)
from deepkedi.keys import Key, generate_key

DICOM_SAMPLES = [s for s in sample_corpus() if read_image(s.path).format == "dicom"]
ENCRYPTED_ATTRIBUTES = 0x04000500


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def key() -> Key:
    return generate_key(gan=False)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory, key: Key) -> dict[str, tuple[Path, Path]]:
    """Every corpus DICOM file encrypted once: name → (original, DICOM-native file)."""
    folder = tmp_path_factory.mktemp("native")
    result = {}
    for sample in DICOM_SAMPLES:
        out = folder / sample.name
        encrypt_dicom_native(sample.path, out, key)
        result[sample.name] = (sample.path, out)
    return result


def test_corpus_has_dicom_files() -> None:
    assert len(DICOM_SAMPLES) >= 6


# --------------------------------------------------------------------------- the profile table


def test_profile_table_is_complete_and_well_formed() -> None:
    entries = basic_profile_entries()
    assert BASIC_PROFILE_VERSION == "PS3.15 2026d"
    assert len(entries) >= 650
    assert {e.action for e in entries} <= ACTION_CODES
    assert len({e.tag for e in entries}) == len(entries)
    # Known rows of Table E.1-1, one per action code.
    expected = {
        0x00100010: "Z",  # Patient's Name
        0x00100020: "Z/D",  # Patient ID
        0x00100030: "Z",  # Patient's Birth Date
        0x00080080: "X/Z/D",  # Institution Name
        0x00080018: "U",  # SOP Instance UID
        0x0020000D: "U",  # Study Instance UID
        0x00080022: "X/Z",  # Acquisition Date
        0x00181030: "X/D",  # Protocol Name
        0x00081140: "X/Z/U*",  # Referenced Image Sequence
        0x0040A730: "D",  # Content Sequence
        0x00081030: "X",  # Study Description
        0x00101010: "X",  # Patient's Age
    }
    for tag, action in expected.items():
        assert BASIC_PROFILE[tag] == action, hex(tag)


@pytest.mark.parametrize(
    ("tag", "action"),
    [
        (0x00280010, "K"),  # Rows
        (0x00080016, "K"),  # SOP Class UID
        (0x00090010, "X"),  # a private creator
        (0x00291010, "X"),  # a private element
        (0x60003000, "X"),  # Overlay Data
        (0x601E4000, "X"),  # Overlay Comments, last overlay group
        (0x50020010, "X"),  # a curve element
        (0x60000010, "K"),  # Overlay Rows (the module is dropped whole by the encryptor)
    ],
)
def test_profile_action_lookup(tag: int, action: str) -> None:
    assert basic_profile_action(tag) == action


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES])
def test_round_trip_is_byte_exact(name: str, encrypted: dict, key: Key, tmp_path: Path) -> None:
    original, native = encrypted[name]
    assert is_dicom_native(native)
    back = tmp_path / "back.dcm"
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(original)


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES])
def test_output_is_readable_dicom_of_same_class_and_shape(name: str, encrypted: dict) -> None:
    original, native = encrypted[name]
    before = pydicom.dcmread(original)
    after = pydicom.dcmread(native)
    assert after.SOPClassUID == before.SOPClassUID
    assert after.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    assert after.pixel_array.shape == read_image(original).pixels.shape
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel"):
        assert after[keyword].value == before[keyword].value, keyword
    assert int(after.get("NumberOfFrames", 1)) == int(before.get("NumberOfFrames", 1))
    assert after.PatientIdentityRemoved == "YES"
    assert DEIDENTIFICATION_MARKER in list(after.DeidentificationMethod)
    code = after.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    item = after.EncryptedAttributesSequence[0]
    assert "EncryptedContentTransferSyntaxUID" in item and len(item.EncryptedContent) > 0


def _walk(ds: Dataset, skip: int = ENCRYPTED_ATTRIBUTES):
    for elem in ds:
        if elem.tag == skip:
            continue
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, skip)


def _values(ds: Dataset) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = {}
    for elem in _walk(ds):
        if elem.VR != "SQ" and elem.value not in (None, "", b""):
            seen.setdefault(int(elem.tag), set()).add(repr(elem.value))
    return seen


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES])
def test_nothing_but_kept_attributes_stay_in_the_clear(name: str, encrypted: dict) -> None:
    original, native = encrypted[name]
    before = _values(pydicom.dcmread(original))
    after = pydicom.dcmread(native)
    for elem in _walk(after):
        tag = int(elem.tag)
        assert elem.tag.group % 2 == 0, f"private element {elem.tag} left in the output"
        action = basic_profile_action(tag)
        if action == "K" or elem.VR == "SQ" or elem.value in (None, "", b""):
            continue
        assert repr(elem.value) not in before.get(tag, set()), f"{elem.tag} ({action}) kept its original value"
    # Every file-meta UID that identified the instance changed too.
    assert after.file_meta.MediaStorageSOPInstanceUID != pydicom.dcmread(original).file_meta.get(
        "MediaStorageSOPInstanceUID"
    )


def test_overlays_and_private_tags_are_gone(encrypted: dict) -> None:
    _, native = encrypted["pydicom-examples_overlay.dcm"]
    ds = pydicom.dcmread(native)
    assert not [e for e in ds if 0x6000 <= e.tag.group <= 0x601E or e.tag.is_private]


def test_uids_consistent_across_a_study(tmp_path: Path, key: Key) -> None:
    source = DICOM_SAMPLES[0].path
    first = pydicom.dcmread(source)
    second = tmp_path / "second.dcm"
    shutil.copyfile(source, second)
    ds = pydicom.dcmread(second)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(second)
    out1, out2 = tmp_path / "a.dcm", tmp_path / "b.dcm"
    encrypt_dicom_native(source, out1, key)
    encrypt_dicom_native(second, out2, key)
    a, b = pydicom.dcmread(out1), pydicom.dcmread(out2)
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.StudyInstanceUID.startswith("2.25.") and len(a.StudyInstanceUID) <= 64
    # Patient ID (Z/D → D): one pseudonym per patient, so a PACS keeps patients apart.
    assert a.PatientID == b.PatientID != first.PatientID
    assert a.PatientID.startswith("DK-") and len(a.PatientID) == 27
    third = tmp_path / "third.dcm"
    ds.PatientID = "another patient"
    ds.save_as(third)
    encrypt_dicom_native(third, tmp_path / "t.dcm", key)
    assert pydicom.dcmread(tmp_path / "t.dcm").PatientID not in (a.PatientID, "another patient")
    # Another key, another mapping.
    out3 = tmp_path / "c.dcm"
    encrypt_dicom_native(source, out3, generate_key(gan=False))
    assert pydicom.dcmread(out3).StudyInstanceUID != a.StudyInstanceUID
    assert pydicom.dcmread(out3).PatientID != a.PatientID


@pytest.mark.parametrize(
    ("code", "applied"),
    [
        ("X", "X"),
        ("Z", "Z"),
        ("D", "D"),
        ("K", "K"),
        ("U", "U"),
        ("X/Z", "Z"),
        ("X/D", "D"),
        ("X/Z/D", "D"),
        ("Z/D", "D"),
        ("X/Z/U*", "U*"),
    ],
)
def test_compound_codes_take_the_choice_conformant_in_every_iod(code: str, applied: str) -> None:
    assert resolved_action(code) == applied
    assert code in ACTION_CODES


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_data_streams_in_batches_across_segments(
    channels: int, key: Key, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-frame file over the 1 MiB read-deferral size, with the pixel words moved two
    planes at a time across GCM segment boundaries: Pixel Data is exactly the container's
    cipher image, and the original comes back byte for byte."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from deepkedi.cipher import dicom_native, layout

    source = tmp_path / "multiframe.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if channels == 3 else "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(source), {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "P-0042", "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 301, 257, 7, channels
    ds.PhotometricInterpretation = "RGB" if channels == 3 else "MONOCHROME2"
    bits = 8 if channels == 3 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if channels == 3:
        ds.PlanarConfiguration = 0
    dtype = np.uint8 if channels == 3 else np.uint16
    shape = (7, 301, 257, 3) if channels == 3 else (7, 301, 257)
    ds.PixelData = np.random.default_rng(4).integers(0, 2**bits, shape, dtype=dtype).tobytes()
    ds.save_as(source, enforce_file_format=True)
    assert source.stat().st_size > 1 << 20

    plane = 301 * 257 * channels * np.dtype(dtype).itemsize
    monkeypatch.setattr(dicom_native, "_BATCH_BYTES", 2 * plane)
    kept = tmp_path / "container.kedi"
    original_seal = dicom_native.seal_file

    def keep_container(prepared, sink, **kwargs):  # type: ignore[no-untyped-def]
        # The same prepared header (salt, nonce) and input seal to the same bytes: a plain copy of
        # the container the DICOM-native writer lays out, to check its Pixel Data against.
        with open(kept, "wb") as copy:
            original_seal(prepared, copy)
        return original_seal(prepared, sink, **kwargs)

    monkeypatch.setattr(dicom_native, "seal_file", keep_container)
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    reports: list[tuple[int, int]] = []
    header = encrypt_dicom_native(source, native, key, progress=lambda done, total: reports.append((done, total)))
    assert header.segment_count > 1
    # One bar over the one pass: the container sealed and its Pixel Data written, ending full.
    assert {total for _, total in reports} == {header.payload_length + header.pixel_length}
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert reports[-1][0] == reports[-1][1] and len(reports) >= 4
    written = pydicom.dcmread(native)
    expected = layout.cipher_image(kept).tobytes()
    assert written.PixelData == expected + b"\x00" * (len(expected) % 2)  # values have even length
    assert written.PatientName != "Doe^Jane" and "P-0042" not in str(written)
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)
    # A changed word in the middle of a late batch is refused like any other change.
    data = bytearray(native.read_bytes())
    data[-plane - 5] ^= 0x01
    tampered = tmp_path / "tampered.dcm"
    tampered.write_bytes(bytes(data))
    with pytest.raises(AuthenticationError):
        decrypt_dicom_native(tampered, tmp_path / "never.dcm", key)
    assert not (tmp_path / "never.dcm").exists()


def test_the_inputs_own_oddities_raise_no_warning(key: Key, tmp_path: Path) -> None:
    """rtdose.dcm holds UIDs pydicom calls invalid ("0123"): they are replaced, and the
    warnings pydicom raises while parsing them lazily must not reach the user."""
    source = _PYDICOM_FILES / "rtdose.dcm"
    if not source.is_file():
        pytest.skip("rtdose.dcm is not among pydicom's installed test files")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encrypt_dicom_native(source, tmp_path / "native.dcm", key)
        decrypt_dicom_native(tmp_path / "native.dcm", tmp_path / "back.dcm", key)
    assert _sha256(tmp_path / "back.dcm") == _sha256(source)


def test_type_1_attributes_of_an_enhanced_iod_keep_a_value(key: Key, tmp_path: Path) -> None:
    """A Segmentation (an enhanced multi-frame IOD): Content Date/Time (Z/D) and Device
    Serial Number (X/Z/D) are Type 1 there, Source Image Sequence (X/Z/U*) Type 2: they
    stay, with dummy values and re-mapped references; the binary words, 8-bit as cipher
    words, are labelled fractional; decryption gives the original back."""
    source = _PYDICOM_FILES / "liver_1frame.dcm"
    if not source.is_file():
        pytest.skip("liver_1frame.dcm is not among pydicom's installed test files")
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(source, native, key)
    before, after = pydicom.dcmread(source), pydicom.dcmread(native)
    assert after.ContentDate == "19000101" != before.ContentDate
    assert after.DeviceSerialNumber == "DEIDENTIFIED" != before.DeviceSerialNumber
    item_before = before.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    item_after = after.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert item_after.ReferencedSOPClassUID == item_before.ReferencedSOPClassUID
    assert item_after.ReferencedSOPInstanceUID.startswith("2.25.")
    # The references stay consistent: the source image is the one the series reference names.
    named = {i.ReferencedSOPInstanceUID for i in after.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert item_after.ReferencedSOPInstanceUID in named
    assert (after.SegmentationType, after.BitsAllocated, after.BitsStored) == ("FRACTIONAL", 8, 8)
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)


def test_deidentified_uid_is_a_valid_uuid_uid() -> None:
    uid = deidentified_uid(b"\x01" * 32, "1.2.840.113619.2.1.1")
    assert uid == deidentified_uid(b"\x01" * 32, "1.2.840.113619.2.1.1")
    assert uid != deidentified_uid(b"\x02" * 32, "1.2.840.113619.2.1.1")
    value = int(uid.split(".")[2])
    assert value < 2**128 and (value >> 76) & 0xF == 8 and (value >> 62) & 0x3 == 2
    assert pydicom.uid.UID(uid).is_valid


def test_uid_and_pseudonym_follow_the_documented_formulas() -> None:
    """docs/DICOM_NATIVE.md restated: another implementation holding the key derives the
    same UIDs and pseudonyms (a second site re-linking its studies, for instance)."""
    from deepkedi.cipher.dicom_native import UID_HKDF_INFO, patient_pseudonym

    secret = bytes(range(32))
    uid_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"deepkedi/v1 dicom-native uid key")
    uid_key = uid_key.derive(secret)
    assert UID_HKDF_INFO == b"deepkedi/v1 dicom-native uid key"
    old_uid = "1.2.840.113619.2.1.1"
    digest = hmac.new(uid_key, b"deepkedi/v1 dicom-native uid\x00" + old_uid.encode(), hashlib.sha256).digest()
    uuid = uuid_module.UUID(bytes=digest[:16])
    expected = uuid_module.UUID(
        fields=(*uuid.fields[:2], (uuid.fields[2] & 0x0FFF) | 0x8000, (uuid.fields[3] & 0x3F) | 0x80, *uuid.fields[4:])
    )
    assert deidentified_uid(uid_key, old_uid) == f"2.25.{expected.int}"
    assert expected.version == 8 and expected.variant == uuid_module.RFC_4122
    mac = hmac.new(uid_key, b"deepkedi/v1 dicom-native patient id\x00" + "Müller 42".encode(), hashlib.sha256)
    assert patient_pseudonym(uid_key, "Müller 42") == "DK-" + mac.hexdigest()[:24].upper()


# --------------------------------------------------------------------------- pixels


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES if s.bits_stored > 8])
def test_cipher_pixels_differ_from_plain(name: str, encrypted: dict) -> None:
    original, native = encrypted[name]
    plain = np.asarray(read_image(original).pixels)
    raw = pydicom.dcmread(native).PixelData
    cipher = np.frombuffer(raw[: plain.nbytes], dtype=plain.dtype.newbyteorder("<")).reshape(plain.shape)
    assert np.mean(cipher != plain) >= 0.99


# --------------------------------------------------------------------------- failures


def _tampered(native: Path, tmp_path: Path, edit) -> Path:
    ds = pydicom.dcmread(native)
    edit(ds)
    target = tmp_path / "tampered.dcm"
    ds.save_as(target, enforce_file_format=True)
    return target


def _flip_content(ds: Dataset) -> None:
    item = ds.EncryptedAttributesSequence[0]
    content = bytearray(item.EncryptedContent)
    content[len(content) // 2] ^= 0x01
    item.EncryptedContent = bytes(content)


def _flip_pixel(ds: Dataset) -> None:
    pixels = bytearray(ds.PixelData)
    pixels[len(pixels) // 3] ^= 0x80
    ds.PixelData = bytes(pixels)


@pytest.mark.parametrize("edit", [_flip_content, _flip_pixel], ids=["encrypted-content", "pixel-data"])
def test_tampering_is_detected(edit, encrypted: dict, key: Key, tmp_path: Path) -> None:
    _, native = encrypted["pydicom-CT_small.dcm"]
    target = _tampered(native, tmp_path, edit)
    out = tmp_path / "out.dcm"
    with pytest.raises(AuthenticationError):
        decrypt_dicom_native(target, out, key)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [target]


def test_wrong_key_fails_without_output(encrypted: dict, tmp_path: Path) -> None:
    _, native = encrypted["pydicom-MR_small.dcm"]
    out = tmp_path / "out.dcm"
    with pytest.raises(AuthenticationError):
        decrypt_dicom_native(native, out, generate_key(gan=False))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_non_dicom_input_is_refused(tmp_path: Path, key: Key) -> None:
    png = next(s.path for s in sample_corpus() if s.path.suffix == ".png")
    with pytest.raises(UnsupportedImageError, match="not a DICOM file"):
        encrypt_dicom_native(png, tmp_path / "x.dcm", key)
    assert not is_dicom_native(png)


def test_plain_dicom_is_not_native(tmp_path: Path, key: Key) -> None:
    plain = DICOM_SAMPLES[0].path
    assert not is_dicom_native(plain)
    with pytest.raises(FormatError):
        decrypt_dicom_native(plain, tmp_path / "x.dcm", key)


# --------------------------------------------------------------------------- external validators


def _tool(name: str) -> str:
    return require_tool(name, install="DCMTK, GDCM and dicom3tools (`make setup`)")


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES])
def test_dcmtk_and_gdcm_accept_the_output(name: str, encrypted: dict, tmp_path: Path) -> None:
    _, native = encrypted[name]
    dump = subprocess.run(
        [_tool("dcmdump"), "+E", str(native)], capture_output=True, check=False, text=True, timeout=60
    )
    assert dump.returncode == 0, dump.stderr
    problems = [line for line in dump.stderr.splitlines() if line.startswith(("E:", "W:", "F:"))]
    assert not problems, problems
    picture = tmp_path / "out.pnm"
    render = subprocess.run(
        [_tool("dcm2pnm"), str(native), str(picture)], capture_output=True, check=False, text=True, timeout=60
    )
    assert render.returncode == 0, render.stderr
    assert picture.stat().st_size > 0
    assert not [line for line in render.stderr.splitlines() if line.startswith(("E:", "F:"))]
    info = subprocess.run([_tool("gdcminfo"), str(native)], capture_output=True, check=False, text=True, timeout=60)
    assert info.returncode == 0, info.stderr


def _iod_errors(path: Path) -> set[str]:
    """dciodvfy's "Error" lines: the file against its IOD's module and attribute rules.

    UIDs quoted in a message (``<1.2.3>``) become ``<UID>``: de-identification replaces them,
    and the same error about a replaced UID is not a new one."""
    # Its messages quote attribute values, which need not be UTF-8.
    run = subprocess.run(
        [_tool("dciodvfy"), str(path)], capture_output=True, check=False, text=True, errors="replace", timeout=60
    )
    lines = (run.stdout + run.stderr).splitlines()
    return {re.sub(r"<[0-9.]+>", "<UID>", line.strip()) for line in lines if line.startswith("Error")}


@pytest.mark.parametrize("name", [s.name for s in DICOM_SAMPLES])
def test_iod_conformance_is_kept(name: str, encrypted: dict) -> None:
    """De-identification removes and empties attributes; none of that may break the IOD (a
    missing Type 1 or 2 attribute, an empty Type 1 one): every error dciodvfy reports on the
    output, it reports on the original too."""
    original, native = encrypted[name]
    assert _iod_errors(native) <= _iod_errors(original)


# --------------------------------------------------------------------------- beyond the corpus

_PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.mark.parametrize(
    "name",
    [
        "rtdose.dcm",  # 15 frames, 32-bit words
        "SC_rgb_rle_2frame.dcm",  # RLE, 2 colour frames
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline YBR_FULL_422
        "SC_rgb_dcmtk_+eb+cr.dcm",  # explicit big endian, colour
        "SC_rgb_small_odd.dcm",  # 3x3 colour: odd-length values
        "liver_1frame.dcm",  # Segmentation: an enhanced IOD, 1-bit words
        "examples_ybr_color.dcm",  # US multi-frame, YBR_FULL_422
    ],
)
def test_multiframe_and_other_syntaxes(name: str, key: Key, tmp_path: Path) -> None:
    source = _PYDICOM_FILES / name
    if not source.is_file():
        pytest.skip(f"{name} is not among pydicom's installed test files")
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(source, native, key)
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)
    before, after = pydicom.dcmread(source), pydicom.dcmread(native)
    assert int(after.get("NumberOfFrames", 1)) == int(before.get("NumberOfFrames", 1))
    assert after.pixel_array.shape == read_image(source).pixels.shape
    assert after.PhotometricInterpretation in ("MONOCHROME2", "RGB", "YBR_FULL")
    assert _iod_errors(native) <= _iod_errors(source)


# --------------------------------------------------------------------------- inputs that broke it


def _ct_variant(tmp_path: Path, name: str, edit) -> Path:
    ds = pydicom.dcmread(_PYDICOM_FILES / "CT_small.dcm")
    edit(ds)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=False)
    return path


@pytest.mark.parametrize("meta_too", [False, True], ids=["dataset", "dataset-and-meta"])
def test_empty_sop_instance_uid_gets_a_new_one(meta_too: bool, key: Key, tmp_path: Path) -> None:
    """An empty SOP Instance UID (Type 1; pylibjpeg-data has such a file) used to make the file meta
    invalid and the write raise. It gets a new UID, the same for the same file under one key."""

    def empty(ds: Dataset) -> None:
        ds.SOPInstanceUID = ""
        if meta_too:
            ds.file_meta.MediaStorageSOPInstanceUID = ""

    source = _ct_variant(tmp_path, "empty-uid.dcm", empty)
    native, again, back = tmp_path / "native.dcm", tmp_path / "again.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(source, native, key)
    encrypt_dicom_native(source, again, key)
    out = pydicom.dcmread(native)
    assert out.SOPInstanceUID.startswith("2.25.") and out.SOPInstanceUID.is_valid
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert pydicom.dcmread(again).SOPInstanceUID == out.SOPInstanceUID
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)


def _big_endian_copy(source: Path, tmp_path: Path) -> Path:
    big = tmp_path / ("be-" + source.name)
    run = subprocess.run(
        [_tool("dcmconv"), "+tb", str(source), str(big)], capture_output=True, check=False, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert pydicom.dcmread(big).file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
    return big


def test_big_endian_palette_lut_data_is_byte_swapped(key: Key, tmp_path: Path) -> None:
    """OW values stay raw bytes in pydicom: from a big-endian input they were copied into the
    little-endian output unswapped, so every 16-bit palette entry changed (0x0100 read 0x0001)."""
    source = _PYDICOM_FILES / "examples_palette.dcm"
    big = _big_endian_copy(source, tmp_path)
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(big, native, key)
    plain, out = pydicom.dcmread(source), pydicom.dcmread(native)
    for keyword in (
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
    ):
        assert out[keyword].value == plain[keyword].value, keyword
    assert _iod_errors(native) <= _iod_errors(big)
    gdcm = subprocess.run([_tool("gdcminfo"), str(native)], capture_output=True, check=False, timeout=60)
    assert gdcm.returncode == 0
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(big)


def _reference(class_uid: str, instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = class_uid
    item.ReferencedSOPInstanceUID = instance_uid
    return item


def test_reference_sequences_keep_an_item_with_new_uids(key: Key, tmp_path: Path) -> None:
    """Referenced Study Sequence (X/Z) and Referenced Performed Procedure Step Sequence (X/Z/D)
    became empty sequences, which dciodvfy rejects (a Type 3 sequence with no item). They keep
    their items, the instance UIDs replaced; Institution Code Sequence (X/Z/D) is removed."""
    study, step = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"

    def add(ds: Dataset) -> None:
        ds.ReferencedStudySequence = [_reference("1.2.840.10008.3.1.2.3.1", study)]
        ds.ReferencedPerformedProcedureStepSequence = [_reference("1.2.840.10008.3.1.2.3.3", step)]
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "HOSP1", "99LOCAL", "St Elsewhere"
        ds.InstitutionCodeSequence = [code]

    source = _ct_variant(tmp_path, "references.dcm", add)
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(source, native, key)
    out = pydicom.dcmread(native)
    for keyword, old in (("ReferencedStudySequence", study), ("ReferencedPerformedProcedureStepSequence", step)):
        items = out[keyword].value
        assert len(items) == 1, keyword
        assert items[0].ReferencedSOPInstanceUID.startswith("2.25.") and items[0].ReferencedSOPInstanceUID != old
        assert items[0].ReferencedSOPClassUID == pydicom.dcmread(source)[keyword][0].ReferencedSOPClassUID
    assert "InstitutionCodeSequence" not in out
    assert _iod_errors(native) <= _iod_errors(source)
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)


@pytest.mark.parametrize(
    "keyword, dtype, vr", [("FloatPixelData", np.float32, "OF"), ("DoubleFloatPixelData", np.float64, "OD")]
)
def test_float_pixel_data_gains_no_bits_stored(keyword: str, dtype, vr: str, key: Key, tmp_path: Path) -> None:
    """Float and Double Float Pixel Data have no Bits Stored / High Bit (a Parametric Map, for one,
    forbids them); the output used to gain both, four new IOD errors."""

    def to_float(ds: Dataset) -> None:
        values = ds.pixel_array.astype(dtype) / 7
        for name in (
            "PixelData",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "SmallestImagePixelValue",
            "LargestImagePixelValue",
            "PixelPaddingValue",
        ):
            if name in ds:
                delattr(ds, name)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map
        ds.BitsAllocated = values.dtype.itemsize * 8
        setattr(ds, keyword, values.tobytes())
        ds[keyword].VR = vr

    source = _ct_variant(tmp_path, "float.dcm", to_float)
    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    encrypt_dicom_native(source, native, key)
    out = pydicom.dcmread(native)
    assert keyword in out and "PixelData" not in out
    assert "BitsStored" not in out and "HighBit" not in out
    assert out.BitsAllocated == np.dtype(dtype).itemsize * 8
    assert _iod_errors(native) <= _iod_errors(source)
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)


def test_a_fifo_is_refused_at_once(tmp_path: Path, fifo: Path) -> None:
    import time

    start = time.monotonic()
    assert not is_dicom_native(fifo)
    assert time.monotonic() - start < 5  # not after the fixture's writer came
    key = generate_key(gan=False)
    with pytest.raises(FormatError, match="FIFO"):
        decrypt_dicom_native(fifo, tmp_path / "out.dcm", key)
    with pytest.raises(UnsupportedImageError, match="FIFO"):
        encrypt_dicom_native(fifo, tmp_path / "out.dcm", key)
    # A missing file is named as missing, in the error class of each direction.
    with pytest.raises(FormatError, match="cannot be read"):
        decrypt_dicom_native(tmp_path / "absent.dcm", tmp_path / "out.dcm", key)
    with pytest.raises(UnsupportedImageError, match="cannot be read"):
        encrypt_dicom_native(tmp_path / "absent.dcm", tmp_path / "out.dcm", key)


def test_file_rewritten_during_encryption_still_restores(tmp_path: Path, key: Key) -> None:
    # The embedded container's SHA-256 covers the bytes it carries, read once: a DICOM
    # file rewritten (same size and mtime) while it is encrypted still restores.
    src = tmp_path / "ct.dcm"
    shutil.copy(next(s.path for s in DICOM_SAMPLES if s.path.name == "CT_small.dcm"), src)
    layout = read_image(src).source
    assert layout is not None and layout.restore == "splice"
    calls: list[int] = []

    def rewrite_pixels(done: int, total: int) -> None:
        if not calls:  # the restoration section is sealed in, the pixel words are not read yet
            before = src.stat()
            with open(src, "r+b") as fh:
                fh.seek(layout.pixel_offset)
                fh.write(bytes(100))
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
        calls.append(done)

    encrypt_dicom_native(src, tmp_path / "enc.dcm", key, progress=rewrite_pixels)
    decrypt_dicom_native(tmp_path / "enc.dcm", tmp_path / "back.dcm", key)
    assert (tmp_path / "back.dcm").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(("rows", "cols", "frames"), [(1100, 1000, 2), (3, 5, 1), (700, 9, 3)])
def test_planes_larger_and_smaller_than_a_segment_land_in_pixel_data_exactly(
    key: Key, tmp_path: Path, rows: int, cols: int, frames: int
) -> None:
    """The one-pass writer puts each plane's ciphertext back in raster order even when a plane spans
    several segments, starts in the segment sealed last, or the whole payload is that one segment."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from deepkedi.cipher import hybrid, layout

    source = tmp_path / "plane.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(source), {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.Modality = "Roe^Richard", "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = rows, cols, frames, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.random.default_rng(rows).integers(0, 2**16, (frames, rows, cols), dtype=np.uint16).tobytes()
    ds.save_as(source, enforce_file_format=True)

    native, back = tmp_path / "native.dcm", tmp_path / "back.dcm"
    header = encrypt_dicom_native(source, native, key)
    # The reference: the same container sealed into a plain file, its cipher image read the usual way.
    written = pydicom.dcmread(native)
    item = written.EncryptedAttributesSequence[0]
    assert len(item.EncryptedContent) in (
        header.container_length - header.pixel_length,
        header.container_length - header.pixel_length + 1,
    )
    decrypt_dicom_native(native, back, key)
    assert _sha256(back) == _sha256(source)
    rebuilt = tmp_path / "rebuilt.kedi"
    from deepkedi.cipher.dicom_native import _rebuilt, open_dicom_native

    with _rebuilt(open_dicom_native(native)) as container:
        rebuilt.write_bytes(container.read_bytes())
    expected = layout.cipher_image(rebuilt).tobytes()
    assert written.PixelData[: len(expected)] == expected
    assert hybrid.decrypt_file(rebuilt, tmp_path / "again.dcm", key) is not None
    assert _sha256(tmp_path / "again.dcm") == _sha256(source)
