"""PS3.15 Annex E, Table E.1-1: the Basic Application Level Confidentiality Profile.

The table is package data, ``deepkedi/imaging/data/basic_profile.csv``: the "Basic Prof."
column of DICOM PS3.15 Table E.1-1 "Application Level Confidentiality Profile Attributes",
one attribute a row (tag, action code, attribute name), with the edition it was taken
from on a ``# edition:`` line and its provenance in the comment lines above the rows
(:data:`BASIC_PROFILE_VERSION` is that edition). ``docs/scripts/basic_profile_table.py``
rebuilds the file from NEMA's DocBook source of PS3.15.

Attributes the table does not list keep their values (action ``K``), except private data
elements, which the profile removes (``X``; the table's "Private Attributes" row, not one
tag), and the few that deepkedi adds to the table (:data:`LOCAL_ADDITIONS`).

Action codes (PS3.15 E.1.1):

==========  ==============================================================================
``D``       replace with a non-zero length dummy value consistent with the VR
``Z``       replace with a zero length value (or a dummy value consistent with the VR)
``X``       remove
``K``       keep (unchanged for non-sequence attributes, cleaned for sequences)
``C``       clean: replace with values of similar meaning known not to identify
``U``       replace with a non-zero length UID, internally consistent within a set of instances
``Z/D``     Z unless D is required for IOD conformance (Type 2 versus Type 1)
``X/Z``     X unless Z is required for IOD conformance (Type 3 versus Type 2)
``X/D``     X unless D is required for IOD conformance (Type 3 versus Type 1)
``X/Z/D``   X unless Z or D is required for IOD conformance (Type 3 / 2 / 1)
``X/Z/U*``  X unless Z or replacement of contained instance UIDs (U) is required (sequences)
==========  ==============================================================================

Repeating groups are written with ``xx``: ``50xx,xxxx`` (curves: every element of
the even groups 5000-501E) and ``60xx,3000`` / ``60xx,4000`` (overlay data and
comments in the even groups 6000-601E).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = [
    "ACTION_CODES",
    "BASIC_PROFILE",
    "BASIC_PROFILE_VERSION",
    "LOCAL_ADDITIONS",
    "ProfileEntry",
    "basic_profile_action",
    "basic_profile_entries",
]

#: Every action code the Basic Profile column uses.
ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})

_TABLE_FILE = "basic_profile.csv"

#: Rows deepkedi applies beyond Table E.1-1. The Patient module's alternative-calendar dates
#: (PS3.3 C.7.1.1) are a birth and a death date, as identifying as Patient's Birth Date (Z), yet
#: the table does not list them; they are Type 3, so removed, and the calendar they are written
#: in (Type 1C, required only with one of them) goes with them.
LOCAL_ADDITIONS = (
    ("0010,0033", "X", "Patient's Birth Date in Alternative Calendar"),
    ("0010,0034", "X", "Patient's Death Date in Alternative Calendar"),
    ("0010,0035", "X", "Patient's Alternative Calendar"),
)


@dataclass(frozen=True)
class ProfileEntry:
    """One row of Table E.1-1: ``tag`` as written (``"0010,0010"``, ``"60xx,3000"``), action, name."""

    tag: str
    action: str
    name: str
    #: The tag as an integer, with ``xx`` nibbles zero (a repeating group's first group).
    value: int
    #: Bits of a tag that must equal :attr:`value` for the row to apply.
    mask: int

    def matches(self, tag: int) -> bool:
        """Whether the data element tag ``tag`` (``group << 16 | element``) falls under this row."""
        if (tag & self.mask) != self.value:
            return False
        # Repeating groups (50xx, 60xx) are the even groups 0x00-0x1E above their base.
        return self.mask == 0xFFFFFFFF or (((tag >> 16) & 0xFF) <= 0x1E and (tag >> 16) % 2 == 0)


def _read_table() -> tuple[str, list[tuple[str, str, str]]]:
    """The edition and the rows of the packaged table."""
    text = resources.files("deepkedi.imaging").joinpath("data").joinpath(_TABLE_FILE).read_text(encoding="utf-8")
    lines = text.splitlines()
    editions = [line.split(":", 1)[1].strip() for line in lines if line.startswith("# edition:")]
    if len(editions) != 1:
        raise ValueError(f"{_TABLE_FILE} must name its edition once on a '# edition:' line")
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    return editions[0], [(row["tag"], row["action"], row["name"]) for row in reader]


def _parse(rows: list[tuple[str, str, str]]) -> tuple[ProfileEntry, ...]:
    entries = []
    for tag, action, name in rows:
        if action not in ACTION_CODES:
            raise ValueError(f"unknown action code {action!r} for {tag}")
        group, element = tag.split(",")
        digits = group + element
        value = int(digits.replace("x", "0"), 16)
        mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
        entries.append(ProfileEntry(tag=tag, action=action, name=name, value=value, mask=mask))
    return tuple(entries)


#: The edition of PS3.15 the table was taken from (the data file's ``# edition:`` line).
BASIC_PROFILE_VERSION, _ROWS = _read_table()
_ENTRIES = _parse(_ROWS + list(LOCAL_ADDITIONS))
_MASKED = tuple(e for e in _ENTRIES if e.mask != 0xFFFFFFFF)

#: Tag (``group << 16 | element``) → action code, for every row without repeating groups.
BASIC_PROFILE: Mapping[int, str] = MappingProxyType({e.value: e.action for e in _ENTRIES if e.mask == 0xFFFFFFFF})


def basic_profile_entries() -> tuple[ProfileEntry, ...]:
    """Every row of the table (repeating-group rows included), then :data:`LOCAL_ADDITIONS`."""
    return _ENTRIES


def basic_profile_action(tag: int) -> str:
    """The Basic Profile action for data element ``tag``.

    Private data elements (odd groups, private creators included) are ``"X"``;
    attributes the table does not list are ``"K"``.

    Examples
    --------
    >>> basic_profile_action(0x00100010)  # Patient's Name
    'Z'
    >>> basic_profile_action(0x00280010)  # Rows
    'K'
    >>> basic_profile_action(0x60003000)  # Overlay Data
    'X'
    """
    action = BASIC_PROFILE.get(tag)
    if action is not None:
        return action
    if (tag >> 16) % 2 == 1:
        return "X"
    for entry in _MASKED:
        if entry.matches(tag):
            return entry.action
    return "K"
