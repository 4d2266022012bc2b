"""Tests for deepkedi.analysis.figures: every figure is a PNG of a plausible size, from 8- and 16-bit arrays."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from deepkedi.analysis import figures
from deepkedi.analysis.figures import (
    attack_matrix_figure,
    bar_chart,
    image_grid,
    images_with_histograms,
    pipeline_strip,
    png_data_uri,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _open(png: bytes) -> Image.Image:
    assert isinstance(png, bytes)
    assert png.startswith(PNG_SIGNATURE)
    picture = Image.open(io.BytesIO(png))
    picture.load()
    assert picture.format == "PNG"
    return picture


def _images(dtype: type, shape: tuple[int, int] = (24, 40), count: int = 3) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    top = np.iinfo(dtype).max
    return [(f"panel {i}", rng.integers(0, top, shape, dtype=dtype, endpoint=True)) for i in range(count)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pipeline_strip_is_a_wide_png(dtype: type) -> None:
    panels = _images(dtype, count=5)
    picture = _open(pipeline_strip(panels, title="Fig. 6", stretch=[True, True, False, True, True]))
    assert picture.width > picture.height
    assert 300 <= picture.width <= 3000 and 100 <= picture.height <= 1000


@pytest.mark.parametrize("dtype, bits", [(np.uint8, 8), (np.uint16, 16), (np.uint16, 12)])
def test_images_with_histograms(dtype: type, bits: int) -> None:
    panels = _images(dtype, shape=(30, 17))
    picture = _open(images_with_histograms(panels, bits=bits, title="Fig. 8"))
    assert 300 <= picture.width <= 3000 and 200 <= picture.height <= 1500


def test_images_with_histograms_takes_float_and_mixed_shapes() -> None:
    plain = np.linspace(0.0, 255.0, 16 * 48).reshape(16, 48)
    key = np.random.default_rng(0).integers(0, 256, (40, 20), dtype=np.uint8)
    _open(images_with_histograms([("plain", plain), ("key", key)], bits=8, title="mixed", stretch=[True, False]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("count, columns", [(1, 3), (5, 2), (6, 6)])
def test_image_grid_layout(dtype: type, count: int, columns: int) -> None:
    picture = _open(image_grid(_images(dtype, shape=(20, 33), count=count), columns=columns, title="Fig. 10"))
    rows = -(-count // min(columns, count))
    assert picture.height >= 150 * rows
    assert picture.width >= 150 * min(columns, count)


def test_constant_and_float_images_are_drawn() -> None:
    flat = np.zeros((10, 10), dtype=np.uint16)
    unit = np.random.default_rng(2).random((12, 9))
    _open(image_grid([("flat", flat), ("unit", unit), ("flat float", np.ones((5, 5)))], columns=3, title="x",
                     stretch=True))
    _open(pipeline_strip([("flat", flat), ("unit", unit)], title="x"))


@pytest.mark.parametrize("call", [
    lambda p: pipeline_strip(p, title="t"),
    lambda p: images_with_histograms(p, bits=8, title="t"),
    lambda p: image_grid(p, columns=2, title="t"),
])
def test_empty_or_malformed_panels_are_rejected(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call([])
    with pytest.raises(ValueError):
        call([("volume", np.zeros((2, 3, 4), dtype=np.uint8))])
    with pytest.raises(ValueError):
        call([("empty", np.zeros((0, 4), dtype=np.uint8))])


def test_bad_options_are_rejected() -> None:
    panels = _images(np.uint8, count=2)
    with pytest.raises(ValueError):
        image_grid(panels, columns=0, title="t")
    with pytest.raises(ValueError):
        pipeline_strip(panels, title="t", stretch=[True])
    with pytest.raises(ValueError):
        images_with_histograms(panels, bits=0, title="t")


def test_display_range() -> None:
    image = np.arange(1000, dtype=np.uint16).reshape(25, 40)
    assert figures._display_range(image, stretch=False, bits=None) == (0.0, 65535.0)
    assert figures._display_range(image, stretch=False, bits=12) == (0.0, 4095.0)
    lo, hi = figures._display_range(image, stretch=True, bits=None)
    assert lo == pytest.approx(9.99) and hi == pytest.approx(989.01)
    assert figures._display_range(np.zeros((4, 4), np.uint8), stretch=True, bits=None) == (0.0, 1.0)


def test_attack_matrix_with_missing_cells() -> None:
    schemes = ["paper", "paper+diffusion", "aead"]
    attacks = ["known plaintext", "chosen plaintext", "key reuse", "differential"]
    verdicts = {
        ("paper", "known plaintext"): "broken",
        ("paper", "chosen plaintext"): "broken",
        ("aead", "known plaintext"): "resisted",
        ("aead", "differential"): "resisted",
        ("paper+diffusion", "key reuse"): "inconclusive",
        ("not a scheme", "key reuse"): "broken",
    }
    picture = _open(attack_matrix_figure(schemes, attacks, verdicts, title="attack suite"))
    assert 200 <= picture.width <= 2000 and 100 <= picture.height <= 1500
    rgb = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(int)
    # Both verdict colours appear: a reddish and a greenish cell.
    assert np.any((rgb[:, 0] > 230) & (rgb[:, 1] < 210) & (rgb[:, 2] < 210))
    assert np.any((rgb[:, 1] > 220) & (rgb[:, 0] < 215) & (rgb[:, 2] < 215))
    _open(attack_matrix_figure(["a"], ["b"], {}, title="nothing run"))
    with pytest.raises(ValueError):
        attack_matrix_figure([], attacks, verdicts, title="t")


def test_bar_chart() -> None:
    groups = ["brain MR", "lung CT", "liver CT"]
    series = {"paper": [7.1, 7.0, float("nan")], "aead": [7.99, 7.99, 7.99]}
    picture = _open(bar_chart(groups, series, ylabel="entropy (bits)", title="entropy", reference=7.9986,
                              reference_label="paper, Table 3"))
    assert 300 <= picture.width <= 2000 and 200 <= picture.height <= 1000
    _open(bar_chart(["one"], {"only": [1.0]}, ylabel="y", title="t"))
    with pytest.raises(ValueError):
        bar_chart(groups, {"short": [1.0]}, ylabel="y", title="t")
    with pytest.raises(ValueError):
        bar_chart([], {}, ylabel="y", title="t")


def test_png_data_uri_round_trips() -> None:
    png = image_grid(_images(np.uint8, count=1), columns=1, title="t")
    uri = png_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png
    with pytest.raises(ValueError):
        png_data_uri(b"GIF89a")


def test_dpi_scales_the_picture() -> None:
    panels = _images(np.uint8, count=2)
    small = _open(image_grid(panels, columns=2, title="t", dpi=50))
    large = _open(image_grid(panels, columns=2, title="t", dpi=100))
    assert large.width == pytest.approx(2 * small.width, abs=2)
