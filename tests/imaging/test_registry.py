"""Choosing a format by suffix and content, and refusing what no format reads."""

from __future__ import annotations

import io
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import (
    MedicalImage,
    available_formats,
    detect_format,
    read_image,
    write_image,
)

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
ANATOMICAL = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
EXAMPLE4D = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(12, dtype=np.int16).reshape(3, 4))
    return buffer.getvalue()


def tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format="TIFF")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 100, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def mgh_bytes() -> bytes:
    volume = np.arange(3 * 4 * 5, dtype=np.int16).reshape(5, 4, 3)  # (x, y, z) as nibabel takes it
    return nibabel.MGHImage(volume, np.eye(4)).to_bytes()


CONTENT = {
    "dicom": CT_SMALL.read_bytes,
    "nifti": ANATOMICAL.read_bytes,
    "mgh": mgh_bytes,
    "png": png_bytes,
    "tiff": tiff_bytes,
    "jpeg": jpeg_bytes,
    "npy": npy_bytes,
}


def test_all_builtin_formats_are_registered() -> None:
    formats = available_formats()
    assert set(formats) >= {"dicom", "nifti", "mgh", "png", "tiff", "jpeg", "npy"}
    assert formats["nifti"].suffixes == (".nii", ".nii.gz")
    assert all(fmt.write is not None for fmt in formats.values())


@pytest.mark.parametrize("name", CONTENT)
def test_each_format_sniffs_only_its_own_content(name: str) -> None:
    head = CONTENT[name]()[:512]
    claimed = {fmt.name for fmt in available_formats().values() if fmt.sniff(head)}
    # CT_small's 128-byte preamble is a TIFF header (a "dual personality" file, which
    # PS3.10 allows); DICOM is registered first, so content detection still says DICOM.
    assert claimed == ({"dicom", "tiff"} if name == "dicom" else {name})


@given(head=st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_sniffers_never_fail(head: bytes) -> None:
    # Truncated, empty or hostile heads: a sniffer answers, it never raises.
    for fmt in available_formats().values():
        assert fmt.sniff(head) in (True, False)


@pytest.mark.parametrize("name", CONTENT)
def test_unknown_suffix_is_detected_by_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / "mystery.bin"
    path.write_bytes(CONTENT[name]())
    assert detect_format(path).name == name
    assert read_image(path).format == name


def test_gzipped_nifti_by_longest_suffix(tmp_path: Path) -> None:
    path = tmp_path / "VOLUME.NII.GZ"  # suffixes match case-insensitively
    path.write_bytes(EXAMPLE4D.read_bytes())
    assert detect_format(path).name == "nifti"


def test_png_renamed_dcm_is_refused_with_what_it_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(png_bytes())
    with pytest.raises(UnsupportedImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "DICOM" in message and "PNG" in message


@pytest.mark.parametrize("name", ["noise", "noise.dcm", "noise.nii", "noise.nii.gz", "noise.png", "noise.npy"])
def test_random_garbage_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(12).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedImageError) as info:
        read_image(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("name", CONTENT)
def test_forced_format_on_garbage_is_refused(tmp_path: Path, name: str) -> None:
    # Bypassing detection must not let a library exception escape either.
    path = tmp_path / "noise"
    path.write_bytes(np.random.default_rng(13).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedImageError):
        read_image(path, format=name)


DAMAGE_SOURCES = {
    "ct.dcm": CT_SMALL,
    "bigendian.dcm": CT_SMALL.parent / "MR_small_bigendian.dcm",
    "rle.dcm": CT_SMALL.parent / "MR_small_RLE.dcm",  # its Rust decoder panics on bad input
    "j2k.dcm": CT_SMALL.parent / "MR_small_jp2klossless.dcm",
    "jpegls.dcm": CT_SMALL.parent / "MR_small_jpeg_ls_lossless.dcm",
    "anatomical.nii": ANATOMICAL,
    "example4d.nii.gz": EXAMPLE4D,
    "test.mgz": ANATOMICAL.parent / "test.mgz",
}


@pytest.mark.parametrize("name", [*DAMAGE_SOURCES, "a.png", "a.tif", "a.jpg", "a.npy", "a.mgh"])
def test_damaged_files_fail_cleanly(tmp_path: Path, name: str) -> None:
    """Seeded truncations and byte flips: a clean read or UnsupportedImageError, nothing else."""
    suffix = name.split(".", 1)[1]
    if name in DAMAGE_SOURCES:
        original = DAMAGE_SOURCES[name].read_bytes()
    else:
        original = CONTENT[{"png": "png", "tif": "tiff", "jpg": "jpeg", "npy": "npy", "mgh": "mgh"}[suffix]]()
    rng = np.random.default_rng(sum(name.encode()))
    path = tmp_path / name
    for trial in range(40):
        data = bytearray(original)
        if trial % 2:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            region = min(len(data), 2048)  # mostly headers, where damage is worst
            for _ in range(int(rng.integers(1, 8))):
                data[int(rng.integers(0, region))] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        try:
            image = read_image(path)
        except UnsupportedImageError as exc:
            assert str(exc).startswith(str(path))
            continue
        if image.source.restore == "splice":
            prefix, suffix_bytes = image.source.read_surrounding(image.pixels.nbytes)
            rebuilt = prefix + image.pixels.astype(image.source.stored_dtype).tobytes() + suffix_bytes
            assert rebuilt == bytes(data)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedImageError, match="empty"):
        read_image(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="directory"):
        read_image(tmp_path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="cannot be read"):
        read_image(tmp_path / "absent.png")


def test_unknown_forced_format_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        read_image(tmp_path / "x", format="gif")


@pytest.mark.parametrize(
    ("name", "format"),
    [
        ("a.dcm", "dicom"),
        ("a.nii", "nifti"),
        ("a.nii.gz", "nifti"),
        ("a.png", "png"),
        ("a.tif", "tiff"),
        ("a.npy", "npy"),
    ],
)
def test_write_image_picks_the_format_by_suffix(tmp_path: Path, name: str, format: str) -> None:
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8)
    write_image(MedicalImage(pixels), tmp_path / name)
    image = read_image(tmp_path / name)
    assert image.format == format
    np.testing.assert_array_equal(image.pixels, pixels)


def test_write_image_needs_a_known_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass format="):
        write_image(MedicalImage(np.zeros((2, 2), dtype=np.uint8)), tmp_path / "x.bin")


def test_fifo_is_refused_before_it_is_opened(fifo: Path) -> None:
    # Opening a FIFO for reading waits for a writer: refused by its type, at once.
    with pytest.raises(UnsupportedImageError, match=r"pipe: is a FIFO \(named pipe\), not a regular file"):
        detect_format(fifo)
    with pytest.raises(UnsupportedImageError, match="FIFO"):
        read_image(fifo, format="npy")
    with pytest.raises(UnsupportedImageError, match="character device"):
        read_image("/dev/zero", format="npy")


def test_the_builtin_table_names_real_readers_writers_and_sniffers() -> None:
    """The registry lists the built-in formats without importing them: each entry must exist."""
    import importlib

    from deepkedi.imaging import registry, sniff

    for name, _suffixes, module, reader, writer, _description in registry._BUILTIN:
        loaded = importlib.import_module(f"deepkedi.imaging.{module}")
        assert callable(getattr(loaded, reader)) and callable(getattr(loaded, writer)), name
        assert callable(getattr(sniff, f"sniff_{name}")), name
        assert available_formats()[name].read.__name__ == reader
