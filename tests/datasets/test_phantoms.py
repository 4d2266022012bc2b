"""Synthetic phantoms: clinical sizes and units, determinism, shapes, volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepkedi.datasets import PHANTOM_KINDS, phantom, phantom_volume
from deepkedi.imaging import MedicalImage

# kind -> (shape, dtype, bits_stored, DICOM modality, value range)
CLINICAL = {
    ("brain", "CT"): ((512, 512), np.int16, 16, "CT", (-1024, 3071)),
    ("brain", "MR"): ((256, 256), np.uint16, 12, "MR", (0, 4095)),
    ("lung", "CT"): ((512, 512), np.int16, 16, "CT", (-1024, 3071)),
    ("lung", "MR"): ((256, 256), np.uint16, 12, "MR", (0, 4095)),
    ("lung", "CXR"): ((2048, 2048), np.uint16, 12, "DX", (0, 4095)),
    ("liver", "CT"): ((512, 512), np.int16, 16, "CT", (-1024, 3071)),
    ("liver", "MR"): ((256, 256), np.uint16, 12, "MR", (0, 4095)),
}
SMALL = (48, 64)


@pytest.fixture(scope="module")
def clinical() -> dict[tuple[str, str], MedicalImage]:
    """Every kind once at its clinical size (the CXR is the slowest, about half a second)."""
    return {kind: phantom(*kind, seed=0) for kind in PHANTOM_KINDS}


def _fraction(pixels: np.ndarray, lo: float, hi: float) -> float:
    return float(((pixels >= lo) & (pixels <= hi)).mean())


def _foreground(image: MedicalImage) -> np.ndarray:
    """The patient, not the air around it."""
    threshold = {"CT": -500, "MR": 300, "DX": 600}[image.modality]
    return image.pixels > threshold


def test_kinds_are_the_papers_datasets() -> None:
    assert set(PHANTOM_KINDS) == set(CLINICAL)
    assert len(PHANTOM_KINDS) == len(set(PHANTOM_KINDS)) == 7


@pytest.mark.parametrize("kind", PHANTOM_KINDS, ids="-".join)
def test_clinical_size_dtype_and_tags(clinical: dict, kind: tuple[str, str]) -> None:
    image = clinical[kind]
    shape, dtype, bits, modality, (lo, hi) = CLINICAL[kind]
    assert isinstance(image, MedicalImage)
    assert image.pixels.shape == shape and image.pixels.dtype == dtype
    assert image.bits_stored == bits and image.modality == modality
    assert image.format == "array" and image.photometric == "MONOCHROME2" and image.source is None
    assert image.samples_per_pixel == 1 and not image.channels_last
    assert lo <= image.pixels.min() and image.pixels.max() <= hi
    assert image.pixels.max() < 2**bits if not np.issubdtype(dtype, np.signedinteger) else True
    assert len(image.spacing) == 2 and image.spacing[0] == image.spacing[1] > 0
    meta = image.metadata
    assert meta["organ"] == kind[0] and meta["phantom"] is True and meta["seed"] == 0
    json.dumps(dict(meta))  # metadata must be JSON-serialisable


def test_ct_spacing_is_clinical(clinical: dict) -> None:
    assert clinical[("lung", "CT")].spacing[0] == pytest.approx(0.7)
    assert clinical[("liver", "CT")].spacing[0] == pytest.approx(0.7)
    assert 0.4 <= clinical[("brain", "CT")].spacing[0] <= 0.7  # a head needs a smaller field of view


def test_ct_is_in_hounsfield_units(clinical: dict) -> None:
    for kind in (("brain", "CT"), ("lung", "CT"), ("liver", "CT")):
        px = clinical[kind].pixels
        corner = px[:32, :32]
        assert abs(float(np.median(corner)) + 1000) < 15, "air is -1000 HU"
        assert _fraction(px, 300, 3071) > 0.002, "some bone"
        assert _fraction(px, -1024, -900) > 0.2, "air around the patient"
    brain = clinical[("brain", "CT")].pixels
    assert _fraction(brain, 15, 50) > 0.25, "grey and white matter"
    assert _fraction(brain, -10, 12) > 0.005, "CSF in the ventricles and sulci"
    lung = clinical[("lung", "CT")].pixels
    assert _fraction(lung, -920, -740) > 0.12, "lung parenchyma"
    assert _fraction(lung, -150, -60) > 0.01, "fat"
    liver = clinical[("liver", "CT")].pixels
    assert _fraction(liver, 48, 75) > 0.08, "liver"
    assert _fraction(liver, -150, -60) > 0.05, "fat"


def test_mr_has_a_rician_background(clinical: dict) -> None:
    for kind in (("brain", "MR"), ("lung", "MR"), ("liver", "MR")):
        px = clinical[kind].pixels.astype(np.float64)
        corner = px[:24, :24]
        # magnitude noise of pure noise: Rayleigh, positive, mean about 1.25 sigma
        assert corner.min() >= 0 and 10 < corner.mean() < 120
        assert px.max() > 2000


def test_brain_mr_is_t1_weighted(clinical: dict) -> None:
    px = clinical[("brain", "MR")].pixels
    assert _fraction(px, 2050, 2500) > 0.15, "white matter, brighter than grey"
    assert _fraction(px, 1250, 1700) > 0.03, "grey matter"


def test_cxr_is_a_projection(clinical: dict) -> None:
    image = clinical[("lung", "CXR")]
    px = image.pixels.astype(np.float64)
    assert image.metadata["view"] == "PA"
    assert np.median(px[:64, :64]) < 400, "direct exposure above the shoulders is dark"
    rows, cols = px.shape
    right_lung = px[int(rows * 0.35) : int(rows * 0.5), int(cols * 0.25) : int(cols * 0.35)]
    heart = px[int(rows * 0.62) : int(rows * 0.68), int(cols * 0.5) : int(cols * 0.6)]
    abdomen = px[int(rows * 0.85) : int(rows * 0.9), int(cols * 0.35) : int(cols * 0.45)]
    assert np.median(right_lung) + 600 < np.median(heart), "lungs are darker than the heart"
    assert np.median(right_lung) + 600 < np.median(abdomen)


@pytest.mark.parametrize("kind", PHANTOM_KINDS, ids="-".join)
def test_same_seed_same_image(kind: tuple[str, str]) -> None:
    a = phantom(*kind, seed=11, shape=SMALL).pixels
    b = phantom(*kind, seed=11, shape=SMALL).pixels
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", PHANTOM_KINDS, ids="-".join)
def test_other_seeds_change_the_anatomy(kind: tuple[str, str]) -> None:
    shape = (128, 128)
    masks = [_foreground(phantom(*kind, seed=seed, shape=shape)) for seed in (0, 1, 2)]
    # not just new noise: the patient's outline and organs move
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (masks[a] != masks[b]).mean() > 0.005


@pytest.mark.parametrize("kind", PHANTOM_KINDS, ids="-".join)
@pytest.mark.parametrize("shape", [(32, 32), (48, 80), (80, 48)])
def test_any_shape_from_32(kind: tuple[str, str], shape: tuple[int, int]) -> None:
    image = phantom(*kind, seed=3, shape=shape)
    dtype, (lo, hi) = CLINICAL[kind][1], CLINICAL[kind][4]
    assert image.pixels.shape == shape and image.pixels.dtype == dtype
    assert lo <= image.pixels.min() and image.pixels.max() <= hi
    assert _foreground(image).mean() > 0.1, "the anatomy is still there"


def test_a_larger_matrix_keeps_the_field_of_view() -> None:
    small = phantom("liver", "CT", shape=(64, 96))
    large = phantom("liver", "CT", shape=(128, 192))
    assert small.spacing[0] * 64 == pytest.approx(large.spacing[0] * 128)
    assert small.spacing[0] == pytest.approx(2 * large.spacing[0])
    # the patient covers the same share of a non-square image at either size
    assert _foreground(small).mean() == pytest.approx(_foreground(large).mean(), abs=0.02)


def test_large_images_are_cheap() -> None:
    # a per-pixel Python loop would take minutes here; vectorised code takes a fraction of a second
    image = phantom("brain", "CT", shape=(1024, 1024))
    assert image.pixels.shape == (1024, 1024)
    assert image.pixels.nbytes == 1024 * 1024 * 2


@pytest.mark.parametrize("kind", [k for k in PHANTOM_KINDS if k[1] != "CXR"], ids="-".join)
def test_volume(kind: tuple[str, str]) -> None:
    vol = phantom_volume(*kind, slices=5, seed=4, shape=(40, 56))
    assert vol.pixels.shape == (5, 40, 56) and vol.pixels.dtype == CLINICAL[kind][1]
    assert vol.n_planes == 5 and len(vol.spacing) == 3 and vol.spacing[0] > 0
    assert vol.modality == CLINICAL[kind][3] and vol.bits_stored == CLINICAL[kind][2]
    levels = vol.metadata["slice_z"]
    assert len(levels) == 5 and levels == sorted(levels)
    assert np.array_equal(vol.pixels, phantom_volume(*kind, slices=5, seed=4, shape=(40, 56)).pixels)


def test_volume_anatomy_varies_smoothly() -> None:
    # enough slices to span the head from the basal ganglia to the vertex
    vol = phantom_volume("brain", "CT", slices=40, seed=0, shape=(96, 96))
    masks = vol.pixels > -200  # head, not the air around it
    near = np.mean([(masks[i] != masks[i + 1]).mean() for i in range(39)])
    far = (masks[0] != masks[-1]).mean()
    assert far > 0.03, "the anatomy changes through the stack"
    assert near < far / 4, "neighbouring slices are alike"


def test_volume_spacing_follows_the_slice_thickness() -> None:
    vol = phantom_volume("lung", "CT", slices=3, shape=(64, 64))
    assert vol.spacing[0] == pytest.approx(1.25)
    assert vol.spacing[1:] == pytest.approx((358.4 / 64,) * 2)


def test_a_radiograph_has_no_volume() -> None:
    with pytest.raises(ValueError, match="projection"):
        phantom_volume("lung", "CXR", slices=3)


def test_names_are_forgiving_about_case_and_mri() -> None:
    a = phantom("Brain", "mri", shape=SMALL)
    b = phantom("brain", "MR", shape=SMALL)
    assert np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("heart", "CT"), {}, ValueError, "brain/CT"),
        (("liver", "CXR"), {}, ValueError, "choose one of"),
        (("brain", "CT"), {"shape": (31, 64)}, ValueError, "at least 32"),
        (("brain", "CT"), {"shape": (64,)}, TypeError, "two integers"),
        (("brain", "CT"), {"shape": (64.5, 64)}, TypeError, "two integers"),
        (("brain", "CT"), {"seed": -1}, ValueError, "non-negative"),
        (("brain", "CT"), {"seed": 1.5}, ValueError, "non-negative"),
        ((3, "CT"), {}, TypeError, "strings"),
    ],
)
def test_bad_arguments(args: tuple, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        phantom(*args, **kwargs)


@pytest.mark.parametrize("slices", [0, -2, 2.5, True])
def test_bad_slice_counts(slices: object) -> None:
    with pytest.raises(ValueError, match="slices"):
        phantom_volume("brain", "MR", slices=slices, shape=SMALL)  # type: ignore[arg-type]
