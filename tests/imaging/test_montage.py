"""Tests for deepkedi.imaging.montage: tiles hold the planes they were given, captions sit beneath."""

from __future__ import annotations

import numpy as np
import pytest

from deepkedi.imaging.montage import MARGIN, display_plane, montage

WHITE = 255
LINE = 14 + 6  # one caption line at the default font size


def _canvas(panels: list[tuple[str, np.ndarray]], *, tile: int, columns: int) -> np.ndarray:
    picture = montage(panels, tile=tile, columns=columns)
    assert picture.mode == "RGB"
    return np.asarray(picture)


def test_the_canvas_has_room_for_every_tile_and_caption() -> None:
    plane = np.zeros((8, 8), dtype=np.uint8)
    # 8 px margins, tiles of `tile` px and a caption band of font size + 6 px a line under each.
    assert MARGIN == 8
    assert montage([("a", plane)] * 5, tile=32, columns=2).size == (2 * 40 + 8, 3 * (32 + LINE + 8) + 8)
    assert montage([("a", plane)] * 3, tile=20, columns=8).size == (3 * 28 + 8, 20 + LINE + 16)
    # Two-line captions double the band; a smaller font narrows it.
    assert montage([("a\nb", plane)] * 2, tile=20, columns=2).size == (2 * 28 + 8, 20 + 2 * LINE + 16)
    assert montage([("a", plane)], tile=20, columns=1, font_size=10).size == (28 + 8, 20 + 16 + 16)


def test_a_title_adds_a_band_above_the_tiles() -> None:
    plane = np.zeros((8, 8), dtype=np.uint8)
    plain = np.asarray(montage([("", plane)], tile=64, columns=1))
    titled = np.asarray(montage([("", plane)], tile=64, columns=1, title="all 1 samples"))
    band = round(1.25 * 14) + MARGIN
    assert titled.shape[0] == plain.shape[0] + band
    assert np.any(titled[:band] < 128)  # the title is drawn
    assert np.array_equal(titled[band:], plain)  # and the tiles move down under it unchanged


