"""Labelled tiles of image planes in one PNG-ready picture, for figures and the demo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["MARGIN", "display_plane", "montage"]

#: Pixels around and between tiles.
MARGIN = 8


def display_plane(pixels: np.ndarray, *, channels_last: bool = False) -> np.ndarray:
    """The first plane of ``pixels`` as 8-bit grey or RGB, stretched to its 1st–99th percentile.

    Parameters
    ----------
    pixels
        ``(..., rows, cols)`` or, with ``channels_last``, ``(..., rows, cols, samples)``.
    """
    plane = np.asarray(pixels)
    keep = 3 if channels_last else 2
    while plane.ndim > keep:
        plane = plane[plane.shape[0] // 2] if plane.ndim - keep == 1 and not channels_last else plane[0]
    if channels_last and plane.shape[-1] not in (3, 4):
        plane = plane[..., 0]
    if channels_last and plane.ndim == 3:
        plane = plane[..., :3]
    values = plane.astype(np.float64)
    lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max()) or 1.0
    scaled = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` px (scalable with FreeType); its small bitmap font otherwise."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text``, cut with an ellipsis where it would run past ``width`` pixels (into the next tile)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def montage(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    tile: int = 256,
    columns: int = 4,
    title: str = "",
    font_size: int = 14,
    group: int = 1,
) -> Image.Image:
    """Tile 8-bit planes (grey or RGB) into one picture, each with a caption below, a title above.

    Parameters
    ----------
    panels
        ``(caption, plane)`` pairs; planes from :func:`display_plane`. A caption may hold
        several lines (``\\n``); each line is cut with an ellipsis at the tile's width.
    tile
        Longest side of each tile in pixels (planes are resized, aspect kept).
    columns
        Tiles per row.
    title
        A line across the top of the picture; none when empty.
    font_size
        Height of the caption font in pixels (the title is drawn 1.25 times larger).
    group
        Tiles that belong together (an image and its cipher image: 2); a row holds whole
        groups, set apart by a wider gap of ``3 × MARGIN`` pixels. ``columns`` should be a
        multiple of it.

    Returns
    -------
    PIL.Image.Image
        An RGB picture: margins of :data:`MARGIN` pixels, each row ``tile`` pixels high plus
        a caption band of ``lines × (font_size + 6)`` pixels.

    Raises
    ------
    ValueError
        No panels, or ``group`` below 1.
    """
    if not panels:
        raise ValueError("montage needs at least one panel")
    if group < 1:
        raise ValueError(f"montage: group={group}; pass at least 1")
    font, title_font = _font(font_size), _font(round(1.25 * font_size))
    line_height = font_size + 6
    lines = max(caption.count("\n") + 1 for caption, _ in panels)
    caption_h = lines * line_height
    title_h = round(1.25 * font_size) + MARGIN if title else 0
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    gap = 2 * MARGIN if group > 1 else 0  # added between groups, on top of the margin

    def left(column: int) -> int:
        return MARGIN + column * (tile + MARGIN) + (column // group) * gap

    width = left(columns - 1) + tile + MARGIN
    canvas = Image.new("RGB", (width, title_h + rows * (tile + caption_h + MARGIN) + MARGIN), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((MARGIN, MARGIN), _fit(draw, title, title_font, width - 2 * MARGIN), fill="black", font=title_font)
    for index, (caption, plane) in enumerate(panels):
        picture = Image.fromarray(plane).convert("RGB")
        scale = tile / max(picture.size)
        picture = picture.resize(
            (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.NEAREST
        )
        x = left(index % columns)
        y = title_h + MARGIN + (index // columns) * (tile + caption_h + MARGIN)
        canvas.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
        for number, line in enumerate(caption.split("\n") if caption else []):
            draw.text((x, y + tile + 3 + number * line_height), _fit(draw, line, font, tile), fill="black", font=font)
    return canvas
