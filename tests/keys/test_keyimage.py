"""Key images (paper suite): bit-exact PNG round trip, 0600, never clobbered, fingerprint, clear refusals."""

from __future__ import annotations

import hashlib
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepkedi.errors import DeepKediError, KeyFileError, OutputExistsError
from deepkedi.keys import KeyImage, key_image_id, load_key_image, save_key_image


def _random_key(dtype: type, shape: tuple[int, int] = (37, 53), seed: int = 0, **fields: object) -> KeyImage:
    rng = np.random.default_rng(seed)
    return KeyImage(rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_is_bit_exact(tmp_path: Path, dtype: type, seed: int) -> None:
    key = _random_key(dtype, seed=seed, created="2026-01-01T00:00:00Z", model_sha256="ab" * 32)
    # Extremes must survive too (a 16-bit PNG path that scaled or sign-flipped would lose them).
    pixels = key.pixels.copy()
    pixels[0, :2] = (0, np.iinfo(dtype).max)
    key = KeyImage(pixels, seed=1234, model_sha256=key.model_sha256, created=key.created)
    path = tmp_path / "key.png"
    save_key_image(key, path)
    loaded = load_key_image(path)
    assert loaded == key
    assert loaded.pixels.dtype == dtype and np.array_equal(loaded.pixels, pixels)
    assert loaded.key_id == key.key_id and loaded.seed == 1234 and loaded.bits == 8 * np.dtype(dtype).itemsize


@pytest.mark.parametrize(("dtype", "mode", "depth"), [(np.uint8, "L", 8), (np.uint16, "I;16", 16)])
def test_file_is_a_grey_png_with_chunks_and_mode_0600(tmp_path: Path, dtype: type, mode: str, depth: int) -> None:
    path = tmp_path / "key.png"
    save_key_image(_random_key(dtype, created="2026-02-03T04:05:06Z"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert data[12:16] == b"IHDR" and data[24] == depth and data[25] == 0  # bit depth, colour type grey
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode.startswith(mode[:1])
        text = picture.text  # type: ignore[attr-defined]
    assert text["deepkedi-key-image"] == "1" and text["bits"] == str(depth)
    assert text["seed"] == "" and text["model-sha256"] == "" and text["created"] == "2026-02-03T04:05:06Z"


def test_no_seed_or_model_reads_back_as_none(tmp_path: Path) -> None:
    path = tmp_path / "key.png"
    save_key_image(_random_key(np.uint8), path)
    loaded = load_key_image(path)
    assert loaded.seed is None and loaded.model_sha256 is None


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "key.png"
    first, second = _random_key(np.uint8, seed=1), _random_key(np.uint8, seed=2)
    save_key_image(first, path)
    with pytest.raises(OutputExistsError):
        save_key_image(second, path)
    assert load_key_image(path) == first
    save_key_image(second, path, force=True)
    assert load_key_image(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.png"]  # no temporary left behind


def test_plain_png_is_not_a_key_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with pytest.raises(KeyFileError, match="deepkedi-key-image"):
        load_key_image(path)


@pytest.mark.parametrize("content", [b"", b'{"deepkedi_key": 1}', b"\x89PNG\r\n\x1a\n" + b"garbage" * 10])
def test_non_png_or_broken_png_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.png"
    path.write_bytes(content)
    with pytest.raises(KeyFileError):
        load_key_image(path)


def test_missing_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key_image(tmp_path / "absent.png")


def test_colour_png_with_the_chunk_is_refused(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("deepkedi-key-image", "1")
    info.add_text("bits", "8")
    path = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, pnginfo=info)
    with pytest.raises(KeyFileError, match="greyscale"):
        load_key_image(path)


def test_key_image_id_is_the_specified_hash() -> None:
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 4099
    expected = hashlib.sha256(
        b"deepkedi/v1 paper key id" + struct.pack(">BQQ", 16, 3, 4) + pixels.astype("<u2").tobytes()
    ).digest()[:16]
    assert key_image_id(pixels) == expected
    assert key_image_id(pixels.astype(">u2")) == expected  # byte order of the array does not matter


def test_key_image_id_separates_depth_shape_and_content() -> None:
    a = np.zeros((4, 6), np.uint8)
    ids = {
        key_image_id(a),
        key_image_id(a.astype(np.uint16)),
        key_image_id(a.reshape(6, 4)),
        key_image_id(np.where(np.arange(24).reshape(4, 6) == 5, 1, 0).astype(np.uint8)),
    }
    assert len(ids) == 4 and all(len(i) == 16 for i in ids)


@pytest.mark.parametrize(
    ("pixels", "error"),
    [
        (np.zeros((4,), np.uint8), ValueError),
        (np.zeros((2, 3, 4), np.uint8), ValueError),
        (np.zeros((4, 4), np.int16), TypeError),
        (np.zeros((4, 4), np.float32), TypeError),
        ([[1, 2], [3, 4]], TypeError),
    ],
)
def test_bad_pixels_are_refused(pixels: object, error: type) -> None:
    with pytest.raises(error):
        KeyImage(pixels)  # type: ignore[arg-type]


def test_pixels_are_read_only_and_repr_hides_them() -> None:
    key = _random_key(np.uint8, shape=(3, 3))
    with pytest.raises(ValueError):
        key.pixels[0, 0] = 1
    assert "pixels" not in repr(key) and key.key_id.hex() in repr(key)


def test_a_fifo_is_not_a_key_image(fifo: Path) -> None:
    with pytest.raises(KeyFileError, match="FIFO"):
        load_key_image(fifo)


@pytest.mark.parametrize("width, height", [(2**31 - 1, 2**31 - 1), (2**31 - 1, 40), (40_000, 40_000)])
def test_a_key_image_declaring_huge_dimensions_is_refused_before_decoding(
    tmp_path: Path, width: int, height: int
) -> None:
    # Pillow's DecompressionBombError escaped as a traceback; a merely large one was decoded whole.
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    with pytest.raises(DeepKediError, match=r"bomb\.png"):
        load_key_image(path)
