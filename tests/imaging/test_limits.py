"""The decoded-size limit: small files that claim (or hold) many bytes are refused before they are decoded."""

from __future__ import annotations

import io
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import _bombs
from deepkedi.errors import InputTooLargeError, UnsupportedImageError
from deepkedi.imaging import DEFAULT_MAX_DECODED_SIZE, decoded_size_limit, read_image
from deepkedi.imaging.limits import (
    DEFAULT_EXPANSION_FLOOR,
    DEFAULT_MAX_EXPANSION,
    DEFAULT_WORKING_MEMORY,
    allowed_decoded_size,
    current_limit,
    format_size,
    inflated_size_within,
    parse_size,
)

MiB = 1 << 20
#: Low enough that the hostile files stay small and fast; each below decodes to twice this.
LIMIT = 64 * MiB


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("1024", 1024),
        ("512M", 512 * MiB),
        ("512m", 512 * MiB),
        ("4G", 4 << 30),
        ("4GiB", 4 << 30),
        ("4GB", 4 << 30),
        ("1.5g", 3 << 29),
        ("64 KiB", 64 << 10),
        ("2T", 2 << 40),
    ],
)
def test_parse_size_reads_binary_suffixes(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "lots", "4X", "-1G", "0", "0M", "G"])
def test_parse_size_refuses_what_is_not_a_positive_size(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(800) == "800 bytes"
    assert format_size(256 * MiB) == "256 MiB"
    assert format_size(3 << 29) == "1.5 GiB"


def test_default_policy_bounds_the_expansion_of_small_files() -> None:
    assert current_limit() is None
    assert allowed_decoded_size(1000) == DEFAULT_EXPANSION_FLOOR
    assert allowed_decoded_size(100 * MiB) == DEFAULT_MAX_EXPANSION * 100 * MiB
    assert allowed_decoded_size(1 << 40) == DEFAULT_MAX_DECODED_SIZE
    # The must-reach: whatever a file under 10 MB is, it decodes to well under 1 GiB.
    assert allowed_decoded_size(10_000_000) < 512 * MiB


def test_an_explicit_limit_replaces_the_default_policy_and_is_scoped() -> None:
    with decoded_size_limit(LIMIT):
        assert allowed_decoded_size(1) == allowed_decoded_size(1 << 40) == LIMIT
        with decoded_size_limit(None):
            assert current_limit() is None
        assert current_limit() == LIMIT
    assert current_limit() is None
    with pytest.raises(ValueError), decoded_size_limit(0):
        pass


def test_a_memory_factor_keeps_the_default_policy_within_the_working_memory(tmp_path: Path) -> None:
    # A command that needs 8 times the decoded size: 96 MiB, whatever the file's size.
    with decoded_size_limit(None, memory_factor=8):
        assert allowed_decoded_size(1000) == allowed_decoded_size(1 << 40) == DEFAULT_WORKING_MEMORY // 8
        bomb = _bombs.nifti_gz(tmp_path / "big.nii.gz", (512, 512, 200))  # 100 MiB
        with pytest.raises(InputTooLargeError, match=r"big\.nii\.gz: would decode to 100 MiB .*about 8 times"):
            read_image(bomb)
    # Never above the policy without it, and no effect on an explicit limit.
    with decoded_size_limit(None, memory_factor=0.5):
        assert allowed_decoded_size(1000) == DEFAULT_EXPANSION_FLOOR
    with decoded_size_limit(LIMIT * 4, memory_factor=8):
        assert allowed_decoded_size(1000) == LIMIT * 4
        assert read_image(bomb).pixels.nbytes == 100 * MiB
    assert allowed_decoded_size(1000) == DEFAULT_EXPANSION_FLOOR
    with pytest.raises(ValueError), decoded_size_limit(None, memory_factor=0):
        pass


class _EndlessZeros(io.RawIOBase):
    """A raw deflate stream of zeros that never ends: inflating it whole would never return."""

    def __init__(self) -> None:
        self.deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.produced = 0  # bytes of zeros compressed so far

    def read(self, n: int = -1) -> bytes:
        self.produced += MiB
        return self.deflater.compress(bytes(MiB)) + self.deflater.flush(zlib.Z_SYNC_FLUSH)


class _Peak:
    """Python's peak traced allocation inside a ``with`` block (:mod:`tracemalloc`)."""

    bytes = 0

    def __enter__(self) -> _Peak:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_inflation_stops_at_the_limit_without_keeping_the_output(tmp_path: Path) -> None:
    stream = _EndlessZeros()
    with _Peak() as peak, decoded_size_limit(LIMIT), pytest.raises(InputTooLargeError, match="more than 64 MiB"):
        inflated_size_within(tmp_path / "x", stream, wbits=-zlib.MAX_WBITS, file_size=1000)
    assert peak.bytes < 8 * MiB
    assert stream.produced <= LIMIT + 2 * MiB  # stopped just past the limit
    # Under the limit, the size is exact.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    finite = deflater.compress(bytes(3 * MiB)) + deflater.flush()
    with decoded_size_limit(LIMIT):
        assert inflated_size_within(tmp_path / "x", io.BytesIO(finite), wbits=-zlib.MAX_WBITS, file_size=1) == 3 * MiB


# --------------------------------------------------------------------------- hostile files, per format

#: name -> writer of a file that decodes to 2 x LIMIT, and a writer of a small valid one.
_BOMBS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], Path]]] = {
    "nifti_gz": (
        lambda d: _bombs.nifti_gz(d / "bomb.nii.gz", (1024, 1024, 64)),
        lambda d: _bombs.nifti_gz(d / "ok.nii.gz", (64, 64, 8)),
    ),
    "nifti_gz_lying_header": (
        # The header claims 128 MiB, the stream holds 1 KiB: refused from the header alone.
        lambda d: _bombs.nifti_gz(d / "bomb.nii.gz", (1024, 1024, 64), stored=1024),
        lambda d: _bombs.nifti_gz(d / "ok.nii.gz", (64, 64, 8)),
    ),
    "mgz": (
        lambda d: _bombs.mgz(d / "bomb.mgz", (1024, 1024, 32, 1)),
        lambda d: _bombs.mgz(d / "ok.mgz", (64, 64, 8, 1)),
    ),
    "deflated_dicom": (
        lambda d: _bombs.deflated_dicom(d / "bomb.dcm", rows=4096, cols=4096, frames=4),
        lambda d: _bombs.deflated_dicom(d / "ok.dcm", rows=64, cols=64, frames=2),
    ),
    "tiff_pages": (
        # 32 pages of 2048 x 2048: each page alone is far under the limit.
        lambda d: _bombs.tiff(d / "bomb.tif", pages=32, side=2048),
        lambda d: _bombs.tiff(d / "ok.tif", pages=3, side=64),
    ),
    "png": (
        lambda d: _bombs.png(d / "bomb.png", width=16384, height=8192),
        lambda d: _bombs.png(d / "ok.png", width=300, height=200),
    ),
}


