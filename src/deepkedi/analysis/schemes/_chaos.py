"""Key words from the logistic map, shared by the ``logistic-map`` and ``arnold-cat-xor`` baselines.

References
----------
.. [3] N. K. Pareek, V. Patidar and K. K. Sud, "Image encryption using chaotic logistic
   map", *Image and Vision Computing* 24(9), 926-934 (2006). :doi:`10.1016/j.imavis.2006.02.021`
.. [5] R. M. May, "Simple mathematical models with very complicated dynamics",
   *Nature* 261, 459-467 (1976). :doi:`10.1038/261459a0`
"""

from __future__ import annotations

import numpy as np

from deepkedi.analysis.schemes.base import _DTYPES, _seed_bytes


def _seed_unit(label: str, seed: int) -> float:
    """A float in [0, 1) determined by ``(label, seed)``, 53 bits of it."""
    return (int.from_bytes(_seed_bytes(label, seed, 8), "big") >> 11) / 2.0**53


def _logistic_parameters(label: str, seed: int) -> tuple[float, float]:
    """``(x0, r)`` of a logistic map: x0 in [0.05, 0.95), r in [3.99, 4) (the chaotic regime, May [5])."""
    x0 = 0.05 + 0.9 * _seed_unit(f"{label} x0", seed)
    r = 3.99 + 0.00999 * _seed_unit(f"{label} r", seed)
    return x0, r


def _logistic_sequence(x0: float, r: float, length: int, *, transient: int = 1000) -> np.ndarray:
    """``length`` iterates of the logistic map ``x ← r·x·(1 − x)`` after ``transient`` discarded ones.

    The map is a strict recurrence, so this is the one sequential loop of the
    module; it runs once per key (when a scheme is built), never per image.
    """
    x = float(x0)
    for _ in range(transient):
        x = r * x * (1.0 - x)
    out = np.empty(length, dtype=np.float64)
    for i in range(length):
        x = r * x * (1.0 - x)
        out[i] = x
    return out


def _chaotic_words(sequence: np.ndarray, bits: int) -> np.ndarray:
    """Key words from chaotic iterates: ``floor(x · 10^14) mod 2^bits`` (Pareek et al. [3]_ quantisation)."""
    return (np.floor(sequence * 1e14).astype(np.uint64) % np.uint64(1 << bits)).astype(_DTYPES[bits])
