"""NumPy .npy arrays: C order spliced, Fortran order carried whole, non-images refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import MedicalImage
from deepkedi.imaging.npy import read_npy, sniff_npy, write_npy

DTYPES = ["|u1", "|i1", "<u2", ">u2", "<i2", ">i2", "<u4", "<i4", ">f4", "<f4", "<f8", "<i8", "|b1"]


def saved(tmp_path: Path, array: np.ndarray, name: str = "a.npy") -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


@given(
    array=hnp.arrays(
        dtype=st.sampled_from(DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6),
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_c_order_is_spliced(tmp_path: Path, array: np.ndarray, check_image) -> None:
    path = saved(tmp_path, array)
    image = read_npy(path)
    check_image(image, path)
    assert image.source.restore == "splice"
    assert image.source.stored_dtype == array.dtype.str
    assert image.pixels.shape == array.shape
    np.testing.assert_array_equal(image.pixels, array)
    assert image.format == "npy" and not image.channels_last


def test_fortran_order_is_verbatim(tmp_path: Path, check_image) -> None:
    array = np.asfortranarray(np.arange(24, dtype=np.int16).reshape(4, 6))
    path = saved(tmp_path, array)
    image = read_npy(path)
    check_image(image, path)
    assert image.source.restore == "verbatim"
    assert not isinstance(image.pixels, np.memmap)
    np.testing.assert_array_equal(image.pixels, array)


def test_format_version_2(tmp_path: Path, check_image) -> None:
    array = np.arange(12, dtype="<u2").reshape(3, 4)
    path = tmp_path / "v2.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, array, version=(2, 0))
    image = read_npy(path)
    check_image(image, path)
    np.testing.assert_array_equal(image.pixels, array)


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.arange(5, dtype=np.uint8), "two dimensions"),
        (np.array(3.0), "two dimensions"),
        (np.ones((2, 2), dtype=np.complex64), "not supported"),
        (np.zeros((2, 2), dtype="U3"), "not supported"),
        (np.zeros((2, 2), dtype=[("a", "u1"), ("b", "f4")]), "structured"),
        (np.zeros((0, 3), dtype=np.uint8), "no pixels"),
    ],
    ids=["1-d", "0-d", "complex", "text", "structured", "empty"],
)
def test_non_images_are_refused(tmp_path: Path, array: np.ndarray, reason: str) -> None:
    with pytest.raises(UnsupportedImageError, match=reason):
        read_npy(saved(tmp_path, array))


def test_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[object(), 1], [2, 3]], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedImageError, match="pickled"):
        read_npy(path)


@pytest.mark.parametrize("cut", [5, 40, 200])
def test_truncated_is_refused(tmp_path: Path, cut: int) -> None:
    path = saved(tmp_path, np.arange(100, dtype=np.int16).reshape(10, 10))
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(UnsupportedImageError):
        read_npy(path)


def test_damaged_header_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path, np.zeros((3, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[12:30] = b"@" * 18
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedImageError):
        read_npy(path)


def test_not_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(b"PK\x03\x04" + bytes(100))  # an .npz
    with pytest.raises(UnsupportedImageError, match="not a NumPy"):
        read_npy(path)


def test_sniff() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 2)))
    assert sniff_npy(buffer.getvalue()[:512])
    assert not sniff_npy(b"\x93NUMP")
    assert not sniff_npy(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("dtype", DTYPES)
def test_write_round_trip(tmp_path: Path, dtype: str) -> None:
    array = (np.random.default_rng(9).random((3, 5, 4)) * 100).astype(dtype)
    path = tmp_path / "written"  # no suffix: np.save would add one, the writer must not
    write_npy(MedicalImage(array), path)
    assert path.is_file()
    np.testing.assert_array_equal(read_npy(path).pixels, array)


def test_write_makes_fortran_arrays_c_ordered(tmp_path: Path) -> None:
    array = np.asfortranarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    write_npy(MedicalImage(array), tmp_path / "c.npy")
    image = read_npy(tmp_path / "c.npy")
    assert image.source.restore == "splice"
    np.testing.assert_array_equal(image.pixels, array)
