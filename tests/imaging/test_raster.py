"""PNG, TIFF and JPEG through Pillow: stored values kept, always verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import MedicalImage
from deepkedi.imaging.raster import (
    SIGNED_OFFSET_CHUNK,
    read_jpeg,
    read_png,
    read_tiff,
    sniff_jpeg,
    sniff_png,
    sniff_tiff,
    write_jpeg,
    write_png,
    write_tiff,
)

skimage = pytest.importorskip("skimage")
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
RNG = np.random.default_rng(8)


def shipped(name: str) -> Path:
    path = SKIMAGE_DATA / name
    if not path.is_file():
        pytest.skip(f"scikit-image does not ship {name} here")
    return path


@pytest.mark.parametrize(
    ("name", "reader", "shape", "photometric"),
    [
        ("retina.jpg", read_jpeg, (1411, 1411, 3), "RGB"),
        ("microaneurysms.png", read_png, (102, 102), "MONOCHROME2"),
        ("phantom.png", read_png, (400, 400, 3), "RGB"),
        ("multipage.tif", read_tiff, (2, 15, 10), "MONOCHROME2"),
    ],
)
def test_shipped_images_read(name, reader, shape, photometric, check_image) -> None:
    path = shipped(name)
    image = reader(path)
    check_image(image, path)
    assert image.source.restore == "verbatim"
    assert image.pixels.shape == shape and image.pixels.dtype == np.uint8
    assert image.photometric == photometric
    assert image.channels_last == (len(shape) == 3 and shape[-1] == 3)
    first_page = image.pixels[0] if image.metadata["pages"] > 1 else image.pixels
    with Image.open(path) as reference:
        np.testing.assert_array_equal(first_page, np.asarray(reference))


def test_16_bit_png_values_are_exact(tmp_path: Path, check_image) -> None:
    values = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    values[0, :4] = [0, 1, 65534, 65535]
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = read_png(path)
    check_image(image, path)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, values)


def test_16_bit_big_endian_tiff(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (9, 7), dtype=np.uint16)
    path = tmp_path / "be.tif"
    Image.fromarray(values.astype(">u2")).save(path)
    image = read_tiff(path)
    assert image.pixels.dtype == np.uint16  # native byte order, same values
    np.testing.assert_array_equal(image.pixels, values)


def test_float_tiff(tmp_path: Path) -> None:
    values = RNG.random((6, 5), dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    np.testing.assert_array_equal(read_tiff(path).pixels, values)


def test_palette_png_gives_indices(tmp_path: Path) -> None:
    indices = RNG.integers(0, 16, (10, 12), dtype=np.uint8)
    picture = Image.frombytes("P", (12, 10), indices.tobytes())
    palette = [int(v) for v in RNG.integers(0, 256, 48)]
    picture.putpalette(palette)
    path = tmp_path / "palette.png"
    picture.save(path)
    image = read_png(path)
    assert image.photometric == "PALETTE COLOR"
    np.testing.assert_array_equal(image.pixels, indices)
    assert image.metadata["palette"][:48] == palette


def test_bilevel_gives_zero_and_one(tmp_path: Path) -> None:
    bits = RNG.integers(0, 2, (9, 13)).astype(bool)
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    image = read_png(path)
    assert image.pixels.dtype == np.uint8 and image.bits_stored == 1
    np.testing.assert_array_equal(image.pixels, bits.astype(np.uint8))


def test_rgba_png(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels).save(path)
    image = read_png(path)
    assert image.channels_last and image.samples_per_pixel == 4
    np.testing.assert_array_equal(image.pixels, pixels)


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_png_is_refused(tmp_path: Path, keep: float) -> None:
    data = shipped("microaneurysms.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnsupportedImageError) as info:
        read_png(path)
    assert str(info.value).startswith(f"{path}: ")


def test_png_with_a_flipped_bit_is_refused(tmp_path: Path) -> None:
    data = bytearray(shipped("microaneurysms.png").read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the image data: the chunk CRC no longer matches
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedImageError):
        read_png(path)


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    data = shipped("retina.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedImageError):
        read_jpeg(path)


def test_garbage_tiff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\0" + RNG.integers(0, 256, 400, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedImageError):
        read_tiff(path)


def test_tiff_pages_of_different_sizes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tif"
    first, second = Image.new("L", (4, 4)), Image.new("L", (5, 3))
    first.save(path, save_all=True, append_images=[second])
    with pytest.raises(UnsupportedImageError, match="pages differ"):
        read_tiff(path)


def test_wrong_signature_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(UnsupportedImageError, match="not a PNG image"):
        read_png(path)


def test_sniffers() -> None:
    assert sniff_png(shipped("phantom.png").read_bytes()[:512])
    assert sniff_jpeg(shipped("retina.jpg").read_bytes()[:512])
    assert sniff_tiff(shipped("multipage.tif").read_bytes()[:512])
    assert sniff_tiff(b"MM\0*" + bytes(8))
    for sniff in (sniff_png, sniff_jpeg, sniff_tiff):
        assert not sniff(b"")
        assert not sniff(b"\x93NUMPY" + bytes(100))


# --------------------------------------------------------------------------- write

ROUND_TRIPS = {
    "png u8": (MedicalImage(RNG.integers(0, 256, (20, 30), dtype=np.uint8)), write_png, read_png),
    "png u16": (MedicalImage(RNG.integers(0, 65536, (20, 30), dtype=np.uint16)), write_png, read_png),
    "png big-endian u16": (
        MedicalImage(RNG.integers(0, 65536, (20, 30), dtype=np.uint16).astype(">u2")),
        write_png,
        read_png,
    ),
    "png rgb": (
        MedicalImage(
            RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8),
            channels_last=True,
            samples_per_pixel=3,
            photometric="RGB",
        ),
        write_png,
        read_png,
    ),
    "png planar rgb": (
        MedicalImage(RNG.integers(0, 256, (3, 20, 30), dtype=np.uint8), samples_per_pixel=3, photometric="RGB"),
        write_png,
        read_png,
    ),
    "png palette": (
        MedicalImage(
            RNG.integers(0, 256, (20, 30), dtype=np.uint8),
            photometric="PALETTE COLOR",
            metadata={"palette": list(range(256)) * 3},
        ),
        write_png,
        read_png,
    ),
    "png i16": (MedicalImage(RNG.integers(-32768, 32768, (20, 30), dtype=np.int16)), write_png, read_png),
    "png i8": (MedicalImage(RNG.integers(-128, 128, (20, 30), dtype=np.int8)), write_png, read_png),
    "tiff u8": (MedicalImage(RNG.integers(0, 256, (20, 30), dtype=np.uint8)), write_tiff, read_tiff),
    "tiff u16 pages": (MedicalImage(RNG.integers(0, 65536, (4, 20, 30), dtype=np.uint16)), write_tiff, read_tiff),
    "tiff rgb pages": (
        MedicalImage(
            RNG.integers(0, 256, (2, 20, 30, 3), dtype=np.uint8),
            channels_last=True,
            samples_per_pixel=3,
            photometric="RGB",
        ),
        write_tiff,
        read_tiff,
    ),
}


@pytest.mark.parametrize("case", ROUND_TRIPS, ids=str)
def test_lossless_round_trip(tmp_path: Path, case: str, check_image) -> None:
    image, write, read = ROUND_TRIPS[case]
    path = tmp_path / "out"
    write(image, path)
    back = read(path)
    check_image(back, path)
    expected = np.asarray(image.pixels)
    if image.samples_per_pixel > 1 and not image.channels_last:
        expected = np.moveaxis(expected, -3, -1)  # raster formats interleave
    np.testing.assert_array_equal(back.pixels, expected)
    assert back.photometric == image.photometric


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path: Path, channels: int) -> None:
    # Smooth content: JPEG's loss is small there.
    ramp = np.add.outer(np.arange(32), np.arange(48)).astype(np.uint8) * 3
    pixels = ramp if channels == 1 else np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1)
    image = MedicalImage(pixels, channels_last=channels == 3, samples_per_pixel=channels)
    write_jpeg(image, tmp_path / "out.jpg")
    back = read_jpeg(tmp_path / "out.jpg")
    assert back.pixels.shape == pixels.shape
    assert np.abs(back.pixels.astype(int) - pixels).mean() < 3


@pytest.mark.parametrize(
    ("writer", "image", "fix"),
    [
        (write_png, MedicalImage(np.zeros((4, 4), dtype=np.float32)), ".npy or .nii.gz"),
        (write_png, MedicalImage(np.zeros((4, 4), dtype=np.int32)), ".npy or .nii.gz"),
        (write_png, MedicalImage(np.zeros((2, 4, 4), dtype=np.uint8)), ".tif"),  # two planes
        (write_jpeg, MedicalImage(np.zeros((4, 4), dtype=np.uint16)), ".png"),
        (write_jpeg, MedicalImage(np.zeros((4, 4), dtype=np.int16)), ".png file holds them (stored plus 32768"),
        (write_tiff, MedicalImage(np.zeros((4, 4), dtype=np.int16)), ".png file holds them (stored plus 32768"),
        (
            write_tiff,
            MedicalImage(np.zeros((4, 4, 2), dtype=np.uint8), channels_last=True, samples_per_pixel=2),
            "RGB",
        ),
    ],
    ids=["png float", "png int32", "png stack", "jpeg 16-bit", "jpeg int16", "tiff int16", "tiff two samples"],
)
def test_writers_refuse_what_the_format_cannot_hold(tmp_path: Path, writer, image, fix: str) -> None:
    with pytest.raises(ValueError) as refused:
        writer(image, tmp_path / "restored.img")
    message = str(refused.value)
    assert message.startswith("restored.img: ") and fix in message  # names the file and what to do
    assert not (tmp_path / "restored.img").exists()


def test_signed_png_stores_the_offset_values_and_says_so(tmp_path: Path) -> None:
    # A CT's int16 words, both ends of the range included: other readers see value + 32768 and the chunk.
    values = np.array([[-32768, -1024, -1], [0, 1, 32767]], dtype=np.int16)
    write_png(MedicalImage(values), tmp_path / "ct.png")
    with Image.open(tmp_path / "ct.png") as picture:
        assert picture.info[SIGNED_OFFSET_CHUNK] == "32768"
        stored = np.asarray(picture).astype(np.int64)
    np.testing.assert_array_equal(stored, values.astype(np.int64) + 32768)
    back = read_png(tmp_path / "ct.png")
    assert back.pixels.dtype == np.int16 and back.metadata["signed_offset"] == 32768
    np.testing.assert_array_equal(back.pixels, values)
    # Unsigned images carry no chunk and read back unsigned.
    write_png(MedicalImage(values.view(np.uint16)), tmp_path / "u.png")
    with Image.open(tmp_path / "u.png") as picture:
        assert SIGNED_OFFSET_CHUNK not in picture.info
    assert read_png(tmp_path / "u.png").pixels.dtype == np.uint16


@pytest.mark.parametrize("offset", ["0", "1024", "32767", "lots"])
def test_a_signed_offset_chunk_deepkedi_never_writes_is_refused(tmp_path: Path, offset: str) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(SIGNED_OFFSET_CHUNK, offset)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint16)).save(tmp_path / "odd.png", pnginfo=info)
    with pytest.raises(UnsupportedImageError, match=r"odd\.png: its deepkedi-signed-offset chunk"):
        read_png(tmp_path / "odd.png")
