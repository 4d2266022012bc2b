"""The phantom kinds: sizes, units, bit depths and slice spacing of each (organ, modality)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from deepkedi.datasets.phantoms._tissues import _CT, _MR_BRAIN, _MR_LIVER, _MR_LUNG

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

_MIN_SIDE = 32


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
    ("brain", "CT"): _Kind(
        "brain",
        "CT",
        "CT",
        (512, 512),
        250.0,
        np.int16,
        16,
        (-1024, 3071),
        5.0,
        (-0.3, 0.7),
        0.0,
        "non-contrast head CT",
        (40.0, 80.0),
        4.0,
    ),
    ("brain", "MR"): _Kind(
        "brain",
        "MR",
        "MR",
        (256, 256),
        240.0,
        np.uint16,
        12,
        (0, 4095),
        1.2,
        (-0.3, 0.7),
        0.0,
        "T1-weighted (MPRAGE-like)",
        (1400.0, 2800.0),
        45.0,
    ),
    ("lung", "CT"): _Kind(
        "lung",
        "CT",
        "CT",
        (512, 512),
        358.4,
        np.int16,
        16,
        (-1024, 3071),
        1.25,
        (-0.6, 0.75),
        0.0,
        "non-contrast chest CT",
        (-600.0, 1500.0),
        14.0,
    ),
    ("lung", "MR"): _Kind(
        "lung",
        "MR",
        "MR",
        (256, 256),
        400.0,
        np.uint16,
        12,
        (0, 4095),
        5.0,
        (-0.6, 0.75),
        0.0,
        "balanced SSFP-like (bright blood)",
        (1400.0, 2800.0),
        40.0,
    ),
    ("lung", "CXR"): _Kind(
        "lung",
        "CXR",
        "DX",
        (2048, 2048),
        409.6,
        np.uint16,
        12,
        (0, 4095),
        0.0,
        (0.0, 0.0),
        0.0,
        "PA chest radiograph",
        (2048.0, 4096.0),
        0.0,
        extra={"view": "PA"},
    ),
    ("liver", "CT"): _Kind(
        "liver",
        "CT",
        "CT",
        (512, 512),
        358.4,
        np.int16,
        16,
        (-1024, 3071),
        2.5,
        (-0.5, 0.5),
        0.0,
        "non-contrast abdominal CT",
        (50.0, 350.0),
        12.0,
    ),
    ("liver", "MR"): _Kind(
        "liver",
        "MR",
        "MR",
        (256, 256),
        380.0,
        np.uint16,
        12,
        (0, 4095),
        6.0,
        (-0.5, 0.5),
        0.0,
        "T2-weighted fat-suppressed (SPIR-like)",
        (1200.0, 2400.0),
        35.0,
    ),
}

_TABLES: dict[tuple[str, str], Mapping[str, tuple[float, float]]] = {
    ("brain", "CT"): _CT,
    ("brain", "MR"): _MR_BRAIN,
    ("lung", "CT"): _CT,
    ("lung", "MR"): _MR_LUNG,
    ("liver", "CT"): _CT,
    ("liver", "MR"): _MR_LIVER,
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
