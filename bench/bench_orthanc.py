"""Orthanc ingest with and without the deepkedi storage area: DCMTK's storescu of 200 CT slices.

Synthesises 200 CT slices of 512 × 512 (int16, one study: the liver phantom the
samples' ``study/`` folder uses, at 512²), then, for each round, starts a fresh
Debian Orthanc (loopback, free ports, temporary folders) twice: **plain** (Orthanc
as shipped, its own filesystem storage; the DICOMweb plugin loaded) and **deepkedi**
(the same, plus the Python plugin with the encrypted storage area of
``deepkedi.server.orthanc_storage``: per-study keystore key, every attachment a
container, atomic writes, an audit row per attachment). Each time, one ``storescu``
association sends the 200 files; the clock runs from the first byte to storescu's
exit (Orthanc's start-up is not counted). Then the instance count is checked and
five instances are fetched back from each server and compared byte for byte.

Goal (issue 16): the encrypted Orthanc at least 0.5× plain Orthanc's files/s.
Medians of ``--rounds`` rounds. Prints the machine's load (``os.getloadavg``) and
core count: storescu, Orthanc and the plugin share the cores.

Writes ``bench/out/orthanc_bench.md`` (``--out FILE`` to change) and prints it.

Run: ``.venv/bin/python bench/bench_orthanc.py [--rounds 3] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deepkedi.keys.keystore import Keystore, RawKek
from deepkedi.server.orthanc_storage import StorageSettings, orthanc_configuration, plugin_script

SLICES = 200
SHAPE = (512, 512)
GOAL_RATIO = 0.5
PLUGINS = Path("/usr/share/orthanc/plugins")
OUT = Path(__file__).resolve().parent / "out" / "orthanc_bench.md"


def synthesise(folder: Path) -> list[Path]:
    """200 phantom CT slices of 512² as one DICOM study and series."""
    from deepkedi.datasets.samples import _dicom_slices  # the samples' study/ writer, at 512²

    folder.mkdir(parents=True)
    files = [folder / f"slice-{n:03d}.dcm" for n in range(1, SLICES + 1)]
    _dicom_slices(files, "liver", shape=SHAPE, seed=3)
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def orthanc_program() -> str | None:
    """Debian's Orthanc, if it and both plugins are installed."""
    debian = Path("/usr/sbin/Orthanc")
    found = str(debian) if debian.is_file() else shutil.which("Orthanc")
    plugins = all((PLUGINS / name).exists() for name in ("libOrthancPython.so", "libOrthancDicomWeb.so"))
    return found if plugins else None


