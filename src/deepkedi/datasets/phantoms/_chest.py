"""The chest in axial section (CT and MR): lungs with vessels and airways, heart, mediastinum."""

from __future__ import annotations

import math

import numpy as np

from deepkedi.datasets.phantoms._canvas import _Canvas
from deepkedi.datasets.phantoms._fields import _Field
from deepkedi.datasets.phantoms._geometry import _F, _Ellipse, _Grid, _jitter, _Solid, _wobble
from deepkedi.datasets.phantoms._trunk import _body_wall, _ribs, _vertebra
from deepkedi.datasets.phantoms._vessels import _grow_tree, _merge_trees, _scatter_vessels, _slice_tubes, _tube_fraction

# -------------------------------------------------------------------------- chest


def _chest_params(rng: np.random.Generator, px: float) -> dict:
    p: dict = {}
    body = _Ellipse(0.0, 0.03, _jitter(rng, 0.84, 0.05), _jitter(rng, 0.58, 0.06), wobble=_wobble(rng, 0.05))
    hilum_v = -0.01
    # pulmonary arteries: lobar branches leave each hilum up, out and down into the lung
    base = np.array(
        [(0.5, -0.3, 0.9), (0.9, -0.5, 0.4), (1.0, 0.1, 0.0), (0.7, -0.6, -0.5), (0.6, 0.5, -0.7), (0.4, 0.4, -1.0)]
    )
    roots = np.concatenate([np.tile((side * 0.14, hilum_v, -0.02), (len(base), 1)) for side in (-1.0, 1.0)])
    dirs = np.concatenate([base * (side, 1.0, 1.0) for side in (-1.0, 1.0)]) + rng.normal(0.0, 0.25, (2 * len(base), 3))
    arteries = _grow_tree(
        rng,
        roots,
        dirs,
        length=0.12,
        radius=0.026,
        generations=9,
        spread=0.6,
        step=px / 2,
        centre=(0.0, hilum_v, 0.0),
        outward=0.45,
        decay=0.74,
    )
    hila = np.array([(-0.14, hilum_v, -0.02), (0.14, hilum_v, -0.02)])
    periphery = _scatter_vessels(
        rng, 9000, low=(-0.8, -0.5, -0.75), high=(0.8, 0.55, 0.85), hila=hila, length=0.035, radius=0.007, step=px / 2
    )
    p.update(
        body=body,
        fat=_jitter(rng, 0.05, 0.35),
        wall=_jitter(rng, 0.085, 0.15),
        arteries=_merge_trees(arteries, periphery),
        airways=arteries.shifted(2.4, max_generation=4, radius_scale=0.8),
        heart=_Ellipse(
            _jitter(rng, 0.14, 0.2),
            -0.15,
            _jitter(rng, 0.29, 0.08),
            _jitter(rng, 0.2, 0.08),
            angle=-0.5,
            wobble=_wobble(rng, 0.04),
        ),
        spine_u=0.0,
        spine_phase=float(rng.uniform(0, 2 * math.pi)),
        rib_phase=float(rng.uniform(0, 2 * math.pi)),
        gradient=float(rng.uniform(40.0, 80.0)),
    )
    return p


def _chest(
    canvas: _Canvas, grid: _Grid, p: dict, z: float, fields: dict[str, _Field], *, slab: float, modality: str
) -> None:
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
    mediastinum = np.maximum(
        grid.soft(_Ellipse(0.035, 0.15, 0.12, 0.12).depth(u, v)),
        grid.soft(_F(0.015) - np.abs(u)) * grid.soft(_F(-0.1) - v),
    )
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
            return _Ellipse(
                h.cu + (du * c - dv * s) * h.a / 0.25,
                h.cv + (du * s + dv * c) * h.b / 0.19,
                a * h.a / 0.25,
                b * h.b / 0.19,
                angle=h.angle + ang,
            )

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
