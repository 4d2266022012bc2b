"""Synthetic medical images at clinical sizes and bit depths.

The sample corpus (:mod:`deepkedi.datasets.corpus`) is real but small: a handful
of images, most under 512 pixels. Experiments that need many images, large
images, or one organ in several modalities (the paper's brain CT/MRI, lung
CT/MRI/chest X-ray and liver CT/MRI) use these phantoms instead.

A phantom is anatomy-like, not a photograph of anatomy. Each kind is built from
analytic shapes with soft (anti-aliased) edges, smooth random texture, 3D vessel
trees sliced by the image plane, and the noise of its modality, with values in
the units a scanner stores:

=============  ==========  ========  ====  ================================================
kind           size        dtype     bits  values
=============  ==========  ========  ====  ================================================
brain CT       512 x 512   int16     16    Hounsfield units: air -1000, CSF ~5, white
                                           matter ~28, grey matter ~38, bone 600..1600
brain MR       256 x 256   uint16    12    T1-weighted (MPRAGE-like): CSF ~300, grey ~1400,
                                           white ~2200, scalp fat ~2800; Rician noise
lung CT        512 x 512   int16     16    HU: lung -910..-780, fat -100, blood 40,
                                           muscle 50, bone 250..1500
lung MR        256 x 256   uint16    12    balanced-SSFP-like: lung ~90, blood ~2700,
                                           fat ~2400, muscle ~800; Rician noise
lung CXR       2048x2048   uint16    12    PA radiograph, processed: direct exposure
                                           ~100, lungs 900..1600, heart ~2700, bone brighter
liver CT       512 x 512   int16     16    unenhanced HU: liver ~60, vessels ~35, cyst ~8,
                                           metastasis ~30, spleen 48, fat -100
liver MR       256 x 256   uint16    12    T2-weighted fat-suppressed: liver ~650,
                                           spleen ~1200, bile/cyst 3200+; Rician noise
=============  ==========  ========  ====  ================================================

Geometry lives in *anatomy units*: the shorter image side spans [-1, 1], the
patient's right is on the image's left and anterior is up (radiological
convention). A seed moves, scales and tilts the whole body a little, varies the
size and outline of every organ, and draws new textures, vessel trees, lesion
positions and noise. ``shape=`` changes the matrix, not the anatomy: the body
keeps its size in millimetres and the pixel spacing changes with it.

Everything is vectorised: shapes are evaluated on whole pixel arrays (or on the
pixels of their bounding box), vessels are rasterised with one distance
transform, and textures are Gaussian random fields built from two small matrix
products. Python loops run over anatomical structures, tree generations and
slices, never over pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from deepkedi.imaging.image import MedicalImage

__all__ = ["PHANTOM_KINDS", "phantom", "phantom_volume"]

#: The supported ``(organ, modality)`` pairs: the paper's brain CT/MRI, lung
#: CT/MRI/chest X-ray and liver CT/MRI datasets.
PHANTOM_KINDS: tuple[tuple[str, str], ...] = (
    ("brain", "CT"),
    ("brain", "MR"),
    ("lung", "CT"),
    ("lung", "MR"),
    ("lung", "CXR"),
    ("liver", "CT"),
    ("liver", "MR"),
)

_F = np.float32
_FULL = (slice(None), slice(None))
_MIN_SIDE = 32
Box = tuple[slice, slice]


# --------------------------------------------------------------------------- grid


class _Grid:
    """Pixel centres of one image plane, in anatomy units.

    The anatomy is placed in the image by ``image = scale * R(angle) @ anatomy + shift``
    (image units: the shorter side spans [-1, 1]); the seed draws the three.
    """

    def __init__(self, shape: tuple[int, int], *, scale: float = 1.0, angle: float = 0.0,
                 shift: tuple[float, float] = (0.0, 0.0)) -> None:
        rows, cols = shape
        self.shape = shape
        self.step = 2.0 / min(rows, cols)  # image units per pixel
        self.x = ((np.arange(cols) - (cols - 1) / 2) * self.step).astype(_F)
        self.y = ((np.arange(rows) - (rows - 1) / 2) * self.step).astype(_F)
        self.scale = scale
        self.cos, self.sin = math.cos(angle), math.sin(angle)
        self.shift = shift
        self.px = self.step / scale  # anatomy units per pixel

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy coordinates to fractional (row, col) pixel indices."""
        x = self.scale * (self.cos * u - self.sin * v) + self.shift[0]
        y = self.scale * (self.sin * u + self.cos * v) + self.shift[1]
        return y / self.step + (self.shape[0] - 1) / 2, x / self.step + (self.shape[1] - 1) / 2

    def box(self, umin: float, umax: float, vmin: float, vmax: float) -> Box | None:
        """Pixel bounding box of an anatomy-space rectangle, or None off the image."""
        u = np.array([umin, umax, umin, umax])
        v = np.array([vmin, vmin, vmax, vmax])
        r, c = self.to_image(u, v)
        r0, r1 = max(int(math.floor(r.min())) - 2, 0), min(int(math.ceil(r.max())) + 3, self.shape[0])
        c0, c1 = max(int(math.floor(c.min())) - 2, 0), min(int(math.ceil(c.max())) + 3, self.shape[1])
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def coords(self, box: Box = _FULL) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy coordinates ``(u, v)`` of the pixels of a box, as float32 arrays."""
        x = self.x[box[1]][None, :] - _F(self.shift[0])
        y = self.y[box[0]][:, None] - _F(self.shift[1])
        k = _F(1.0 / self.scale)
        u = (_F(self.cos) * x + _F(self.sin) * y) * k
        v = (_F(-self.sin) * x + _F(self.cos) * y) * k
        return u, v

    def soft(self, depth: np.ndarray) -> np.ndarray:
        """Fraction of a pixel inside a shape from the depth below its edge.

        A one-pixel linear ramp across the edge: the partial-volume effect of a
        real detector, and no staircase aliasing on curved outlines.
        """
        return np.clip(depth * _F(1.0 / self.px) + _F(0.5), 0.0, 1.0)


# ------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class _Ellipse:
    """A 2D ellipse with an optionally wavy outline, in anatomy units.

    ``wobble`` holds ``(k, amplitude, phase)`` triples: the boundary radius at
    polar angle t is multiplied by ``1 + sum(amplitude * cos(k t + phase))``,
    which turns geometric ellipses into organ-like outlines.
    """

    cu: float
    cv: float
    a: float  # semi-axis along u before rotation
    b: float  # semi-axis along v before rotation
    angle: float = 0.0  # radians, counter-clockwise on screen
    wobble: tuple[tuple[int, float, float], ...] = ()

    def bounds(self) -> tuple[float, float, float, float]:
        reach = max(self.a, self.b) * (1.0 + sum(abs(w[1]) for w in self.wobble))
        return self.cu - reach, self.cu + reach, self.cv - reach, self.cv + reach

    def depth(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Radial distance inside the outline (negative outside), anatomy units."""
        du, dv = u - _F(self.cu), v - _F(self.cv)
        if self.angle:
            c, s = _F(math.cos(self.angle)), _F(math.sin(self.angle))
            du, dv = c * du - s * dv, s * du + c * dv
        # the tiny offset keeps the centre pixel finite (0/0 otherwise)
        du = du + _F(1e-6)
        rho = np.sqrt(du * du + dv * dv)
        ell = np.sqrt((du * _F(1 / self.a)) ** 2 + (dv * _F(1 / self.b)) ** 2)
        radius = rho / ell  # boundary radius along this pixel's direction
        if self.wobble:
            theta = np.arctan2(dv, du)
            mod = np.ones_like(theta)
            for k, amp, phase in self.wobble:
                mod += _F(amp) * np.cos(_F(k) * theta + _F(phase))
            radius = radius * mod
        return radius - rho

    def grown(self, d: float) -> "_Ellipse":
        """The same outline moved outwards by ``d`` (inwards when negative)."""
        return replace(self, a=max(self.a + d, 1e-4), b=max(self.b + d, 1e-4))

    def scaled(self, k: float) -> "_Ellipse":
        return replace(self, a=max(self.a * k, 1e-4), b=max(self.b * k, 1e-4))


@dataclass(frozen=True)
class _Solid:
    """An organ in 3D: an ellipse swept along z with a rounded profile.

    The cross-section at height z is the ellipse scaled by
    ``(1 - |(z - cz) / c| ** p) ** (1 / p)``: p = 2 is an ellipsoid, large p a
    cylinder with rounded ends (vessels, the spine).
    """

    shape: _Ellipse
    cz: float = 0.0
    c: float = 10.0
    p: float = 2.0

    def at(self, z: float) -> _Ellipse | None:
        t = abs(z - self.cz) / self.c
        if t >= 1.0:
            return None
        k = (1.0 - t**self.p) ** (1.0 / self.p)
        return self.shape.scaled(k) if k < 0.999 else self.shape


# ----------------------------------------------------------------------- textures


