"""The head: skull, cortex with sulci, deep grey matter and ventricles (CT and MR)."""

from __future__ import annotations

import math

import numpy as np

from deepkedi.datasets.phantoms._canvas import _Canvas
from deepkedi.datasets.phantoms._fields import _Field
from deepkedi.datasets.phantoms._geometry import _F, _Ellipse, _Grid, _jitter, _Solid, _wobble

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
    for n, phase0, reach, wander, fold in (
        (p["n_gyri"], p["gyri_phase"], 1.0, 1.6, "fold"),
        (2 * p["n_gyri"], p["gyri_phase"] + math.pi / 2, 0.5, 2.4, "fold2"),
    ):
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
            canvas.solid(
                "calcification",
                _Solid(_Ellipse(mid + side * 0.155 * s, cv + 0.21 + sv, 0.014, 0.018), cz=-0.02, c=0.06),
            )
    canvas.solid("csf", _Solid(_Ellipse(mid, cv + 0.07, 0.009 * s, 0.08), cz=-0.15, c=0.17))  # third ventricle
    if p["calc"]:
        canvas.solid("calcification", _Solid(_Ellipse(mid, cv + 0.2, 0.012, 0.014), cz=-0.08, c=0.05))  # pineal
