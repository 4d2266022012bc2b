"""Atomic outputs: nothing partial, nothing clobbered."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deepkedi.errors import OutputError, OutputExistsError
from deepkedi.fileio import (
    atomic_output,
    atomic_output_path,
    check_distinct,
    make_output_folder,
    output_mode,
    remove_stale_parts,
)


def test_success_moves_into_place(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out.bin") as fh:
        fh.write(b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.bin") as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError), atomic_output(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"old"
    with atomic_output(target, force=True) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"


def test_output_appearing_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(OutputExistsError), atomic_output(target) as fh:
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
    with pytest.raises(RuntimeError), atomic_output_path(tmp_path / "b.png") as tmp:
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
    with pytest.raises(ValueError, match="does not exist"), atomic_output(tmp_path / "absent" / "out.bin") as fh:
        fh.write(b"x")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG])
def test_write_failures_of_the_body_are_output_errors(tmp_path: Path, code: int) -> None:
    for variant in (atomic_output, atomic_output_path):
        with pytest.raises(OutputError, match="cannot write the output"), variant(tmp_path / "out.bin"):
            raise OSError(code, os.strerror(code))
        assert list(tmp_path.iterdir()) == []


def test_reading_an_input_in_the_body_stays_the_inputs_error(tmp_path: Path) -> None:
    # Only write errors are the output's: a missing input read inside the body is not an OutputError.
    with pytest.raises(FileNotFoundError), atomic_output(tmp_path / "out.bin"):
        (tmp_path / "missing.npy").read_bytes()
    assert list(tmp_path.iterdir()) == []


def test_name_too_long_is_an_output_error(tmp_path: Path) -> None:
    too_long = tmp_path / ("n" * 300)
    for call in (
        lambda: atomic_output(too_long).__enter__(),
        lambda: atomic_output_path(too_long).__enter__(),
        lambda: check_distinct(tmp_path / "in.npy", too_long),
    ):
        with pytest.raises(OutputError, match="too long"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_longest_names_still_fit_their_temporary_file(tmp_path: Path) -> None:
    # The temporary name adds to the output's; an output name of 250 bytes must still be writable.
    name = "x" * 250
    with atomic_output(tmp_path / name) as fh:
        fh.write(b"data")
    with atomic_output_path(tmp_path / (name[:-4] + ".npy")) as tmp:
        tmp.write_bytes(b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, name[:-4] + ".npy"])


_FULL_DISK = """
import sys
from deepkedi.errors import OutputError
from deepkedi.fileio import atomic_output
try:
    with atomic_output(sys.argv[1]) as fh:
        fh.write(bytes(1 << 20))
except OutputError as exc:
    print(exc)
    sys.exit(5)
"""


def _file_size_limit() -> None:
    # A file size limit makes write() fail with EFBIG, as a full disk fails it with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(target)],
        preexec_fn=_file_size_limit,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert "cannot write the output" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_be_made_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    for folder in (tmp_path / "file" / "sub", tmp_path / ("d" * 300)):
        with pytest.raises(OutputError, match="cannot write the output"):
            make_output_folder(folder)
    make_output_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


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
        (part,) = list(tmp_path.iterdir())
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


def test_a_large_output_reaches_the_disk_while_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The background flusher syncs a growing output every _FLUSH_BYTES; small outputs are left alone."""
    import time

    from deepkedi import fileio

    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(fileio, "_FLUSH_BYTES", 1 << 20)
    monkeypatch.setattr(fileio, "_FLUSH_POLL", 0.01)
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.fstat(fd).st_size), real(fd))[1])
    with fileio.atomic_output(tmp_path / "small.bin") as fh:
        fh.write(b"x" * 1000)
        time.sleep(0.05)
    assert synced == []
    with fileio.atomic_output(tmp_path / "large.bin") as fh:
        for _ in range(4):
            fh.write(b"y" * (1 << 20))
            fh.flush()
            time.sleep(0.1)
    assert len(synced) >= 2 and all(size >= 1 << 20 for size in synced)
    assert (tmp_path / "large.bin").read_bytes() == b"y" * (4 << 20)


def test_an_output_known_to_be_small_starts_no_flusher_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of small files must not start (and join) one flusher thread per file."""
    import threading

    from deepkedi import fileio

    started: list[str] = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self.name), real_start(self))[1])
    with fileio.atomic_output(tmp_path / "small.bin", size_hint=10_000) as fh:
        fh.write(b"x" * 10_000)
    assert started == []
    with fileio.atomic_output(tmp_path / "large.bin", size_hint=fileio._FLUSH_BYTES) as fh:
        fh.write(b"y")
    with fileio.atomic_output(tmp_path / "unknown.bin") as fh:
        fh.write(b"z")
    assert started == ["kedi-flush", "kedi-flush"]