class Orthanc:
    """One Orthanc in a temporary folder: plain, or with the deepkedi storage area."""

    def __init__(self, home: Path, *, encrypted: bool) -> None:
        self.home = home
        storage, index = home / "storage", home / "index"
        storage.mkdir(parents=True)
        index.mkdir()
        kek = os.urandom(32)
        kek_file = home / "kek.hex"
        kek_file.write_text(kek.hex())
        url = f"sqlite:///{home / 'keystore.db'}"
        script = home / "deepkedi_storage.py"
        script.write_text(plugin_script())
        self.http_port, self.dicom_port = free_port(), free_port()
        config = orthanc_configuration(
            StorageSettings(storage=storage, keystore_url=url, kek_file=kek_file),
            script=script,
            index=index,
            http_port=self.http_port,
            dicom_port=self.dicom_port,
            plugins=[PLUGINS / "libOrthancPython.so", PLUGINS / "libOrthancDicomWeb.so"],
        )
        if encrypted:
            Keystore.init(url, kek_source=RawKek(kek), actor="bench").close()
        else:
            config.pop("PythonScript")
            config.pop("DeepKedi")
            config["Plugins"] = [str(PLUGINS / "libOrthancDicomWeb.so")]
        self.config = home / "orthanc.json"
        self.config.write_text(json.dumps(config, indent=2))
        log = (home / "orthanc.log").open("wb")
        program = orthanc_program()
        assert program is not None
        self.process = subprocess.Popen([program, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.url = f"http://127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"Orthanc exited: see {home / 'orthanc.log'}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        sys.exit("Orthanc did not start within 60 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def push(server: Orthanc, files: list[Path]) -> float:
    storescu = shutil.which("storescu")
    if storescu is None:
        sys.exit("storescu is not installed: DCMTK (make setup)")
    start = time.perf_counter()
    result = subprocess.run(
        [storescu, "-xv", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"storescu failed: {result.stderr[-2000:]}")
    count = httpx.get(f"{server.url}/statistics", timeout=30).json()["CountInstances"]
    if count != len(files):
        sys.exit(f"Orthanc holds {count} instances, not {len(files)}")
    return elapsed


def fetch_some(server: Orthanc) -> list[bytes]:
    ids = sorted(httpx.get(f"{server.url}/instances", timeout=30).json())
    out = []
    for instance in ids[:: max(1, len(ids) // 5)][:5]:
        tags = httpx.get(f"{server.url}/instances/{instance}/simplified-tags", timeout=30).json()
        data = httpx.get(f"{server.url}/instances/{instance}/file", timeout=30).content
        out.append((tags["SOPInstanceUID"], data))
    return [data for _, data in sorted(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if orthanc_program() is None or shutil.which("storescu") is None:
        # `make bench` runs everywhere; this one needs the Debian packages `make setup` installs as root.
        print("bench_orthanc: skipped, Orthanc (orthanc, orthanc-python, orthanc-dicomweb) or DCMTK is not installed")
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kedi-orthanc-bench-") as tmp:
        work = Path(tmp)
        files = synthesise(work / "slices")
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        times: dict[str, list[float]] = {"plain": [], "deepkedi": []}
        for round_number in range(args.rounds):
            fetched: dict[str, list[bytes]] = {}
            for kind in ("plain", "deepkedi"):
                server = Orthanc(work / f"{kind}-{round_number}", encrypted=kind == "deepkedi")
                try:
                    times[kind].append(push(server, files))
                    if round_number == 0:
                        fetched[kind] = fetch_some(server)
                finally:
                    server.stop()
                shutil.rmtree(work / f"{kind}-{round_number}")
            if round_number == 0 and fetched["plain"] != fetched["deepkedi"]:
                sys.exit("the encrypted Orthanc returned other bytes than plain Orthanc")
            print(
                f"round {round_number + 1}: plain {times['plain'][-1]:.2f} s, deepkedi {times['deepkedi'][-1]:.2f} s",
                flush=True,
            )
    load_after = os.getloadavg()
    plain, encrypted = statistics.median(times["plain"]), statistics.median(times["deepkedi"])
    ratio = plain / encrypted
    lines = [
        "# Orthanc ingest: plain vs the deepkedi storage area",
        "",
        (
            f"`bench/bench_orthanc.py --rounds {args.rounds}`: DCMTK `storescu` (one association) "
            f"of {SLICES} CT slices of {SHAPE[0]}×{SHAPE[1]} int16 ({megabytes:.1f} MB) "
            "to a fresh Debian Orthanc each time, loopback; medians of the rounds. "
            "The encrypted Orthanc returned the same bytes as plain Orthanc for the instances fetched back."
        ),
        "",
        "| Orthanc | median s | files/s | MB/s | rounds (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, label in (("plain", "plain (as shipped)"), ("deepkedi", "with the deepkedi storage area")):
        median = statistics.median(times[kind])
        rounds = ", ".join(f"{t:.2f}" for t in times[kind])
        lines.append(f"| {label} | {median:.2f} | {SLICES / median:.1f} | {megabytes / median:.1f} | {rounds} |")
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    lines += [
        "",
        f"Encrypted / plain files/s: **{ratio:.2f}×** (goal ≥ {GOAL_RATIO}×: {verdict}).",
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)."
        ),
        "",
    ]
    page = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
