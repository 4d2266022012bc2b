"""Labelled tiles of image planes in one PNG-ready picture, for figures and the demo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["display_plane", "montage"]


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


def montage(panels: Sequence[tuple[str, np.ndarray]], *, tile: int = 256, columns: int = 4) -> Image.Image:
    """Tile 8-bit planes (grey or RGB) into one picture, each with a caption below.

    Parameters
    ----------
    panels
        ``(caption, plane)`` pairs; planes from :func:`display_plane`.
    tile
        Longest side of each tile in pixels (planes are resized, aspect kept).
    columns
        Tiles per row.
    """
    if not panels:
        raise ValueError("montage needs at least one panel")
    caption_h = 16
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    canvas = Image.new("RGB", (columns * (tile + 8) + 8, rows * (tile + caption_h + 8) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (caption, plane) in enumerate(panels):
        picture = Image.fromarray(plane).convert("RGB")
        scale = tile / max(picture.size)
        picture = picture.resize(
            (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.NEAREST
        )
        x = 8 + (index % columns) * (tile + 8)
        y = 8 + (index // columns) * (tile + caption_h + 8)
        canvas.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
        draw.text((x, y + tile + 2), caption[:40], fill="black")
    return canvas
