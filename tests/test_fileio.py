"""Atomic outputs: nothing partial, nothing clobbered."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deepkedi.errors import OutputExistsError
from deepkedi.fileio import atomic_output, atomic_output_path, check_distinct, output_mode, remove_stale_parts


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


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_are_private_by_default(tmp_path: Path, umask_022: None) -> None:
    with atomic_output(tmp_path / "plain.bin") as fh:
        fh.write(b"patient data")
    with atomic_output_path(tmp_path / "img.png") as tmp:
        tmp.write_bytes(b"x")  # the writer's own mode (0644 under this umask) is not kept
    assert _mode(tmp_path / "plain.bin") == 0o600
    assert _mode(tmp_path / "img.png") == 0o600


@pytest.mark.parametrize("umask", [0o077, 0o027, 0o022, 0o002])
def test_the_umask_narrows_a_wider_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with atomic_output(tmp_path / "shared.bin", mode=0o664) as fh:
            fh.write(b"x")
        with atomic_output_path(tmp_path / "shared.png", mode=0o664) as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "shared.bin") == 0o664 & ~umask
    assert _mode(tmp_path / "shared.png") == 0o664 & ~umask


def test_part_file_is_private_while_written(tmp_path: Path, umask_022: None) -> None:
    with atomic_output(tmp_path / "out.bin", mode=0o644) as fh:
        fh.write(b"half")
        (part,) = [p for p in tmp_path.iterdir()]
        assert _mode(part) == 0o600 and part.name.startswith(".out.bin.kedi-") and part.name.endswith(".part")
    with atomic_output_path(tmp_path / "img.png", mode=0o644) as tmp:
        tmp.write_bytes(b"x")
        assert _mode(tmp.parent) == 0o700
    assert _mode(tmp_path / "out.bin") == 0o644


def test_output_mode_never_wider_than_the_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"")
    for src_mode, at_most, expected in [
        (0o644, 0o600, 0o600),
        (0o640, 0o666, 0o640),
        (0o400, 0o600, 0o400),
        (0o755, 0o666, 0o644),  # never executable
    ]:
        src.chmod(src_mode)
        assert output_mode(src, at_most=at_most) == expected
    assert output_mode(tmp_path / "absent") == 0o600


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_parts_of_a_dead_process_are_swept(tmp_path: Path) -> None:
    from deepkedi import fileio

    host = fileio._host_tag()
    dead = _dead_pid()
    stale_file = tmp_path / f".scan.nii.kedi-{host}-{dead}-0a1b2c3d.part"
    stale_dir = tmp_path / f".scan.png.kedi-{host}-{dead}-0a1b2c3e.part"
    live = tmp_path / f".other.kedi-{host}-{os.getpid()}-0a1b2c3f.part"
    other_host = tmp_path / f".x.kedi-00000000-{dead}-0a1b2c40.part"
    unrelated = tmp_path / ".scan.nii.1234.part"  # not one of ours: never touched
    stale_file.write_bytes(b"plaintext")
    stale_dir.mkdir()
    (stale_dir / "scan.png").write_bytes(b"plaintext")
    for keep in (live, other_host, unrelated):
        keep.write_bytes(b"")
    assert sorted(remove_stale_parts(tmp_path)) == sorted([stale_file, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, other_host, unrelated))


def test_first_output_into_a_folder_sweeps_it(tmp_path: Path) -> None:
    from deepkedi import fileio

    stale = tmp_path / f".a.kedi-{fileio._host_tag()}-{_dead_pid()}-00000000.part"
    stale.write_bytes(b"plaintext")
    with atomic_output(tmp_path / "b") as fh:
        fh.write(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
