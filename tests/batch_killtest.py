"""Kill a whole folder run (`kedi encrypt DIR`, `kedi decrypt DIR`, 2 jobs) with SIGKILL at random points, then resume.

What must hold (docs/SCALE.md, "Resume semantics"):

- after every kill, each part file left behind is private (``mode & 0o077 == 0``);
- the manifest stays readable, whatever instant the kill hit;
- a final ``--resume`` run exits 0 with every file done: the manifest has one row
  per input, all ``done``; there is exactly one output per input under its fixed
  name and no part file anywhere; the decrypted tree is byte-identical to the input.

Each run is killed at a random instant (seeded) between its start and 110 % of the
time an uninterrupted run takes, so kills land in the start-up, the planning, the
workers' writing and the manifest's transactions alike; the next run resumes what
the killed one left. A run that ends before its kill must have succeeded; the next
round then starts from an empty output folder. The
command and its workers run in a process group of their own and are killed
together, as a machine losing power or the OOM killer taking the whole job would.

    python tests/batch_killtest.py                       # 480 files, 12 kills each way (make killtest)
    python tests/batch_killtest.py --series 8 --kills 3

tests/batch/test_batch_kills.py runs a reduced version as part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from folders import visible_files, wait_until_gone

KEDI = [sys.executable, "-m", "deepkedi.cli"]
MANIFEST = ".kedi-manifest.sqlite"


@dataclass
class Outcome:
    """What the kills of one command did, and what the final resume found."""

    command: str
    kills: int = 0
    finished_before_kill: int = 0
    done_at_kills: list[int] = field(default_factory=list)
    parts_left: int = 0
    full_time: float = 0.0
    failures: list[str] = field(default_factory=list)


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.part") if p.is_file()] if folder.exists() else []


def _done_count(manifest: Path) -> int:
    if not manifest.exists():
        return 0
    with sqlite3.connect(manifest, timeout=5) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM entry WHERE status = 'done'").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0  # killed before the schema was written
            raise


def _start(args: list[object], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*KEDI, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # the command, its forkserver and workers: one group, killed together
    )


def synthesise(folder: Path, series: int) -> int:
    """``series`` folders of the six-slice sample study (256 x 256 CT slices)."""
    from deepkedi import datasets

    samples = folder.parent / "samples"
    datasets.write_samples(samples)
    for n in range(series):
        shutil.copytree(samples / "study", folder / f"series-{n:03d}")
    shutil.rmtree(samples)
    return sum(1 for p in folder.rglob("*") if p.is_file())


def kill_and_resume(
    command: str, args: list[object], out: Path, kills: int, rng: random.Random, env: dict[str, str]
) -> Outcome:
    """Time one full run (in a scratch folder), then kill ``kills`` runs at random points, then resume to the end."""
    outcome = Outcome(command)
    scratch = out.parent / f"{out.name}-timing"
    start = time.perf_counter()
    subprocess.run([*KEDI, *map(str, [*args, "-o", scratch, "-q"])], check=True, env=env, stdin=subprocess.DEVNULL)
    outcome.full_time = time.perf_counter() - start
    shutil.rmtree(scratch)
    manifest = out / MANIFEST
    for _round in range(4 * kills):
        if outcome.kills == kills:
            break
        process = _start([*args, "-o", out, "--resume", "-q"], env)
        time.sleep(rng.uniform(0.0, 1.1 * outcome.full_time))
        ended_first = process.poll() is not None
        if not ended_first:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        wait_until_gone(process.pid)
        if ended_first:
            # It must have ended well. The next round starts from nothing, so that the kills
            # keep landing in real work rather than in resumes with nothing left to do.
            outcome.finished_before_kill += 1
            if process.returncode != 0:
                outcome.failures.append(f"an unkilled run exited {process.returncode}")
            shutil.rmtree(out)
            continue
        outcome.kills += 1
        for part in _parts(out):
            outcome.parts_left += 1
            if stat.S_IMODE(part.stat().st_mode) & 0o077:
                outcome.failures.append(f"part file readable by others: {part}")
        try:
            outcome.done_at_kills.append(_done_count(manifest))
        except sqlite3.DatabaseError as exc:
            outcome.failures.append(f"manifest unreadable after a kill: {exc}")
    final = subprocess.run(
        [*KEDI, *map(str, [*args, "-o", out, "--resume", "--json"])],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if final.returncode != 0:
        outcome.failures.append(f"final resume exited {final.returncode}: {final.stderr[-400:]}")
        return outcome
    summary = json.loads(final.stdout)
    if not summary["ok"] or summary["done"] != summary["files"]:
        outcome.failures.append(f"final resume left files not done: {summary['not_done'][:5]}")
    with sqlite3.connect(manifest) as db:
        statuses = db.execute("SELECT status, COUNT(*) FROM entry GROUP BY status").fetchall()
    if statuses != [("done", summary["files"])]:
        outcome.failures.append(f"manifest rows {statuses}, expected {summary['files']} done")
    if leftovers := _parts(out):
        outcome.failures.append(f"part files left after the final resume: {leftovers[:3]}")
    return outcome


def run(root: Path, *, series: int, kills: int, seed: int) -> list[Outcome]:
    """Both directions on one synthesised tree; raises ``AssertionError`` listing every failure."""
    from deepkedi.keys import generate_key, save_key

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    rng = random.Random(seed)
    src = root / "study"
    count = synthesise(src, series)
    key = root / "site.key"
    save_key(generate_key(gan=False), key)
    enc, dec = root / "enc", root / "dec"
    outcomes = [kill_and_resume("encrypt", ["encrypt", src, "--key", key, "--jobs", "2"], enc, kills, rng, env)]
    names = sorted(visible_files(enc))
    expected = sorted(f"{rel}.kedi" for rel in visible_files(src))
    if names != expected:
        outcomes[0].failures.append(f"outputs are not one per input: {len(names)} for {count} inputs")
    outcomes.append(kill_and_resume("decrypt", ["decrypt", enc, "--key", key, "--jobs", "2"], dec, kills, rng, env))
    if visible_files(dec) != visible_files(src):
        outcomes[1].failures.append("the decrypted tree differs from the input")
    failures = [f"{o.command}: {f}" for o in outcomes for f in o.failures]
    if failures:
        raise AssertionError("\n".join(failures))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=80, help="six-slice series to synthesise (6 files each)")
    parser.add_argument("--kills", type=int, default=12, help="killed runs per direction")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = run(Path(tmp), series=args.series, kills=args.kills, seed=args.seed)
    print(f"{'command':<9}{'kills':>6}{'ended first':>12}{'part files':>11}{'full run s':>11}  done at each kill")
    for o in outcomes:
        print(
            f"{o.command:<9}{o.kills:>6}{o.finished_before_kill:>12}{o.parts_left:>11}{o.full_time:>11.2f}  "
            f"{o.done_at_kills}"
        )
    print("every file done once, byte-exact after decryption, no part file left")


if __name__ == "__main__":
    main()
