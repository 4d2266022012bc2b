"""Result records of the metrics: small frozen dataclasses with a JSON-safe ``to_dict``.

``to_dict`` turns every number into a Python ``float``/``int``, infinities and NaN into
the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has no such numbers), tuples into
lists, and nested records into dicts. Arrays kept for plotting (the scatter pairs of
:class:`CorrelationResult`) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "ChiSquareResult",
    "CorrelationResult",
    "EntropyResult",
    "LocalEntropyResult",
    "NpcrResult",
    "QualityResult",
    "SensitivityResult",
    "UaciResult",
    "json_safe",
]


def json_safe(value: Any) -> Any:
    """``value`` with every part that :func:`json.dumps` cannot write exactly made plain.

    The rule of every record's ``to_dict``, for callers that build their own documents
    from metric values (the attack evidence of :mod:`deepkedi.analysis.attacks`).

    Parameters
    ----------
    value
        A record, a number (Python or NumPy), a tuple, list, array or dict of them, or
        anything else.

    Returns
    -------
    Any
        Records become their ``to_dict()``; NumPy booleans, integers and floats become
        ``bool``, ``int`` and ``float``; NaN and the infinities become the strings
        ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has no such numbers); tuples, lists and
        arrays become lists; dict keys become strings; other values are returned as they
        are.

    Examples
    --------
    >>> json_safe({"p": np.float64(0.5), "bounds": (np.int64(1), float("inf")), 2: [np.nan]})
    {'p': 0.5, 'bounds': [1, 'inf'], '2': ['nan']}
    """
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    if isinstance(value, (tuple, list, np.ndarray)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-safe dict (arrays kept for plotting are left out)."""
        return {
            f.name: json_safe(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if f.metadata.get("json", True)
        }


@dataclass(frozen=True)
class EntropyResult(_Record):
    """Global Shannon entropy of an image's histogram.

    Attributes
    ----------
    value : Entropy in bits per pixel, over ``2**bits`` bins.
    bits : Bit depth the histogram used.
    maximum : ``bits``, the entropy of a perfectly flat histogram.
    expected_random : Expected entropy of the same number of i.i.d. uniform pixels
        (≈ ``bits - (2**bits - 1) / (2 n ln 2)``; 7.9972 for 256² 8-bit).
    pixels : Number of pixels n.
    per_byte : For data over 8 bits, the entropy (max 8) of the little-endian byte
        stream of the 16-bit words (signed data after its shift to unsigned); None
        otherwise.
    """

    value: float
    bits: int
    maximum: float
    expected_random: float
    pixels: int
    per_byte: float | None = None


@dataclass(frozen=True)
class LocalEntropyResult(_Record):
    """Local Shannon entropy (Wu et al. 2013): mean entropy of k random blocks.

    Attributes
    ----------
    value : Mean of the block entropies.
    lower, upper : Acceptance interval for the mean at level ``alpha``.
    passed : ``lower <= value <= upper``.
    expected_random : Mean block entropy of uniform random data.
    block_entropies : The k block entropies.
    """

    value: float
    bits: int
    blocks: int
    block_pixels: int
    alpha: float
    lower: float
    upper: float
    passed: bool
    expected_random: float
    block_entropies: tuple[float, ...] = ()


@dataclass(frozen=True)
class ChiSquareResult(_Record):
    """χ² goodness of fit of the histogram against uniform: pass if ``value < critical``."""

    value: float
    dof: int
    critical: float
    alpha: float
    passed: bool


@dataclass(frozen=True)
class CorrelationResult(_Record):
    """Pearson correlation of adjacent pixels in one direction.

    ``coefficient`` is NaN when either pixel set is constant. ``x`` and ``y`` hold at
    most 10 000 of the pairs used, for a scatter plot; ``to_dict`` leaves them out.
    """

    coefficient: float
    direction: str
    pairs: int
    x: np.ndarray = field(repr=False, compare=False, metadata={"json": False})
    y: np.ndarray = field(repr=False, compare=False, metadata={"json": False})


@dataclass(frozen=True)
class NpcrResult(_Record):
    """NPCR in percent with Wu, Noonan and Agaian's one-sided critical value N*_α."""

    value: float
    critical: float
    expected: float
    alpha: float
    bits: int
    passed: bool


@dataclass(frozen=True)
class UaciResult(_Record):
    """UACI in percent with Wu, Noonan and Agaian's two-sided interval [U*-, U*+]."""

    value: float
    lower: float
    upper: float
    expected: float
    alpha: float
    bits: int
    passed: bool


@dataclass(frozen=True)
class SensitivityResult(_Record):
    """NPCR and UACI between the ciphers of two inputs that differ in one place.

    ``position`` is the pixel changed (plaintext sensitivity) and ``bit`` the key bit
    flipped (key sensitivity); the other is None.
    """

    npcr: NpcrResult
    uaci: UaciResult
    position: tuple[int, ...] | None = None
    bit: int | None = None


@dataclass(frozen=True)
class QualityResult(_Record):
    """MSE, PSNR (dB; ``inf`` for identical images) and SSIM on a stated data range."""

    mse: float
    psnr: float
    ssim: float
    data_range: float
