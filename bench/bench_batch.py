"""Folder runs through the batch engine: `kedi encrypt/decrypt DIR` at 1 and 2 jobs, in files per second.

Synthesises 200 CT slices of 512 x 512 (int16, one study: the phantom ``bench_service.py``
uses), then times the command line as a user runs it (a fresh ``kedi`` process each
time, its start-up included) for ``encrypt``, ``encrypt --as-dicom`` and ``decrypt``, at
``--jobs 1`` and ``--jobs 2``, round-robin so that a burst of load slows every case alike.
Prints the median wall time, files/s, the speed-up of 2 jobs over 1, and the load
average before and after (the machine may be shared).

    python bench/bench_batch.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEDI = [sys.executable, "-m", "deepkedi.cli"]
SLICES = 200
SHAPE = (512, 512)


def synthesise(folder: Path) -> list[Path]:
    """200 phantom CT slices of 512² as one DICOM study and series."""
    from deepkedi.datasets.samples import _dicom_slices  # the samples' study/ writer, at 512²

    folder.mkdir(parents=True)
    files = [folder / f"slice-{n:03d}.dcm" for n in range(1, SLICES + 1)]
    _dicom_slices(files, "liver", shape=SHAPE, seed=3)
    return files


def _kedi(*args: object) -> float:
    start = time.perf_counter()
    subprocess.run([*KEDI, *map(str, args), "-q"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study = root / "study"
        synthesise(study)
        size_mib = sum(p.stat().st_size for p in study.iterdir()) / 2**20
        key = root / "site.key"
        subprocess.run([*KEDI, "keygen", "-o", str(key)], check=True, stdout=subprocess.DEVNULL)
        sealed = root / "sealed"
        _kedi("encrypt", study, "-o", sealed, "--key", key, "--jobs", "1")  # decrypt's input, and a warm-up

        def case(kind: str, jobs: int) -> float:
            out = root / f"{kind}-{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            if kind == "decrypt":
                return _kedi("decrypt", sealed, "-o", out, "--key", key, "--jobs", jobs)
            extra = ["--as-dicom"] if kind == "encrypt --as-dicom" else []
            return _kedi("encrypt", study, "-o", out, "--key", key, "--jobs", jobs, *extra)

        kinds = ("encrypt", "encrypt --as-dicom", "decrypt")
        times: dict[tuple[str, int], list[float]] = {(k, j): [] for k in kinds for j in (1, 2)}
        for _ in range(args.repeat):
            for kind, jobs in times:
                times[(kind, jobs)].append(case(kind, jobs))
    load_after = os.getloadavg()
    print(f"{SLICES} CT slices {SHAPE[0]}x{SHAPE[1]} int16 ({size_mib:.0f} MiB), {os.cpu_count()} cores, ")
    print(f"median of {args.repeat} runs of the kedi command (start-up included)")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, ", end="")
    print(f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{'command':<22}{'jobs':>5}{'wall s':>9}{'files/s':>9}{'speed-up':>10}")
    for kind in kinds:
        one = statistics.median(times[(kind, 1)])
        for jobs in (1, 2):
            wall = statistics.median(times[(kind, jobs)])
            print(f"{'kedi ' + kind:<22}{jobs:>5}{wall:>9.2f}{SLICES / wall:>9.0f}{one / wall:>9.2f}x")


if __name__ == "__main__":
    main()
