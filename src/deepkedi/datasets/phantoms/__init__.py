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

The package holds one module per concern: ``_geometry`` (grid, shapes, random
outlines), ``_fields`` (textures), ``_vessels`` (3D trees), ``_canvas`` (the
painter), ``_tissues`` (CT numbers and MR signal per tissue), ``_trunk`` (body
wall, vertebra, ribs), one module per anatomy (``_brain``, ``_chest``,
``_liver``, ``_radiograph``), ``_kinds`` (sizes and units of each kind) and
``_scene`` (a seed's scene and the rendering of a plane with the modality's
noise). Only :data:`PHANTOM_KINDS`, :func:`phantom` and :func:`phantom_volume`
are public.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepkedi.datasets.phantoms._kinds import PHANTOM_KINDS, _check_seed, _check_shape, _kind
from deepkedi.datasets.phantoms._scene import _metadata, _render, _scene
from deepkedi.imaging.image import MedicalImage

__all__ = ["PHANTOM_KINDS", "phantom", "phantom_volume"]


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


def phantom_volume(
    organ: str, modality: str, *, slices: int, seed: int = 0, shape: Sequence[int] | None = None
) -> MedicalImage:
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
