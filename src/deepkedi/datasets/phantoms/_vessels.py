"""Vessel and airway trees in 3D, and their sections through an image slab."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepkedi.datasets.phantoms._geometry import _F, _Grid

# -------------------------------------------------------------------- vessel trees


@dataclass(frozen=True)
class _Tree:
    """A branching tube network in 3D, sampled densely along its centre lines."""

    points: np.ndarray  # (n, 3) u, v, z
    radius: np.ndarray  # (n,)
    generation: np.ndarray  # (n,) int
    side: np.ndarray  # (n, 3) unit vectors perpendicular to each point's segment

    def shifted(self, by: float, *, max_generation: int, radius_scale: float) -> _Tree:
        """A companion tree (airways beside arteries), ``by`` radii to one side."""
        keep = self.generation <= max_generation
        r = self.radius[keep]
        pts = self.points[keep] + self.side[keep] * (_F(by) * r)[:, None]
        return _Tree(pts.astype(_F), (r * radius_scale).astype(_F), self.generation[keep], self.side[keep])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _grow_tree(
    rng: np.random.Generator,
    roots: np.ndarray,
    directions: np.ndarray,
    *,
    length: float,
    radius: float,
    generations: int,
    spread: float,
    step: float,
    centre: Sequence[float],
    outward: float = 0.5,
    decay: float = 0.8,
) -> _Tree:
    """Grow a bifurcating tree, one generation of all branches at a time.

    Children turn by about ``spread`` radians to either side of their parent in a
    random plane, lean ``outward`` from ``centre`` so the tree fills its organ,
    shorten by ``decay`` and thin by ``2 ** (-1/3)`` (Murray's law for a symmetric
    bifurcation). Segments are then sampled every ``step`` along their length.
    """
    starts = np.asarray(roots, dtype=np.float64)
    dirs = _unit(np.asarray(directions, dtype=np.float64))
    n = len(starts)
    lengths = np.full(n, length)
    radii = np.full(n, radius)
    origin = np.asarray(centre, dtype=np.float64)
    segs: list[tuple[np.ndarray, ...]] = []
    for g in range(generations):
        seg_len = lengths * rng.uniform(0.75, 1.25, n)
        ends = starts + dirs * seg_len[:, None]
        # a random direction perpendicular to each parent: the plane of its bifurcation
        side = rng.standard_normal((n, 3))
        side = _unit(side - (side * dirs).sum(axis=1, keepdims=True) * dirs)
        segs.append((starts, ends, radii, np.full(n, g), side))
        turn = spread * rng.uniform(0.6, 1.3, (n, 2))
        turn[:, 1] *= -1.0
        kids = np.cos(turn)[..., None] * dirs[:, None, :] + np.sin(turn)[..., None] * side[:, None, :]
        away = _unit(np.repeat(ends, 2, axis=0) - origin + 1e-9)
        dirs = _unit(kids.reshape(-1, 3) + outward * away)
        starts = np.repeat(ends, 2, axis=0)
        lengths = np.repeat(lengths * decay, 2)
        radii = np.repeat(radii * 2.0 ** (-1.0 / 3.0), 2)
        n *= 2
    a, b, r, gen, side = (np.concatenate(parts) for parts in zip(*segs, strict=True))
    counts = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(np.int64), 1) + 1
    idx = np.repeat(np.arange(len(a)), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(idx.size) - first[idx]) / (counts[idx] - 1)
    pts = a[idx] + t[:, None] * (b - a)[idx]
    # taper within a segment towards the children's radius
    rad = r[idx] * (1.0 - t * (1.0 - 2.0 ** (-1.0 / 3.0)))
    return _Tree(pts.astype(_F), rad.astype(_F), gen[idx], side[idx].astype(_F))


def _scatter_vessels(
    rng: np.random.Generator,
    n: int,
    *,
    low: Sequence[float],
    high: Sequence[float],
    hila: np.ndarray,
    length: float,
    radius: float,
    step: float,
) -> _Tree:
    """Short peripheral vessel segments scattered through a box, pointing away from the hila.

    A grown tree thins out towards the periphery faster than real lungs do at
    CT resolution; these segments stand in for the countless small branches
    that a thin section cuts as dots and short dashes. Their radius falls with
    distance from the nearest hilum.
    """
    centres = rng.uniform(low, high, (n, 3))
    near = hila[np.argmin(((centres[:, None, :] - hila[None, :, :]) ** 2).sum(axis=2), axis=1)]
    away = centres - near
    dist = np.linalg.norm(away, axis=1)
    dirs = _unit(away + 1e-9) + rng.normal(0.0, 0.45, (n, 3))
    # most peripheral vessels run up and down the lung, so a section cuts them as dots
    dirs = _unit(dirs * np.array([0.6, 0.6, 1.4]))
    half = 0.5 * length * rng.uniform(0.5, 1.5, n)
    a, b = centres - dirs * half[:, None], centres + dirs * half[:, None]
    r = radius * np.clip(1.2 - 1.1 * dist, 0.35, 1.0) * rng.uniform(0.7, 1.3, n)
    counts = np.ceil(2.0 * half / step).astype(np.int64) + 1
    idx = np.repeat(np.arange(n), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(idx.size) - first[idx]) / (counts[idx] - 1)
    pts = a[idx] + t[:, None] * (b - a)[idx]
    side = _unit(np.cross(dirs, rng.standard_normal((n, 3))))
    return _Tree(pts.astype(_F), r[idx].astype(_F), np.full(idx.size, 99), side[idx].astype(_F))


def _merge_trees(*trees: _Tree) -> _Tree:
    return _Tree(*(np.concatenate([getattr(t, f) for t in trees]) for f in ("points", "radius", "generation", "side")))


def _slice_tubes(grid: _Grid, tree: _Tree, z: float, slab: float) -> tuple[np.ndarray, np.ndarray]:
    """Where a tree meets the image slab: distance to the nearest tube and its radius.

    Centre-line points within ``radius + slab`` of the plane are marked with their
    radius (in pixels); one Euclidean distance transform then gives every pixel
    its distance to the nearest marked point and, through the returned indices,
    that point's radius. A vessel crossing the slab becomes a dot, an oblique one
    a streak, one lying in the plane a line: the intersections of real tubes.
    """
    near = np.abs(tree.points[:, 2] - _F(z)) < tree.radius + _F(slab)
    pts = tree.points[near]
    rows, cols = grid.to_image(pts[:, 0], pts[:, 1])
    rows, cols = np.rint(rows).astype(np.intp), np.rint(cols).astype(np.intp)
    inside = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    marks = np.zeros(grid.shape, _F)
    if not inside.any():
        return np.full(grid.shape, np.inf, _F), marks
    # the widest tube wins a pixel that several points fall in
    np.maximum.at(marks, (rows[inside], cols[inside]), tree.radius[near][inside] / _F(grid.px))
    dist, (ir, ic) = ndimage.distance_transform_edt(marks == 0, return_indices=True)
    return dist.astype(_F), marks[ir, ic]


def _tube_fraction(dist: np.ndarray, radius_px: np.ndarray, *, extra_px: float = 0.0) -> np.ndarray:
    """Fraction of each pixel inside the tubes, optionally widened (airway walls)."""
    r = radius_px + _F(extra_px)
    # tubes thinner than a pixel fade rather than vanish: partial volume
    return np.clip(r + _F(0.5) - dist, 0.0, 1.0) * np.clip(_F(2.0) * r, 0.0, 1.0)
