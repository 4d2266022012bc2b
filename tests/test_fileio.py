"""Atomic outputs: nothing partial, nothing clobbered."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepkedi.errors import OutputExistsError
from deepkedi.fileio import atomic_output, atomic_output_path, check_distinct


def test_success_moves_into_place(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out.bin") as fh:
        fh.write(b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.bin") as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as fh:
            fh.write(b"new")
    assert target.read_bytes() == b"old"
    with atomic_output(target, force=True) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"


def test_output_appearing_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as fh:
            fh.write(b"mine")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_mode(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "secret", mode=0o600) as fh:
        fh.write(b"s")
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_path_variant_keeps_suffixes_and_cleans_up(tmp_path: Path) -> None:
    with atomic_output_path(tmp_path / "img.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent != tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "img.nii.gz").read_bytes() == b"x"
    with pytest.raises(RuntimeError):
        with atomic_output_path(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"x")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz"]


def test_check_distinct(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"")
    with pytest.raises(ValueError):
        check_distinct(a, tmp_path / "." / "a")
    check_distinct(a, tmp_path / "b")


def test_missing_output_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        with atomic_output(tmp_path / "absent" / "out.bin") as fh:
            fh.write(b"x")