@pytest.mark.parametrize("kind", sorted(_BOMBS))
def test_a_file_that_decodes_past_the_limit_is_refused_before_decoding(tmp_path: Path, kind: str) -> None:
    make_bomb, make_good = _BOMBS[kind]
    bomb = make_bomb(tmp_path)
    assert bomb.stat().st_size < 2 * MiB
    with _Peak() as peak, pytest.raises(InputTooLargeError) as caught:
        read_image(bomb, max_decoded_size=LIMIT)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{bomb}: would decode to ")
    assert "64 MiB" in message and "--max-decoded-size" in message
    # Nothing near the decoded size was allocated (the old readers held all 128 MiB).
    assert peak.bytes < 16 * MiB, f"peak {peak.bytes / MiB:.1f} MiB"
    # An InputTooLargeError is bad input (exit 4), as every UnsupportedImageError is.
    assert isinstance(caught.value, UnsupportedImageError)
    # The same limit lets files under it through.
    good = make_good(tmp_path)
    image = read_image(good, max_decoded_size=LIMIT)
    assert image.pixels.size > 0


#: Files of a few hundred KiB that decode to 512 MiB, twice the default policy's floor.
_EXPANDING: dict[str, Callable[[Path], Path]] = {
    # Lying headers: the stream holds 4 KiB; the header alone is refused.
    "nifti_gz": lambda d: _bombs.nifti_gz(d / "big.nii.gz", (1024, 1024, 256), stored=4096),
    "mgz": lambda d: _bombs.mgz(d / "big.mgz", (1024, 1024, 128, 1), stored=4096),
    # An honest stream: inflation stops at the floor.
    "deflated_dicom": lambda d: _bombs.deflated_dicom(d / "big.dcm", rows=8192, cols=8192, frames=4),
}


