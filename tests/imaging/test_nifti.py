"""NIfTI reader and writer, against nibabel's shipped test files and files made here."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import MedicalImage
from deepkedi.imaging.nifti import read_nifti, sniff_nifti, write_nifti

NIBABEL_FILES = Path(nib.__file__).parent / "tests" / "data"


def unscaled_c_order(path: Path) -> np.ndarray:
    """nibabel's raw voxels, axes reversed: what the reader must return."""
    return np.asarray(nib.load(path).dataobj.get_unscaled()).T


def save(img: nib.Nifti1Image, path: Path) -> Path:
    img.to_filename(path)
    return path


@pytest.fixture
def volume() -> np.ndarray:
    """An (x, y, z) int16 volume as nibabel takes it."""
    return np.random.default_rng(3).integers(-500, 3000, (7, 6, 5), dtype=np.int16)


def test_anatomical_nii_is_spliced(check_image) -> None:
    path = NIBABEL_FILES / "anatomical.nii"
    image = read_nifti(path)
    check_image(image, path)
    assert image.source.restore == "splice"
    # Stored big endian: the map keeps the file's byte order.
    assert image.pixels.dtype.str == ">i2"
    assert image.pixels.shape == (25, 41, 33)
    np.testing.assert_array_equal(image.pixels, unscaled_c_order(path))
    assert image.spacing == (2.0, 2.0, 2.0)
    assert image.format == "nifti"
    assert image.metadata["nifti_version"] == 1


def test_example4d_gz_is_verbatim(check_image) -> None:
    path = NIBABEL_FILES / "example4d.nii.gz"
    image = read_nifti(path)
    check_image(image, path)
    assert image.source.restore == "verbatim"
    assert image.pixels.shape == (2, 24, 96, 128)
    np.testing.assert_array_equal(image.pixels, unscaled_c_order(path))
    # Spatial zooms only (the fourth is time), in (z, y, x) order.
    assert image.spacing == pytest.approx((2.2, 2.0, 2.0), rel=1e-5)
    affine = np.asarray(image.metadata["affine"])
    np.testing.assert_allclose(affine, nib.load(path).affine)


def test_nifti2_gz_reads(check_image) -> None:
    path = NIBABEL_FILES / "example_nifti2.nii.gz"
    image = read_nifti(path)
    check_image(image, path)
    assert image.metadata["nifti_version"] == 2
    np.testing.assert_array_equal(image.pixels, unscaled_c_order(path))


def test_big_endian_nii_made_here(tmp_path: Path, volume: np.ndarray, check_image) -> None:
    header = nib.Nifti1Header(endianness=">")
    header.set_data_dtype(np.int16)
    path = save(nib.Nifti1Image(volume, np.eye(4), header=header), tmp_path / "big.nii")
    image = read_nifti(path)
    check_image(image, path)
    assert image.pixels.dtype.str == ">i2"
    np.testing.assert_array_equal(image.pixels, volume.T)


def test_nifti2_nii_is_spliced(tmp_path: Path, volume: np.ndarray, check_image) -> None:
    path = save(nib.Nifti2Image(volume.astype(np.float32), np.eye(4)), tmp_path / "two.nii")
    assert sniff_nifti(path.read_bytes()[:512])
    image = read_nifti(path)
    check_image(image, path)
    assert image.source.restore == "splice"
    assert image.metadata["nifti_version"] == 2
    np.testing.assert_array_equal(image.pixels, volume.T.astype(np.float32))


def test_scaled_data_stays_raw(tmp_path: Path, volume: np.ndarray, check_image) -> None:
    path = save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "scaled.nii")
    # nibabel recomputes scaling when it saves, so set scl_slope and scl_inter in the file.
    data = bytearray(path.read_bytes())
    data[112:120] = np.array([2.0, 10.0], dtype="<f4").tobytes()
    path.write_bytes(bytes(data))
    image = read_nifti(path)
    check_image(image, path)
    np.testing.assert_array_equal(image.pixels, volume.T)
    assert image.metadata["scl_slope"] == 2.0 and image.metadata["scl_inter"] == 10.0


def test_unset_scaling_is_json_null(volume: np.ndarray, tmp_path: Path) -> None:
    path = save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "plain.nii")
    data = bytearray(path.read_bytes())
    data[112:120] = np.array([np.nan, np.nan], dtype="<f4").tobytes()
    path.write_bytes(bytes(data))
    image = read_nifti(path)
    assert image.metadata["scl_slope"] is None and image.metadata["scl_inter"] is None
    json.dumps(dict(image.metadata), allow_nan=False)


def test_rgb24_becomes_channels_last(tmp_path: Path, check_image) -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)  # (x, y, z, rgb)
    structured = rgb.view([("R", "u1"), ("G", "u1"), ("B", "u1")])[..., 0]
    path = save(nib.Nifti1Image(structured, np.eye(4)), tmp_path / "rgb.nii")
    image = read_nifti(path)
    check_image(image, path)
    assert image.channels_last and image.samples_per_pixel == 3 and image.photometric == "RGB"
    assert image.pixels.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(image.pixels, np.transpose(rgb, (2, 1, 0, 3)))


