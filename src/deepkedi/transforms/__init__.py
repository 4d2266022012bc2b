"""Image transforms of the Deep-KEDI pipeline.

Raw, unkeyed building blocks for research: on their own they hide nothing.

- :mod:`deepkedi.transforms.zigzag` -- the vertical, horizontal and diagonal
  zigzag pixel orders of the ZZ-GAN cipher, as cached index permutations and
  fast scan/unscan functions.
"""

from deepkedi.transforms.zigzag import (
    ZigzagPattern,
    inverse_order,
    scan_order,
    zigzag_scan,
    zigzag_unscan,
)

__all__ = [
    "ZigzagPattern",
    "inverse_order",
    "scan_order",
    "zigzag_scan",
    "zigzag_unscan",
]
