"""Every file of a study is protected: what is not an image is sealed whole into an opaque container.

A study folder holds more than slices: a structured report, a DICOM object whose
pixel data is gone, a DICOMDIR, a PDF, an empty file, notes. Encrypted as a folder,
each becomes a container (no plaintext left), and decryption gives the tree back
byte for byte; ``--only-images`` skips exactly the non-images; a changed opaque
container fails authentication; the paper suite refuses to seal bytes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from folders import visible_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

import deepkedi
from deepkedi import api, datasets
from deepkedi.batch import MANIFEST_NAME, Status, run_batch
from deepkedi.cipher import hybrid
from deepkedi.cipher.format import OPAQUE_FORMAT, ContainerHeader, Suite, parse_header
from deepkedi.cipher.keytypes import KeyImage
from deepkedi.cipher.layout import cipher_image
from deepkedi.cli import app
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.transforms.zigzag import ZigzagPattern

KEY = deepkedi.generate_key(gan=False)

#: Distinctive plaintext of the files that are not images: none may appear in any output.
SR_TEXT = "Impression: opaque-marker-SR no acute findings"
PDF_TEXT = b"opaque-marker-PDF discharge letter"
NOTES_TEXT = "opaque-marker-NOTES call the referring physician"
NOPIX_NAME = "OPAQUE^NOPIXELS"
DICOMDIR_ID = "OPAQUEFILESET"
NON_IMAGES = ["DICOMDIR", "empty.bin", "letter.pdf", "nopixels.dcm", "report.sr.dcm", "series/notes/notes.txt"]
MARKERS = [SR_TEXT.encode(), PDF_TEXT, NOTES_TEXT.encode(), NOPIX_NAME.encode(), DICOMDIR_ID.encode()]


def _part10(ds: Dataset, sop_class: str, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def _basic_text_sr(path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "DEMO^PATIENT"
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.TextValue = SR_TEXT
    ds.ContentSequence = [item]
    _part10(ds, "1.2.840.10008.5.1.4.1.1.88.11", path)  # Basic Text SR Storage


def _dicomdir(path: Path) -> None:
    ds = Dataset()
    ds.FileSetID = DICOMDIR_ID
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = []
    _part10(ds, "1.2.840.10008.1.3.10", path)  # Media Storage Directory Storage


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six CT slices and CT_small, with the non-image objects a real study folder carries."""
    samples = tmp_path_factory.mktemp("samples")
    datasets.write_samples(samples)
    folder = tmp_path_factory.mktemp("study")
    shutil.copytree(samples / "study", folder / "series")
    shutil.copy(samples / "CT_small.dcm", folder / "CT_small.dcm")
    slice_ = pydicom.dcmread(next((folder / "series").rglob("*.dcm")))
    del slice_.PixelData
    slice_.PatientName = NOPIX_NAME
    slice_.save_as(folder / "nopixels.dcm")
    _basic_text_sr(folder / "report.sr.dcm")
    _dicomdir(folder / "DICOMDIR")
    (folder / "letter.pdf").write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n% " + PDF_TEXT + b"\n%%EOF\n")
    (folder / "empty.bin").write_bytes(b"")
    (folder / "series" / "notes").mkdir()
    (folder / "series" / "notes" / "notes.txt").write_text(NOTES_TEXT)
    return folder


