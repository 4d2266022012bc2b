"""Render docs/figures/zigzag.png: the three scan orders on an 8×6 plane.

Run from the repository root::

    .venv/bin/python docs/scripts/zigzag_figure.py

Each panel draws the path ``scan_order`` takes through the plane, from a green
start to a red end, with the visiting rank printed in each pixel. Pillow only.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from deepkedi.transforms.zigzag import ZigzagPattern, scan_order

ROWS, COLS, CELL, MARGIN = 6, 8, 44, 28
OUT = Path(__file__).resolve().parents[1] / "figures" / "zigzag.png"


def panel(pattern: ZigzagPattern) -> Image.Image:
    width, height = COLS * CELL + 2 * MARGIN, ROWS * CELL + 2 * MARGIN + 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 6), f"{pattern.value}  ({ROWS} x {COLS})", fill="black")
    top = MARGIN + 8
    for r in range(ROWS + 1):
        draw.line([(MARGIN, top + r * CELL), (MARGIN + COLS * CELL, top + r * CELL)], fill=(200, 200, 200))
    for c in range(COLS + 1):
        draw.line([(MARGIN + c * CELL, top), (MARGIN + c * CELL, top + ROWS * CELL)], fill=(200, 200, 200))
    order = scan_order(ROWS, COLS, pattern)
    centres = [(MARGIN + (i % COLS) * CELL + CELL // 2, top + (i // COLS) * CELL + CELL // 2) for i in order]
    n = len(centres)
    for k in range(n - 1):
        shade = int(200 * k / (n - 1))
        draw.line([centres[k], centres[k + 1]], fill=(shade, 60, 200 - shade), width=3)
    for rank, (x, y) in enumerate(centres):
        colour = (0, 160, 0) if rank == 0 else (200, 0, 0) if rank == n - 1 else (60, 60, 60)
        draw.ellipse([x - 9, y - 9, x + 9, y + 9], fill="white", outline=colour, width=2)
        draw.text((x - 6 if rank > 9 else x - 3, y - 6), str(rank), fill=colour)
    return image


def main() -> None:
    panels = [panel(p) for p in ZigzagPattern]
    canvas = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width
    OUT.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(OUT, optimize=True)


if __name__ == "__main__":
    main()