@pytest.mark.parametrize("kind", sorted(_EXPANDING))
def test_the_default_policy_refuses_a_small_file_that_expands_past_the_floor(tmp_path: Path, kind: str) -> None:
    bomb = _EXPANDING[kind](tmp_path)
    assert bomb.stat().st_size < 4 * MiB
    with pytest.raises(InputTooLargeError, match=r"the default limit is 256 MiB for a .* file: 32 times its size"):
        read_image(bomb)


def test_a_limit_set_around_the_call_reaches_the_reader(tmp_path: Path) -> None:
    bomb = _bombs.nifti_gz(tmp_path / "bomb.nii.gz", (1024, 1024, 64), stored=1024)
    with decoded_size_limit(LIMIT), pytest.raises(InputTooLargeError):
        read_image(bomb)
    # An explicit argument overrides the setting around the call, for this call only.
    with decoded_size_limit(MiB):
        image = read_image(_bombs.nifti_gz(tmp_path / "ok.nii.gz", (64, 64, 8)), max_decoded_size=LIMIT)
        assert current_limit() == MiB
    assert image.pixels.shape == (8, 64, 64)


def test_memory_mapped_pixels_are_not_limited(tmp_path: Path) -> None:
    # A .npy is mapped where it lies: no decoding, so not limited (the file bounds it).
    path = tmp_path / "plane.npy"
    np.save(path, np.zeros((256, 256), np.uint16))
    image = read_image(path, max_decoded_size=1024)
    assert isinstance(image.pixels, np.memmap)


def test_pillow_decompression_bomb_warning_never_escapes(tmp_path: Path) -> None:
    # 100 M pixels: past Pillow's warning threshold (89.5 M), under its error (179 M).
    bomb = _bombs.png(tmp_path / "wide.png", width=10000, height=10000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputTooLargeError):
            read_image(bomb, max_decoded_size=LIMIT)
        image = read_image(bomb, max_decoded_size=128 * MiB)
    assert image.pixels.shape == (10000, 10000)
    assert [str(w.message) for w in caught] == []


def test_pillow_own_bomb_error_is_input_too_large(tmp_path: Path) -> None:
    # 400 M pixels: past Pillow's error threshold, which no decoded-size limit lifts.
    bomb = _bombs.png(tmp_path / "huge.png", width=20000, height=20000)
    with pytest.raises(InputTooLargeError, match=r"huge\.png: a page has 400000000 pixels, more than Pillow decodes"):
        read_image(bomb, max_decoded_size=1 << 40)


def test_tiff_pages_of_differing_size_are_still_refused(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "mixed.tif"
    first, second = Image.new("L", (64, 64)), Image.new("L", (32, 64))
    first.save(path, format="TIFF", save_all=True, append_images=[second])
    with pytest.raises(UnsupportedImageError, match="pages differ"):
        read_image(path)


def test_compressed_dicom_is_checked_from_rows_columns_and_frames(tmp_path: Path) -> None:
    # RLE frames are decoded into a buffer sized from the data set alone: a data set
    # claiming 8192 x 8192 16-bit pixels (128 MiB) over 64 x 64 frames is refused first.
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.Rows = ds.Columns = 8192
    path = tmp_path / "rle.dcm"
    ds.save_as(path)
    with (
        _Peak() as peak,
        pytest.raises(InputTooLargeError, match=r"rle\.dcm: would decode to 128 MiB \(the limit is 64 MiB\)"),
    ):
        read_image(path, max_decoded_size=LIMIT)
    assert peak.bytes < 16 * MiB


def test_a_nifti_extension_that_inflates_past_the_limit_is_refused(tmp_path: Path) -> None:
    # A tiny image whose header extension claims 128 MiB: nibabel reads extensions into
    # memory while it reads the header, so the check must come before nibabel.
    import gzip
    import struct

    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 1))
    header.set_data_dtype(np.uint8)
    esize = 128 * MiB
    header["vox_offset"] = 352 + esize
    path = tmp_path / "extended.nii.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header.binaryblock + struct.pack("<4B", 1, 0, 0, 0) + struct.pack("<ii", esize, 0))
        block = bytes(MiB)
        for _ in range(esize // MiB):
            fh.write(block)
        fh.write(bytes(16))
    with _Peak() as peak, pytest.raises(InputTooLargeError, match=r"extended\.nii\.gz: would decode to 128 MiB"):
        read_image(path, max_decoded_size=LIMIT)
    assert peak.bytes < 16 * MiB