def _interp_weights(pos: np.ndarray, nodes: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian kernel weights from node positions to sample positions, unit L2 rows."""
    w = np.exp(-0.5 * ((pos[:, None] - nodes[None, :]) / sigma) ** 2)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))
    return w.astype(_F)


class _Field:
    """A smooth Gaussian random field with unit variance, smooth in z too.

    White noise on a coarse lattice (spacing ``corr / 2``) is blurred onto the
    pixels by a separable Gaussian kernel: ``Wr @ Z @ Wc.T``. Two small matrix
    products replace a full-image filter, and rows of unit L2 norm make the
    variance exactly one everywhere.
    """

    def __init__(self, rng: np.random.Generator, grid: _Grid, corr: float, zs: Sequence[float]) -> None:
        sigma = corr / 2.0  # image units, since textures need not follow the anatomy's tilt
        def nodes(lo: float, hi: float) -> np.ndarray:
            n = max(int(math.ceil((hi - lo) / sigma)) + 7, 2)
            return lo - 3 * sigma + sigma * np.arange(n)
        ny, nx = nodes(float(grid.y[0]), float(grid.y[-1])), nodes(float(grid.x[0]), float(grid.x[-1]))
        self.wr = _interp_weights(grid.y.astype(np.float64), ny, sigma)
        self.wc = _interp_weights(grid.x.astype(np.float64), nx, sigma).T.copy()
        self.zn = nodes(min(zs), max(zs))
        self.sigma = sigma
        self.noise = rng.standard_normal((len(self.zn), len(ny), len(nx)), dtype=_F)

    def at(self, z: float) -> np.ndarray:
        wz = np.exp(-0.5 * ((z - self.zn) / self.sigma) ** 2)
        wz /= np.sqrt((wz * wz).sum())
        coarse = np.tensordot(wz.astype(_F), self.noise, axes=1)
        return self.wr @ coarse @ self.wc


# -------------------------------------------------------------------- vessel trees


@dataclass(frozen=True)
class _Tree:
    """A branching tube network in 3D, sampled densely along its centre lines."""

    points: np.ndarray  # (n, 3) u, v, z
    radius: np.ndarray  # (n,)
    generation: np.ndarray  # (n,) int
    side: np.ndarray  # (n, 3) unit vectors perpendicular to each point's segment

    def shifted(self, by: float, *, max_generation: int, radius_scale: float) -> "_Tree":
        """A companion tree (airways beside arteries), ``by`` radii to one side."""
        keep = self.generation <= max_generation
        r = self.radius[keep]
        pts = self.points[keep] + self.side[keep] * (_F(by) * r)[:, None]
        return _Tree(pts.astype(_F), (r * radius_scale).astype(_F), self.generation[keep], self.side[keep])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _grow_tree(rng: np.random.Generator, roots: np.ndarray, directions: np.ndarray, *,
               length: float, radius: float, generations: int, spread: float, step: float,
               centre: Sequence[float], outward: float = 0.5, decay: float = 0.8) -> _Tree:
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
    centre = np.asarray(centre, dtype=np.float64)
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
        away = _unit(np.repeat(ends, 2, axis=0) - centre + 1e-9)
        dirs = _unit(kids.reshape(-1, 3) + outward * away)
        starts = np.repeat(ends, 2, axis=0)
        lengths = np.repeat(lengths * decay, 2)
        radii = np.repeat(radii * 2.0 ** (-1.0 / 3.0), 2)
        n *= 2
    a, b, r, gen, side = (np.concatenate(parts) for parts in zip(*segs))
    counts = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(np.int64), 1) + 1
    idx = np.repeat(np.arange(len(a)), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(idx.size) - first[idx]) / (counts[idx] - 1)
    pts = a[idx] + t[:, None] * (b - a)[idx]
    # taper within a segment towards the children's radius
    rad = r[idx] * (1.0 - t * (1.0 - 2.0 ** (-1.0 / 3.0)))
    return _Tree(pts.astype(_F), rad.astype(_F), gen[idx], side[idx].astype(_F))


def _scatter_vessels(rng: np.random.Generator, n: int, *, low: Sequence[float], high: Sequence[float],
                     hila: np.ndarray, length: float, radius: float, step: float) -> _Tree:
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

    def paint(self, tissue: str, frac: np.ndarray, box: Box = _FULL, *, offset: np.ndarray | float = 0.0,
              texture: str = "texture") -> None:
        mean, amp = self.tissues[tissue]
        target = _F(mean) + offset
        if amp:
            target = target + _F(amp) * getattr(self, texture)[box]
        region = self.img[box]
        region += frac * (target - region)

    def shape(self, tissue: str, ellipse: _Ellipse | None, *, grow: float = 0.0,
              texture: str = "texture") -> None:
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


# -------------------------------------------------------------------- random draws


def _jitter(rng: np.random.Generator, value: float, rel: float) -> float:
    return float(value * (1.0 + rel * rng.uniform(-1.0, 1.0)))


def _wobble(rng: np.random.Generator, amount: float,
            orders: Sequence[int] = (2, 3, 4, 5)) -> tuple[tuple[int, float, float], ...]:
    """Random outline harmonics: higher orders get smaller amplitudes, so outlines stay smooth."""
    return tuple((k, float(amount * rng.uniform(0.3, 1.0) / k), float(rng.uniform(0, 2 * math.pi))) for k in orders)


def _placement(rng: np.random.Generator) -> dict[str, float]:
    """How a seed places the patient: small scale, tilt and shift."""
    return {
        "scale": float(rng.uniform(0.95, 1.04)),
        "angle": float(np.deg2rad(rng.uniform(-4.0, 4.0))),
        "dx": float(rng.uniform(-0.03, 0.03)),
        "dy": float(rng.uniform(-0.03, 0.03)),
    }


# ---------------------------------------------------------------- tissue tables

# (mean, texture amplitude) per tissue. CT in Hounsfield units; MR in the
# scanner's arbitrary units scaled to 12 bits.
_CT: dict[str, tuple[float, float]] = {
    "air": (-1000.0, 0.0), "gas": (-990.0, 0.0), "lung": (-850.0, 18.0), "fat": (-100.0, 8.0),
    "water": (3.0, 0.0), "csf": (6.0, 1.0), "bile": (10.0, 1.5), "cyst": (8.0, 1.0),
    "skin": (35.0, 4.0), "muscle": (50.0, 5.0), "blood": (40.0, 2.0), "myocardium": (42.0, 2.0),
    "wm": (28.0, 1.5), "gm": (38.0, 1.5), "deep_gm": (36.0, 1.5), "liver": (60.0, 3.0),
    "vessel_liver": (36.0, 1.0), "lesion": (30.0, 4.0), "lesion_rim": (48.0, 3.0),
    "spleen": (48.0, 2.0), "kidney": (32.0, 2.0), "pancreas": (42.0, 5.0), "bowel": (38.0, 6.0),
    "fluid": (15.0, 2.0), "cord": (35.0, 2.0), "cartilage": (110.0, 10.0), "airway_wall": (20.0, 6.0),
    "cancellous": (250.0, 60.0), "diploe": (650.0, 90.0), "bone": (1350.0, 180.0),
    "calcification": (320.0, 40.0), "falx": (65.0, 5.0), "table": (180.0, 20.0), "foam": (-850.0, 10.0),
}

# T1-weighted brain (MPRAGE-like, as in ADNI): white matter brighter than grey,
# CSF dark, fat bright, cortical bone without signal.
_MR_BRAIN: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0), "gas": (0.0, 0.0), "skin": (1400.0, 80.0), "fat": (2800.0, 120.0),
    "muscle": (1200.0, 60.0), "bone": (60.0, 20.0), "diploe": (1800.0, 200.0), "csf": (320.0, 30.0),
    "gm": (1450.0, 40.0), "wm": (2250.0, 40.0), "deep_gm": (1650.0, 40.0), "falx": (350.0, 30.0),
    "calcification": (900.0, 50.0), "blood": (500.0, 40.0), "cancellous": (1600.0, 150.0),
    "water": (300.0, 0.0), "table": (0.0, 0.0), "foam": (0.0, 0.0),
}

# Balanced SSFP-like chest: bright blood and fat, dark lung.
_MR_LUNG: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0), "gas": (0.0, 0.0), "lung": (90.0, 25.0), "fat": (2400.0, 120.0),
    "skin": (1100.0, 60.0), "muscle": (800.0, 50.0), "blood": (2700.0, 80.0), "myocardium": (750.0, 40.0),
    "bone": (40.0, 15.0), "cancellous": (1350.0, 120.0), "csf": (2900.0, 60.0), "cord": (1100.0, 40.0),
    "cartilage": (900.0, 50.0), "airway_wall": (500.0, 60.0), "liver": (900.0, 40.0),
    "fluid": (2600.0, 60.0), "table": (0.0, 0.0), "foam": (0.0, 0.0), "water": (2600.0, 0.0),
}

# T2-weighted, fat-suppressed abdomen (as in CHAOS T2-SPIR): fluid brightest,
# spleen brighter than liver, flowing blood dark.
_MR_LIVER: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0), "gas": (0.0, 0.0), "fat": (320.0, 40.0), "skin": (700.0, 40.0),
    "muscle": (450.0, 30.0), "liver": (650.0, 30.0), "vessel_liver": (140.0, 20.0),
    "blood": (160.0, 30.0), "bile": (3300.0, 60.0), "cyst": (3500.0, 50.0), "lesion": (1500.0, 120.0),
    "lesion_rim": (1000.0, 60.0), "spleen": (1200.0, 40.0), "kidney": (1500.0, 60.0),
    "pancreas": (800.0, 60.0), "bowel": (900.0, 100.0), "fluid": (3000.0, 80.0), "bone": (40.0, 15.0),
    "cancellous": (500.0, 60.0), "csf": (3200.0, 60.0), "cord": (900.0, 40.0), "cartilage": (600.0, 40.0),
    "calcification": (80.0, 20.0), "table": (0.0, 0.0), "foam": (0.0, 0.0), "water": (3000.0, 0.0),
}


# ----------------------------------------------------------------- common parts


def _body_wall(canvas: _Canvas, grid: _Grid, body: _Ellipse, fat: float, muscle: float,
               *, table: bool = True) -> np.ndarray:
    """Skin, subcutaneous fat and the muscle wall of a trunk; returns the depth map.

    The trunk outline is evaluated once; each layer is a threshold of the same
    depth map, which keeps the layers concentric even where the outline wobbles.
    """
    u, v = grid.coords()
    depth = body.depth(u, v)
    if table:
        # the CT couch: two thin carbon-fibre skins around a foam core, its top surface
        # just under the lowest point of the back, which rests on it
        bottom = float(np.broadcast_to(v, depth.shape)[depth > 0].max(initial=body.cv))
        curve = bottom + 0.012 + 0.05 * (u / 0.9) ** 2
        rel = v - _F(curve)
        inside = grid.soft(_F(0.82) - np.abs(u))
        canvas.paint("foam", grid.soft(_F(0.03) - np.abs(rel - _F(0.03))) * inside)
        for at in (0.0, 0.06):
            canvas.paint("table", grid.soft(_F(0.004) - np.abs(rel - _F(at))) * inside)
    canvas.paint("skin", grid.soft(depth))
    canvas.paint("fat", grid.soft(depth - _F(0.006)))
    canvas.paint("muscle", grid.soft(depth - _F(fat)))
    return depth


def _vertebra(canvas: _Canvas, p: Mapping[str, float], *, cv: float, r: float) -> None:
    """A vertebra in axial section: body, canal with cord, pedicles, laminae, processes."""
    cu = p["spine_u"]
    canal_v = cv + r * 1.55
    canvas.shape("bone", _Ellipse(cu, canal_v + r * 0.05, r * 0.85, r * 0.75))  # neural arch
    for side in (-1, 1):
        canvas.shape("bone", _Ellipse(cu + side * r * 1.05, canal_v - r * 0.2, r * 0.85, r * 0.26,
                                      angle=side * 0.35))  # transverse processes
    canvas.shape("bone", _Ellipse(cu, canal_v + r * 1.05, r * 0.2, r * 0.75))  # spinous process
    canvas.shape("cancellous", _Ellipse(cu, canal_v + r * 1.0, r * 0.1, r * 0.6))
    canvas.shape("csf", _Ellipse(cu, canal_v, r * 0.46, r * 0.42))
    canvas.shape("cord", _Ellipse(cu, canal_v + r * 0.03, r * 0.27, r * 0.22))
    body = _Ellipse(cu, cv, r, r * 0.9, wobble=((4, 0.02, p["spine_phase"]),))
    canvas.shape("bone", body)
    canvas.shape("cancellous", body, grow=-0.008)


def _ribs(canvas: _Canvas, body: _Ellipse, p: Mapping[str, float], *, inset: float, z: float,
          count: int, front_gap: float, back_gap: float) -> None:
    """Rib sections around the chest wall, each a cortical shell around marrow.

    The ribs slope down towards the front, so their sections drift around the
    wall as the slice moves in z.
    """
    lo = -math.pi / 2 + front_gap
    hi = math.pi / 2 - back_gap
    for side in (-1.0, 1.0):
        for i in range(count):
            frac = (i + 0.5 + 0.35 * math.sin(7.0 * z + i * 1.7 + p["rib_phase"])) / count
            t = lo + (hi - lo) * frac  # angle from the front (-pi/2) round to the back (pi/2)
            # point on the outline at this polar angle, moved inside the wall
            cos_t, sin_t = math.cos(t), math.sin(t)
            ell = math.hypot(cos_t / body.a, sin_t / body.b)
            polar = math.atan2(sin_t, side * cos_t)
            rad = (1.0 + sum(amp * math.cos(k * polar + ph) for k, amp, ph in body.wobble)) / ell
            d = rad - inset
            u, v = body.cu + side * d * cos_t, body.cv + d * sin_t
            tangent = math.atan2(-side * cos_t * body.b, sin_t * body.a)
            rib = _Ellipse(u, v, 0.034, 0.014, angle=tangent)
            canvas.shape("bone", rib)
            canvas.shape("cancellous", rib, grow=-0.0045)


# ------------------------------------------------------------------------- brain


def _brain_params(rng: np.random.Generator) -> dict:
    p: dict = {}
    p.update(
        head=_Ellipse(0.0, 0.02, _jitter(rng, 0.70, 0.04), _jitter(rng, 0.86, 0.04), wobble=_wobble(rng, 0.05)),
        skull=_jitter(rng, 0.032, 0.15),
        scalp=_jitter(rng, 0.028, 0.2),
        n_gyri=int(rng.integers(26, 32)),
        cortex=_jitter(rng, 0.026, 0.12),
        gyri_phase=float(rng.uniform(0, 2 * math.pi)),
        ventricle=_jitter(rng, 1.0, 0.25),  # enlarges with age: vary it
        vent_shift=float(rng.uniform(-0.015, 0.015)),
        midline=float(rng.uniform(-0.01, 0.01)),
        calc=bool(rng.random() < 0.8),
    )
    return p


def _brain(canvas: _Canvas, grid: _Grid, p: dict, z: float, fields: dict[str, _Field]) -> None:
    """An axial head slice at the level of the lateral ventricles (z = 0).

    z runs from the skull base (-0.55) to the vertex (+0.75).
    """
    k_head = math.sqrt(max(1.0 - ((z - 0.0) / 0.95) ** 2, 0.0))
    head = p["head"].scaled(k_head)
    u, v = grid.coords()
    depth = head.depth(u, v)
    canvas.paint("skin", grid.soft(depth))
    canvas.paint("fat", grid.soft(depth - _F(0.007)))
    scalp, skull = p["scalp"], p["skull"]
    canvas.paint("bone", grid.soft(depth - _F(scalp)))
    canvas.paint("diploe", grid.soft(depth - _F(scalp + skull * 0.3)) * grid.soft(_F(scalp + skull * 0.7) - depth))
    inner = scalp + skull
    canvas.paint("csf", grid.soft(depth - _F(inner)))
    # cortex: sulci are CSF clefts running in from the surface at wandering angles;
    # grey matter is the ribbon within a few millimetres of any CSF, white matter below
    brain_d = depth - _F(inner + 0.006)
    cu, cv = head.cu, head.cv
    theta = np.arctan2(v - _F(cv), u - _F(cu))
    radius = np.hypot(u - _F(cu), v - _F(cv))
    sulcus_depth = np.clip(_F(0.11) + _F(0.035) * fields["depth"].at(z), 0.04, 0.17)
    # primary sulci, deep, and secondary ones in between at half the depth
    to_sulcus = np.full(grid.shape, np.inf, _F)
    half_width = np.zeros(grid.shape, _F)
    for n, phase0, reach, wander, fold in ((p["n_gyri"], p["gyri_phase"], 1.0, 1.6, "fold"),
                                           (2 * p["n_gyri"], p["gyri_phase"] + math.pi / 2, 0.5, 2.4, "fold2")):
        phase = _F(n) * theta + _F(phase0) + _F(wander) * fields[fold].at(z)
        wrapped = np.abs(np.mod(phase + _F(math.pi), _F(2 * math.pi)) - _F(math.pi))  # 0 on a sulcus
        arc = wrapped * np.maximum(radius, _F(0.05)) / _F(n)  # distance to the sulcus line, units
        bottom = sulcus_depth * _F(reach)
        # distance to the sulcus as a segment from the surface down to its fundus
        dist = np.sqrt(arc * arc + np.clip(brain_d - bottom, 0.0, None) ** 2)
        width = _F(0.0025) + _F(0.0035) * np.clip(1.0 - brain_d / bottom, 0.0, 1.0)
        closer = dist - width < to_sulcus - half_width
        to_sulcus = np.where(closer, dist, to_sulcus)
        half_width = np.where(closer, width, half_width)
    interhemi = np.abs(u - _F(p["midline"]))
    # interhemispheric fissure, absent where the corpus callosum joins the hemispheres
    span = 0.34 * math.sqrt(max(1.0 - (z / 0.45) ** 2, 0.0))
    gap = grid.soft(np.abs(v - _F(cv + 0.02)) - _F(span)) if span > 0 else np.ones_like(v)
    to_fissure = np.where(gap > 0.5, interhemi - _F(0.004), _F(1.0))
    to_csf = np.minimum(np.minimum(brain_d, to_sulcus - half_width), to_fissure)
    canvas.paint("gm", grid.soft(brain_d), texture="fine")
    canvas.paint("wm", grid.soft(to_csf - _F(p["cortex"])), texture="fine")
    inside = grid.soft(brain_d + _F(0.004))
    canvas.paint("csf", grid.soft(half_width - to_sulcus) * inside)
    canvas.paint("csf", grid.soft(_F(0.005) - interhemi) * inside * gap)
    canvas.paint("falx", grid.soft(_F(0.0012) - interhemi) * grid.soft(brain_d + _F(0.006)) * gap)

    s = p["ventricle"]
    mid, sv = p["midline"], p["vent_shift"]
    # paired deep structures, mirrored about the midline: (tissue, u and v offsets,
    # semi-axes, tilt, z centre and half-height); ventricles scale with `s`, and
    # paint after the caudate heads they indent
    paired = (
        ("gm", 0.43 * k_head, -0.04, 0.04, 0.17, 0.12, -0.05, 0.32),  # insula
        ("csf", 0.475 * k_head, -0.04, 0.01, 0.16, 0.12, -0.05, 0.3),  # Sylvian fissure
        ("deep_gm", 0.27, -0.02, 0.065, 0.15, -0.25, -0.08, 0.22),  # lentiform nucleus
        ("deep_gm", 0.085, 0.1, 0.075, 0.1, 0.0, -0.08, 0.2),  # thalamus
        ("deep_gm", 0.14, -0.17, 0.06, 0.075, 0.3, 0.02, 0.22),  # caudate head
        ("csf", 0.075 * s, -0.2 + sv, 0.045 * s, 0.085 * s, 0.45, 0.02, 0.26),  # frontal horn
        ("csf", 0.07 * s, sv, 0.035 * s, 0.2, -0.12, 0.08, 0.28),  # body of the lateral ventricle
        ("csf", 0.15 * s, 0.2 + sv, 0.055 * s, 0.085 * s, -0.5, -0.02, 0.22),  # atrium
    )
    for tissue, du, dv, a, b, tilt, cz, c in paired:
        for side in (-1.0, 1.0):
            shape = _Ellipse(mid + side * du, cv + dv, a, b, angle=side * tilt)
            canvas.solid(tissue, _Solid(shape, cz=cz, c=c))
    if p["calc"]:
        for side in (-1.0, 1.0):  # choroid plexus in the atria
            canvas.solid("calcification", _Solid(_Ellipse(mid + side * 0.155 * s, cv + 0.21 + sv, 0.014, 0.018),
                                                 cz=-0.02, c=0.06))
    canvas.solid("csf", _Solid(_Ellipse(mid, cv + 0.07, 0.009 * s, 0.08), cz=-0.15, c=0.17))  # third ventricle
    if p["calc"]:
        canvas.solid("calcification", _Solid(_Ellipse(mid, cv + 0.2, 0.012, 0.014), cz=-0.08, c=0.05))  # pineal


# -------------------------------------------------------------------------- chest


def _chest_params(rng: np.random.Generator, px: float) -> dict:
    p: dict = {}
    body = _Ellipse(0.0, 0.03, _jitter(rng, 0.84, 0.05), _jitter(rng, 0.58, 0.06), wobble=_wobble(rng, 0.05))
    hilum_v = -0.01
    # pulmonary arteries: lobar branches leave each hilum up, out and down into the lung
    base = np.array([(0.5, -0.3, 0.9), (0.9, -0.5, 0.4), (1.0, 0.1, 0.0), (0.7, -0.6, -0.5),
                     (0.6, 0.5, -0.7), (0.4, 0.4, -1.0)])
    roots = np.concatenate([np.tile((side * 0.14, hilum_v, -0.02), (len(base), 1)) for side in (-1.0, 1.0)])
    dirs = np.concatenate([base * (side, 1.0, 1.0) for side in (-1.0, 1.0)]) + rng.normal(0.0, 0.25, (2 * len(base), 3))
    arteries = _grow_tree(rng, roots, dirs, length=0.12, radius=0.026, generations=9,
                          spread=0.6, step=px / 2, centre=(0.0, hilum_v, 0.0), outward=0.45, decay=0.74)
    hila = np.array([(-0.14, hilum_v, -0.02), (0.14, hilum_v, -0.02)])
    periphery = _scatter_vessels(rng, 9000, low=(-0.8, -0.5, -0.75), high=(0.8, 0.55, 0.85), hila=hila,
                                 length=0.035, radius=0.007, step=px / 2)
    p.update(
        body=body,
        fat=_jitter(rng, 0.05, 0.35),
        wall=_jitter(rng, 0.085, 0.15),
        arteries=_merge_trees(arteries, periphery),
        airways=arteries.shifted(2.4, max_generation=4, radius_scale=0.8),
        heart=_Ellipse(_jitter(rng, 0.14, 0.2), -0.15, _jitter(rng, 0.29, 0.08), _jitter(rng, 0.2, 0.08),
                       angle=-0.5, wobble=_wobble(rng, 0.04)),
        spine_u=0.0,
        spine_phase=float(rng.uniform(0, 2 * math.pi)),
        rib_phase=float(rng.uniform(0, 2 * math.pi)),
        gradient=float(rng.uniform(40.0, 80.0)),
    )
    return p


def _chest(canvas: _Canvas, grid: _Grid, p: dict, z: float, fields: dict[str, _Field], *,
           slab: float, modality: str) -> None:
    """An axial chest slice through the heart (z = 0); apices at z = +0.8, bases at -0.7."""
    body = p["body"]
    depth = _body_wall(canvas, grid, body, p["fat"], p["wall"], table=modality == "CT")
    u, v = grid.coords()
    # paraspinal muscles behind the lungs
    for side in (-1.0, 1.0):
        canvas.shape("muscle", _Ellipse(side * 0.11, 0.43, 0.11, 0.095, angle=side * 0.3))
    # the thoracic cavity: inside the wall, narrowing towards the apices and bases
    k_lung = math.sqrt(max(1.0 - ((z - 0.05) / 0.95) ** 2, 0.02))
    cavity = grid.soft(depth - _F(p["wall"] + p["fat"] * 0.3))
    if k_lung < 0.999:
        cavity *= grid.soft(_Ellipse(0.0, 0.05, 0.95 * k_lung, 0.75 * k_lung).depth(u, v))
    # the lungs fill it but for the spine and the mediastinum: a thin strip in front,
    # the heart, and the block of aorta and oesophagus in front of the spine
    spine_block = grid.soft(_Ellipse(0.0, 0.37, 0.12, 0.17).depth(u, v))
    mediastinum = np.maximum(grid.soft(_Ellipse(0.035, 0.15, 0.12, 0.12).depth(u, v)),
                             grid.soft(_F(0.015) - np.abs(u)) * grid.soft(_F(-0.1) - v))
    heart = _Solid(p["heart"], cz=-0.15, c=0.55).at(z)
    if heart is not None:
        mediastinum = np.maximum(mediastinum, grid.soft(heart.depth(u, v) + _F(0.012)))
    lungs = cavity * (1.0 - spine_block) * (1.0 - mediastinum)
    # gravity: dependent (posterior) lung is denser, by tens of HU
    gradient = _F(p["gradient"] if modality == "CT" else 25.0) * (v - _F(0.0)) / _F(0.5)
    canvas.paint("lung", lungs, offset=gradient, texture="fine")

    # vessels and bronchi inside the lungs
    dist, rad = _slice_tubes(grid, p["arteries"], z, slab)
    canvas.paint("blood", _tube_fraction(dist, rad) * lungs)
    dist, rad = _slice_tubes(grid, p["airways"], z, slab)
    wall = _tube_fraction(dist, rad, extra_px=max(0.8, 0.006 / grid.px))
    canvas.paint("airway_wall", wall * lungs)
    canvas.paint("air", _tube_fraction(dist, rad) * lungs)

    # mediastinum: fat, heart, great vessels, oesophagus, airway
    canvas.paint("fat", mediastinum * cavity * (1.0 - spine_block))
    if heart is not None:
        canvas.shape("myocardium", heart)
        h = heart
        def inside(du: float, dv: float, a: float, b: float, ang: float) -> _Ellipse:
            c, s = math.cos(h.angle), math.sin(h.angle)
            return _Ellipse(h.cu + (du * c - dv * s) * h.a / 0.25, h.cv + (du * s + dv * c) * h.b / 0.19,
                            a * h.a / 0.25, b * h.b / 0.19, angle=h.angle + ang)
        canvas.shape("blood", inside(0.08, 0.02, 0.1, 0.09, 0.2))  # left ventricle
        canvas.shape("blood", inside(-0.09, -0.06, 0.11, 0.06, -0.2))  # right ventricle
        canvas.shape("blood", inside(-0.04, 0.12, 0.12, 0.05, 0.0))  # atria
    canvas.solid("blood", _Solid(_Ellipse(0.095, 0.22, 0.048, 0.048), cz=-0.1, c=0.65, p=6))  # descending aorta
    canvas.solid("blood", _Solid(_Ellipse(0.02, -0.13, 0.058, 0.058), cz=0.3, c=0.32, p=6))  # ascending aorta
    canvas.solid("blood", _Solid(_Ellipse(0.13, -0.2, 0.05, 0.05), cz=0.22, c=0.15, p=4))  # pulmonary trunk
    canvas.solid("blood", _Solid(_Ellipse(-0.085, -0.1, 0.034, 0.03), cz=0.35, c=0.35, p=6))  # SVC
    canvas.solid("muscle", _Solid(_Ellipse(0.03, 0.19, 0.024, 0.02), cz=0.0, c=1.0, p=8))  # oesophagus
    canvas.solid("gas", _Solid(_Ellipse(0.03, 0.19, 0.006, 0.004), cz=0.0, c=1.0, p=8))
    canvas.solid("airway_wall", _Solid(_Ellipse(0.0, 0.08, 0.048, 0.042), cz=0.62, c=0.35, p=6))  # trachea
    canvas.solid("air", _Solid(_Ellipse(0.0, 0.08, 0.04, 0.034), cz=0.62, c=0.35, p=6))

    # bones: vertebra, sternum, ribs with costal cartilage at the front
    _vertebra(canvas, p, cv=0.3, r=0.07)
    canvas.shape("bone", _Ellipse(0.0, body.cv - body.b + p["fat"] + 0.035, 0.07, 0.022))
    canvas.shape("cancellous", _Ellipse(0.0, body.cv - body.b + p["fat"] + 0.035, 0.06, 0.013))
    for side in (-1.0, 1.0):
        front = body.cv - body.b + p["fat"] + 0.045
        canvas.shape("cartilage", _Ellipse(side * 0.14, front, 0.04, 0.013, angle=side * 0.25))
    _ribs(canvas, body, p, inset=p["fat"] + 0.035, z=z, count=8, front_gap=0.45, back_gap=0.35)


# -------------------------------------------------------------------------- liver


def _liver_params(rng: np.random.Generator, px: float) -> dict:
    p: dict = {}
    body = _Ellipse(0.0, 0.03, _jitter(rng, 0.82, 0.05), _jitter(rng, 0.6, 0.06), wobble=_wobble(rng, 0.05))
    liver_main = _Ellipse(_jitter(rng, -0.34, 0.08), -0.02, _jitter(rng, 0.45, 0.06), _jitter(rng, 0.45, 0.06),
                          wobble=_wobble(rng, 0.06))
    left_lobe = _Ellipse(0.05, -0.3, _jitter(rng, 0.3, 0.15), _jitter(rng, 0.13, 0.15), angle=-0.2,
                         wobble=_wobble(rng, 0.05))
    # portal veins fan out from the porta hepatis, hepatic veins converge on the cava
    portal = (-0.12, 0.06, -0.02)
    ivc = (-0.1, 0.22, 0.1)
    roots = np.array([portal] * 4 + [ivc] * 3)
    dirs = np.array([(-1.0, 0.2, 0.3), (-0.7, -0.6, -0.5), (-0.4, -0.3, 0.8), (1.0, -0.7, 0.2),
                     (-0.7, -0.5, 0.7), (0.0, -1.0, 0.7), (0.6, -0.8, 0.6)]) + rng.normal(0.0, 0.25, (7, 3))
    vessels = _grow_tree(rng, roots, dirs, length=0.1, radius=0.026, generations=8, spread=0.55,
                         step=px / 2, centre=(-0.15, 0.08, 0.0), outward=0.6, decay=0.8)
    # lesions: a cyst and a metastasis or two, somewhere in the right lobe, near the default slice
    lesions = []
    kinds = ["cyst"] + ["lesion"] * int(rng.integers(1, 3))
    for kind in kinds:
        t = rng.uniform(0, 2 * math.pi)
        rr = math.sqrt(rng.uniform(0.05, 0.45))
        lesions.append((kind, liver_main.cu + rr * 0.5 * math.cos(t), liver_main.cv + rr * 0.45 * math.sin(t),
                        float(rng.uniform(-0.08, 0.08)), float(rng.uniform(0.03, 0.07))))
    p.update(body=body, spleen_wobble=_wobble(rng, 0.05), fat=_jitter(rng, 0.06, 0.35),
             wall=_jitter(rng, 0.045, 0.2), liver_main=liver_main,
             left_lobe=left_lobe, vessels=vessels, lesions=lesions,
             spine_u=0.0, spine_phase=float(rng.uniform(0, 2 * math.pi)),
             rib_phase=float(rng.uniform(0, 2 * math.pi)), air_level=float(rng.uniform(-0.2, -0.12)),
             bowel=[(float(rng.uniform(0.05, 0.45)), float(rng.uniform(-0.35, 0.05)), float(rng.uniform(0.045, 0.07)),
                     bool(rng.random() < 0.6)) for _ in range(4)])
    return p


def _liver(canvas: _Canvas, grid: _Grid, p: dict, z: float, fields: dict[str, _Field], *,
           slab: float, modality: str) -> None:
    """An axial upper-abdomen slice at the porta hepatis (z = 0); dome at +0.6, kidneys below."""
    body = p["body"]
    depth = _body_wall(canvas, grid, body, p["fat"], p["wall"], table=modality == "CT")
    u, v = grid.coords()
    cavity = grid.soft(depth - _F(p["fat"] + p["wall"]))
    canvas.paint("fat", cavity)
    for side in (-1.0, 1.0):
        canvas.shape("muscle", _Ellipse(side * 0.12, 0.45, 0.11, 0.09, angle=side * 0.3))  # paraspinal
        canvas.shape("muscle", _Ellipse(side * 0.09, body.cv - body.b + p["fat"] + 0.02, 0.09, 0.02))  # rectus
    # bowel loops under the left lobe, some holding gas
    for bu, bv, br, gas in p["bowel"]:
        loop = _Ellipse(bu, bv, br, br * 0.8)
        canvas.solid("bowel", _Solid(loop, cz=-0.2, c=0.55))
        if gas:
            canvas.solid("gas", _Solid(loop.scaled(0.55), cz=-0.2, c=0.45))
    # spleen behind, pancreas across
    spleen = _Solid(_Ellipse(0.55, 0.2, 0.13, 0.22, angle=-0.7, wobble=p["spleen_wobble"]), cz=0.15, c=0.5)
    sec = spleen.at(z)
    if sec is not None:
        canvas.paint("spleen", grid.soft(sec.depth(u, v)) * cavity)
    canvas.solid("pancreas", _Solid(_Ellipse(0.18, 0.13, 0.2, 0.04, angle=-0.35), cz=-0.2, c=0.22))
    # stomach with an air-fluid level: gas rises to the front of a supine patient
    stomach = _Solid(_Ellipse(0.33, -0.12, 0.19, 0.15, angle=0.3), cz=0.25, c=0.45)
    sec = stomach.at(z)
    if sec is not None:
        canvas.paint("muscle", grid.soft(sec.depth(u, v)) * cavity)
        lumen = grid.soft(sec.depth(u, v) - _F(0.012))
        canvas.paint("fluid", lumen)
        canvas.paint("gas", lumen * grid.soft(_F(p["air_level"]) - v))

    # the liver hugs the right wall and reaches across the midline in front
    k_main = math.sqrt(max(1.0 - ((z - 0.1) / 0.75) ** 2, 0.0))
    k_left = math.sqrt(max(1.0 - ((z - 0.2) / 0.45) ** 2, 0.0))
    liver = np.zeros(grid.shape, _F)
    if k_main > 0:
        liver = grid.soft(p["liver_main"].scaled(k_main).depth(u, v))
    if k_left > 0:
        liver = np.maximum(liver, grid.soft(p["left_lobe"].scaled(k_left).depth(u, v)))
    liver *= cavity * (1.0 - grid.soft(_Ellipse(0.0, 0.35, 0.12, 0.15).depth(u, v)))
    canvas.paint("liver", liver, texture="fine")
    dist, rad = _slice_tubes(grid, p["vessels"], z, slab)
    canvas.paint("vessel_liver", _tube_fraction(dist, rad) * liver)
    # kidneys behind the liver and spleen
    for side, cz in ((-1.0, -0.3), (1.0, -0.22)):
        kid = _Solid(_Ellipse(side * 0.31, 0.33, 0.085, 0.12, angle=side * 0.5), cz=cz, c=0.36)
        canvas.solid("fat", kid, grow=0.015)  # perirenal fat
        canvas.solid("kidney", kid)
        sec = kid.at(z)
        if sec is not None:
            canvas.shape("fat", replace(sec, cu=sec.cu - side * 0.035, a=sec.a * 0.35, b=sec.b * 0.4))
    canvas.solid("bile", _Solid(_Ellipse(-0.27, -0.17, 0.055, 0.1, angle=0.5), cz=-0.12, c=0.22))  # gallbladder
    for kind, lu, lv, lz, lr in p["lesions"]:
        sphere = _Solid(_Ellipse(lu, lv, lr, lr, wobble=((3, 0.05, lz * 40.0),)), cz=lz, c=lr)
        if kind == "cyst":
            canvas.solid("cyst", sphere)
        else:
            canvas.solid("lesion_rim", sphere, grow=0.006)
            canvas.solid("lesion", sphere)

    # great vessels and diaphragmatic crura
    for side in (-1.0, 1.0):
        canvas.shape("muscle", _Ellipse(0.03 + side * 0.06, 0.24, 0.018, 0.07, angle=-side * 0.3))
    canvas.shape("blood", _Ellipse(0.035, 0.25, 0.042, 0.042))  # aorta
    canvas.shape("calcification", _Ellipse(0.06, 0.28, 0.008, 0.006, angle=0.7))
    canvas.shape("blood", _Ellipse(-0.11, 0.22, 0.048, 0.034, angle=0.3))  # inferior vena cava
    _vertebra(canvas, p, cv=0.35, r=0.075)
    _ribs(canvas, body, p, inset=p["fat"] + 0.03, z=z, count=6, front_gap=0.9, back_gap=0.35)


# ---------------------------------------------------------------- chest radiograph


def _curve_band(a: np.ndarray, centre: np.ndarray, slope: np.ndarray, half: float) -> np.ndarray:
    """Projected thickness of a tube of radius ``half`` along a curve, across axis ``a``.

    ``centre`` and ``slope`` describe the curve as a function along the band;
    ``a`` is the coordinate across it. The tube's chord length is
    ``2 sqrt(half^2 - d^2)`` at perpendicular distance d from its axis.
    """
    d = (a - centre) / np.sqrt(1.0 + slope * slope)
    return _F(2.0) * np.sqrt(np.clip(_F(half * half) - d * d, 0.0, None))


def _cxr_params(rng: np.random.Generator, px: float) -> dict:
    # pulmonary vessels seen from the front: a tree per lung from each hilum
    base = np.array([(0.3, -1.0, 0.2), (0.9, -0.6, -0.2), (1.0, 0.1, 0.3), (0.8, 0.7, -0.2), (0.3, 1.0, 0.1)])
    # roots spread down each hilum rather than from one point
    roots = np.concatenate([np.column_stack([np.full(len(base), side * 0.14), np.linspace(-0.17, 0.0, len(base)),
                                             np.zeros(len(base))]) for side in (-1.0, 1.0)])
    dirs = np.concatenate([base * (side, 1.0, 1.0) for side in (-1.0, 1.0)]) + rng.normal(0.0, 0.15, (2 * len(base), 3))
    vessels = _grow_tree(rng, roots, dirs, length=0.13, radius=0.016, generations=9, spread=0.65,
                         step=px, centre=(0.0, -0.1, 0.0), outward=0.45, decay=0.72)
    return {
        "width": _jitter(rng, 0.78, 0.05),
        "apex": _jitter(rng, -0.68, 0.04),
        "dome_r": _jitter(rng, 0.34, 0.08),
        "dome_l": _jitter(rng, 0.41, 0.08),
        "heart_w": _jitter(rng, 0.29, 0.1),
        "heart_u": _jitter(rng, 0.1, 0.3),
        "rib_step": _jitter(rng, 0.104, 0.05),
        "vessels": vessels,
        "bubble": (_jitter(rng, 0.3, 0.15), _jitter(rng, 0.06, 0.3)),
    }


def _cxr_attenuation(grid: _Grid, p: dict, fields: dict[str, _Field]) -> np.ndarray:
    """Attenuation line integrals through the thorax for a PA chest radiograph.

    Units are one thorax depth of soft tissue: the trunk adds up to about one,
    air in the lungs, trachea and stomach takes away what it displaces, and bone
    adds its excess over the soft tissue it replaces. Each structure's projected
    thickness is the chord of an ellipse or tube, so edges fall off the way real
    projections do.
    """
    u, v = grid.coords()
    w = p["width"]
    # trunk: neck, sloping shoulders, chest narrowing to the waist; thinner at the neck
    neck_v = _F(-0.8) + _F(0.14) * (u / _F(w)) ** 2
    shoulder = _F(1.0) / (_F(1.0) + np.exp(-(v - neck_v) / _F(0.03)))
    half_w = _F(0.19) + _F(w + 0.1 - 0.19) * shoulder - _F(0.06) * np.clip((v + _F(0.2)) / _F(1.2), 0.0, 1.0)
    att = (_F(0.55) + _F(0.45) * shoulder) * np.sqrt(np.clip(1.0 - (u / half_w) ** 2, 0.0, None))

    # lungs: rounded outlines under the ribs, cut by the domed hemidiaphragms and the
    # mediastinum; the depth of air rises over a few centimetres from each edge
    lungs = np.zeros(grid.shape, _F)
    for side, dome in ((-1.0, p["dome_r"]), (1.0, p["dome_l"])):
        su = u * _F(side)
        outline = _Ellipse(side * 0.37 * w / 0.78, 0.02, 0.34 * w / 0.78, 0.74 - (p["apex"] + 0.68),
                           wobble=((2, 0.03, 0.0), (3, 0.015, 1.0)))
        wall = outline.depth(u, v) / _F(0.1)
        med_edge = _F(0.07) + _F(0.04) * np.clip((v + _F(0.1)) / _F(0.3), 0.0, 1.0) * (side < 0)
        medial = (su - med_edge) / _F(0.06)
        # each dome is highest a third of the way out and falls to a sharp costophrenic angle
        dome_v = _F(dome) + _F(1.2) * (su - _F(0.3)) ** 2 + _F(2.0) * np.clip(su - _F(0.55), 0.0, None) ** 2
        bottom = (dome_v - v) / _F(0.06)
        inside = np.minimum(np.minimum(wall, medial), bottom)
        lungs += _F(0.8) * np.sqrt(np.clip(inside, 0.0, 1.0))
    # the heart and aortic knob displace lung; some lung stays behind the heart
    heart = _Ellipse(p["heart_u"], 0.2, p["heart_w"], 0.23, angle=-0.3, wobble=((3, 0.03, 1.0),))
    lungs *= _F(1.0) - _F(0.85) * np.sqrt(np.clip(heart.depth(u, v) / _F(0.08), 0.0, 1.0))
    knob = _Ellipse(0.1, -0.28, 0.06, 0.055)
    lungs *= _F(1.0) - _F(0.8) * np.sqrt(np.clip(knob.depth(u, v) / _F(0.04), 0.0, 1.0))
    lung_mask = np.clip(lungs / _F(0.3), 0.0, 1.0)
    att -= lungs * (_F(1.0) + _F(0.03) * fields["fine"].at(0.0))
    # hila: the pulmonary arteries at the lung roots
    for side in (-1.0, 1.0):
        hil = _Ellipse(side * 0.15, -0.08, 0.05, 0.1, angle=side * 0.3)
        att += _F(0.2) * np.sqrt(np.clip(hil.depth(u, v) / _F(0.05), 0.0, 1.0)) * lung_mask
    # trachea down the midline to the carina
    att -= _F(0.07) * np.sqrt(np.clip(1.0 - (u / _F(0.03)) ** 2, 0.0, None)) * grid.soft(_F(-0.18) - v)
    # gastric bubble under the left hemidiaphragm
    bu, br = p["bubble"]
    bubble = _Ellipse(bu, p["dome_l"] + 0.08 + br, br * 1.5, br)
    att -= _F(0.2) * np.sqrt(np.clip(bubble.depth(u, v) / _F(br), 0.0, 1.0))

    # pulmonary vessels, projected: centre lines splatted with their cross-section, blurred into tubes
    tree: _Tree = p["vessels"]
    rows, cols = grid.to_image(tree.points[:, 0], tree.points[:, 1])
    rows, cols = np.rint(rows).astype(np.intp), np.rint(cols).astype(np.intp)
    ok = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    # a tube's cross-section times the centre-line step (one pixel), spread over a pixel's
    # area, then blurred to the tube's width: one blur per width class, not per vessel
    thick = np.pi * tree.radius[ok] ** 2 / grid.px
    r_px = tree.radius[ok] / grid.px
    flat = rows[ok] * grid.shape[1] + cols[ok]
    vess = np.zeros(grid.shape, _F)
    for lo, hi in ((0.0, 2.0), (2.0, 5.0), (5.0, np.inf)):
        cls = (r_px >= lo) & (r_px < hi)
        if cls.any():
            splat = np.bincount(flat[cls], weights=thick[cls], minlength=vess.size).reshape(grid.shape)
            vess += ndimage.gaussian_filter(splat.astype(_F), sigma=max(1.0, 0.6 * float(np.median(r_px[cls]))))
    att += _F(4.0) * vess * lung_mask

    # bones, as excess attenuation over soft tissue
    bone = np.zeros(grid.shape, _F)
    step = p["rib_step"]
    span = w * 0.92
    for side in (-1.0, 1.0):
        for i in range(10):
            vi = p["apex"] + 0.01 + i * step
            box = grid.box(-span - 0.05 if side < 0 else 0.0, 0.0 if side < 0 else span + 0.05, vi - 0.08, vi + 0.5)
            if box is None:
                continue
            bu_, bv_ = grid.coords(box)
            x = np.broadcast_to((bu_ * _F(side) - _F(0.05)) / _F(span), np.broadcast_shapes(bu_.shape, bv_.shape))
            xc = np.clip(x, 0.0, 1.0)
            r = 0.019 + 0.0015 * i
            # posterior rib: leaves the spine nearly level, arcs down round the side
            centre = _F(vi) - _F(0.04) * xc + _F(0.36) * xc**2
            slope = (_F(-0.04) + _F(0.72) * xc) / _F(span)
            shell = _curve_band(bv_, centre, slope, r) - _F(0.6) * _curve_band(bv_, centre, slope, r * 0.65)
            bone[box] += shell * np.clip(x * 12.0, 0.0, 1.0) * np.clip((1.0 - x) * 10.0, 0.0, 1.0)
            if i < 7:
                # anterior rib: from the side wall down and in towards the sternum, fainter
                ca = _F(vi + 0.2 + 0.012 * i) + _F(0.22) * (_F(1.0) - xc) ** 1.5
                slope_a = _F(-0.33) * np.sqrt(_F(1.0) - xc) / _F(span)
                shell_a = _curve_band(bv_, ca, slope_a, r * 0.8) - _F(0.6) * _curve_band(bv_, ca, slope_a, r * 0.5)
                bone[box] += _F(0.5) * shell_a * ((x > 0.3) & (x < 0.98))
        # clavicle: an S-curve from the sternal notch out to the shoulder
        x = (u * _F(side) - _F(0.05)) / _F(0.5)
        cc = _F(p["apex"] + 0.02) - _F(0.09) * x + _F(0.04) * np.sin(x * _F(math.pi * 1.5))
        ends = ((x > 0) & (x < 1.0)) * np.clip((_F(1.0) - x) * _F(8.0), 0.0, 1.0)
        bone += _F(1.1) * _curve_band(v, cc, _F(-0.18) / _F(0.5), 0.026) * ends
        # humeral head and the scapula's edge over the upper lung
        head = _Ellipse(side * (w + 0.04), -0.6, 0.085, 0.095)
        bone += _F(0.3) * np.sqrt(np.clip(head.depth(u, v) / _F(0.1), 0.0, 1.0))
        scap = _Ellipse(side * (w - 0.1), -0.4, 0.1, 0.26, angle=-side * 0.3)
        bone += _F(0.025) * np.clip(scap.depth(u, v) / _F(0.015), 0.0, 1.0)
    # spine behind the mediastinum, interrupted by the disc spaces
    discs = _F(0.8) + _F(0.2) * np.clip(_F(3.0) * np.cos((v + _F(1.0)) * _F(2 * math.pi / 0.09)) + _F(1.0), 0.0, 1.0)
    bone += _F(0.07) * np.sqrt(np.clip(1.0 - (u / _F(0.055)) ** 2, 0.0, None)) * discs
    att += _F(3.0) * bone * (_F(1.0) + _F(0.05) * fields["texture"].at(0.0))
    return att


def _cxr(scene: "_Scene") -> np.ndarray:
    """Render a radiograph: attenuation on the work grid, detector and noise at full size.

    Anatomy above the detector's resolution is computed on a grid half as fine
    when the image is large (its edges are blurred by the focal spot and the
    scintillator anyway), then interpolated; the quantum noise is drawn per pixel.
    """
    att = _cxr_attenuation(scene.grid, scene.params, scene.fields)
    out = scene.out_shape
    if att.shape != out:
        att = ndimage.zoom(att, (out[0] / att.shape[0], out[1] / att.shape[1]), order=1, mode="nearest",
                           grid_mode=True)
    # detector log signal through the processing curve; the heel effect dims the top a little
    signal = _F(100.0) + _F(3700.0) * (_F(1.0) - np.exp(-np.clip(att, 0.0, None) / _F(0.75)))
    rows = np.linspace(-1.0, 1.0, out[0], dtype=_F)[:, None]
    signal *= _F(1.0) + _F(0.02) * rows
    noise = scene.rng.standard_normal(out, dtype=_F)
    signal += noise * (_F(4.0) + _F(0.3) * np.sqrt(signal))
    return signal


# ------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class _Kind:
    organ: str
    modality: str  # the key in PHANTOM_KINDS
    dicom_modality: str
    shape: tuple[int, int]
    fov_mm: float  # across the shorter side at the default size
    dtype: type
    bits_stored: int
    value_range: tuple[int, int]
    slice_mm: float  # nominal slice thickness, for volumes
    z_range: tuple[float, float]  # anatomy units covered by a volume
    z_default: float
    contrast: str
    window: tuple[float, float]  # display centre and width for figures
    noise: float  # CT: sigma in HU; MR: Rician sigma
    extra: Mapping[str, object] = field(default_factory=dict)


_KINDS: dict[tuple[str, str], _Kind] = {
    ("brain", "CT"): _Kind("brain", "CT", "CT", (512, 512), 250.0, np.int16, 16, (-1024, 3071), 5.0,
                           (-0.3, 0.7), 0.0, "non-contrast head CT", (40.0, 80.0), 4.0),
    ("brain", "MR"): _Kind("brain", "MR", "MR", (256, 256), 240.0, np.uint16, 12, (0, 4095), 1.2,
                           (-0.3, 0.7), 0.0, "T1-weighted (MPRAGE-like)", (1400.0, 2800.0), 45.0),
    ("lung", "CT"): _Kind("lung", "CT", "CT", (512, 512), 358.4, np.int16, 16, (-1024, 3071), 1.25,
                          (-0.6, 0.75), 0.0, "non-contrast chest CT", (-600.0, 1500.0), 14.0),
    ("lung", "MR"): _Kind("lung", "MR", "MR", (256, 256), 400.0, np.uint16, 12, (0, 4095), 5.0,
                          (-0.6, 0.75), 0.0, "balanced SSFP-like (bright blood)", (1400.0, 2800.0), 40.0),
    ("lung", "CXR"): _Kind("lung", "CXR", "DX", (2048, 2048), 409.6, np.uint16, 12, (0, 4095), 0.0,
                           (0.0, 0.0), 0.0, "PA chest radiograph", (2048.0, 4096.0), 0.0,
                           extra={"view": "PA"}),
    ("liver", "CT"): _Kind("liver", "CT", "CT", (512, 512), 358.4, np.int16, 16, (-1024, 3071), 2.5,
                           (-0.5, 0.5), 0.0, "non-contrast abdominal CT", (50.0, 350.0), 12.0),
    ("liver", "MR"): _Kind("liver", "MR", "MR", (256, 256), 380.0, np.uint16, 12, (0, 4095), 6.0,
                           (-0.5, 0.5), 0.0, "T2-weighted fat-suppressed (SPIR-like)", (1200.0, 2400.0), 35.0),
}

_TABLES: dict[tuple[str, str], Mapping[str, tuple[float, float]]] = {
    ("brain", "CT"): _CT, ("brain", "MR"): _MR_BRAIN, ("lung", "CT"): _CT, ("lung", "MR"): _MR_LUNG,
    ("liver", "CT"): _CT, ("liver", "MR"): _MR_LIVER,
}

_ALIASES = {"MRI": "MR", "X-RAY": "CXR", "DX": "CXR", "CR": "CXR"}


def _kind(organ: str, modality: str) -> _Kind:
    if not isinstance(organ, str) or not isinstance(modality, str):
        raise TypeError("organ and modality must be strings, such as phantom('brain', 'CT')")
    key = (organ.strip().lower(), _ALIASES.get(modality.strip().upper(), modality.strip().upper()))
    try:
        return _KINDS[key]
    except KeyError:
        kinds = ", ".join(f"{o}/{m}" for o, m in PHANTOM_KINDS)
        raise ValueError(f"no phantom of kind {organ!r}/{modality!r}; choose one of {kinds}") from None


def _check_shape(shape: Sequence[int] | None, kind: _Kind) -> tuple[int, int]:
    if shape is None:
        return kind.shape
    try:
        rows, cols = (int(n) for n in shape)
        exact = all(int(n) == n for n in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be two integers (rows, cols), not {shape!r}") from None
    if not exact:
        raise TypeError(f"shape must be two integers (rows, cols), not {shape!r}")
    if rows < _MIN_SIDE or cols < _MIN_SIDE:
        raise ValueError(f"shape must be at least {_MIN_SIDE}x{_MIN_SIDE} pixels, not {rows}x{cols}")
    return rows, cols


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


@dataclass
class _Scene:
    """Everything a seed decides for one phantom, before any slice is drawn."""

    kind: _Kind
    grid: _Grid
    params: dict
    fields: dict[str, _Field]
    rng: np.random.Generator
    spacing_mm: float
    out_shape: tuple[int, int]


def _scene(kind: _Kind, shape: tuple[int, int], seed: int, zs: Sequence[float]) -> _Scene:
    rng = np.random.default_rng(seed)
    place = _placement(rng)
    if kind.modality == "CXR":
        place["angle"] *= 0.5  # patients stand straighter against a detector than they lie on a couch
    work = shape
    if kind.modality == "CXR" and min(shape) >= 1024:
        work = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)  # see _cxr
    grid = _Grid(work, scale=place["scale"], angle=place["angle"], shift=(place["dx"], place["dy"]))
    if kind.organ == "brain":
        params = _brain_params(rng)
    elif kind.modality == "CXR":
        params = _cxr_params(rng, grid.px)
    elif kind.organ == "lung":
        params = _chest_params(rng, grid.px)
    else:
        params = _liver_params(rng, grid.px)
    fields = {
        "texture": _Field(rng, grid, 0.25, zs),
        "fine": _Field(rng, grid, 0.035, zs),
        "fold": _Field(rng, grid, 0.09, zs),
        "fold2": _Field(rng, grid, 0.07, zs),
        "depth": _Field(rng, grid, 0.2, zs),
        "bias": _Field(rng, grid, 1.2, zs),
    }
    # a different matrix covers the same field of view: the anatomy keeps its size in mm
    spacing = kind.fov_mm / min(shape)
    return _Scene(kind, grid, params, fields, rng, spacing, shape)


def _render(scene: _Scene, z: float) -> np.ndarray:
    """One plane of a scene at height z, in the kind's stored dtype."""
    kind, grid, p, fields = scene.kind, scene.grid, scene.params, scene.fields
    if kind.modality == "CXR":
        img = _cxr(scene)
    else:
        canvas = _Canvas(grid, _TABLES[(kind.organ, kind.modality)], fields["texture"].at(z), fields["fine"].at(z), z)
        # half the slice thickness (at least a pixel): how far from the plane a tube still shows
        slab = max(kind.slice_mm / (kind.fov_mm / 2.0) / 2.0, grid.px)
        if kind.organ == "brain":
            _brain(canvas, grid, p, z, fields)
        elif kind.organ == "lung":
            _chest(canvas, grid, p, z, fields, slab=slab, modality=kind.modality)
        else:
            _liver(canvas, grid, p, z, fields, slab=slab, modality=kind.modality)
        img = canvas.img
        if kind.modality == "CT":
            # CT noise is nearly Gaussian and slightly correlated by the reconstruction kernel
            noise = ndimage.uniform_filter(scene.rng.standard_normal(grid.shape, dtype=_F), size=2)
            img = img + noise * _F(kind.noise * 2.0)
        else:
            # receive-coil shading, then Rician magnitude noise: |signal + complex Gaussian|
            img = img * (_F(1.0) + _F(0.1) * fields["bias"].at(z))
            re = scene.rng.standard_normal(grid.shape, dtype=_F) * _F(kind.noise)
            im = scene.rng.standard_normal(grid.shape, dtype=_F) * _F(kind.noise)
            img = np.sqrt((img + re) ** 2 + im * im)
    lo, hi = kind.value_range
    return np.clip(np.rint(img), lo, hi).astype(kind.dtype)


def _metadata(kind: _Kind, seed: int, extra: Mapping[str, object]) -> dict[str, object]:
    meta: dict[str, object] = {
        "organ": kind.organ,
        "phantom": True,
        "seed": seed,
        "kind": f"{kind.organ}-{kind.modality}",
        "contrast": kind.contrast,
        "window_center": kind.window[0],
        "window_width": kind.window[1],
    }
    meta.update(kind.extra)
    meta.update(extra)
    return meta


def phantom(organ: str, modality: str, *, seed: int = 0, shape: Sequence[int] | None = None) -> MedicalImage:
    """A synthetic medical image of one organ in one modality.

    Parameters
    ----------
    organ, modality
        One of :data:`PHANTOM_KINDS`: ``"brain"``, ``"lung"`` or ``"liver"``
        with ``"CT"``, ``"MR"`` (``"MRI"`` is accepted) or, for the lung only,
        ``"CXR"`` (a PA chest radiograph). Case does not matter.
    seed
        Seeds :func:`numpy.random.default_rng`. The same seed gives the same
        image, bit for bit; another seed places the patient slightly
        differently and draws new organ sizes and outlines, textures, vessel
        trees, lesions and noise.
    shape
        ``(rows, cols)`` instead of the clinical default (CT 512x512, MR
        256x256, CXR 2048x2048); at least 32 each, square or not. The field of
        view across the shorter side stays the same, so the pixel spacing
        changes.

    Returns
    -------
    MedicalImage
        ``format="array"``, ``photometric="MONOCHROME2"``, ``source=None``.
        CT: int16 Hounsfield units, ``bits_stored=16``, modality ``"CT"``.
        MR: uint16 in 0..4095, ``bits_stored=12``, modality ``"MR"``.
        CXR: uint16 in 0..4095, ``bits_stored=12``, modality ``"DX"``.
        ``spacing`` is ``(row_mm, col_mm)``; ``metadata`` holds ``organ``,
        ``phantom=True``, ``seed``, ``kind``, ``contrast``, a display window
        (``window_center``, ``window_width``) and, for slices, ``slice_z``.

    Raises
    ------
    ValueError
        An unknown kind, a shape under 32 pixels, or a negative seed.

    Examples
    --------
    >>> from deepkedi.datasets import phantom
    >>> ct = phantom("brain", "CT", seed=1)
    >>> ct.pixels.shape, ct.pixels.dtype.name, ct.modality
    ((512, 512), 'int16', 'CT')
    >>> phantom("lung", "CXR", shape=(256, 200)).modality
    'DX'
    """
    kind = _kind(organ, modality)
    seed = _check_seed(seed)
    size = _check_shape(shape, kind)
    scene = _scene(kind, size, seed, [kind.z_default])
    pixels = _render(scene, kind.z_default)
    extra = {} if kind.modality == "CXR" else {"slice_z": kind.z_default}
    return MedicalImage(
        pixels=pixels,
        format="array",
        photometric="MONOCHROME2",
        modality=kind.dicom_modality,
        bits_stored=kind.bits_stored,
        spacing=(scene.spacing_mm, scene.spacing_mm),
        metadata=_metadata(kind, seed, extra),
        source=None,
    )


def phantom_volume(organ: str, modality: str, *, slices: int, seed: int = 0,
                   shape: Sequence[int] | None = None) -> MedicalImage:
    """A stack of parallel slices through one synthetic patient.

    The anatomy is three-dimensional: organs are solids whose sections grow and
    shrink from slice to slice, vessel trees run through the stack, and
    textures vary smoothly in z; only the noise is drawn afresh for each slice.

    Parameters
    ----------
    organ, modality
        A CT or MR kind of :data:`PHANTOM_KINDS` (a radiograph has no slices).
    slices
        Number of slices, at least 1. They are centred on the level
        :func:`phantom` shows, ``slice_mm`` apart (CT: brain 5, lung 1.25,
        liver 2.5 mm; MR: brain 1.2, lung 5, liver 6 mm) or closer when that
        many would not fit in the organ.
    seed, shape
        As for :func:`phantom`.

    Returns
    -------
    MedicalImage
        Pixels ``(slices, rows, cols)``; ``spacing`` is
        ``(slice_mm, row_mm, col_mm)``; ``metadata["slice_z"]`` lists the
        levels in anatomy units.

    Raises
    ------
    ValueError
        A radiograph kind, fewer than one slice, or as for :func:`phantom`.

    Examples
    --------
    >>> from deepkedi.datasets import phantom_volume
    >>> vol = phantom_volume("liver", "MR", slices=4, shape=(64, 64))
    >>> vol.pixels.shape, len(vol.spacing)
    ((4, 64, 64), 3)
    """
    kind = _kind(organ, modality)
    if kind.modality == "CXR":
        raise ValueError("a chest radiograph is a projection and has no slices; use phantom('lung', 'CXR')")
    if isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
        raise ValueError(f"slices must be a positive integer, not {slices!r}")
    seed = _check_seed(seed)
    size = _check_shape(shape, kind)
    n = int(slices)
    # anatomy units are fov/2 millimetres; space slices at the nominal thickness if they fit
    mm_per_unit = kind.fov_mm / 2.0
    lo, hi = kind.z_range
    dz = min(kind.slice_mm / mm_per_unit, (hi - lo) / n)
    zs = kind.z_default + (np.arange(n) - (n - 1) / 2.0) * dz
    zs = zs + max(lo - zs[0], 0.0) - max(zs[-1] - hi, 0.0)  # slide the stack inside the organ
    scene = _scene(kind, size, seed, [float(z) for z in zs])
    pixels = np.stack([_render(scene, float(z)) for z in zs])
    return MedicalImage(
        pixels=pixels,
        format="array",
        photometric="MONOCHROME2",
        modality=kind.dicom_modality,
        bits_stored=kind.bits_stored,
        spacing=(float(dz * mm_per_unit), scene.spacing_mm, scene.spacing_mm),
        metadata=_metadata(kind, seed, {"slice_z": [round(float(z), 6) for z in zs]}),
        source=None,
    )
