"""DICOM reader and writer, against pydicom's and nibabel's shipped test files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging import MedicalImage
from deepkedi.imaging.dicom import read_dicom, sniff_dicom, write_dicom

# The files installed with the packages; get_testdata_file could download, this never does.
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"

ALL_FILES = [*sorted(PYDICOM_FILES.rglob("*.dcm")), NIBABEL_FILES / "0.dcm", NIBABEL_FILES / "1.dcm"]
MUST_READ = [
    PYDICOM_FILES / name
    for name in (
        "CT_small.dcm",
        "MR_small.dcm",
        "examples_overlay.dcm",
        "examples_jpeg2k.dcm",
        "examples_palette.dcm",
        "J2K_pixelrep_mismatch.dcm",
    )
] + [NIBABEL_FILES / "0.dcm", NIBABEL_FILES / "1.dcm"]

#: The only metadata keys the reader may produce: technical, never identifying.
TECHNICAL_KEYS = {
    "transfer_syntax_uid",
    "sop_class_uid",
    "pixel_data_element",
    "bits_allocated",
    "pixel_representation",
    "planar_configuration",
    "number_of_frames",
    "rescale_slope",
    "rescale_intercept",
    "window_center",
    "window_width",
}


def test_data_is_installed() -> None:
    assert (PYDICOM_FILES / "CT_small.dcm").is_file()
    assert len(ALL_FILES) > 50


def reference_pixels(path: Path) -> np.ndarray:
    """pydicom's own decoding, without colour conversion, interleaved."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(pydicom.dcmread(path, force=True), raw=True)


def interleaved(image: MedicalImage) -> np.ndarray:
    pixels = np.asarray(image.pixels)
    if image.samples_per_pixel > 1 and not image.channels_last:
        pixels = np.moveaxis(pixels, -3, -1)
    return pixels


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_test_file_reads_or_is_refused_clearly(path: Path, check_image) -> None:
    try:
        image = read_dicom(path)
    except UnsupportedImageError as exc:
        assert str(exc).startswith(f"{path}: ")
        # No library traceback chained behind the message.
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
        return
    check_image(image, path)
    assert image.format == "dicom"
    assert set(image.metadata) <= TECHNICAL_KEYS
    np.testing.assert_array_equal(interleaved(image), reference_pixels(path))


@pytest.mark.parametrize("path", MUST_READ, ids=lambda p: p.name)
def test_required_files_read(path: Path, check_image) -> None:
    image = read_dicom(path)
    check_image(image, path)
    assert image.rows > 0 and image.cols > 0


@pytest.mark.parametrize(
    ("name", "restore", "dtype", "shape", "channels_last"),
    [
        ("CT_small.dcm", "splice", "<i2", (128, 128), False),  # signed
        ("MR_small_bigendian.dcm", "splice", ">i2", (64, 64), False),  # explicit VR big endian
        ("MR_small_implicit.dcm", "splice", "<i2", (64, 64), False),  # implicit VR
        ("rtdose.dcm", "splice", "<u4", (15, 10, 10), False),  # multi-frame, 32-bit
        ("rtdose_expb.dcm", "splice", ">u4", (15, 10, 10), False),
        ("examples_rgb_color.dcm", "splice", "|u1", (240, 320, 3), True),  # interleaved RGB
        ("ExplVR_BigEnd.dcm", "splice", "|u1", (3, 60, 80), False),  # planar RGB
        ("SC_rgb_small_odd.dcm", "splice", "|u1", (3, 3, 3), True),  # odd length, pad byte
        ("examples_palette.dcm", "splice", "|u1", (350, 800), False),
        ("examples_overlay.dcm", "splice", "<u2", (300, 484), False),
        ("SC_rgb_small_odd_big_endian.dcm", "verbatim", "|u1", (3, 3, 3), True),  # OW swaps bytes
        ("SC_ybr_full_422_uncompressed.dcm", "verbatim", "|u1", (100, 100, 3), True),  # subsampled
        ("liver_1frame.dcm", "verbatim", "|u1", (512, 512), False),  # 1 bit allocated
        ("image_dfl.dcm", "verbatim", "|u1", (512, 512), False),  # deflated
        ("examples_jpeg2k.dcm", "verbatim", "|u1", (480, 640, 3), True),
        ("J2K_pixelrep_mismatch.dcm", "verbatim", "<i2", (512, 512), False),
        ("MR_small_RLE.dcm", "verbatim", "<i2", (64, 64), False),
        ("examples_ybr_color.dcm", "verbatim", "|u1", (30, 240, 320, 3), True),  # multi-frame JPEG
    ],
)
def test_layout_and_shape(name, restore, dtype, shape, channels_last, check_image) -> None:
    path = PYDICOM_FILES / name
    image = read_dicom(path)
    check_image(image, path)
    assert image.source.restore == restore
    assert image.pixels.dtype.str == dtype
    assert image.pixels.shape == shape
    assert image.channels_last is channels_last


