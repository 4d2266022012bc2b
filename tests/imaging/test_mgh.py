"""FreeSurfer MGH reader and writer, against nibabel's shipped test.mgz and files made here."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from deepkedi.cipher.hybrid import decrypt_file, encrypt_file
from deepkedi.cipher.layout import cipher_image
from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import MedicalImage, detect_format, read_image, write_image
from deepkedi.imaging.mgh import read_mgh, sniff_mgh, write_mgh
from deepkedi.keys import generate_key

TEST_MGZ = Path(nib.__file__).parent / "tests" / "data" / "test.mgz"


def test_nibabel_test_mgz_is_read_as_stored(check_image) -> None:
    if not TEST_MGZ.is_file():
        pytest.skip("nibabel's test.mgz is not installed")
    image = read_image(TEST_MGZ)
    check_image(image, TEST_MGZ)
    assert image.format == "mgh" and image.source.restore == "verbatim"
    assert image.pixels.shape == (2, 5, 4, 3) and image.pixels.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(image.pixels, np.asarray(nib.load(TEST_MGZ).dataobj).T)
    assert image.spacing == (1.0, 1.0, 1.0)
    assert len(image.metadata["affine"]) == 4 and image.metadata["type"] == 3


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [
        (np.uint8, ">u1"),
        (np.int16, ">i2"),
        (np.uint16, ">i4"),
        (np.int8, ">i2"),
        (np.int32, ">i4"),
        (np.float32, ">f4"),
    ],
)
@pytest.mark.parametrize("suffix", [".mgh", ".mgz"])
def test_written_volumes_read_back_with_their_values(
    dtype, stored: str, suffix: str, tmp_path: Path, check_image
) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    rng = np.random.default_rng(7)
    if info is not None:
        pixels = rng.integers(info.min, info.max, (3, 5, 7), dtype=dtype, endpoint=True)
    else:
        pixels = rng.normal(size=(3, 5, 7)).astype(dtype)
    path = tmp_path / f"volume{suffix}"
    write_mgh(MedicalImage(pixels=pixels, spacing=(2.0, 0.5, 0.75)), path)
    image = read_mgh(path)
    check_image(image, path)
    assert image.source.restore == ("splice" if suffix == ".mgh" else "verbatim")
    assert image.pixels.dtype == np.dtype(stored)
    np.testing.assert_array_equal(np.asarray(image.pixels).astype(np.float64), pixels.astype(np.float64))
    assert image.spacing == (2.0, 0.5, 0.75)
    assert nib.load(path).shape == (7, 5, 3)  # x fastest: the axes reversed, as FreeSurfer sees it


def test_a_single_slice_and_frames_keep_their_axes(tmp_path: Path) -> None:
    plane = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_mgh(MedicalImage(pixels=plane), tmp_path / "plane.mgh")
    assert read_mgh(tmp_path / "plane.mgh").pixels.shape == (3, 4)
    frames = np.zeros((2, 1, 3, 4), np.uint8)  # two frames of one slice
    write_mgh(MedicalImage(pixels=frames), tmp_path / "frames.mgz")
    assert read_mgh(tmp_path / "frames.mgz").pixels.shape == (2, 1, 3, 4)


def test_what_mgh_cannot_hold_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without loss"):
        write_mgh(MedicalImage(pixels=np.zeros((4, 4), np.float64)), tmp_path / "x.mgh")
    rgb = MedicalImage(pixels=np.zeros((4, 4, 3), np.uint8), photometric="RGB", samples_per_pixel=3, channels_last=True)
    with pytest.raises(ValueError, match="one value per voxel"):
        write_mgh(rgb, tmp_path / "x.mgh")
    assert not (tmp_path / "x.mgh").exists()


@pytest.mark.parametrize("suffix", [".mgh", ".mgz"])
def test_containers_restore_mgh_files_byte_for_byte(suffix: str, tmp_path: Path) -> None:
    key = generate_key(gan=False)
    path = tmp_path / f"brain{suffix}"
    pixels = np.random.default_rng(2).integers(0, 255, (4, 9, 11), dtype=np.uint8)
    write_image(MedicalImage(pixels=pixels), path)
    encrypt_file(path, tmp_path / "brain.kedi", key)
    assert cipher_image(tmp_path / "brain.kedi").shape == pixels.shape
    decrypt_file(tmp_path / "brain.kedi", tmp_path / f"back{suffix}", key)
    assert (tmp_path / f"back{suffix}").read_bytes() == path.read_bytes()


def test_content_decides_and_contradictions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "volume.mgz"
    write_mgh(MedicalImage(pixels=np.ones((3, 4, 5), np.int16)), path)
    with gzip.open(path, "rb") as fh:
        assert sniff_mgh(path.read_bytes()[:512]) and sniff_mgh(fh.read(512))
    unnamed = tmp_path / "volume.bin"
    shutil.copyfile(path, unnamed)
    assert detect_format(unnamed).name == "mgh"
    renamed = tmp_path / "volume.nii.gz"
    shutil.copyfile(path, renamed)
    with pytest.raises(UnsupportedImageError, match="looks like FreeSurfer MGH"):
        read_image(renamed)
    not_mgh = tmp_path / "noise.mgh"
    not_mgh.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedImageError, match="not a valid FreeSurfer MGH"):
        read_image(not_mgh)
    truncated = tmp_path / "cut.mgh"
    write_mgh(MedicalImage(pixels=np.ones((3, 4, 5), np.int16)), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(UnsupportedImageError, match=r"cut\.mgh"):
        read_image(truncated)
