"""The painter: tissues laid over each other in proportion to their pixel fraction."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepkedi.datasets.phantoms._geometry import _F, _FULL, Box, _Ellipse, _Grid, _Solid

# ------------------------------------------------------------------------ painter

Tissues = Mapping[str, tuple[float, float]]


class _Canvas:
    """Paints tissues over each other, the way a CT number or MR signal is decided.

    ``tissues`` maps a tissue name to ``(mean, texture amplitude)`` in the
    modality's units; later paint covers earlier paint in proportion to its
    pixel fraction, so soft edges blend as partial volumes do.
    """

    def __init__(self, grid: _Grid, tissues: Tissues, texture: np.ndarray, fine: np.ndarray, z: float) -> None:
        self.grid = grid
        self.z = z  # the slice's height, where solids are cut
        self.tissues = tissues
        self.texture = texture  # organ-scale smooth field
        self.fine = fine  # parenchyma-scale smooth field
        self.img = np.full(grid.shape, tissues["air"][0], _F)

    def paint(
        self,
        tissue: str,
        frac: np.ndarray,
        box: Box = _FULL,
        *,
        offset: np.ndarray | float = 0.0,
        texture: str = "texture",
    ) -> None:
        mean, amp = self.tissues[tissue]
        target = _F(mean) + offset
        if amp:
            target = target + _F(amp) * getattr(self, texture)[box]
        region = self.img[box]
        region += frac * (target - region)

    def shape(self, tissue: str, ellipse: _Ellipse | None, *, grow: float = 0.0, texture: str = "texture") -> None:
        """Paint one ellipse, evaluated only over its bounding box."""
        if ellipse is None:
            return
        shape = ellipse.grown(grow) if grow else ellipse
        box = self.grid.box(*shape.bounds())
        if box is None:
            return
        u, v = self.grid.coords(box)
        self.paint(tissue, self.grid.soft(shape.depth(u, v)), box, texture=texture)

    def solid(self, tissue: str, solid: _Solid, *, grow: float = 0.0) -> None:
        """Paint the section of a solid through this slice."""
        self.shape(tissue, solid.at(self.z), grow=grow)
