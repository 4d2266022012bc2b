"""Kill `kedi encrypt` and `kedi decrypt` with SIGKILL at random points of a large file.

What must hold after every kill (DESIGN.md, "Never lose data"; docs/ARCHITECTURE.md, "Outputs"):

- nothing under the output's name, unless the kill came after the output was
  complete: then it is the whole, correct file;
- every part file left behind is private (``mode & 0o077 == 0``): no plaintext
  readable by other users;
- the next run in that folder removes the part files the killed ones left.

Each kill lands in the write phase: the script waits until the part file
appears, then sleeps a random fraction (seeded) of the measured write time,
up to 5 % past it to hit the commit as well. The processes run under umask 022
with a 0644 input, where a careless writer would leave world-readable parts.

    python tests/killtest.py                   # 500 MiB, 20 kills each (make killtest)
    python tests/killtest.py --mib 64 --kills 5

tests/cli/test_interrupts.py runs a reduced version as part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepkedi.keys import generate_key, save_key

KEDI = [sys.executable, "-m", "deepkedi.cli"]
_PLANE = (1024, 1024)  # uint16: 2 MiB per plane


@dataclass
class Outcome:
    """What the kills of one command left."""

    command: str
    kills: int = 0
    finished_before_kill: int = 0
    complete_outputs: int = 0
    parts_left: int = 0  # part files the killed processes left (the next run removes them)
    write_time: float = 0.0
    failures: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".part")]


def _kedi(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [*KEDI, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        umask=0o022,
    )


def make_volume(path: Path, mib: int, seed: int) -> None:
    """A uint16 .npy of about ``mib`` MiB, written plane by plane through a memory map (fast)."""
    planes = max(1, mib // 2)
    pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(planes, *_PLANE))
    base = np.random.default_rng(seed).integers(0, 4096, _PLANE, dtype=np.uint16)
    for i in range(planes):
        pixels[i] = base ^ np.uint16(i)
    pixels.flush()
    del pixels
    os.chmod(path, 0o644)


def _timed_run(args: list[object], folder: Path, out: Path) -> tuple[float, float]:
    """Run to completion; return the seconds until the part file appeared and until ``out`` did.

    Not until the process ended: interpreter shutdown takes a while after the commit.
    """
    start = time.monotonic()
    process = _kedi(*args)
    seen = done = None
    while process.poll() is None:
        now = time.monotonic() - start
        if seen is None and _parts(folder):
            seen = now
        if done is None and out.exists():
            done = now
        time.sleep(0.001)
    end = time.monotonic() - start
    if process.returncode != 0:
        raise RuntimeError(f"kedi {args[0]} failed: {process.stderr.read().decode()[-500:]}")
    done = end if done is None else done
    return (done if seen is None else seen), done


def kill_at_random_points(
    command: str,
    args: list[object],
    out: Path,
    complete: Callable[[Path], bool],
    kills: int,
    rng: random.Random,
    *,
    timing_runs: int = 2,
) -> Outcome:
    """Run ``args`` once to time it, then ``kills`` times killed; ``complete`` checks a surviving output."""
    folder = out.parent
    outcome = Outcome(command)
    if out.exists():
        out.unlink()
    write_time = float("inf")
    for _ in range(timing_runs):  # later runs have the input in the page cache, as the killed ones will
        t_part, t_out = _timed_run(args, folder, out)
        write_time = min(write_time, max(t_out - t_part, 0.01))
        out.unlink()
    outcome.write_time = write_time
    for _ in range(kills):
        delay = rng.uniform(0.0, 1.05 * write_time)
        process = _kedi(*args)
        mine = f"-{process.pid}-"
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            parts = _parts(folder)
            if any(mine in p.name for p in parts):
                # Its own part exists, so it has swept the folder: the last kill's part must be gone.
                stale = [p.name for p in parts if mine not in p.name]
                if stale:
                    outcome.failures.append(f"a new run left the stale part files {stale}")
                break
            time.sleep(0.001)
        time.sleep(delay)
        if process.poll() is not None:
            outcome.finished_before_kill += 1
        process.kill()
        process.wait()
        outcome.kills += 1
        for part in _parts(folder):
            mode = stat.S_IMODE(part.lstat().st_mode)
            if mode & 0o077:
                outcome.failures.append(f"{part.name} left readable by others (mode {mode:o})")
        if out.exists():
            if not complete(out):
                outcome.failures.append(f"{out.name} exists after a kill {delay:.3f} s in and is not complete")
            else:
                outcome.complete_outputs += 1
            out.unlink()
        outcome.parts_left += sum(mine in p.name for p in _parts(folder))
    return outcome


def run(workdir: Path, *, mib: int = 500, kills: int = 20, seed: int = 11, timing_runs: int = 2) -> list[Outcome]:
    """Both commands, ``kills`` kills each; raise AssertionError if anything was left unsafe."""
    rng = random.Random(seed)
    src = workdir / "volume.npy"
    make_volume(src, mib, seed)
    key = workdir / "site.key"
    save_key(generate_key(gan=False), key)
    container = workdir / "volume.kedi"
    subprocess.run(
        [*KEDI, "encrypt", str(src), "-o", str(container), "--key", str(key)], check=True, capture_output=True
    )
    out_dir = workdir / "out"
    out_dir.mkdir()
    original = _sha256(src)

    def restores_the_original(output: Path) -> bool:
        restored = workdir / "restored.npy"
        done = subprocess.run(
            [*KEDI, "decrypt", str(output), "-o", str(restored), "--key", str(key), "--force"],
            capture_output=True,
            check=False,
        )
        ok = done.returncode == 0 and _sha256(restored) == original
        restored.unlink(missing_ok=True)
        return ok

    enc_out = out_dir / "volume.kedi"
    dec_out = out_dir / "volume.npy"
    outcomes = [
        kill_at_random_points(
            "encrypt",
            ["encrypt", src, "-o", enc_out, "--key", key],
            enc_out,
            restores_the_original,
            kills,
            rng,
            timing_runs=timing_runs,
        ),
        kill_at_random_points(
            "decrypt",
            ["decrypt", container, "-o", dec_out, "--key", key],
            dec_out,
            lambda output: _sha256(output) == original,
            kills,
            rng,
            timing_runs=timing_runs,
        ),
    ]
    # The next run in the folder removes every part file the killed runs left.
    small = workdir / "small.npy"
    np.save(small, np.eye(8, dtype=np.uint8))
    subprocess.run(
        [*KEDI, "encrypt", str(small), "-o", str(out_dir / "small.kedi"), "--key", str(key)],
        check=True,
        capture_output=True,
    )
    leftovers = _parts(out_dir)
    problems = [f"{o.command}: {f}" for o in outcomes for f in o.failures]
    if leftovers:
        problems.append(f"the next run left {len(leftovers)} stale part file(s): {[p.name for p in leftovers]}")
    if problems:
        raise AssertionError("; ".join(problems))
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=500, help="size of the volume (default 500 MiB)")
    parser.add_argument("--kills", type=int, default=20, help="kills per command (default 20)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    options = parser.parse_args()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kedi-killtest-", dir=options.dir) as tmp:
        try:
            outcomes = run(Path(tmp), mib=options.mib, kills=options.kills, seed=options.seed)
        except AssertionError as exc:
            print(f"killtest: FAILED: {exc}", file=sys.stderr)
            return 1
    for o in outcomes:
        print(
            f"{o.command}: write phase {o.write_time:.2f} s, {o.kills} kills, "
            f"{o.parts_left} part files left (all private), "
            f"{o.complete_outputs} complete outputs (kill after the commit), "
            f"{o.finished_before_kill} finished before the kill"
        )
    print(f"killtest: ok ({options.mib} MiB, {time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
