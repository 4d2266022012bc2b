"""Folder runs through the batch engine, side by side with GDCM's `gdcmanon`, and the per-file cost.

Two data sets, synthesised (the phantom CT ``bench_service.py`` uses):

- **study**: 200 CT slices of 512 x 512 int16 (about 100 MiB), one study. Timed in
  the same run, round-robin (so a burst of load slows every case alike):
  ``gdcmanon -e --certificate`` (PS3.15 E.1 de-identification: the identifying
  attributes encrypted into a CMS envelope, the pixels left in clear) and
  ``gdcmanon -d`` (re-identification), then ``kedi encrypt``, ``kedi encrypt
  --as-dicom`` and ``kedi decrypt`` of the folder at ``--jobs 1`` and ``--jobs 2``.
- **small files**: 5,000 DICOM files of about 9 KB (64 x 64 int16). ``kedi encrypt``
  at 1 and 2 jobs on all 5,000 and on the first 500: the difference over 4,500 files
  is the **marginal cost per file**, wall and CPU (the start-up and the pool's start
  cancel out), and its ratio between 1 and 2 jobs is the steady-state speed-up. Run
  twice: in a temporary folder on the disk, and on tmpfs (``/dev/shm``), where ``fsync``
  costs nothing, to tell the CPUs' scaling from the disk's.

Every time is a fresh command as a user runs it (start-up included), median of the
rounds. CPU is the user + system time of the command and the children it waits for:
shown for one job only, since the pool's workers are children of its forkserver, not of
the command, and their time is not counted. Writes
``bench/out/batch_bench.md`` (``--out FILE`` to change; ``make bench-docs`` writes
docs/batch_bench.md) and prints it.

    python bench/bench_batch.py [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEDI = [sys.executable, "-m", "deepkedi.cli"]
OUT = Path(__file__).resolve().parent / "out" / "batch_bench.md"
SLICES = 200
SHAPE = (512, 512)
SMALL = 5000
SMALL_FEW = 500
SMALL_SHAPE = (64, 64)
#: Where the small-file runs read and write: the disk (a temporary folder), and memory (tmpfs,
#: where fsync costs nothing: the CPU's scaling without the disk's).
PLACES = ("disk", "tmpfs")


def synthesise(folder: Path, count: int = SLICES, shape: tuple[int, int] = SHAPE, seed: int = 3) -> list[Path]:
    """``count`` phantom CT slices of ``shape`` as one DICOM study and series."""
    from deepkedi.datasets.samples import _dicom_slices  # the samples' study/ writer, at any size

    folder.mkdir(parents=True)
    files = [folder / f"slice-{n:05d}.dcm" for n in range(1, count + 1)]
    _dicom_slices(files, "liver", shape=shape, seed=seed)
    return files


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed RSA-2048 certificate and its key (PEM), for gdcmanon's CMS envelopes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def timed(command: list[object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one command and the children it waits for."""
    start = time.perf_counter()
    process = subprocess.Popen([str(c) for c in command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return wall, usage.ru_utime + usage.ru_stime


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    gdcmanon = shutil.which("gdcmanon")
    if gdcmanon is None:
        sys.exit("bench_batch: gdcmanon (Debian libgdcm-tools) is needed for the comparison; `make setup` installs it")
    loads = [os.getloadavg()[0]]
    shm = Path("/dev/shm")
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp_memory,
    ):
        root, memory = Path(tmp), Path(tmp_memory)
        study = root / "study"
        synthesise(study)
        study_mb = sum(p.stat().st_size for p in study.iterdir()) / 1e6
        small = root / "small"
        synthesise(small, SMALL, SMALL_SHAPE, seed=1)
        few = root / "few"
        few.mkdir()
        for path in sorted(small.iterdir())[:SMALL_FEW]:
            os.link(path, few / path.name)
        small_kb = sum(p.stat().st_size for p in small.iterdir()) / SMALL / 1e3
        cert, private = certificate(root)
        key = root / "site.key"
        subprocess.run([*KEDI, "keygen", "-o", str(key)], check=True, stdout=subprocess.DEVNULL)
        anon, sealed = root / "anon", root / "sealed"
        subprocess.run([gdcmanon, "-e", "--certificate", cert, "-i", study, "-o", anon, "-r"], check=True)
        subprocess.run([*KEDI, "encrypt", study, "-o", sealed, "--key", key, "-q"], check=True)  # and a warm-up

        def gdcm(mode: str, data: Path) -> list[object]:
            if mode == "-e":
                return [gdcmanon, "-e", "--certificate", cert, "-i", data, "-o", fresh(root / "g-out"), "-r"]
            return [gdcmanon, "-d", "-k", private, "-i", anon, "-o", fresh(root / "g-out"), "-r"]

        def kedi(command: str, data: Path, jobs: int, *extra: str) -> list[object]:
            return [*KEDI, command, data, "-o", fresh(root / "k-out"), "--key", key, "-j", jobs, "-q", *extra]

        study_cases: dict[str, list[object]] = {
            "gdcmanon -e --certificate": gdcm("-e", study),
            "gdcmanon -d": gdcm("-d", study),
        }
        for jobs in (1, 2):
            study_cases[f"kedi encrypt, {jobs} job(s)"] = kedi("encrypt", study, jobs)
            study_cases[f"kedi encrypt --as-dicom, {jobs} job(s)"] = kedi("encrypt", study, jobs, "--as-dicom")
            study_cases[f"kedi decrypt, {jobs} job(s)"] = kedi("decrypt", sealed, jobs)
        small_cases: dict[str, list[object]] = {"gdcmanon -e --certificate (5,000)": gdcm("-e", small)}
        shutil.copytree(small, memory / "small")
        shutil.copytree(few, memory / "few")
        for folder in PLACES:
            data = root if folder == "disk" else memory
            for jobs in (1, 2):
                for count, name in ((SMALL, "small"), (SMALL_FEW, "few")):
                    command = kedi("encrypt", data / name, jobs)
                    command[command.index("-o") + 1] = fresh(data / "k-out")
                    small_cases[f"kedi encrypt {count:,}, {jobs} job(s), {folder}"] = command
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in [*study_cases, *small_cases]}
        for _ in range(args.rounds):
            for cases in (study_cases, small_cases):
                for name, command in cases.items():
                    # The gdcm lambdas and kedi() emptied their output folder when the command was
                    # built; empty it again before every run.
                    fresh(Path(str(command[command.index("-o") + 1])))
                    times[name].append(timed(command))
            loads.append(os.getloadavg()[0])

    def wall(name: str) -> float:
        return statistics.median(w for w, _ in times[name])

    def cpu(name: str) -> float:
        return statistics.median(c for _, c in times[name])

    def cpu_cell(name: str) -> str:
        return "–" if "2 job" in name else f"{cpu(name):.2f}"

    lines = [
        "# Folder runs: the batch engine beside gdcmanon, and the cost of one more file",
        "",
        (
            f"`bench/bench_batch.py --rounds {args.rounds}`: every time is a fresh command (start-up included), "
            "median of the rounds, the cases interleaved in each round. CPU is user + system time of the command; "
            "with 2 jobs the workers' time escapes that count (they are children of the pool's forkserver) and "
            "it is not shown."
        ),
        "",
        f"## {SLICES} CT slices of {SHAPE[0]}×{SHAPE[1]} int16 ({study_mb:.1f} MB)",
        "",
        (
            "`gdcmanon -e` encrypts the identifying attributes into a CMS envelope (PS3.15 E.1) and leaves the "
            "pixels in clear; `kedi encrypt` encrypts every byte of every file (AES-256-GCM, zigzag layer, "
            "SHA-256 of the original), writes each output through a private part file, fsync and rename, and "
            "records each file in the manifest."
        ),
        "",
        "| command | median s | files/s | CPU s | rounds (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name in study_cases:
        rounds = ", ".join(f"{w:.2f}" for w, _ in times[name])
        lines.append(f"| {name} | {wall(name):.2f} | {SLICES / wall(name):.0f} | {cpu_cell(name)} | {rounds} |")
    gdcm_e, gdcm_d = wall("gdcmanon -e --certificate"), wall("gdcmanon -d")
    best = {kind: min(wall(f"kedi {kind}, {j} job(s)") for j in (1, 2)) for kind in ("encrypt", "encrypt --as-dicom")}
    best["decrypt"] = min(wall(f"kedi decrypt, {j} job(s)") for j in (1, 2))
    goals = [
        ("`kedi encrypt` / `gdcmanon -e` files/s", gdcm_e / best["encrypt"], 1.0),
        ("`kedi encrypt --as-dicom` / `gdcmanon -e` files/s", gdcm_e / best["encrypt --as-dicom"], 0.5),
        ("`kedi decrypt` / `gdcmanon -d` files/s", gdcm_d / best["decrypt"], 1.0),
    ]
    lines.append("")
    for label, ratio, goal in goals:
        verdict = "met" if ratio >= goal else "NOT met"
        lines.append(f"- {label} (the faster of 1 and 2 jobs): **{ratio:.2f}×** (goal ≥ {goal:g}×: {verdict}).")
    for kind in ("encrypt", "encrypt --as-dicom", "decrypt"):
        one, two = wall(f"kedi {kind}, 1 job(s)"), wall(f"kedi {kind}, 2 job(s)")
        lines.append(f"- `kedi {kind}` 2 jobs over 1: **{one / two:.2f}×** (whole command, start-up included).")
    lines += [
        "",
        f"## {SMALL:,} small DICOM files (64×64 int16, {small_kb:.1f} KB each)",
        "",
        (
            "The same runs on two file systems: a temporary folder on the disk, and tmpfs (memory, where "
            "`fsync` returns at once), which shows how the work scales on the CPUs alone. The marginal cost "
            "per file is the difference between 5,000 and 500 files, over 4,500: start-up and pool start "
            "cancel out."
        ),
        "",
        "| command | median s | files/s | CPU s | rounds (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name in small_cases:
        count = SMALL_FEW if " 500," in name else SMALL
        rounds = ", ".join(f"{w:.2f}" for w, _ in times[name])
        lines.append(f"| {name} | {wall(name):.2f} | {count / wall(name):.0f} | {cpu_cell(name)} | {rounds} |")
    lines.append("")
    for folder in PLACES:
        marginal: dict[int, float] = {}
        for jobs in (1, 2):
            many = f"kedi encrypt {SMALL:,}, {jobs} job(s), {folder}"
            few_name = f"kedi encrypt {SMALL_FEW:,}, {jobs} job(s), {folder}"
            marginal[jobs] = (wall(many) - wall(few_name)) / (SMALL - SMALL_FEW) * 1e3
            cpu_ms = (cpu(many) - cpu(few_name)) / (SMALL - SMALL_FEW) * 1e3
            verdict = f" (goal < 3 ms wall: {'met' if marginal[jobs] < 3 else 'NOT met'})" if jobs == 2 else ""
            cpu_note = f", {cpu_ms:.2f} ms CPU" if jobs == 1 else ""
            lines.append(
                f"- {folder}: marginal cost per file at {jobs} job(s): **{marginal[jobs]:.2f} ms wall**"
                f"{cpu_note}{verdict}."
            )
        steady = marginal[1] / marginal[2]
        one, two = (wall(f"kedi encrypt {SMALL:,}, {jobs} job(s), {folder}") for jobs in (1, 2))
        whole = one / two
        lines.append(
            f"- {folder}: 2 jobs over 1, per file in steady state: **{steady:.2f}×**; whole {SMALL:,}-file "
            f"command: **{whole:.2f}×** (goal ≥ 1.7×: {'met' if max(steady, whole) >= 1.7 else 'NOT met'})."
        )
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average (1 min) before {loads[0]:.2f}, after each round "
        + ", ".join(f"{load:.2f}" for load in loads[1:])
        + ".",
        "",
    ]
    page = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
