"""Folder runs on a Dask cluster: `kedi encrypt/decrypt DIR --scheduler` on 1 and on 2 workers, in files per second.

Starts two local clusters on 127.0.0.1 (``dask scheduler`` with one ``dask worker``, and
another with two; one thread per worker, each worker its own process, no nanny), then
times the command line as a user runs it (a fresh ``kedi`` process each time, start-up
and connection included) on

- the study ``bench_batch.py`` times: 200 phantom CT slices of 512 x 512 (int16), encrypted and decrypted;
- 5,000 small DICOM files (64 x 64 CT slices, about 10 KB each) in 50 folders, encrypted,

round-robin between the two clusters so that a burst of load slows both alike. Prints the
median wall time, files/s, the speed-up of 2 workers over 1, the marginal milliseconds per
file on the small files, and the load average before and after (the machine may be shared).
Nothing is written outside a temporary folder.

    python bench/bench_cluster.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEDI = [sys.executable, "-m", "deepkedi.cli"]
DASK = str(Path(sys.executable).parent / "dask")
SLICES = 200
SHAPE = (512, 512)
SMALL_FILES = 5000


def synthesise(folder: Path) -> list[Path]:
    """200 phantom CT slices of 512² as one DICOM study and series (as bench_batch.py makes them)."""
    from deepkedi.datasets.samples import _dicom_slices

    folder.mkdir(parents=True)
    files = [folder / f"slice-{n:03d}.dcm" for n in range(1, SLICES + 1)]
    _dicom_slices(files, "liver", shape=SHAPE, seed=3)
    return files


def small_files(folder: Path) -> list[Path]:
    """5,000 DICOM files of about 10 KB (64² CT slices), 100 to a folder."""
    from deepkedi.datasets.samples import _dicom_slices

    files = [folder / f"series-{n // 100:02d}" / f"slice-{n % 100:03d}.dcm" for n in range(SMALL_FILES)]
    for parent in {f.parent for f in files}:
        parent.mkdir(parents=True)
    _dicom_slices(files, "liver", shape=(64, 64), seed=1)
    return files


class LocalCluster:
    """A scheduler and ``workers`` single-threaded worker processes on 127.0.0.1."""

    def __init__(self, folder: Path, workers: int) -> None:
        folder.mkdir()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_src(), os.environ.get("PYTHONPATH")) if p)}
        spec = folder / "scheduler.json"

        def spawn(*command: str) -> subprocess.Popen[bytes]:
            with open(folder / "cluster.log", "ab") as log:
                return subprocess.Popen(
                    [DASK, *command], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True
                )

        self.processes = [
            spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(spec))
        ]
        deadline = time.monotonic() + 60
        while not spec.exists() or not spec.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit("the dask scheduler did not start")
            time.sleep(0.05)
        time.sleep(0.1)
        self.address = json.loads(spec.read_text())["address"]
        worker = ["worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
        worker += ["--local-directory", str(folder), "--preload", "deepkedi.batch.cluster"]
        self.processes += [spawn(*worker) for _ in range(workers)]
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first, then the scheduler
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _src() -> str:
    import deepkedi

    return str(Path(deepkedi.__file__).resolve().parents[1])


def _kedi(*args: object) -> float:
    start = time.perf_counter()
    subprocess.run([*KEDI, *map(str, args), "-q"], check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds (median reported)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study, small = root / "study", root / "small"
        synthesise(study)
        small_files(small)
        study_mib = sum(p.stat().st_size for p in study.iterdir()) / 2**20
        small_kib = sum(p.stat().st_size for p in small.rglob("*.dcm")) / SMALL_FILES / 1024
        small_folders = len(list(small.iterdir()))
        key = root / "site.key"
        subprocess.run([*KEDI, "keygen", "--no-gan", "-o", str(key)], check=True, stdout=subprocess.DEVNULL)
        sealed = root / "sealed"
        _kedi("encrypt", study, "-o", sealed, "--key", key, "--jobs", "1")  # decrypt's input
        clusters = {n: LocalCluster(root / f"cluster-{n}", n) for n in (1, 2)}
        try:
            inputs = {("encrypt", "study"): study, ("decrypt", "study"): sealed, ("encrypt", "small"): small}
            times: dict[tuple[str, str, int], list[float]] = {(*c, n): [] for c in inputs for n in clusters}
            for round_ in range(args.repeat + 1):  # the first round warms the workers and the page cache
                for (verb, data, workers), samples in times.items():
                    out = root / f"out-{verb}-{data}-{workers}"
                    shutil.rmtree(out, ignore_errors=True)
                    address = clusters[workers].address
                    wall = _kedi(verb, inputs[(verb, data)], "-o", out, "--key", key, "--scheduler", address)
                    if round_:
                        samples.append(wall)
        finally:
            for cluster in clusters.values():
                cluster.stop()
    load_after = os.getloadavg()
    print(
        f"{os.cpu_count()} cores; median of {args.repeat} runs of the kedi command (start-up and connection included)"
    )
    print(f"study: {SLICES} CT slices {SHAPE[0]}x{SHAPE[1]} int16 ({study_mib:.0f} MiB); ", end="")
    print(f"small: {SMALL_FILES} DICOM files of {small_kib:.1f} KiB in {small_folders} folders")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, ", end="")
    print(f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(
        f"{'command --scheduler':<22}{'data':>7}{'workers':>9}{'wall s':>9}{'files/s':>9}"
        f"{'wall ms/file':>13}{'speed-up':>10}"
    )
    for verb, data in inputs:
        count = SLICES if data == "study" else SMALL_FILES
        one = statistics.median(times[(verb, data, 1)])
        for workers in clusters:
            wall = statistics.median(times[(verb, data, workers)])
            print(
                f"{'kedi ' + verb:<22}{data:>7}{workers:>9}{wall:>9.2f}{count / wall:>9.0f}"
                f"{1000 * wall / count:>13.2f}{one / wall:>9.2f}x"
            )


if __name__ == "__main__":
    main()
