"""The upper abdomen at the porta hepatis (CT and MR): liver with vessels and lesions, and its neighbours."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from deepkedi.datasets.phantoms._canvas import _Canvas
from deepkedi.datasets.phantoms._fields import _Field
from deepkedi.datasets.phantoms._geometry import _F, _Ellipse, _Grid, _jitter, _Solid, _wobble
from deepkedi.datasets.phantoms._trunk import _body_wall, _ribs, _vertebra
from deepkedi.datasets.phantoms._vessels import _grow_tree, _slice_tubes, _tube_fraction

# -------------------------------------------------------------------------- liver


def _liver_params(rng: np.random.Generator, px: float) -> dict:
    p: dict = {}
    body = _Ellipse(0.0, 0.03, _jitter(rng, 0.82, 0.05), _jitter(rng, 0.6, 0.06), wobble=_wobble(rng, 0.05))
    liver_main = _Ellipse(
        _jitter(rng, -0.34, 0.08), -0.02, _jitter(rng, 0.45, 0.06), _jitter(rng, 0.45, 0.06), wobble=_wobble(rng, 0.06)
    )
    left_lobe = _Ellipse(
        0.05, -0.3, _jitter(rng, 0.3, 0.15), _jitter(rng, 0.13, 0.15), angle=-0.2, wobble=_wobble(rng, 0.05)
    )
    # portal veins fan out from the porta hepatis, hepatic veins converge on the cava
    portal = (-0.12, 0.06, -0.02)
    ivc = (-0.1, 0.22, 0.1)
    roots = np.array([portal] * 4 + [ivc] * 3)
    dirs = np.array(
        [
            (-1.0, 0.2, 0.3),
            (-0.7, -0.6, -0.5),
            (-0.4, -0.3, 0.8),
            (1.0, -0.7, 0.2),
            (-0.7, -0.5, 0.7),
            (0.0, -1.0, 0.7),
            (0.6, -0.8, 0.6),
        ]
    ) + rng.normal(0.0, 0.25, (7, 3))
    vessels = _grow_tree(
        rng,
        roots,
        dirs,
        length=0.1,
        radius=0.026,
        generations=8,
        spread=0.55,
        step=px / 2,
        centre=(-0.15, 0.08, 0.0),
        outward=0.6,
        decay=0.8,
    )
    # lesions: a cyst and a metastasis or two, somewhere in the right lobe, near the default slice
    lesions = []
    kinds = ["cyst"] + ["lesion"] * int(rng.integers(1, 3))
    for kind in kinds:
        t = rng.uniform(0, 2 * math.pi)
        rr = math.sqrt(rng.uniform(0.05, 0.45))
        lesions.append(
            (
                kind,
                liver_main.cu + rr * 0.5 * math.cos(t),
                liver_main.cv + rr * 0.45 * math.sin(t),
                float(rng.uniform(-0.08, 0.08)),
                float(rng.uniform(0.03, 0.07)),
            )
        )
    p.update(
        body=body,
        spleen_wobble=_wobble(rng, 0.05),
        fat=_jitter(rng, 0.06, 0.35),
        wall=_jitter(rng, 0.045, 0.2),
        liver_main=liver_main,
        left_lobe=left_lobe,
        vessels=vessels,
        lesions=lesions,
        spine_u=0.0,
        spine_phase=float(rng.uniform(0, 2 * math.pi)),
        rib_phase=float(rng.uniform(0, 2 * math.pi)),
        air_level=float(rng.uniform(-0.2, -0.12)),
        bowel=[
            (
                float(rng.uniform(0.05, 0.45)),
                float(rng.uniform(-0.35, 0.05)),
                float(rng.uniform(0.045, 0.07)),
                bool(rng.random() < 0.6),
            )
            for _ in range(4)
        ],
    )
    return p


def _liver(
    canvas: _Canvas, grid: _Grid, p: dict, z: float, fields: dict[str, _Field], *, slab: float, modality: str
) -> None:
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
