"""Signals at the command line: an interrupted `kedi` leaves neither an output nor a readable part file.

Real processes, real signals. SIGINT, SIGTERM and SIGHUP unwind through the
cleanup of every ``with`` block (cli/__init__.py); SIGKILL cannot be caught, so
the part file it leaves is private (0600) and the next run in that folder
removes it (fileio.remove_stale_parts).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepkedi.keys import generate_key, save_key

KEDI = [sys.executable, "-m", "deepkedi.cli"]
#: Large enough that encrypting or decrypting it takes a good fraction of a second.
_SHAPE = (24, 1024, 1024)


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*KEDI, *map(str, args)], capture_output=True, check=False, text=True, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 48 MiB volume, its key and its container."""
    folder = tmp_path_factory.mktemp("volume")
    src = folder / "volume.npy"
    pixels = np.lib.format.open_memmap(src, mode="w+", dtype=np.uint16, shape=_SHAPE)
    pixels[:] = np.random.default_rng(0).integers(0, 4096, _SHAPE[1:], dtype=np.uint16)
    pixels.flush()
    del pixels
    key = folder / "site.key"
    save_key(generate_key(gan=False), key)  # in-process, without the ZZ-GAN: this test is not about keys
    container = folder / "volume.kedi"
    result = _run("encrypt", src, "-o", container, "--key", key)
    assert result.returncode == 0, result.stderr
    return src, key, container


def part_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".part")]


def start_and_wait_for_part(args: list[object], folder: Path, *, timeout: float = 60.0) -> subprocess.Popen:
    """Start `kedi` and return once it is writing its part file in ``folder``."""
    process = subprocess.Popen(
        [*KEDI, *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    while not part_files(folder):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _out, err = process.communicate()
            pytest.fail(f"kedi ended (or hung) before writing: rc={process.returncode} {err.decode()[-500:]}")
        time.sleep(0.002)
    return process


def _job(command: str, volume: tuple[Path, Path, Path], out: Path) -> list[object]:
    src, key, container = volume
    return [command, src if command == "encrypt" else container, "-o", out, "--key", key]


#: How many times a test starts again when its signal came after `kedi` had finished.
_ATTEMPTS = 5


def signal_while_writing(args: list[object], folder: Path, out: Path, signum: int) -> tuple[subprocess.Popen, Path]:
    """Start `kedi`, send ``signum`` once its part file exists, and return the process and that part file.

    The part file lives for a fraction of a second; on a busy machine this process
    can be descheduled for all of it, and the signal then reaches a `kedi` that has
    already finished (exit 0, the output complete). That run says nothing about
    signals, so it is cleared and started again; a `kedi` that finishes every time
    despite the signal fails the test.
    """
    for _attempt in range(_ATTEMPTS):
        process = start_and_wait_for_part(args, folder)
        parts = part_files(folder)
        try:
            modes = [stat.S_IMODE(part.stat().st_mode) for part in parts]
        except FileNotFoundError:
            modes = []  # renamed into place already: this attempt will have finished
        process.send_signal(signum)
        process.communicate(timeout=60)
        if process.returncode != 0:
            assert len(parts) == 1, parts
            assert modes == [0o600]  # private while it is written
            return process, parts[0]
        assert out.exists() and not part_files(folder)  # finished first: a complete output, nothing left
        out.unlink()
    pytest.fail(f"kedi finished {_ATTEMPTS} times before signal {signum} reached it")


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_the_part_file(command: str, signum: int, volume, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    process, _part = signal_while_writing(_job(command, volume, out), tmp_path, out, signum)
    assert process.returncode == 128 + signum
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_sigkill_leaves_a_private_part_that_the_next_run_removes(command: str, volume, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    process, stale = signal_while_writing(_job(command, volume, out), tmp_path, out, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert part_files(tmp_path) == [stale]
    assert stat.S_IMODE(stale.stat().st_mode) & 0o077 == 0
    assert str(process.pid) in stale.name
    # The next run in that folder, whatever it writes, sweeps what the killed one left.
    _src, key, _ = volume
    small = tmp_path / "small.npy"
    np.save(small, np.eye(4, dtype=np.uint8))
    os.chmod(small, 0o644)
    result = _run("encrypt", small, "-o", tmp_path / "small.kedi", "--key", key)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.kedi", "small.npy"]


def test_a_signal_ignored_by_the_parent_stays_ignored(volume, tmp_path: Path) -> None:
    # `nohup kedi ...` must survive the terminal closing: SIGHUP ignored, not turned into an exit.
    out = tmp_path / "out.kedi"
    src, key, _ = volume
    # An ignored signal stays ignored across exec, as with nohup: ignore SIGHUP around the
    # spawn (a preexec_fn would run Python in the forked child, unsafe with threads).
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        process = subprocess.Popen(
            [*KEDI, "encrypt", str(src), "-o", str(out), "--key", str(key)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGHUP, previous)
    deadline = time.monotonic() + 60
    while not part_files(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGHUP)
    process.communicate(timeout=120)
    assert process.returncode == 0
    assert out.exists() and not part_files(tmp_path)


@pytest.mark.slow
def test_sigkill_at_random_points_of_encrypt_and_decrypt(tmp_path: Path) -> None:
    # The reduced form of `make killtest` (tests/killtest.py: 500 MiB, 20 kills each).
    import importlib.util

    spec = importlib.util.spec_from_file_location("killtest", Path(__file__).parents[1] / "killtest.py")
    assert spec is not None and spec.loader is not None
    killtest = importlib.util.module_from_spec(spec)
    sys.modules["killtest"] = killtest  # dataclasses look their module up there
    try:
        spec.loader.exec_module(killtest)
    finally:
        del sys.modules["killtest"]
    outcomes = killtest.run(tmp_path, mib=16, kills=4, seed=3)  # raises on any unsafe leftover
    assert [o.kills for o in outcomes] == [4, 4]
    assert sum(o.parts_left for o in outcomes) > 0  # the kills did land while writing
