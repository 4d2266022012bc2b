"""Shared geometry of every phantom: the pixel grid, soft-edged shapes, random outlines.

Geometry lives in *anatomy units*: the shorter image side spans [-1, 1], the
patient's right is on the image's left and anterior is up. Shapes are evaluated
on whole pixel arrays (or on the pixels of their bounding box) and given a
one-pixel soft edge, the partial-volume effect of a real detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

_F = np.float32
_FULL = (slice(None), slice(None))
Box = tuple[slice, slice]


# --------------------------------------------------------------------------- grid


class _Grid:
    """Pixel centres of one image plane, in anatomy units.

    The anatomy is placed in the image by ``image = scale * R(angle) @ anatomy + shift``
    (image units: the shorter side spans [-1, 1]); the seed draws the three.
    """

    def __init__(
        self, shape: tuple[int, int], *, scale: float = 1.0, angle: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)
    ) -> None:
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
        r0, r1 = max(math.floor(r.min()) - 2, 0), min(math.ceil(r.max()) + 3, self.shape[0])
        c0, c1 = max(math.floor(c.min()) - 2, 0), min(math.ceil(c.max()) + 3, self.shape[1])
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

    def grown(self, d: float) -> _Ellipse:
        """The same outline moved outwards by ``d`` (inwards when negative)."""
        return replace(self, a=max(self.a + d, 1e-4), b=max(self.b + d, 1e-4))

    def scaled(self, k: float) -> _Ellipse:
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


# -------------------------------------------------------------------- random draws


def _jitter(rng: np.random.Generator, value: float, rel: float) -> float:
    return float(value * (1.0 + rel * rng.uniform(-1.0, 1.0)))


def _wobble(
    rng: np.random.Generator, amount: float, orders: Sequence[int] = (2, 3, 4, 5)
) -> tuple[tuple[int, float, float], ...]:
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
