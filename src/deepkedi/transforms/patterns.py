"""The names of the paper's three zigzag scan patterns (no NumPy: the command line's options use them).

The scans themselves are in :mod:`deepkedi.transforms.zigzag`.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_PATTERN", "ZigzagPattern"]


class ZigzagPattern(str, enum.Enum):
    """The three zigzag scan patterns of the Deep-KEDI cipher [1]_.

    Members compare equal to their string values, and every function that takes
    a pattern also accepts the string (``"vertical"``, ``"horizontal"``,
    ``"diagonal"``, in any letter case).

    References
    ----------
    .. [1] K. Selvakumar and S. Lokesh, Technology and Health Care 32(5),
       3231-3251 (2024), Figs. 3-4. :doi:`10.3233/THC-231927`

    Examples
    --------
    >>> ZigzagPattern("diagonal") is ZigzagPattern.DIAGONAL
    True
    """

    VERTICAL = "vertical"
    HORIZONTAL = "horizontal"
    DIAGONAL = "diagonal"

    @classmethod
    def _missing_(cls, value: object) -> ZigzagPattern:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        valid = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"{value!r} is not a zigzag pattern; use one of {valid}")


#: The scan order both suites use unless told otherwise. Under AES-GCM every order is
#: equally secure; horizontal follows memory order and is the cheapest to apply.
DEFAULT_PATTERN = ZigzagPattern.HORIZONTAL
