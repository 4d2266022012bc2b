"""Image transforms of the Deep-KEDI pipeline.

Raw, unkeyed building blocks for research: on their own they hide nothing.

- :mod:`deepkedi.transforms.zigzag` -- the vertical, horizontal and diagonal
  zigzag pixel orders of the ZZ-GAN cipher, as cached index permutations and
  fast scan/unscan functions.
- :mod:`deepkedi.transforms.ripplet` -- the ripplet type-I transform (Xu, Yang
  and Wu 2010; curvelets are ``c=1, d=2``) as an undecimated tight frame built
  in the frequency domain, for despeckling.
- :mod:`deepkedi.transforms.speckle` -- multiplicative speckle models
  (Gaussian, uniform, Gamma) and the moments of their log.
- :mod:`deepkedi.transforms.ripplet_despeckle` -- the paper's blind speckle
  removal in the ripplet domain (log + BayesShrink).

Keyed speckle that the key holder removes exactly is research code outside any
suite: :mod:`deepkedi.analysis.reversible_speckle`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.transforms.ripplet import (
        RippletCoefficients,
        RippletWindows,
        angles_per_scale,
        default_scales,
        ripplet_forward,
        ripplet_inverse,
        ripplet_windows,
    )
    from deepkedi.transforms.ripplet_despeckle import despeckle_ripplet
    from deepkedi.transforms.speckle import (
        PAPER_LEVEL,
        PAPER_MODEL,
        add_speckle,
        log_multiplier_moments,
    )
    from deepkedi.transforms.zigzag import (
        ZigzagPattern,
        inverse_order,
        scan_order,
        zigzag_scan,
        zigzag_unscan,
    )

__all__ = [
    "PAPER_LEVEL",
    "PAPER_MODEL",
    "RippletCoefficients",
    "RippletWindows",
    "ZigzagPattern",
    "add_speckle",
    "angles_per_scale",
    "default_scales",
    "despeckle_ripplet",
    "inverse_order",
    "log_multiplier_moments",
    "ripplet_forward",
    "ripplet_inverse",
    "ripplet_windows",
    "scan_order",
    "zigzag_scan",
    "zigzag_unscan",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "RippletCoefficients": "ripplet",
        "RippletWindows": "ripplet",
        "angles_per_scale": "ripplet",
        "default_scales": "ripplet",
        "ripplet_forward": "ripplet",
        "ripplet_inverse": "ripplet",
        "ripplet_windows": "ripplet",
        "despeckle_ripplet": "ripplet_despeckle",
        "PAPER_LEVEL": "speckle",
        "PAPER_MODEL": "speckle",
        "add_speckle": "speckle",
        "log_multiplier_moments": "speckle",
        "ZigzagPattern": "zigzag",
        "inverse_order": "zigzag",
        "scan_order": "zigzag",
        "zigzag_scan": "zigzag",
        "zigzag_unscan": "zigzag",
    },
)
