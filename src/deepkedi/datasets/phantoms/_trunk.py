"""Parts every trunk section shares: body wall and couch, vertebra, ribs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from deepkedi.datasets.phantoms._canvas import _Canvas
from deepkedi.datasets.phantoms._geometry import _F, _Ellipse, _Grid

# ----------------------------------------------------------------- common parts


def _body_wall(
    canvas: _Canvas, grid: _Grid, body: _Ellipse, fat: float, muscle: float, *, table: bool = True
) -> np.ndarray:
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
        canvas.shape(
            "bone", _Ellipse(cu + side * r * 1.05, canal_v - r * 0.2, r * 0.85, r * 0.26, angle=side * 0.35)
        )  # transverse processes
    canvas.shape("bone", _Ellipse(cu, canal_v + r * 1.05, r * 0.2, r * 0.75))  # spinous process
    canvas.shape("cancellous", _Ellipse(cu, canal_v + r * 1.0, r * 0.1, r * 0.6))
    canvas.shape("csf", _Ellipse(cu, canal_v, r * 0.46, r * 0.42))
    canvas.shape("cord", _Ellipse(cu, canal_v + r * 0.03, r * 0.27, r * 0.22))
    body = _Ellipse(cu, cv, r, r * 0.9, wobble=((4, 0.02, p["spine_phase"]),))
    canvas.shape("bone", body)
    canvas.shape("cancellous", body, grow=-0.008)


def _ribs(
    canvas: _Canvas,
    body: _Ellipse,
    p: Mapping[str, float],
    *,
    inset: float,
    z: float,
    count: int,
    front_gap: float,
    back_gap: float,
) -> None:
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