def test_encodings_give_the_same_values() -> None:
    little = read_dicom(PYDICOM_FILES / "MR_small.dcm").pixels
    for name in ("MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm"):
        np.testing.assert_array_equal(read_dicom(PYDICOM_FILES / name).pixels, little)


def test_ct_attributes() -> None:
    image = read_dicom(PYDICOM_FILES / "CT_small.dcm")
    assert image.modality == "CT"
    assert image.photometric == "MONOCHROME2"
    assert image.bits_stored == 16
    assert image.spacing == pytest.approx((0.661468, 0.661468))
    assert image.pixels.dtype == np.int16  # Pixel Representation 1; no rescale applied
    meta = image.metadata
    assert meta["transfer_syntax_uid"] == pydicom.uid.ExplicitVRLittleEndian
    assert meta["bits_allocated"] == 16 and meta["pixel_representation"] == 1
    assert meta["rescale_slope"] == 1.0 and meta["rescale_intercept"] == -1024.0


def test_metadata_never_identifies_the_patient() -> None:
    path = PYDICOM_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(path)
    dumped = json.dumps(dict(read_dicom(path).metadata))
    for value in (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID, ds.InstitutionName):
        assert value not in dumped


def test_palette_and_colour() -> None:
    palette = read_dicom(PYDICOM_FILES / "examples_palette.dcm")
    assert palette.photometric == "PALETTE COLOR"
    rgb = read_dicom(PYDICOM_FILES / "ExplVR_BigEnd.dcm")
    assert (rgb.photometric, rgb.samples_per_pixel, rgb.plane_shape) == ("RGB", 3, (60, 80))
    assert rgb.metadata["planar_configuration"] == 1
    # Decoders report the colour space they produce: JPEG 2000's RCT comes out RGB.
    assert read_dicom(PYDICOM_FILES / "examples_jpeg2k.dcm").photometric == "RGB"


def test_multiframe_spacing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "rtdose.dcm")
    ds.SpacingBetweenSlices = "2.5"
    path = tmp_path / "dose.dcm"
    ds.save_as(path)
    image = read_dicom(path)
    assert image.n_planes == 15
    assert image.spacing == pytest.approx((2.5, 10.0, 10.0))


def test_monochrome1(tmp_path: Path, check_image) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    image = read_dicom(path)
    check_image(image, path)
    assert image.photometric == "MONOCHROME1"
    np.testing.assert_array_equal(image.pixels, ds.pixel_array)


def test_preamble_less_file(tmp_path: Path, check_image) -> None:
    # A bare data set: no 128-byte preamble, no "DICM", no file meta group.
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small_implicit.dcm")
    ds.preamble = None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    path = tmp_path / "bare.dcm"
    ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    data = path.read_bytes()
    assert data[128:132] != b"DICM"
    assert sniff_dicom(data[:512])
    image = read_dicom(path)
    check_image(image, path)
    assert image.source.restore == "splice"
    np.testing.assert_array_equal(image.pixels, read_dicom(PYDICOM_FILES / "MR_small.dcm").pixels)


# --------------------------------------------------------------------------- damage


def damaged(tmp_path: Path, data: bytes, name: str = "damaged.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("seed", range(8))
def test_garbled_header_is_refused(tmp_path: Path, seed: int) -> None:
    data = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    garbage = np.random.default_rng(seed).integers(0, 256, 60, dtype=np.uint8).tobytes()
    path = damaged(tmp_path, data[:140] + garbage + data[200:])
    with pytest.raises(UnsupportedImageError, match="^" + str(path).replace("\\", "\\\\")):
        read_dicom(path)


@pytest.mark.parametrize("cut", [140, 300, 1000, 3000, 6000, 6299])
def test_file_truncated_in_the_header_is_refused(tmp_path: Path, cut: int) -> None:
    data = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    with pytest.raises(UnsupportedImageError):
        read_dicom(damaged(tmp_path, data[:cut]))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "rtdose.dcm", "examples_jpeg2k.dcm"])
