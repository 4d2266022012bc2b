"""`kedi encrypt --as-dicom` and `kedi decrypt` of DICOM-native files, single files and folders."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pydicom
import pytest

from deepkedi.cipher.dicom_native import is_dicom_native
from deepkedi.datasets import sample_path
from deepkedi.keys import generate_key, save_key

CT = "pydicom-CT_small.dcm"
MR = "pydicom-MR_small.dcm"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fast_key(tmp_path: Path) -> Path:
    """A hybrid key file without the GAN (fast)."""
    path = tmp_path / "site.key"
    save_key(generate_key(gan=False), path)
    return path


def test_file_round_trip(kedi, fast_key: Path, tmp_path: Path) -> None:
    src = sample_path(CT)
    out, back = tmp_path / "out.dcm", tmp_path / "back.dcm"
    result = kedi("encrypt", src, "-o", out, "--key", fast_key, "--as-dicom")
    assert result.exit_code == 0, result.stderr
    assert is_dicom_native(out)
    assert pydicom.dcmread(out).PatientIdentityRemoved == "YES"
    result = kedi("decrypt", out, "-o", back, "--key", fast_key)
    assert result.exit_code == 0, result.stderr
    assert _sha256(back) == _sha256(src)


def test_folder_round_trip_mixes_containers_and_native_files(kedi, fast_key: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "series").mkdir(parents=True)
    shutil.copyfile(sample_path(CT), plain / "series" / "ct.dcm")
    shutil.copyfile(sample_path(MR), plain / "mr.dcm")
    shutil.copyfile(sample_path("skimage-microaneurysms.png"), plain / "notes.png")
    native = tmp_path / "native"
    result = kedi("encrypt", plain, "-o", native, "--key", fast_key, "--as-dicom")
    assert result.exit_code == 0, result.stderr
    assert "encrypted 1 image(s) that are not DICOM into .kedi containers beside" in result.stderr
    assert is_dicom_native(native / "series" / "ct.dcm") and is_dicom_native(native / "mr.dcm")
    # What is not DICOM goes into a '.kedi' container beside the DICOM-native files, restored too.
    assert not (native / "notes.png").exists() and (native / "notes.png.kedi").is_file()
    result = kedi("encrypt", plain, "-o", tmp_path / "only", "--key", fast_key, "--as-dicom", "--only-images")
    assert result.exit_code == 0 and "skipped 1 non-DICOM" in result.stderr
    assert not (tmp_path / "only" / "notes.png.kedi").exists()
    back = tmp_path / "back"
    result = kedi("decrypt", native, "-o", back, "--key", fast_key)
    assert result.exit_code == 0, result.stderr
    for rel in ("series/ct.dcm", "mr.dcm", "notes.png"):
        assert _sha256(back / rel) == _sha256(plain / rel), rel


def test_non_dicom_input_exits_4(kedi, fast_key: Path, tmp_path: Path) -> None:
    png = sample_path("skimage-microaneurysms.png")
    out = tmp_path / "out.dcm"
    result = kedi("encrypt", png, "-o", out, "--key", fast_key, "--as-dicom")
    assert result.exit_code == 4
    assert "not a DICOM file" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    only_png = tmp_path / "pngs"
    only_png.mkdir()
    shutil.copyfile(png, only_png / "a.png")
    # A folder: with --only-images nothing is left to encrypt (exit 4); without, the PNG goes into a container.
    assert (
        kedi("encrypt", only_png, "-o", tmp_path / "o", "--key", fast_key, "--as-dicom", "--only-images").exit_code == 4
    )
    assert kedi("encrypt", only_png, "-o", tmp_path / "o2", "--key", fast_key, "--as-dicom").exit_code == 0
    assert (tmp_path / "o2" / "a.png.kedi").is_file()


def test_paper_suite_is_refused(kedi, fast_key: Path, tmp_path: Path) -> None:
    result = kedi(
        "encrypt", sample_path(CT), "-o", tmp_path / "o.dcm", "--key", fast_key, "--as-dicom", "--suite", "paper"
    )
    assert result.exit_code == 2
    assert "--as-dicom" in result.stderr


def test_wrong_key_and_tampering_exit_3_without_output(kedi, fast_key: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    assert kedi("encrypt", sample_path(MR), "-o", out, "--key", fast_key, "--as-dicom").exit_code == 0
    other = tmp_path / "other.key"
    save_key(generate_key(gan=False), other)
    back = tmp_path / "back.dcm"
    result = kedi("decrypt", out, "-o", back, "--key", other)
    assert result.exit_code == 3 and not back.exists()
    assert "decryption failed" in result.stderr
    ds = pydicom.dcmread(out)
    pixels = bytearray(ds.PixelData)
    pixels[10] ^= 0xFF
    ds.PixelData = bytes(pixels)
    tampered = tmp_path / "tampered.dcm"
    ds.save_as(tampered, enforce_file_format=True)
    result = kedi("decrypt", tampered, "-o", back, "--key", fast_key)
    assert result.exit_code == 3 and not back.exists()


def test_existing_output_needs_force(kedi, fast_key: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    assert kedi("encrypt", sample_path(CT), "-o", out, "--key", fast_key, "--as-dicom").exit_code == 0
    assert kedi("encrypt", sample_path(CT), "-o", out, "--key", fast_key, "--as-dicom").exit_code == 2
    assert kedi("encrypt", sample_path(CT), "-o", out, "--key", fast_key, "--as-dicom", "--force").exit_code == 0


def test_inspect_shows_the_embedded_container_header(kedi, fast_key: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    assert kedi("encrypt", sample_path(CT), "-o", out, "--key", fast_key, "--as-dicom").exit_code == 0
    result = kedi("inspect", out, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["kind"] == "dicom-native" and record["suite"] == "hybrid" and record["format"] == "dicom"
    assert record["shape"] == [128, 128]


def test_empty_sop_instance_uid_round_trips(kedi, fast_key: Path, tmp_path: Path) -> None:
    """A file whose SOP Instance UID is empty (pylibjpeg-data has one) ended in a traceback."""
    ds = pydicom.dcmread(sample_path(CT))
    ds.SOPInstanceUID = ""
    ds.file_meta.MediaStorageSOPInstanceUID = ""
    src, out, back = tmp_path / "empty-uid.dcm", tmp_path / "out.dcm", tmp_path / "back.dcm"
    ds.save_as(src, enforce_file_format=False)
    result = kedi("encrypt", src, "-o", out, "--key", fast_key, "--as-dicom")
    assert result.exit_code == 0, result.stderr
    assert pydicom.dcmread(out).SOPInstanceUID.startswith("2.25.")
    assert kedi("decrypt", out, "-o", back, "--key", fast_key).exit_code == 0
    assert _sha256(back) == _sha256(src)
