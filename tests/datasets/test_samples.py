"""`kedi samples DIR`: every name the README and docs/ use, written into one folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from deepkedi.datasets import SAMPLE_FILES, sample_path, write_samples
from deepkedi.errors import OutputExistsError
from deepkedi.imaging import read_image


def test_the_samples_are_the_files_the_docs_name(tmp_path: Path) -> None:
    written = write_samples(tmp_path / "tour")
    assert [p.name for p in written] == [f.name for f in SAMPLE_FILES]
    folder = tmp_path / "tour"
    assert (folder / "CT_small.dcm").read_bytes() == sample_path("pydicom-CT_small.dcm").read_bytes()
    assert read_image(folder / "CT_small.dcm").pixels.dtype == np.dtype("<i2")
    assert (folder / "keystream.bin").stat().st_size == 125_000
    pixels = np.load(folder / "pixels.npy")
    assert pixels.shape == (256, 256) and pixels.dtype == np.uint16 and 0 < pixels.max() <= 4095
    slices = sorted((folder / "study").iterdir())
    assert [p.name for p in slices] == [f"slice-{n:02d}.dcm" for n in range(1, 7)]
    headers = [pydicom.dcmread(p) for p in slices]
    assert len({h.StudyInstanceUID for h in headers}) == 1 and len({h.SeriesInstanceUID for h in headers}) == 1
    assert len({h.SOPInstanceUID for h in headers}) == 6
    assert [h.InstanceNumber for h in headers] == list(range(1, 7))
    assert all(str(h.PatientName) == "DEMO^PATIENT" for h in headers)
    scan = pydicom.dcmread(folder / "scan.dcm")
    assert scan.pixel_array.shape == (512, 512) and scan.PixelRepresentation == 1


def test_existing_samples_are_kept_without_force(tmp_path: Path) -> None:
    write_samples(tmp_path)
    (tmp_path / "keystream.bin").write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="--force"):
        write_samples(tmp_path)
    assert (tmp_path / "keystream.bin").read_bytes() == b"mine"
    first = (tmp_path / "study" / "slice-01.dcm").read_bytes()
    write_samples(tmp_path, force=True)
    assert (tmp_path / "keystream.bin").stat().st_size == 125_000
    # The keystream is the same in every samples folder (a public key); the DICOM UIDs are new.
    assert (tmp_path / "keystream.bin").read_bytes() == (write_samples(tmp_path / "again")[-1]).read_bytes()
    assert (tmp_path / "study" / "slice-01.dcm").read_bytes() != first


def test_the_command_lists_what_it_wrote(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "samples", "tour"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "tour/study/" in done.stdout and "tour/CT_small.dcm" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "samples", "tour"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and again.stderr.startswith("kedi: error:") and "--force" in again.stderr