def test_truncated_pixel_data_is_refused(tmp_path: Path, name: str) -> None:
    data = (PYDICOM_FILES / name).read_bytes()
    path = damaged(tmp_path, data[: len(data) * 3 // 4])
    with pytest.raises(UnsupportedImageError, match=r"truncated|decode"):
        read_dicom(path)


def test_last_trailing_byte_missing_is_refused(tmp_path: Path) -> None:
    # CT_small ends with a padding element after the pixels; cutting it is still damage.
    data = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    with pytest.raises(UnsupportedImageError, match="truncated"):
        read_dicom(damaged(tmp_path, data[:-1]))


def test_codestream_larger_than_the_data_set_says_is_refused(tmp_path: Path) -> None:
    # A flipped byte in a JPEG 2000 SIZ width once made openjpeg allocate ~68 GB.
    data = bytearray((PYDICOM_FILES / "examples_jpeg2k.dcm").read_bytes())
    siz = data.index(b"\xff\x4f\xff\x51")
    data[siz + 8 : siz + 12] = (11_862_656).to_bytes(4, "big")  # Xsiz
    with pytest.raises(UnsupportedImageError, match="frame 1 holds 480 x 11862656"):
        read_dicom(damaged(tmp_path, bytes(data)))


def test_jpeg_frame_header_is_checked(tmp_path: Path) -> None:
    data = bytearray((PYDICOM_FILES / "SC_rgb_jpeg_gdcm.dcm").read_bytes())
    sof = data.index(b"\xff\xc3")  # lossless SOF3
    data[sof + 5 : sof + 7] = (40_000).to_bytes(2, "big")  # frame height
    with pytest.raises(UnsupportedImageError, match="frame 1 holds 40000"):
        read_dicom(damaged(tmp_path, bytes(data)))


def test_no_pixel_data_is_refused() -> None:
    with pytest.raises(UnsupportedImageError, match="no pixel data"):
        read_dicom(PYDICOM_FILES / "rtplan.dcm")


def test_png_is_not_dicom(tmp_path: Path) -> None:
    path = damaged(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(600), "photo.dcm")
    with pytest.raises(UnsupportedImageError, match="not a DICOM file"):
        read_dicom(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="cannot be read"):
        read_dicom(tmp_path / "absent.dcm")


# --------------------------------------------------------------------------- sniff


@pytest.mark.parametrize("name", ["CT_small.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm"])
def test_sniff_accepts_dicom(name: str) -> None:
    assert sniff_dicom((PYDICOM_FILES / name).read_bytes()[:512])


def test_sniff_refuses_random_bytes() -> None:
    rng = np.random.default_rng(2024)
    heads = rng.integers(0, 256, (3000, 512), dtype=np.uint8)
    assert not any(sniff_dicom(head.tobytes()) for head in heads)


# --------------------------------------------------------------------------- write

RNG = np.random.default_rng(7)

WRITE_CASES = {
    "u16 12-bit": MedicalImage(RNG.integers(0, 4096, (32, 40), dtype=np.uint16), bits_stored=12),
    "i16 CT": MedicalImage(
        RNG.integers(-3000, 3000, (32, 40), dtype=np.int16),
        modality="CT",
        spacing=(0.5, 0.7),
        metadata={
            "rescale_slope": 1.0,
            "rescale_intercept": -1024.0,
            "window_center": [40.0, 400.0],
            "window_width": [400.0, 2000.0],
        },
    ),
    "i16 wider than bits stored": MedicalImage(RNG.integers(-(2**15), 2**15, (8, 9), dtype=np.int16), bits_stored=12),
    "u8 frames": MedicalImage(RNG.integers(0, 256, (5, 32, 40), dtype=np.uint8), spacing=(2.0, 0.5, 0.5)),
    "u16 frames": MedicalImage(RNG.integers(0, 65536, (3, 16, 20), dtype=np.uint16)),
    "rgb frames": MedicalImage(
        RNG.integers(0, 256, (3, 32, 40, 3), dtype=np.uint8),
        channels_last=True,
        photometric="RGB",
        samples_per_pixel=3,
    ),
    "planar rgb": MedicalImage(
        RNG.integers(0, 256, (3, 32, 40), dtype=np.uint8), photometric="RGB", samples_per_pixel=3
    ),
    "f32 frames": MedicalImage(RNG.random((4, 32, 40), dtype=np.float32)),
    "f64": MedicalImage(RNG.random((32, 40))),
    "i32": MedicalImage(RNG.integers(-(2**31), 2**31 - 1, (8, 9), dtype=np.int32)),
    "bool": MedicalImage(RNG.integers(0, 2, (8, 9)).astype(bool)),
    "big-endian monochrome1": MedicalImage(
        RNG.integers(-(2**15), 2**15, (8, 9), dtype=np.int16).astype(">i2"), photometric="MONOCHROME1"
    ),
    "palette": MedicalImage(
        RNG.integers(0, 256, (8, 9), dtype=np.uint8),
        photometric="PALETTE COLOR",
        metadata={"palette": list(range(256)) * 3},
    ),
}


@pytest.mark.parametrize("case", WRITE_CASES, ids=str)
def test_write_reads_back_equal(tmp_path: Path, case: str, check_image) -> None:
    image = WRITE_CASES[case]
    path = tmp_path / "out.dcm"
    write_dicom(image, path)
    expected = np.asarray(image.pixels)
    if expected.dtype == bool:
        expected = expected.astype(np.uint8)

    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.PatientName == "" and ds.PatientID == ""
    decoded = ds.pixel_array
    if image.samples_per_pixel > 1 and not image.channels_last:
        decoded = np.moveaxis(decoded, -1, -3)
    np.testing.assert_array_equal(decoded, expected)

    back = read_dicom(path)
    check_image(back, path)
    assert back.source.restore == "splice"
    np.testing.assert_array_equal(back.pixels, expected)
    assert back.photometric == image.photometric
    assert back.channels_last == image.channels_last
    if image.spacing:
        assert back.spacing == pytest.approx(image.spacing)
    for key in ("rescale_slope", "rescale_intercept", "window_center", "window_width"):
        if key in image.metadata:
            assert back.metadata[key] == image.metadata[key]


def test_write_uses_fresh_uids(tmp_path: Path) -> None:
    image = WRITE_CASES["u16 12-bit"]
    write_dicom(image, tmp_path / "a.dcm")
    write_dicom(image, tmp_path / "b.dcm")
    a, b = pydicom.dcmread(tmp_path / "a.dcm"), pydicom.dcmread(tmp_path / "b.dcm")
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SOPInstanceUID == a.file_meta.MediaStorageSOPInstanceUID


def test_write_keeps_bits_stored_only_when_values_fit(tmp_path: Path) -> None:
    write_dicom(WRITE_CASES["u16 12-bit"], tmp_path / "fits.dcm")
    write_dicom(WRITE_CASES["i16 wider than bits stored"], tmp_path / "wide.dcm")
    assert pydicom.dcmread(tmp_path / "fits.dcm").BitsStored == 12
    assert pydicom.dcmread(tmp_path / "wide.dcm").BitsStored == 16


def test_rewrite_of_a_read_image(tmp_path: Path) -> None:
    source = read_dicom(PYDICOM_FILES / "CT_small.dcm")
    write_dicom(source, tmp_path / "copy.dcm")
    copy = read_dicom(tmp_path / "copy.dcm")
    np.testing.assert_array_equal(copy.pixels, source.pixels)
    assert copy.modality == "CT" and copy.metadata["rescale_intercept"] == -1024.0


@pytest.mark.parametrize(
    "image",
    [
        MedicalImage(np.zeros((4, 4), dtype=np.int64)),
        MedicalImage(np.zeros((4, 4, 3), dtype=np.float32), channels_last=True, samples_per_pixel=3),
        MedicalImage(np.zeros((4, 4, 2), dtype=np.uint8), channels_last=True, samples_per_pixel=2),
    ],
    ids=["int64", "float colour", "two samples"],
)
def test_write_refuses_what_dicom_cannot_hold(tmp_path: Path, image: MedicalImage) -> None:
    with pytest.raises(ValueError):
        write_dicom(image, tmp_path / "x.dcm")
