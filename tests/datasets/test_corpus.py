"""The sample corpus: real files found inside installed packages, labelled honestly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from deepkedi.datasets import (
    COMPRESSIONS,
    CONTENTS,
    MODALITIES,
    ORGANS,
    SampleImage,
    corpus,
    sample_corpus,
    sample_names,
    sample_path,
)

REQUIRED = {
    "pydicom-CT_small.dcm",
    "pydicom-MR_small.dcm",
    "pydicom-examples_overlay.dcm",
    "pydicom-examples_jpeg2k.dcm",
    "pydicom-examples_palette.dcm",
    "pydicom-J2K_pixelrep_mismatch.dcm",
    "nibabel-0.dcm",
    "nibabel-1.dcm",
    "nibabel-anatomical.nii",
    "nibabel-example4d.nii.gz",
}
OPTIONAL = {"skimage-retina.jpg", "skimage-microaneurysms.png", "skimage-phantom.png"}

# DICOM transfer syntaxes of the corpus and what the catalogue calls them
_TRANSFER = {
    "1.2.840.10008.1.2": "none",
    "1.2.840.10008.1.2.1": "none",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 (lossless)",
}


@pytest.fixture(scope="module")
def samples() -> list[SampleImage]:
    return sample_corpus()


def _without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """Pretend the named packages are not installed."""
    real = corpus._package_dir
    monkeypatch.setattr(corpus, "_package_dir", lambda source: None if source in missing else real(source))


def test_every_entry_exists_with_its_size(samples: list[SampleImage]) -> None:
    for s in samples:
        assert s.path.is_file(), s.name
        assert s.path.stat().st_size == s.size_bytes > 0


def test_required_entries_are_present() -> None:
    names = set(sample_names(include_optional=False))
    assert names == REQUIRED


def test_optional_entries_present_with_scikit_image() -> None:
    pytest.importorskip("skimage")
    assert set(sample_names()) >= OPTIONAL


def test_names_are_unique_and_follow_the_scheme(samples: list[SampleImage]) -> None:
    names = [s.name for s in samples]
    assert len(names) == len(set(names))
    for s in samples:
        source, _, filename = s.name.partition("-")
        assert filename == s.path.name
        assert source in {"pydicom", "nibabel", "skimage"}


def test_labels_come_from_the_vocabularies(samples: list[SampleImage]) -> None:
    for s in samples:
        assert s.organ in ORGANS, s.name
        assert s.modality in MODALITIES, s.name
        assert s.content in CONTENTS, s.name
        assert s.compression in COMPRESSIONS, s.name
        assert s.package in {"pydicom", "nibabel", "scikit-image"}
        assert s.description and s.shape and s.bits_stored > 0


def test_sample_image_is_frozen(samples: list[SampleImage]) -> None:
    with pytest.raises(AttributeError):
        samples[0].organ = "lung"  # type: ignore[misc]


def test_dicom_labels_match_the_headers(samples: list[SampleImage]) -> None:
    for s in samples:
        if not s.path.name.endswith(".dcm"):
            continue
        ds = pydicom.dcmread(s.path, stop_before_pixels=True)
        assert ds.Modality == s.modality, s.name
        shape = (ds.Rows, ds.Columns) + ((ds.SamplesPerPixel,) if ds.SamplesPerPixel > 1 else ())
        assert shape == s.shape, s.name
        assert ds.BitsStored == s.bits_stored, s.name
        assert _TRANSFER[ds.file_meta.TransferSyntaxUID] == s.compression, s.name
        if "BodyPartExamined" in ds and ds.BodyPartExamined:
            # the tag names a region; the label may name the organ inside it
            assert (ds.BodyPartExamined, s.organ) in {("ABDOMEN", "liver"), ("HEAD", "brain")}, s.name


def test_nifti_labels_match_the_headers(samples: list[SampleImage]) -> None:
    for s in samples:
        if ".nii" not in s.path.name:
            continue
        header = nib.load(s.path).header
        assert header.get_data_shape() == s.shape, s.name
        assert int(header["bitpix"]) == s.bits_stored, s.name
        assert (s.compression == "gzip") == s.path.name.endswith(".gz")


def test_raster_labels_match_the_files(samples: list[SampleImage]) -> None:
    for s in samples:
        if s.path.suffix not in {".png", ".jpg"}:
            continue
        with Image.open(s.path) as img:
            channels = len(img.getbands())
            assert (img.height, img.width) + ((channels,) if channels > 1 else ()) == s.shape, s.name
            assert s.compression == {"PNG": "PNG (lossless)", "JPEG": "JPEG (lossy)"}[img.format]


def test_nibabel_dicoms_really_are_a_test_pattern() -> None:
    # the label warns that these pixels carry no anatomy: check the claim
    for name in ("nibabel-0.dcm", "nibabel-1.dcm"):
        pixels = pydicom.dcmread(sample_path(name)).pixel_array
        ramp = (np.arange(pixels.size) % 4096).reshape(pixels.shape)
        assert np.array_equal(pixels, ramp)


def test_listing_the_corpus_imports_no_source_package() -> None:
    # find_spec locates packages without importing them: listing stays cheap
    code = (
        "import sys; from deepkedi.datasets import sample_corpus; sample_corpus(); "
        "print(sorted(m for m in ('skimage', 'nibabel', 'pydicom') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scikit_image_entries_are_skipped_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "skimage")
    names = sample_names()
    assert set(names) == REQUIRED
    assert [s.name for s in sample_corpus(include_optional=True)] == names


def test_include_optional_false_leaves_scikit_image_out() -> None:
    assert not OPTIONAL & set(sample_names(include_optional=False))


def test_a_missing_optional_file_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a scikit-image release that fetches retina.jpg instead of shipping it
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "phantom.png").write_bytes(b"not really a png")
    real = corpus._package_dir
    monkeypatch.setattr(corpus, "_package_dir", lambda source: tmp_path if source == "skimage" else real(source))
    assert set(sample_names()) == REQUIRED | {"skimage-phantom.png"}


@pytest.mark.parametrize("package", ["pydicom", "nibabel"])
def test_a_missing_required_package_names_itself(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    _without(monkeypatch, package)
    with pytest.raises(FileNotFoundError, match=package):
        sample_corpus()


def test_a_missing_required_file_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = corpus._package_dir
    monkeypatch.setattr(corpus, "_package_dir", lambda source: tmp_path if source == "nibabel" else real(source))
    with pytest.raises(FileNotFoundError, match="nibabel"):
        sample_path("nibabel-0.dcm")


def test_sample_path_finds_a_file() -> None:
    path = sample_path("pydicom-CT_small.dcm")
    assert path.name == "CT_small.dcm" and path.is_file()


def test_sample_path_suggests_the_prefixed_name() -> None:
    with pytest.raises(ValueError, match=r"pydicom-CT_small\.dcm"):
        sample_path("CT_small.dcm")
    with pytest.raises(ValueError, match="no sample image"):
        sample_path("definitely-not-a-sample")


def test_sample_path_of_an_uninstalled_optional_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "skimage")
    with pytest.raises(FileNotFoundError, match=r"scikit-image|samples"):
        sample_path("skimage-retina.jpg")


@pytest.mark.parametrize("name", sorted(n for n in REQUIRED if n.endswith(".dcm")))
def test_read_image_agrees_with_the_catalogue(name: str) -> None:
    from deepkedi.imaging import read_image

    image = read_image(sample_path(name))
    entry = next(s for s in sample_corpus(include_optional=False) if s.name == name)
    assert image.plane_shape == entry.shape[:2]
    assert image.modality == entry.modality
