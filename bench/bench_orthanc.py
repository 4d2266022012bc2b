"""Ingest by DCMTK's storescu of 200 CT slices: plain Orthanc, Orthanc with the deepkedi storage area, the DICOM node.

Synthesises 200 CT slices of 512 × 512 (int16, one study: the liver phantom the
samples' ``study/`` folder uses, at 512²), then, for each round, starts three fresh
servers in turn (loopback, free ports, temporary folders): **plain** (Debian's Orthanc
as shipped, its own filesystem storage; the DICOMweb plugin loaded), **deepkedi** (the
same, plus the Python plugin with the encrypted storage area of
``deepkedi.server.orthanc_storage``: per-study keystore key, every attachment a
container, atomic writes, an audit row per attachment) and **node** (``kedi dicom-node``
as its own process over a fresh service folder, storescu's AE title mapped to a
technologist: each instance parsed, encrypted under the study's key, written with
``fsync``, indexed and audited before its response). Each time, the same ``storescu``
command (one association) sends the 200 files; the clock runs from storescu's start to
its exit (the servers' start-up is not counted). Then the number of instances stored is
checked (Orthanc's statistics; the node's archive index), so that a fast failure cannot
pass for speed, and in the first round five instances are read back from each and
compared: Orthanc's two byte for byte, the node's data sets with the originals'.

Each round runs the three under two network settings: DCMTK (Orthanc's and storescu's)
as Debian ships it, Nagle's algorithm on, which makes Orthanc's every C-STORE response
wait for the sender's delayed ACK; and with DCMTK's ``TCP_NODELAY=1`` in their
environment, plain Orthanc's real speed.

Goal (issue 16): the encrypted Orthanc and the node each at least 0.5× plain Orthanc's
files/s. Medians of ``--rounds`` rounds, the servers interleaved in each round.
Prints the machine's load (``os.getloadavg``) and core count: storescu, the server
and its encryption share the cores.

Writes ``bench/out/orthanc_bench.md`` (``--out FILE`` to change) and prints it.

Run: ``.venv/bin/python bench/bench_orthanc.py [--rounds 3] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom

from deepkedi.keys.keystore import Keystore, RawKek
from deepkedi.server import accounts
from deepkedi.server.app import create_app
from deepkedi.server.config import ServiceConfig
from deepkedi.server.orthanc_storage import StorageSettings, orthanc_configuration, plugin_script
from deepkedi.server.principal import Role

SLICES = 200
SHAPE = (512, 512)
GOAL_RATIO = 0.5
PLUGINS = Path("/usr/share/orthanc/plugins")
OUT = Path(__file__).resolve().parent / "out" / "orthanc_bench.md"
SRC = Path(__file__).resolve().parents[1] / "src"
#: storescu's calling AE title, on the node's allow-list as a technologist (Orthanc accepts any).
MODALITY = "MODALITY"
KINDS = ("plain", "deepkedi", "node")
LABELS = {
    "plain": "Orthanc, plain",
    "deepkedi": "Orthanc + deepkedi storage area",
    "node": "`kedi dicom-node`",
}
#: DCMTK's TCP setting for Orthanc and storescu: as Debian ships it, and with Nagle's algorithm off.
SETTINGS = {"shipped": "as shipped", "nodelay": "TCP_NODELAY=1"}


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


class KediNode:
    """``kedi dicom-node`` as its own process over a fresh service folder; storescu's AE title is a technologist."""

    ae_title = "KEDI"

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True)
        self.kek = os.urandom(32)
        kek_file = home / "kek"
        kek_file.write_bytes(self.kek)
        peers = home / "peers.json"
        peers.write_text(json.dumps({MODALITY: "modality"}))
        self.service_home = home / "service"
        # The service's first run (database, keystore, admin) and the technologist, through the service's API.
        app = create_app(
            ServiceConfig(home=self.service_home, kek_source=self.kek, admin_password=secrets.token_urlsafe(24))
        )
        service = app.state.service
        try:
            with service.sessions.begin() as db:
                accounts.create_user(
                    db, username="modality", password=secrets.token_urlsafe(24), role=Role.TECHNOLOGIST
                )
        finally:
            service.close()
        command = [
            sys.executable, "-m", "deepkedi.cli", "dicom-node", "--home", str(self.service_home),
            "--kek-file", str(kek_file), "--peers", str(peers), "--ae-title", self.ae_title, "--port", "0",
        ]  # fmt: skip
        path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        self.log = home / "node.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert self.process.stdout is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                sys.exit(f"kedi dicom-node exited: see {self.log}")
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        if port is None:
            self.process.kill()
            self.process.communicate()
            sys.exit("kedi dicom-node did not start within 60 s")
        self.dicom_port = port

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        if self.process.returncode != 0:
            sys.exit(f"kedi dicom-node did not stop cleanly (exit {self.process.returncode}): see {self.log}")

    def stored(self, files: list[Path], *, compare: int = 0) -> int:
        """How many instances of the slices' study the archive indexes (the node stopped); ``compare`` read back."""
        study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        app = create_app(ServiceConfig(home=self.service_home, kek_source=self.kek))
        service = app.state.service
        try:
            archive = service.archive
            study = archive.find_study(study_uid)
            if study is None:
                return 0
            instances = archive.instances(study)
            originals = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
            for instance in instances[:: max(1, len(instances) // compare)][:compare] if compare else []:
                data = archive.read(study, instance)
                back = pydicom.dcmread(io.BytesIO(data))
                original = pydicom.dcmread(originals[str(back.SOPInstanceUID)])
                if back != original:  # the data sets, element by element (the meta headers are the node's own)
                    sys.exit("the node returned another data set than the one sent")
            return len(instances)
        finally:
            service.close()


def storescu(called_ae: str, port: int, files: list[Path]) -> float:
    """The seconds one storescu association takes to send ``files`` (the same command for every server)."""
    program = shutil.which("storescu")
    if program is None:
        sys.exit("storescu is not installed: DCMTK (make setup)")
    start = time.perf_counter()
    result = subprocess.run(
        [program, "-xv", "-aet", MODALITY, "-aec", called_ae, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"storescu to {called_ae} failed: {result.stderr[-2000:]}")
    return elapsed


def push(server: Orthanc, files: list[Path]) -> float:
    elapsed = storescu("ORTHANC", server.dicom_port, files)
    count = httpx.get(f"{server.url}/statistics", timeout=30).json()["CountInstances"]
    if count != len(files):
        sys.exit(f"Orthanc holds {count} instances, not {len(files)}")
    return elapsed


def push_to_node(home: Path, files: list[Path], *, compare: int) -> float:
    node = KediNode(home)
    try:
        elapsed = storescu(node.ae_title, node.dicom_port, files)
    finally:
        node.stop()
    count = node.stored(files, compare=compare)
    if count != len(files):
        sys.exit(f"the node stored {count} instances, not {len(files)}")
    return elapsed


def fetch_some(server: Orthanc) -> list[bytes]:
    ids = sorted(httpx.get(f"{server.url}/instances", timeout=30).json())
    out = []
    for instance in ids[:: max(1, len(ids) // 5)][:5]:
        tags = httpx.get(f"{server.url}/instances/{instance}/simplified-tags", timeout=30).json()
        data = httpx.get(f"{server.url}/instances/{instance}/file", timeout=30).content
        out.append((tags["SOPInstanceUID"], data))
    return [data for _, data in sorted(out)]


@contextlib.contextmanager
def dcmtk_network(setting: str) -> Iterator[None]:
    """DCMTK's TCP setting for the programs started inside (Orthanc and storescu read ``TCP_NODELAY`` at start)."""
    before = os.environ.get("TCP_NODELAY")
    if setting == "nodelay":
        os.environ["TCP_NODELAY"] = "1"
    else:
        os.environ.pop("TCP_NODELAY", None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TCP_NODELAY", None)
        else:
            os.environ["TCP_NODELAY"] = before


def one_round(work: Path, files: list[Path], *, tag: str, check: bool) -> dict[str, float]:
    """The three servers in turn, each fresh; the seconds each push took."""
    times: dict[str, float] = {}
    fetched: dict[str, list[bytes]] = {}
    for kind in ("plain", "deepkedi"):
        server = Orthanc(work / f"{kind}-{tag}", encrypted=kind == "deepkedi")
        try:
            times[kind] = push(server, files)
            if check:
                fetched[kind] = fetch_some(server)
        finally:
            server.stop()
        shutil.rmtree(work / f"{kind}-{tag}")
    if check and fetched["plain"] != fetched["deepkedi"]:
        sys.exit("the encrypted Orthanc returned other bytes than plain Orthanc")
    times["node"] = push_to_node(work / f"node-{tag}", files, compare=5 if check else 0)
    shutil.rmtree(work / f"node-{tag}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if orthanc_program() is None or shutil.which("storescu") is None:
        # `make bench` runs everywhere; this one needs the Debian packages `make setup` installs as root.
        print("bench_orthanc: skipped, Orthanc (orthanc, orthanc-python, orthanc-dicomweb) or DCMTK is not installed")
        return
    if importlib.util.find_spec("pynetdicom") is None:
        print("bench_orthanc: skipped, the DICOM node needs pynetdicom (the pacs extra)")
        return
    load_before = os.getloadavg()
    loads = [load_before[0]]
    times: dict[tuple[str, str], list[float]] = {(setting, kind): [] for setting in SETTINGS for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="kedi-orthanc-bench-") as tmp:
        work = Path(tmp)
        files = synthesise(work / "slices")
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        for round_number in range(args.rounds):
            for setting in SETTINGS:
                with dcmtk_network(setting):
                    measured = one_round(work, files, tag=f"{setting}-{round_number}", check=round_number == 0)
                for kind, seconds in measured.items():
                    times[setting, kind].append(seconds)
                loads.append(os.getloadavg()[0])
                print(
                    f"round {round_number + 1}, {setting}: "
                    + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in measured.items())
                    + f" (load {loads[-1]:.2f})",
                    flush=True,
                )
    load_after = os.getloadavg()
    medians = {key: statistics.median(values) for key, values in times.items()}
    lines = [
        "# DICOM ingest: plain Orthanc, Orthanc with the deepkedi storage area, the deepkedi DICOM node",
        "",
        (
            f"`bench/bench_orthanc.py --rounds {args.rounds}`: DCMTK `storescu` (one association, the same "
            f"command for each) of {SLICES} CT slices of {SHAPE[0]}×{SHAPE[1]} int16 ({megabytes:.1f} MB) "
            "to a fresh server each time, loopback; the three servers interleaved in each round, under both "
            "network settings; medians of the rounds. "
            f"After each push every server held all {SLICES} instances (Orthanc's statistics, the node's archive "
            "index). The encrypted Orthanc returned the same bytes as plain Orthanc for the instances fetched "
            "back, and the node the same data sets as those sent."
        ),
        "",
        (
            "Two network settings. **As shipped**: Debian's DCMTK (in Orthanc and in storescu) leaves Nagle's "
            "algorithm on, and Orthanc's C-STORE response then waits for the sender's delayed ACK (about 40 ms "
            "on Linux) on every instance. **TCP_NODELAY=1**: DCMTK's own environment variable, set for Orthanc "
            "and storescu, turns Nagle's algorithm off; this is plain Orthanc's real speed on this machine and "
            "the baseline that counts. The node (pynetdicom) sends each response in one write and is not "
            "affected by the setting."
        ),
        "",
        "| network | server | median s | files/s | MB/s | × plain Orthanc | rounds (s) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for setting in SETTINGS:
        for kind in KINDS:
            median = medians[setting, kind]
            rounds = ", ".join(f"{t:.2f}" for t in times[setting, kind])
            lines.append(
                f"| {SETTINGS[setting]} | {LABELS[kind]} | {median:.2f} | {SLICES / median:.1f} "
                f"| {megabytes / median:.1f} | {medians[setting, 'plain'] / median:.2f} | {rounds} |"
            )
    lines.append("")
    for setting in SETTINGS:
        for kind in ("deepkedi", "node"):
            ratio = medians[setting, "plain"] / medians[setting, kind]
            verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
            lines.append(
                f"- {SETTINGS[setting]}: {LABELS[kind]} / plain Orthanc files/s: **{ratio:.2f}×** "
                f"(goal ≥ {GOAL_RATIO}×: {verdict})."
            )
    lines += [
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, "
            f"after each round {', '.join(f'{x:.2f}' for x in loads[1:])}."
        ),
        "",
    ]
    page = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