def _kedi(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "site.key"
    assert _kedi("keygen", "-o", path)[0] == 0
    return path


def test_every_file_is_sealed_no_plaintext_is_left_and_the_tree_comes_back(study: Path, tmp_path: Path) -> None:
    originals = visible_files(study)
    images = sorted(set(originals) - set(NON_IMAGES))
    assert len(images) == 7 and all(name in originals for name in NON_IMAGES)
    out = tmp_path / "enc"
    result = run_batch(study, out, KEY, mode="encrypt", jobs=2)
    assert result.ok and len(result.done) == len(originals) and not result.skipped
    assert sorted(o.entry.rel for o in result.opaque) == NON_IMAGES
    assert result.summary()["opaque"] == len(NON_IMAGES)
    sealed = visible_files(out)
    assert sorted(sealed) == sorted(name + ".kedi" for name in originals)
    for name, data in sealed.items():
        for marker in MARKERS:
            assert marker not in data, (name, marker)
        info = api.read_header(out / name)
        assert info.opaque == (name[: -len(".kedi")] in NON_IMAGES)
    # The manifest says which files were sealed whole, and why they are not images.
    with sqlite3.connect(out / MANIFEST_NAME) as db:
        rows = dict(db.execute("SELECT rel, error FROM entry WHERE status = 'done'").fetchall())
    assert len(rows) == len(originals)
    assert all(rows[name].startswith("sealed opaque: ") for name in NON_IMAGES)
    assert "pixel data is missing" in rows["nopixels.dcm"] and "empty" in rows["empty.bin"]
    assert all(rows[name] is None for name in images)
    back = run_batch(out, tmp_path / "dec", KEY, mode="decrypt", jobs=1)
    assert back.ok and len(back.opaque) == len(NON_IMAGES)
    assert visible_files(tmp_path / "dec") == originals


def test_only_images_skips_exactly_the_non_images(study: Path, tmp_path: Path, keyfile: Path) -> None:
    out = tmp_path / "enc"
    code, stdout, _ = _kedi("encrypt", study, "-o", out, "--key", keyfile, "--only-images", "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["ok"] and summary["done"] == 7 and summary["opaque"] == 0
    assert sorted(item["path"] for item in summary["not_done"]) == NON_IMAGES
    assert {item["status"] for item in summary["not_done"]} == {Status.SKIPPED}
    assert sorted(visible_files(out)) == sorted(n + ".kedi" for n in visible_files(study) if n not in NON_IMAGES)
    # Without it the line says what was sealed whole.
    code, stdout, stderr = _kedi("encrypt", study, "-o", tmp_path / "all", "--key", keyfile, "--jobs", "1")
    assert code == 0, stderr
    assert "encrypted 13 of 13 files" in stdout and f"; {len(NON_IMAGES)} sealed opaque" in stdout
    assert "sealed 6 file(s) that are not images whole" in stderr


def test_as_dicom_puts_opaque_containers_beside_the_dicom_native_files(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "native"
    result = run_batch(study, out, KEY, mode="encrypt", as_dicom=True, jobs=1)
    assert result.ok and sorted(o.entry.rel for o in result.opaque) == NON_IMAGES
    for name in NON_IMAGES:
        assert not (out / name).exists() and api.read_header(out / (name + ".kedi")).opaque
    for data in visible_files(out).values():
        assert not any(marker in data for marker in MARKERS)
    # A resumed run finds every output, opaque ones included, done and verified.
    again = run_batch(study, out, KEY, mode="encrypt", as_dicom=True, jobs=1, resume=True)
    assert again.ok and len(again.earlier) == len(again.outcomes)
    back = run_batch(out, tmp_path / "back", KEY, mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "back") == visible_files(study)
    only = run_batch(study, tmp_path / "only", KEY, mode="encrypt", as_dicom=True, only_images=True, jobs=1)
    assert only.ok and sorted(o.entry.rel for o in only.skipped) == NON_IMAGES


def test_a_changed_opaque_container_fails_authentication(study: Path, tmp_path: Path, keyfile: Path) -> None:
    out = tmp_path / "enc"
    assert _kedi("encrypt", study, "-o", out, "--key", keyfile, "--jobs", "1", "-q")[0] == 0
    victim = out / "letter.pdf.kedi"
    data = bytearray(victim.read_bytes())
    header = parse_header(data)
    data[header.encoded_length + 40] ^= 0x01  # one bit of the sealed payload
    victim.write_bytes(bytes(data))
    code, _, stderr = _kedi("decrypt", victim, "-o", tmp_path / "letter.pdf", "--key", keyfile)
    assert code == 3 and "decryption failed" in stderr and not (tmp_path / "letter.pdf").exists()
    code, stdout, _ = _kedi("decrypt", out, "-o", tmp_path / "dec", "--key", keyfile, "--json")
    summary = json.loads(stdout)
    assert code == 3 and [(i["path"], i["status"]) for i in summary["not_done"]] == [("letter.pdf.kedi", "failed")]
    assert not (tmp_path / "dec" / "letter.pdf").exists()
    # The public header is authenticated too: an opaque header turned into an image's fails to parse.
    fake = bytearray(data)
    fake[header.encoded_length - 1] = 1  # shape (0, 1)
    with pytest.raises(AuthenticationError):
        parse_header(bytes(fake))


def test_one_file_is_refused_with_a_hint_or_sealed_with_opaque(study: Path, tmp_path: Path, keyfile: Path) -> None:
    pdf = study / "letter.pdf"
    code, _, stderr = _kedi("encrypt", pdf, "-o", tmp_path / "l.kedi", "--key", keyfile)
    assert code == 4 and "--opaque" in stderr and not (tmp_path / "l.kedi").exists()
    code, stdout, stderr = _kedi("encrypt", pdf, "-o", tmp_path / "l.kedi", "--key", keyfile, "--opaque")
    assert code == 0 and "(opaque, hybrid suite, key " in stdout, stderr
    code, stdout, _ = _kedi("inspect", tmp_path / "l.kedi", "--json")
    record = json.loads(stdout)
    assert code == 0 and record["opaque"] is True and record["format"] == OPAQUE_FORMAT
    assert record["pixel_bytes"] == 0 and record["size_matches_header"] is True
    code, _, stderr = _kedi("inspect", tmp_path / "l.kedi", "--cipher-image", tmp_path / "c.png")
    assert code == 4 and "opaque" in stderr
    code, stdout, _ = _kedi("decrypt", tmp_path / "l.kedi", "-o", tmp_path / "l.pdf", "--key", keyfile)
    assert code == 0 and "opaque" in stdout and (tmp_path / "l.pdf").read_bytes() == pdf.read_bytes()
    # Options that cannot go with it are usage errors.
    assert _kedi("encrypt", pdf, "-o", tmp_path / "x", "--key", keyfile, "--opaque", "--as-dicom")[0] == 2
    assert _kedi("encrypt", study, "-o", tmp_path / "x", "--key", keyfile, "--opaque")[0] == 2
    assert _kedi("encrypt", pdf, "-o", tmp_path / "x", "--key", keyfile, "--only-images")[0] == 2


def test_the_paper_suite_refuses_to_seal_bytes(study: Path, tmp_path: Path) -> None:
    key_image = KeyImage(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="paper suite encrypts images only"):
        api.encrypt_file(study / "letter.pdf", tmp_path / "p.kedi", key_image, opaque=True)
    with pytest.raises(ValueError, match="paper suite encrypts images only"):
        hybrid.encrypt_opaque_file(study / "letter.pdf", tmp_path / "p.kedi", key_image)  # type: ignore[arg-type]
    assert not (tmp_path / "p.kedi").exists()
    deepkedi.keys.save_key_image(key_image, tmp_path / "k.png")
    code, _, stderr = _kedi(
        "encrypt",
        study / "letter.pdf",
        "-o",
        tmp_path / "p.kedi",
        "--suite",
        "paper",
        "--key",
        tmp_path / "k.png",
        "--opaque",
    )
    assert code == 2 and "paper suite encrypts images only" in stderr


def test_the_opaque_header_has_one_encoding_and_no_image(study: Path, tmp_path: Path) -> None:
    fields = {
        "suite": Suite.HYBRID,
        "pattern": ZigzagPattern.HORIZONTAL,
        "channels_last": False,
        "dtype": np.dtype("u1"),
        "key_id": bytes(16),
        "salt": bytes(32),
        "nonce_prefix": bytes(7),
        "segment_size": 1024,
        "residual_length": 10,
    }
    assert ContainerHeader(shape=(0, 0), format=OPAQUE_FORMAT, **fields).opaque
    for shape, name, change in [
        ((1, 1), OPAQUE_FORMAT, {}),
        ((0, 0), "dicom", {}),
        ((0, 0), OPAQUE_FORMAT, {"dtype": np.dtype("<u2")}),
        ((0, 0), OPAQUE_FORMAT, {"pattern": ZigzagPattern.VERTICAL}),
    ]:
        with pytest.raises(ValueError):
            ContainerHeader(shape=shape, format=name, **{**fields, **change})
    blob = hybrid.encrypt_opaque_to_bytes(study / "report.sr.dcm", KEY)
    with pytest.raises(FormatError, match="opaque"):
        hybrid.decrypt_pixels(blob, KEY)
    with pytest.raises(FormatError, match="opaque"):
        cipher_image(blob)
    assert api.decrypt_bytes(blob, KEY) == (study / "report.sr.dcm").read_bytes()
    assert api.decrypt_bytes(api.encrypt_bytes(b"", KEY, opaque=True), KEY) == b""
    with pytest.raises(UnsupportedImageError):
        api.encrypt_bytes(b"not an image at all", KEY)  # without opaque, still an image cipher


def test_a_large_file_is_streamed_not_held(tmp_path: Path) -> None:
    big = tmp_path / "archive.bin"
    size = 24 << 20
    with open(big, "wb") as fh:
        for i in range(24):
            fh.write(bytes([i]) * (1 << 20))
    seen: list[int] = []
    tracemalloc.start()
    try:
        hybrid.encrypt_opaque_file(big, tmp_path / "archive.kedi", KEY, progress=lambda done, total: seen.append(done))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size // 3, peak  # a few segments in memory, never the file
    assert len(seen) == 24 and seen[-1] == size
    hybrid.decrypt_file(tmp_path / "archive.kedi", tmp_path / "back.bin", KEY)
    assert (tmp_path / "back.bin").stat().st_size == size
    with open(tmp_path / "back.bin", "rb") as fh:
        assert all(fh.read(1 << 20) == bytes([i]) * (1 << 20) for i in range(24))


def test_a_dicom_native_file_never_carries_an_opaque_container(study: Path, tmp_path: Path) -> None:
    from deepkedi.cipher.dicom_native import _ENCRYPTED_CONTENT, _native_item

    native = tmp_path / "native.dcm"
    api.encrypt_file(study / "CT_small.dcm", native, KEY, as_dicom=True)
    ds = pydicom.dcmread(native)
    item = _native_item(ds)
    assert item is not None
    item[_ENCRYPTED_CONTENT].value = hybrid.encrypt_opaque_to_bytes(study / "letter.pdf", KEY)
    ds.save_as(tmp_path / "forged.dcm")
    with pytest.raises(AuthenticationError):
        api.decrypt_file(tmp_path / "forged.dcm", tmp_path / "out", KEY)
    assert not (tmp_path / "out").exists()


def test_url_folders_seal_the_non_images_too(study: Path, tmp_path: Path) -> None:
    """Files read whole through fsspec (here ``memory://``) take the same way: opaque beside DICOM-native."""
    import fsspec

    memory = fsspec.filesystem("memory")
    originals = visible_files(study)
    try:
        for rel, data in originals.items():
            memory.pipe_file(f"/kedi-opaque/in/{rel}", data)
        book = tmp_path / "enc.sqlite"
        sealed = run_batch(
            "memory://kedi-opaque/in",
            "memory://kedi-opaque/enc",
            KEY,
            mode="encrypt",
            as_dicom=True,
            jobs=1,
            manifest=book,
        )
        assert sealed.ok and sorted(o.entry.rel for o in sealed.opaque) == NON_IMAGES
        written = {p.removeprefix("/kedi-opaque/enc/"): memory.cat_file(p) for p in memory.find("/kedi-opaque/enc")}
        assert sorted(n for n in written if n.endswith(".kedi")) == sorted(n + ".kedi" for n in NON_IMAGES)
        assert not any(marker in data for data in written.values() for marker in MARKERS)
        again = run_batch(
            "memory://kedi-opaque/in",
            "memory://kedi-opaque/enc",
            KEY,
            mode="encrypt",
            as_dicom=True,
            jobs=1,
            manifest=book,
            resume=True,
        )
        assert again.ok and len(again.earlier) == len(originals)
        back = run_batch("memory://kedi-opaque/enc", tmp_path / "back", KEY, mode="decrypt", jobs=1)
        assert back.ok and visible_files(tmp_path / "back") == originals
    finally:
        if memory.exists("/kedi-opaque"):
            memory.rm("/kedi-opaque", recursive=True)
