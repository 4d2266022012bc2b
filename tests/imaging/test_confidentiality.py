"""The Basic Profile table: package data with its edition, and the rows later editions added."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from deepkedi.cipher.dicom_native import encrypt_dicom_native
from deepkedi.imaging.confidentiality import (
    BASIC_PROFILE,
    BASIC_PROFILE_VERSION,
    LOCAL_ADDITIONS,
    basic_profile_action,
    basic_profile_entries,
)
from deepkedi.keys import generate_key

_TABLE = resources.files("deepkedi.imaging").joinpath("data", "basic_profile.csv")


def test_table_is_package_data_with_its_edition() -> None:
    text = _TABLE.read_text(encoding="utf-8")
    assert "# edition: PS3.15 2026d" in text.splitlines()
    assert BASIC_PROFILE_VERSION == "PS3.15 2026d"
    rows = [line for line in text.splitlines() if line and not line.startswith(("#", "tag,"))]
    # 653 attributes of PS3.15 2026d Table E.1-1 and its three repeating-group rows.
    assert len(rows) == 656
    assert len(basic_profile_entries()) == 656 + len(LOCAL_ADDITIONS)


@pytest.mark.parametrize(
    ("tag", "action"),
    [
        (0x00181010, "X"),  # Secondary Capture Device ID
        (0x00181011, "X"),  # Hardcopy Creation Device ID
        (0x00081301, "X"),  # Principal Diagnosis Code Sequence
        (0x00081304, "X"),  # Histological Diagnoses Code Sequence
        (0x00100011, "X"),  # Person Names to Use Sequence
        (0x00100012, "X"),  # Name to Use
        (0x00100016, "X"),  # Pronoun Comment
        (0x00100041, "X"),  # Gender Identity Sequence
        (0x00100047, "X"),  # Sex Parameters for Clinical Use Category Reference
        (0x00102161, "X"),  # Ethnic Group Code Sequence
        (0x00102162, "X"),  # Ethnic Groups
        (0x0040B020, "X/D"),  # Waveform Annotation Sequence
        (0x00700006, "D"),  # Unformatted Text Value
        (0x300A0054, "U"),  # Table Top Position Alignment UID
    ],
)
def test_rows_added_after_2024b(tag: int, action: str) -> None:
    assert BASIC_PROFILE[tag] == action


@pytest.mark.parametrize("tag", [0x00100033, 0x00100034, 0x00100035])
def test_alternative_calendar_dates_are_removed(tag: int) -> None:
    assert basic_profile_action(tag) == "X"


def test_new_rows_leave_no_value_in_the_output(tmp_path: Path) -> None:
    """Attributes the 2024b table lacked were kept in the clear: a patient's preferred name, a
    birth date in another calendar, the secondary capture device."""
    ds = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")
    ds.add_new(0x00100012, "LT", "Bobby")  # Name to Use
    ds.add_new(0x00100033, "LO", "5784-07-12")  # Patient's Birth Date in Alternative Calendar
    ds.add_new(0x00100035, "CS", "HEBREW")  # Patient's Alternative Calendar
    ds.add_new(0x00181010, "LO", "SC-ROOM-3")  # Secondary Capture Device ID
    pronouns = Dataset()
    pronouns.add_new(0x00100016, "UT", "he/him")  # Pronoun Comment
    ds.add_new(0x00100014, "SQ", [pronouns])  # Third Person Pronouns Sequence
    source, native = tmp_path / "in.dcm", tmp_path / "native.dcm"
    ds.save_as(source, enforce_file_format=True)
    encrypt_dicom_native(source, native, generate_key(gan=False))
    out = pydicom.dcmread(native)
    for tag in (0x00100012, 0x00100033, 0x00100035, 0x00181010, 0x00100014):
        assert tag not in out, hex(tag)
