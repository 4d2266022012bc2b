"""Render docs/figures/phantoms.png: one tile per phantom kind, seed 0.

Run from the repository root::

    .venv/bin/python docs/scripts/phantom_figure.py

Each phantom is made at its clinical size, windowed for display (CT at the
window its metadata suggests: brain 40/80, liver 50/350 soft tissue, lung CT in
both the lung window and the soft-tissue window), scaled to a 256-pixel tile
and labelled. Pillow only: matplotlib is not a dependency.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deepkedi.datasets import PHANTOM_KINDS, phantom

TILE = 256
OUT = Path(__file__).resolve().parents[1] / "figures" / "phantoms.png"


def windowed(pixels: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Map a display window to 0..255, as a viewer's window/level does."""
    scaled = (pixels.astype(np.float32) - (centre - width / 2.0)) / width
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(grey: np.ndarray, label: str, font: ImageFont.ImageFont) -> Image.Image:
    """A square tile: the image fitted and centred on black, a label on a dark band."""
    img = Image.fromarray(grey)
    img.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    out = Image.new("L", (TILE, TILE), 0)
    out.paste(img, ((TILE - img.width) // 2, (TILE - img.height) // 2))
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, TILE, 18), fill=0)
    draw.text((4, 2), label, fill=255, font=font)
    return out


def main() -> int:
    try:
        font: ImageFont.ImageFont = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    tiles = []
    for organ, modality in PHANTOM_KINDS:
        image = phantom(organ, modality, seed=0)
        meta = image.metadata
        centre, width = meta["window_center"], meta["window_width"]
        rows, cols = image.pixels.shape
        label = f"{organ} {modality}  {rows}x{cols} {image.pixels.dtype.name}"
        if image.modality == "CT":
            label += f"  W{width:g}/L{centre:g}"
        tiles.append(tile(windowed(image.pixels, centre, width), label, font))
        if (organ, modality) == ("lung", "CT"):
            # the same slice at a soft-tissue window shows the mediastinum
            tiles.append(tile(windowed(image.pixels, 40.0, 400.0), f"lung CT  {rows}x{cols}  W400/L40", font))
    columns = 4
    sheet = Image.new("L", (columns * TILE, -(-len(tiles) // columns) * TILE), 0)
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * TILE, (i // columns) * TILE))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