def test_groups_keep_together_in_a_row_with_a_wider_gap_between() -> None:
    panels = [(str(value), np.full((4, 4), value, dtype=np.uint8)) for value in (10, 60, 110, 160)]
    canvas = np.asarray(montage(panels, tile=16, columns=4, group=2))
    gap = 2 * MARGIN
    assert canvas.shape[1] == 4 * (16 + MARGIN) + MARGIN + gap
    for index, (_, plane) in enumerate(panels):
        x = MARGIN + index * (16 + MARGIN) + (index // 2) * gap
        assert np.all(canvas[MARGIN : MARGIN + 16, x : x + 16] == plane[0, 0]), index
    assert np.all(canvas[MARGIN : MARGIN + 16, 2 * (16 + MARGIN) : 2 * (16 + MARGIN) + gap] == WHITE)
    with pytest.raises(ValueError, match="group"):
        montage(panels, group=0)


def test_a_tile_is_its_plane_scaled_and_centred() -> None:
    plane = np.arange(1, 33, dtype=np.uint8).reshape(4, 8) * 7  # 32 distinct greys, none white
    canvas = _canvas([("", plane)], tile=32, columns=1)
    # Scaled by 4 (nearest neighbour) to 16 × 32, centred vertically in the 32 px tile at (8, 8).
    tile = canvas[8 + 8 : 8 + 8 + 16, 8 : 8 + 32]
    expected = np.kron(plane, np.ones((4, 4), dtype=np.uint8))
    for channel in range(3):
        assert np.array_equal(tile[..., channel], expected)
    # Above and below the plane inside the tile, and the empty caption band: white.
    assert np.all(canvas[8:16, 8:40] == WHITE) and np.all(canvas[32 : 40 + 16, 8:40] == WHITE)


def test_tiles_follow_the_panel_order_row_by_row() -> None:
    panels = [(str(value), np.full((4, 4), value, dtype=np.uint8)) for value in (10, 60, 110, 160)]
    canvas = _canvas(panels, tile=16, columns=3)
    for index, (_, plane) in enumerate(panels):
        x = 8 + (index % 3) * (16 + 8)
        y = 8 + (index // 3) * (16 + LINE + 8)
        assert np.all(canvas[y : y + 16, x : x + 16] == plane[0, 0]), index


def test_colour_planes_keep_their_colours() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0], rgb[0, :, 1], rgb[:, 1, 2] = 200, 100, 50
    canvas = _canvas([("rgb", rgb)], tile=8, columns=1)
    assert np.array_equal(canvas[8:16, 8:16], np.kron(rgb, np.ones((4, 4, 1), dtype=np.uint8)))


def test_captions_are_drawn_beneath_and_cut_at_the_tile_width() -> None:
    plane = np.zeros((4, 4), dtype=np.uint8)
    band = (slice(8 + 32, 8 + 32 + LINE), slice(0, None))
    captioned = _canvas([("key A", plane)], tile=32, columns=1)
    blank = _canvas([("", plane)], tile=32, columns=1)
    assert np.any(captioned[band] < 128) and np.all(blank[band] == WHITE)
    assert np.array_equal(captioned[:40], blank[:40])  # the caption stays out of the tile
    # A caption wider than its tile is cut with an ellipsis and never runs into the next tile.
    long = "pydicom-J2K_pixelrep_mismatch.dcm, brain CT"
    pair = _canvas([(long, plane), ("", plane)], tile=64, columns=2)
    assert np.any(pair[8 + 64 : 8 + 64 + LINE, 8 : 8 + 64] < 128)
    assert np.all(pair[8 + 64 : 8 + 64 + LINE, 8 + 64 :] == WHITE)
    assert np.array_equal(
        _canvas([(long, plane)], tile=64, columns=1), _canvas([(long + " and more", plane)], tile=64, columns=1)
    )


def test_montage_needs_a_panel() -> None:
    with pytest.raises(ValueError, match="at least one panel"):
        montage([])


def test_display_plane_stretches_to_the_1st_and_99th_percentile() -> None:
    ramp = np.arange(10_000, dtype=np.uint16).reshape(100, 100) * 3
    shown = display_plane(ramp)
    assert shown.dtype == np.uint8 and shown.shape == ramp.shape
    lo, hi = np.percentile(ramp, [1, 99])
    assert np.all(shown[ramp <= lo] == 0) and np.all(shown[ramp >= hi] == 255)
    inside = (ramp > lo) & (ramp < hi)
    expected = ((ramp[inside] - lo) / (hi - lo) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(shown[inside], expected)
    assert np.all(np.diff(shown.ravel().astype(int)) >= 0)  # order kept


def test_display_plane_of_a_volume_is_its_middle_slice() -> None:
    volume = np.stack([np.full((6, 5), value, dtype=np.int16) for value in range(5)])
    volume[2] = np.arange(30).reshape(6, 5)
    assert np.array_equal(display_plane(volume), display_plane(volume[2]))


def test_display_plane_of_colour_keeps_three_channels() -> None:
    rgba = np.random.default_rng(3).integers(0, 256, (2, 7, 9, 4), dtype=np.uint8)
    shown = display_plane(rgba, channels_last=True)
    assert shown.shape == (7, 9, 3)
    assert np.array_equal(shown, display_plane(rgba[0, ..., :3], channels_last=True))
    two_samples = np.random.default_rng(4).integers(0, 256, (7, 9, 2), dtype=np.uint8)
    assert display_plane(two_samples, channels_last=True).shape == (7, 9)  # first sample, as grey


def test_display_plane_of_a_constant_image_is_black() -> None:
    assert np.all(display_plane(np.full((5, 5), 900, dtype=np.uint16)) == 0)