def test_spacing_in_metres_becomes_millimetres(tmp_path: Path, volume: np.ndarray) -> None:
    img = nib.Nifti1Image(volume, np.diag([0.001, 0.002, 0.003, 1.0]))
    img.header.set_xyzt_units("meter")
    image = read_nifti(save(img, tmp_path / "metres.nii"))
    assert image.spacing == pytest.approx((3.0, 2.0, 1.0))


# --------------------------------------------------------------------------- damage


def test_truncated_voxels_are_refused(tmp_path: Path) -> None:
    data = (NIBABEL_FILES / "anatomical.nii").read_bytes()
    path = tmp_path / "cut.nii"
    path.write_bytes(data[:-100])
    with pytest.raises(UnsupportedImageError, match="truncated"):
        read_nifti(path)


@pytest.mark.parametrize("keep", [100, 300, 347])
def test_truncated_header_is_refused(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.nii"
    path.write_bytes((NIBABEL_FILES / "anatomical.nii").read_bytes()[:keep])
    with pytest.raises(UnsupportedImageError):
        read_nifti(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_gzip_is_refused(tmp_path: Path, fraction: float) -> None:
    data = (NIBABEL_FILES / "example4d.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UnsupportedImageError) as info:
        read_nifti(path)
    assert str(info.value).startswith(f"{path}: ")


def test_damaged_header_is_refused(tmp_path: Path) -> None:
    data = bytearray((NIBABEL_FILES / "anatomical.nii").read_bytes())
    data[40:56] = b"\xff" * 16  # dim[]: nonsense dimensions
    path = tmp_path / "bad.nii"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedImageError):
        read_nifti(path)


def test_one_dimensional_is_refused(tmp_path: Path) -> None:
    path = save(nib.Nifti1Image(np.arange(10, dtype=np.int16), np.eye(4)), tmp_path / "line.nii")
    with pytest.raises(UnsupportedImageError, match="two dimensions"):
        read_nifti(path)


def test_complex_is_refused(tmp_path: Path) -> None:
    path = save(nib.Nifti1Image(np.ones((3, 3, 3), dtype=np.complex64), np.eye(4)), tmp_path / "c.nii")
    with pytest.raises(UnsupportedImageError, match="complex"):
        read_nifti(path)


def test_analyze_header_is_not_nifti() -> None:
    path = NIBABEL_FILES / "analyze.hdr"
    assert not sniff_nifti(path.read_bytes()[:512])
    with pytest.raises(UnsupportedImageError, match="not a NIfTI"):
        read_nifti(path)


# --------------------------------------------------------------------------- sniff


def test_sniff() -> None:
    assert sniff_nifti((NIBABEL_FILES / "anatomical.nii").read_bytes()[:512])  # big endian
    assert sniff_nifti((NIBABEL_FILES / "example4d.nii.gz").read_bytes()[:512])
    assert sniff_nifti((NIBABEL_FILES / "example_nifti2.nii.gz").read_bytes()[:512])
    assert not sniff_nifti(gzip.compress(b"not a header " * 100)[:512])
    assert not sniff_nifti(b"\x1f\x8b" + bytes(510))
    rng = np.random.default_rng(11)
    assert not any(sniff_nifti(h.tobytes()) for h in rng.integers(0, 256, (1000, 512), dtype=np.uint8))


# --------------------------------------------------------------------------- write


@pytest.mark.parametrize("dtype", ["u1", "i2", "<u2", ">i2", "i4", "f4", "f8", "bool"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_write_reads_back_equal(tmp_path: Path, dtype: str, suffix: str, check_image) -> None:
    pixels = (np.random.default_rng(5).random((3, 4, 5)) * 100).astype(dtype)
    image = MedicalImage(pixels, spacing=(3.0, 2.0, 1.5))
    path = tmp_path / ("out" + suffix)
    write_nifti(image, path)
    back = read_nifti(path)
    check_image(back, path)
    assert back.source.restore == ("splice" if suffix == ".nii" else "verbatim")
    np.testing.assert_array_equal(back.pixels, pixels.astype(np.uint8) if dtype == "bool" else pixels)
    assert back.spacing == pytest.approx((3.0, 2.0, 1.5))


def test_write_keeps_the_affine(tmp_path: Path) -> None:
    source = read_nifti(NIBABEL_FILES / "anatomical.nii")
    write_nifti(source, tmp_path / "copy.nii")
    copy = read_nifti(tmp_path / "copy.nii")
    np.testing.assert_allclose(copy.metadata["affine"], source.metadata["affine"])
    np.testing.assert_array_equal(copy.pixels, source.pixels)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("samples", [3, 4])
def test_write_colour(tmp_path: Path, suffix: str, samples: int) -> None:
    pixels = np.random.default_rng(6).integers(0, 256, (2, 3, 4, samples), dtype=np.uint8)
    image = MedicalImage(pixels, channels_last=True, samples_per_pixel=samples, photometric="RGB")
    write_nifti(image, tmp_path / ("rgb" + suffix))
    back = read_nifti(tmp_path / ("rgb" + suffix))
    assert back.channels_last and back.samples_per_pixel == samples
    np.testing.assert_array_equal(back.pixels, pixels)


def test_write_refuses_two_channels(tmp_path: Path) -> None:
    image = MedicalImage(np.zeros((3, 4, 2), dtype=np.uint8), channels_last=True, samples_per_pixel=2)
    with pytest.raises(ValueError):
        write_nifti(image, tmp_path / "x.nii")
