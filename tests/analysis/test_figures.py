"""Tests for deepkedi.analysis.figures: each figure is a PNG of the expected size showing what it was given."""

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


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, Image.Image]]:
    """Every (matplotlib Figure, its PNG opened) the figure functions draw during the test.

    The figure holds what was plotted (image arrays, display ranges, histogram counts, bar
    heights, labels); the PNG is what a reader sees.
    """
    captured: list[tuple[object, Image.Image]] = []
    real = figures._png_bytes

    def record(figure, dpi: int) -> bytes:  # type: ignore[no-untyped-def]
        png = real(figure, dpi)
        captured.append((figure, _open(png)))
        return png

    monkeypatch.setattr(figures, "_png_bytes", record)
    return captured


def _image_axes(figure) -> list:  # type: ignore[no-untyped-def]
    return [axes for axes in figure.axes if axes.images]


def _shown(axes) -> tuple[np.ndarray, tuple[float, float], str]:  # type: ignore[no-untyped-def]
    """The array an axes shows, its display range (vmin, vmax) and its title."""
    image = axes.images[0]
    return np.asarray(image.get_array()), tuple(float(v) for v in image.get_clim()), axes.get_title()


def _pixels_of(figure, picture: Image.Image, axes) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The RGB pixels of the PNG inside the image an axes shows, a 2-pixel margin trimmed off."""
    scale = picture.width / figure.bbox.width
    box = axes.images[0].get_window_extent()
    rgb = np.asarray(picture.convert("RGB"))
    height = rgb.shape[0]
    left, right = int(np.ceil(box.x0 * scale)) + 2, int(np.floor(box.x1 * scale)) - 2
    top, bottom = height - int(np.floor(box.y1 * scale)) + 2, height - int(np.ceil(box.y0 * scale)) - 2
    assert right - left > 10 and bottom - top > 10, box
    return rgb[top:bottom, left:right]


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


def test_images_with_histograms_takes_float_and_mixed_shapes(drawn: list) -> None:
    plain = np.linspace(0.0, 255.0, 16 * 48).reshape(16, 48)
    key = np.random.default_rng(0).integers(0, 256, (40, 20), dtype=np.uint8)
    images_with_histograms([("plain", plain), ("key", key)], bits=8, title="mixed", stretch=[True, False])
    [(figure, picture)] = drawn
    # Two panels of 2.6 in, images over histograms: 2·2.6 in by 2·2.6 + 0.5 in at 100 dpi.
    assert picture.size == (520, 570)
    assert figure.get_suptitle() == "mixed"
    shown = [_shown(axes) for axes in _image_axes(figure)]
    assert [title for _, _, title in shown] == ["plain", "key"]
    assert np.array_equal(shown[0][0], plain) and np.array_equal(shown[1][0], key)
    # The plain image is stretched to its 1st-99th percentile; the key spans 0 … 2^8 − 1.
    assert shown[0][1] == pytest.approx(tuple(np.percentile(plain, [1, 99])))
    assert shown[1][1] == (0.0, 255.0)
    histograms = [axes for axes in figure.axes if not axes.images]
    assert len(histograms) == 2
    for axes, image in zip(histograms, (plain, key), strict=True):
        [stairs] = axes.patches
        counts, edges, _ = stairs.get_data()
        expected, expected_edges = np.histogram(image, bins=256, range=(0.0, 256.0))
        assert np.array_equal(counts, expected) and np.array_equal(edges, expected_edges)
        assert counts.sum() == image.size
        assert axes.get_xlim() == (0.0, 256.0) and axes.get_xlabel() == "grey level (8-bit range)"
    assert histograms[0].get_ylabel() == "count" and histograms[1].get_ylabel() == ""


def test_histograms_span_the_range_the_data_use(drawn: list) -> None:
    """A 12-bit CT in 16-bit words spans 0 … 4096, not squashed into 0 … 65536; a 16-bit key keeps 0 … 65536."""
    rng = np.random.default_rng(5)
    ct = rng.integers(0, 2192, (40, 40), dtype=np.uint16)  # CT_small.dcm's values: 0 … 2191
    key = rng.integers(0, 2**16, (40, 40), dtype=np.uint16)
    dark = rng.integers(0, 200, (40, 40), dtype=np.uint16)  # values under 256: still an 8-bit axis
    images_with_histograms([("CT", ct), ("key", key), ("dark", dark)], bits=16, title="t")
    [(figure, _)] = drawn
    histograms = [axes for axes in figure.axes if not axes.images]
    assert [axes.get_xlim() for axes in histograms] == [(0.0, 4096.0), (0.0, 65536.0), (0.0, 256.0)]
    assert [axes.get_xlabel() for axes in histograms] == [
        "grey level (12-bit range)",
        "grey level (16-bit range)",
        "grey level (8-bit range)",
    ]
    for axes, image in zip(histograms, (ct, key, dark), strict=True):
        [stairs] = axes.patches
        counts, edges, _ = stairs.get_data()
        assert counts.sum() == image.size and len(counts) == figures.HISTOGRAM_BINS
        assert (edges[0], edges[-1]) == axes.get_xlim()
    assert histograms[0].patches[0].get_data()[0].astype(bool).sum() > 100  # the CT fills its axis, not 1/16 of it


def test_histogram_range() -> None:
    assert figures.histogram_range(np.array([[0, 2191]], np.uint16), bits=16) == (0.0, 4096.0)
    assert figures.histogram_range(np.array([[0, 4095]], np.uint16), bits=16) == (0.0, 4096.0)
    assert figures.histogram_range(np.array([[0, 4096]], np.uint16), bits=16) == (0.0, 8192.0)
    assert figures.histogram_range(np.array([[0, 65535]], np.uint16), bits=16) == (0.0, 65536.0)
    assert figures.histogram_range(np.array([[3, 9]], np.uint8), bits=8) == (0.0, 256.0)
    assert figures.histogram_range(np.array([[-2000, 1896]], np.int16), bits=16) == (-2048.0, 2048.0)
    assert figures.histogram_range(np.array([[0.0, 255.0]]), bits=8) == (0.0, 256.0)
    assert figures.histogram_range(np.array([[0, 70000]], np.uint32), bits=16) == (0.0, 65536.0)  # capped at bits


def test_a_towering_bin_is_cut_and_labelled(drawn: list) -> None:
    """A black background in one bin would flatten the rest: the axis stops above the next bin and says so."""
    image = np.zeros((50, 50), np.uint8)
    image[:10] = np.arange(100, 150, dtype=np.uint8)  # 500 pixels over 50 levels: 10 a level
    images_with_histograms([("mostly black", image)], bits=8, title="t")
    [(figure, _)] = drawn
    [axes] = [axes for axes in figure.axes if not axes.images]
    assert axes.get_ylim() == (0.0, 12.5)  # 1.25 × the second-tallest bin (10), not 2000
    [label] = axes.texts
    assert label.get_text() == "2,000 (80%) ↑"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("count, columns", [(1, 3), (5, 2), (6, 6)])
def test_image_grid_layout(dtype: type, count: int, columns: int) -> None:
    picture = _open(image_grid(_images(dtype, shape=(20, 33), count=count), columns=columns, title="Fig. 10"))
    rows = -(-count // min(columns, count))
    assert picture.height >= 150 * rows
    assert picture.width >= 150 * min(columns, count)


def test_constant_and_float_images_are_drawn(drawn: list) -> None:
    flat = np.zeros((10, 10), dtype=np.uint16)
    unit = np.random.default_rng(2).random((12, 9))
    ones = np.ones((5, 5))
    image_grid([("flat", flat), ("unit", unit), ("flat float", ones)], columns=3, title="x", stretch=True)
    pipeline_strip([("flat", flat), ("unit", unit)], title="y")
    (grid, grid_png), (strip, strip_png) = drawn
    assert grid_png.size == (780, 320) and strip_png.size == (520, 320)  # 2.6 in a panel, + 0.6 in for the title
    assert [figure.get_suptitle() for figure, _ in drawn] == ["x", "y"]

    shown = [_shown(axes) for axes in _image_axes(grid)]
    assert [title for _, _, title in shown] == ["flat", "unit", "flat float"]
    for (array, _, _), image in zip(shown, (flat, unit, ones), strict=True):
        assert np.array_equal(array, image)
    # A constant image still gets a non-empty range (vmin < vmax), so it is drawn, not dropped.
    assert shown[0][1] == (0.0, 1.0) and shown[2][1] == (1.0, 2.0)
    assert shown[1][1] == pytest.approx(tuple(np.percentile(unit, [1, 99])))
    # Unstretched, an integer image spans its dtype and a float one its own extremes.
    strip_shown = [_shown(axes) for axes in _image_axes(strip)]
    assert strip_shown[0][1] == (0.0, 65535.0)
    assert strip_shown[1][1] == pytest.approx((unit.min(), unit.max()))

    # In the picture: the flat panels are one uniform grey, black at the bottom of their
    # range; the random one shows many distinct greys. The panels differ.
    axes = _image_axes(grid)
    flat_pixels, unit_pixels, ones_pixels = (_pixels_of(grid, grid_png, a) for a in axes)
    assert np.all(flat_pixels == 0) and np.all(ones_pixels == 0)
    assert len(np.unique(unit_pixels.reshape(-1, 3), axis=0)) >= 0.5 * unit.size
    assert np.all(unit_pixels[..., 0] == unit_pixels[..., 2])  # grey, no colour map


@pytest.mark.parametrize(
    "call",
    [
        lambda p: pipeline_strip(p, title="t"),
        lambda p: images_with_histograms(p, bits=8, title="t"),
        lambda p: image_grid(p, columns=2, title="t"),
    ],
)
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


def test_bar_chart(drawn: list) -> None:
    groups = ["brain MR", "lung CT", "liver CT"]
    series = {"paper": [7.1, 7.0, float("nan")], "aead": [7.99, 7.99, 7.99]}
    picture = _open(
        bar_chart(
            groups, series, ylabel="entropy (bits)", title="entropy", reference=7.9986, reference_label="paper, Table 3"
        )
    )
    assert 300 <= picture.width <= 2000 and 200 <= picture.height <= 1000
    _open(bar_chart(["one"], {"only": [1.0]}, ylabel="y", title="t"))
    (figure, _), (single, _) = drawn
    [axes] = figure.axes
    assert figure.get_suptitle() == "entropy" and axes.get_ylabel() == "entropy (bits)"
    assert [label.get_text() for label in axes.get_xticklabels()] == groups
    # One bar per group and series, of the series' value (NaN a gap), the series side by side in each group.
    bars = {container.get_label(): container.patches for container in axes.containers}
    assert list(bars) == list(series)
    for name, values in series.items():
        np.testing.assert_array_equal([bar.get_height() for bar in bars[name]], values)
    for paper_bar, aead_bar, centre in zip(bars["paper"], bars["aead"], range(len(groups)), strict=True):
        assert paper_bar.get_x() < aead_bar.get_x()
        assert paper_bar.get_x() < centre < aead_bar.get_x() + aead_bar.get_width()
    [line] = axes.get_lines()
    assert set(line.get_ydata()) == {7.9986} and line.get_linestyle() == "--"
    assert sorted(text.get_text() for text in axes.get_legend().get_texts()) == ["aead", "paper", "paper, Table 3"]
    # The legend sits below the axes (under the group labels), so it hides no bar.
    assert axes.get_legend().get_window_extent().y1 <= axes.get_window_extent().y0
    assert [bar.get_height() for bar in single.axes[0].containers[0].patches] == [1.0]
    assert single.axes[0].get_lines() == []  # no reference, no line
    with pytest.raises(ValueError):
        bar_chart(groups, {"short": [1.0]}, ylabel="y", title="t")
    with pytest.raises(ValueError):
        bar_chart([], {}, ylabel="y", title="t")


def test_bar_chart_reference_per_group(drawn: list) -> None:
    """One reference per group (the entropy expected of random words at that group's size), across its bars."""
    groups = ["brain, CT", "lung, CT", "liver, MR", "eye, OP", "head, MR"]
    series = {name: [13.8, 13.7, 15.8, 7.99, 11.9] for name in ("paper", "hybrid", "xor-fixed-key")}
    bar_chart(
        groups, series, ylabel="bits", title="t", reference=[13.8, 13.8, 15.8, 7.997, 11.94], reference_label="random"
    )
    [(figure, _)] = drawn
    [axes] = figure.axes
    [lines] = axes.collections
    segments = lines.get_segments()
    assert [segment[0][1] for segment in segments] == [13.8, 13.8, 15.8, 7.997, 11.94]
    for centre, segment in enumerate(segments):
        (x0, _), (x1, _) = segment
        assert x0 < centre < x1 and x1 - x0 < 1.0  # across that group's bars only
    assert "random" in [text.get_text() for text in axes.get_legend().get_texts()]
    assert axes.get_legend().get_window_extent().y1 <= axes.get_window_extent().y0
    with pytest.raises(ValueError, match="reference"):
        bar_chart(groups, series, ylabel="bits", title="t", reference=[1.0, 2.0])


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
