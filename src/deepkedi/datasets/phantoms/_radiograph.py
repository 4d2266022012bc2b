"""The PA chest radiograph: attenuation line integrals, detector response and quantum noise."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from deepkedi.datasets.phantoms._fields import _Field
from deepkedi.datasets.phantoms._geometry import _F, _Ellipse, _Grid, _jitter
from deepkedi.datasets.phantoms._vessels import _grow_tree, _Tree

if TYPE_CHECKING:
    from deepkedi.datasets.phantoms._scene import _Scene


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
    roots = np.concatenate(
        [
            np.column_stack([np.full(len(base), side * 0.14), np.linspace(-0.17, 0.0, len(base)), np.zeros(len(base))])
            for side in (-1.0, 1.0)
        ]
    )
    dirs = np.concatenate([base * (side, 1.0, 1.0) for side in (-1.0, 1.0)]) + rng.normal(0.0, 0.15, (2 * len(base), 3))
    vessels = _grow_tree(
        rng,
        roots,
        dirs,
        length=0.13,
        radius=0.016,
        generations=9,
        spread=0.65,
        step=px,
        centre=(0.0, -0.1, 0.0),
        outward=0.45,
        decay=0.72,
    )
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
        outline = _Ellipse(
            side * 0.37 * w / 0.78,
            0.02,
            0.34 * w / 0.78,
            0.74 - (p["apex"] + 0.68),
            wobble=((2, 0.03, 0.0), (3, 0.015, 1.0)),
        )
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


def _cxr(scene: _Scene) -> np.ndarray:
    """Render a radiograph: attenuation on the work grid, detector and noise at full size.

    Anatomy above the detector's resolution is computed on a grid half as fine
    when the image is large (its edges are blurred by the focal spot and the
    scintillator anyway), then interpolated; the quantum noise is drawn per pixel.
    """
    att = _cxr_attenuation(scene.grid, scene.params, scene.fields)
    out = scene.out_shape
    if att.shape != out:
        att = ndimage.zoom(att, (out[0] / att.shape[0], out[1] / att.shape[1]), order=1, mode="nearest", grid_mode=True)
    # detector log signal through the processing curve; the heel effect dims the top a little
    signal = _F(100.0) + _F(3700.0) * (_F(1.0) - np.exp(-np.clip(att, 0.0, None) / _F(0.75)))
    rows = np.linspace(-1.0, 1.0, out[0], dtype=_F)[:, None]
    signal *= _F(1.0) + _F(0.02) * rows
    noise = scene.rng.standard_normal(out, dtype=_F)
    signal += noise * (_F(4.0) + _F(0.3) * np.sqrt(signal))
    return signal
