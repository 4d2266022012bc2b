"""A seed's scene (placement, anatomy, textures) and the rendering of one plane of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepkedi.datasets.phantoms._brain import _brain, _brain_params
from deepkedi.datasets.phantoms._canvas import _Canvas
from deepkedi.datasets.phantoms._chest import _chest, _chest_params
from deepkedi.datasets.phantoms._fields import _Field
from deepkedi.datasets.phantoms._geometry import _F, _Grid, _placement
from deepkedi.datasets.phantoms._kinds import _TABLES, _Kind
from deepkedi.datasets.phantoms._liver import _liver, _liver_params
from deepkedi.datasets.phantoms._radiograph import _cxr, _cxr_params


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
