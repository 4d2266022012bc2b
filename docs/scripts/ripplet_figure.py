"""Render docs/figures/ripplet_tiling.png: ripplet frequency tilings and elements.

Run from the repository root::

    .venv/bin/python docs/scripts/ripplet_figure.py

Top row: the frequency plane of a 256 x 256 grid (zero frequency at the centre,
Nyquist at the edges) for three settings of support ``c`` and degree ``d``; each
frequency is coloured by the window ``U_(j,l)`` that holds most of its weight
(grey: the low-pass ``Phi_0``), and shaded by that weight, so the smooth
overlaps show as darker seams. Bottom row: ripplet elements of the curvelet
setting ``c = 1, d = 2`` and of ``d = 1``, i.e. the spatial response
``IFFT(U_(j,l))`` of single windows (centred, 64 x 64 crops shown at 2x, grey = 0). Pillow only.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deepkedi.transforms import ripplet_windows

SIZE, SCALES, MARGIN, LABEL = 256, 4, 12, 16
CROP = 64
SETTINGS = [
    {"c": 1.0, "d": 2.0, "coarse_angles": 4},
    {"c": 1.0, "d": 1.0, "coarse_angles": 4},
    {"c": 2.0, "d": 3.0, "coarse_angles": 4},
]
OUT = Path(__file__).resolve().parents[1] / "figures" / "ripplet_tiling.png"


def tiling(params: dict) -> Image.Image:
    """Colour each frequency by its dominant window, shaded by the window's value."""
    windows = ripplet_windows((SIZE, SIZE), scales=SCALES, **params)
    stack = np.stack([windows.lowpass] + [u for scale in windows.bands for u in scale])
    stack = np.fft.fftshift(stack, axes=(-2, -1))
    winner = np.argmax(stack, axis=0)
    weight = np.max(stack, axis=0)
    # Golden-ratio hue steps keep neighbouring windows apart in colour.
    palette = np.array(
        [(0.55, 0.55, 0.55)] + [colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 1.0) for k in range(len(stack) - 1)]
    )
    rgb = palette[winner] * (0.25 + 0.75 * weight[..., None])
    return Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255))


def element(params: dict, j: int, l: int) -> Image.Image:
    """The spatial ripplet of window (j, l): IFFT of the window, centred."""
    windows = ripplet_windows((SIZE, SIZE), scales=SCALES, **params)
    spatial = np.fft.fftshift(np.fft.ifft2(windows.bands[j][l]).real)
    lo = (SIZE - CROP) // 2
    crop = spatial[lo : lo + CROP, lo : lo + CROP]
    crop = 0.5 + 0.5 * crop / np.max(np.abs(crop))
    return Image.fromarray(np.uint8(np.clip(crop, 0, 1) * 255)).resize((128, 128), Image.Resampling.LANCZOS)


def label(params: dict) -> str:
    return f"c={params['c']:g}, d={params['d']:g}"


def main() -> None:
    tiles = [tiling(p) for p in SETTINGS]
    curvelet, constant = SETTINGS[0], SETTINGS[1]
    picks = [
        (curvelet, 1, 1),
        (curvelet, 2, 2),
        (curvelet, 3, 3),
        (constant, 1, 1),
        (constant, 2, 1),
        (constant, 3, 1),
    ]
    elements = [element(p, j, l) for p, j, l in picks]
    width = max(len(tiles) * (SIZE + MARGIN), len(elements) * (128 + MARGIN)) + MARGIN
    height = 2 * LABEL + SIZE + 128 + 4 * MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (tile, params) in enumerate(zip(tiles, SETTINGS)):
        x = MARGIN + k * (SIZE + MARGIN)
        draw.text((x, MARGIN - 4), f"tiling {label(params)}, {SCALES} scales, 4 coarse angles", fill="black")
        canvas.paste(tile, (x, MARGIN + LABEL))
    top = 2 * MARGIN + LABEL + SIZE
    for k, (img, (params, j, l)) in enumerate(zip(elements, picks)):
        x = MARGIN + k * (128 + MARGIN)
        draw.text((x, top), f"{label(params)} j={j} l={l}", fill="black")
        canvas.paste(img, (x, top + LABEL))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
