"""`kedi serve` under load: STOW-RS ingest against `kedi encrypt`, and 20 viewers scrolling rendered frames.

Synthesises 200 CT slices of 512 × 512 (int16, one study, one series: the liver
phantom the samples' ``study/`` folder uses, at 512²), starts a real ``kedi serve``
in a child process on a free loopback port with a temporary home (the real
MAC-chained audit: every request writes its row), creates a technologist and a
radiologist through the admin API and signs them in with bearer tokens. Then:

* **Ingest.** Each round uploads the 200 files with STOW-RS, 20 files per request
  and, on another copy with other UIDs, one file per request; and runs the real
  ``kedi encrypt FOLDER -o OUT --key KEY`` (a child process, start-up included) on
  the same folder: the reference measured in the same run. Each round's copy has
  fresh UIDs, so nothing is acknowledged as a retried duplicate. Medians of
  ``--rounds`` rounds; goal: the service within 2× of ``kedi encrypt``.
* **Load.** The first study is assigned to the radiologist; ``--viewers`` client
  *processes* (each its own httpx client and keep-alive connection, signed in with
  a bearer token) fetch ``…/frames/1/rendered`` for ``--seconds`` s, scrolling up
  and down the 200 slices as a viewer does and changing the window preset at each
  end of the stack. Run twice: as fast as each viewer can (a closed loop: the
  saturation figure) and at ``--rate`` frames/s per viewer (a radiologist scrolling
  quickly). Throughput, p50/p95/p99 latency (measured from each request's send),
  errors; goal p95 < 100 ms and no error.

Prints the machine's load (``os.getloadavg``) and core count; the clients share
the cores with the server. Writes ``bench/out/service_bench.md`` (``--out FILE``
to change) and prints it.

Run: ``.venv/bin/python bench/bench_service.py [--seconds 60] [--rounds 3] [--viewers 20] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

KEDI = [sys.executable, "-m", "deepkedi.cli"]
SLICES = 200
SHAPE = (512, 512)
BATCH = 20
#: Window presets a viewer cycles through (center, width); None: the file's own window.
WINDOWS: tuple[tuple[int, int] | None, ...] = (None, (40, 400), (-600, 1500), (400, 1800))
GOAL_P95_MS = 100.0
GOAL_INGEST_RATIO = 2.0
PASSWORD = "bench password " + secrets.token_hex(8)


# ----------------------------------------------------------------------------------- data


def synthesise(folder: Path) -> list[Path]:
    """200 phantom CT slices of 512² as one DICOM study and series (distinct SOP Instance UIDs, InstanceNumber 1…)."""
    from deepkedi.datasets.samples import _dicom_slices  # the samples' study/ writer, at 512²

    folder.mkdir(parents=True)
    files = [folder / f"slice-{n:03d}.dcm" for n in range(1, SLICES + 1)]
    _dicom_slices(files, "liver", shape=SHAPE, seed=3)
    return files


def copy_with_new_uids(files: list[Path], folder: Path) -> list[Path]:
    """The same slices under fresh study, series and SOP Instance UIDs (a new study for the service)."""
    import pydicom
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    out = []
    for path in files:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        target = folder / path.name
        ds.save_as(target, enforce_file_format=True)
        out.append(target)
    return out


def stow_body(datas: list[bytes]) -> tuple[bytes, str]:
    boundary = "kedi-bench-" + secrets.token_hex(8)
    chunks = []
    for data in datas:
        chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


# ----------------------------------------------------------------------------------- the server


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    log: Path


def start_server(home: Path, kek: Path, log: Path, workers: int = 1) -> Served:
    env = {**os.environ, "KEDI_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    env.pop("KEDI_PASSPHRASE", None)
    env.pop("KEDI_KEK", None)
    command = [*KEDI, "serve", "--home", str(home), "--kek-file", str(kek), "--port", "0", "--workers", str(workers)]
    # Both streams go to a file: uvicorn's access log is on stdout, and a pipe nobody reads
    # would stall the server once full.
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return Served(process, found.group(1), log)
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"kedi serve did not start:\n{log.read_text()}")


def bearer(client: httpx.Client, username: str) -> dict[str, str]:
    """Sign ``username`` in and issue a bearer token (the cookie is Secure: sent by hand over loopback HTTP)."""
    answer = client.post("/api/login", json={"username": username, "password": PASSWORD})
    answer.raise_for_status()
    cookie = re.match(r"kedi_session=([^;]+)", answer.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    issued = client.post(
        "/api/tokens",
        headers={"Cookie": f"kedi_session={cookie}", "X-CSRF-Token": answer.json()["csrf_token"]},
    )
    issued.raise_for_status()
    return {"Authorization": f"Bearer {issued.json()['token']}"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and of its running children (the workers) so far (/proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


# ----------------------------------------------------------------------------------- ingest


def ingest(args: argparse.Namespace, client: httpx.Client, tech: dict[str, str], files: list[Path], scratch: Path):
    key = scratch / "bench.key"
    subprocess.run([*KEDI, "keygen", "--no-gan", "-o", str(key)], check=True, stdout=subprocess.DEVNULL)
    size_mib = sum(p.stat().st_size for p in files) / 2**20
    times: dict[str, list[float]] = {"stow20": [], "stow1": [], "encrypt": []}
    for round_ in range(args.rounds):
        batched = copy_with_new_uids(files, scratch / f"round{round_}-a")
        single = copy_with_new_uids(files, scratch / f"round{round_}-b")
        bodies = [stow_body([p.read_bytes() for p in batched[i : i + BATCH]]) for i in range(0, SLICES, BATCH)]
        start = time.perf_counter()
        for body, content_type in bodies:
            answer = client.post("/dicomweb/studies", content=body, headers={**tech, "Content-Type": content_type})
            if answer.status_code != 200:
                raise SystemExit(f"STOW-RS answered {answer.status_code}: {answer.text[:200]}")
        times["stow20"].append(time.perf_counter() - start)
        bodies = [stow_body([p.read_bytes()]) for p in single]
        start = time.perf_counter()
        for body, content_type in bodies:
            answer = client.post("/dicomweb/studies", content=body, headers={**tech, "Content-Type": content_type})
            if answer.status_code != 200:
                raise SystemExit(f"STOW-RS answered {answer.status_code}: {answer.text[:200]}")
        times["stow1"].append(time.perf_counter() - start)
        out = scratch / f"round{round_}-encrypted"
        start = time.perf_counter()
        subprocess.run([*KEDI, "encrypt", str(batched[0].parent), "-o", str(out), "--key", str(key), "-q"], check=True)
        times["encrypt"].append(time.perf_counter() - start)
        shutil.rmtree(out)
        shutil.rmtree(single[0].parent)
        if round_:
            shutil.rmtree(batched[0].parent)
        print(
            f"  round {round_ + 1}: STOW-RS ×{BATCH} {SLICES / times['stow20'][-1]:.1f} files/s, "
            f"×1 {SLICES / times['stow1'][-1]:.1f} files/s, kedi encrypt {SLICES / times['encrypt'][-1]:.1f} files/s",
            flush=True,
        )
    # A process that only starts and exits: how much of `kedi encrypt`'s time is the interpreter and imports.
    start = time.perf_counter()
    subprocess.run([*KEDI, "encrypt", "--help"], check=True, stdout=subprocess.DEVNULL)
    startup = time.perf_counter() - start
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, times, size_mib, startup


# ----------------------------------------------------------------------------------- load


def viewer(
    index: int, url: str, headers: dict[str, str], frames: list[str], seconds: float, rate: float, start_at: float
) -> dict[str, Any]:
    """One viewer process: scroll the stack for ``seconds``; latencies (s) and failures.

    The standard library's ``http.client`` on one keep-alive connection: a load generator
    that shares the server's cores should cost as little CPU per request as it can (httpx
    took about 3 ms of CPU per frame, as much as the server's own work).
    """
    import http.client
    from urllib.parse import urlencode, urlsplit

    latencies: list[float] = []
    failures: dict[str, int] = {}
    position, step, window = (index * 37) % len(frames), 1 if index % 2 == 0 else -1, index % len(WINDOWS)
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30.0)
    request_headers = {**headers, "Accept": "image/png"}

    def get(path: str) -> tuple[int, bytes]:
        connection.request("GET", path, headers=request_headers)
        answer = connection.getresponse()
        return answer.status, answer.read()

    status, _ = get("/api/session")  # signed in and connected before the clock starts
    if status != 200:
        raise RuntimeError(f"viewer {index}: /api/session answered {status}")
    while time.time() < start_at - 1.0:
        time.sleep(0.005)
    connection.close()  # idle longer than the server's keep-alive: connect again, just before the start
    get("/api/session")
    while time.time() < start_at:
        time.sleep(0.005)
    end = start_at + seconds
    sent = 0
    while True:
        if rate > 0:
            due = start_at + sent / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
        if time.time() >= end:
            break
        chosen = WINDOWS[window]
        path = frames[position] + ("" if chosen is None else "?" + urlencode({"window": f"{chosen[0]},{chosen[1]}"}))
        begin = time.perf_counter()
        try:
            status, content = get(path)
            if status != 200 or not content.startswith(b"\x89PNG"):
                failures[f"HTTP {status}"] = failures.get(f"HTTP {status}", 0) + 1
            else:
                latencies.append(time.perf_counter() - begin)
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            connection.close()  # reconnects on the next request
        sent += 1
        position += step
        if not 0 <= position < len(frames):  # the end of the stack: turn back, try another window
            step = -step
            position += 2 * step
            window = (window + 1) % len(WINDOWS)
    connection.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"latencies": latencies, "failures": failures, "cpu": usage.ru_utime + usage.ru_stime}


def _viewer_entry(queue: Any, *arguments: Any) -> None:
    queue.put(viewer(*arguments))


@dataclass
class LoadResult:
    workers: int
    rate: float
    seconds: float
    frames: int
    failures: dict[str, int]
    percentiles: dict[int, float]
    server_cpu: float
    clients_cpu: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def throughput(self) -> float:
        return self.frames / self.seconds


def load(
    args: argparse.Namespace, served: Served, headers: dict[str, str], frames: list[str], rate: float, workers: int
):
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no state shared with this process
    queue = context.Queue()
    start_at = time.time() + 5.0 + 0.3 * args.viewers  # every viewer started and connected first
    processes = [
        context.Process(
            target=_viewer_entry,
            args=(queue, i, served.url, headers, frames, args.seconds, rate, start_at),
        )
        for i in range(args.viewers)
    ]
    for process in processes:
        process.start()
    while time.time() < start_at:
        time.sleep(0.01)
    load_before = os.getloadavg()
    server_cpu = cpu_seconds(served.process.pid)
    results = [queue.get(timeout=args.seconds + 120) for _ in processes]
    server_cpu = cpu_seconds(served.process.pid) - server_cpu
    load_after = os.getloadavg()
    for process in processes:
        process.join(timeout=30)
    latencies = np.array([t for r in results for t in r["latencies"]]) * 1000.0
    failures: dict[str, int] = {}
    for r in results:
        for name, count in r["failures"].items():
            failures[name] = failures.get(name, 0) + count
    percentiles = {p: float(np.percentile(latencies, p)) if latencies.size else float("nan") for p in (50, 95, 99)}
    return LoadResult(
        workers=workers,
        rate=rate,
        seconds=args.seconds,
        frames=int(latencies.size),
        failures=failures,
        percentiles=percentiles,
        server_cpu=server_cpu,
        clients_cpu=sum(r["cpu"] for r in results),
        load_before=load_before,
        load_after=load_after,
    )


# ----------------------------------------------------------------------------------- report


def _load_rows(results: list[LoadResult], viewers: int) -> list[str]:
    rows = [
        (
            "| server processes | viewers pace | frames/s | p50 ms | p95 ms | p99 ms | errors | server CPU "
            "| clients' CPU | load before / after |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pace = "as fast as each can" if r.rate == 0 else f"{r.rate:g} frames/s each ({r.rate * viewers:g} offered)"
        errors = sum(r.failures.values())
        detail = f"{errors}" + (f" ({', '.join(f'{k} ×{v}' for k, v in r.failures.items())})" if errors else "")
        rows.append(
            f"| {r.workers} | {pace} | {r.throughput:.1f} | {r.percentiles[50]:.1f} | {r.percentiles[95]:.1f} | "
            f"{r.percentiles[99]:.1f} | {detail} | {r.server_cpu / r.seconds:.2f} cores | "
            f"{r.clients_cpu / r.seconds:.2f} cores | {r.load_before[0]:.2f} / {r.load_after[0]:.2f} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each load run")
    parser.add_argument("--viewers", type=int, default=20, help="concurrent viewer processes")
    parser.add_argument("--rate", type=float, default=10.0, help="frames/s per viewer in the paced load run")
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds (medians are reported)")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="server processes (`kedi serve --workers`) of the load runs, comma-separated: each is measured",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "service_bench.md")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"{cores} cores; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="kedi-bench-service-"))
    served: Served | None = None
    try:
        files = synthesise(scratch / "slices")
        kek = scratch / "kek"
        kek.write_bytes(os.urandom(32))
        counts = [int(n) for n in args.workers.split(",")]
        served = start_server(scratch / "home", kek, scratch / "serve.log", counts[0])
        with httpx.Client(base_url=served.url, timeout=120.0) as client:
            admin = bearer(client, "admin")
            for name, role, group in (("tech", "technologist", None), ("reader", "radiologist", "bench")):
                made = client.post(
                    "/api/users",
                    json={"username": name, "password": PASSWORD, "role": role, "group": group},
                    headers=admin,
                )
                made.raise_for_status()
            tech, reader = bearer(client, "tech"), bearer(client, "reader")
            print(f"ingest: {SLICES} slices of {SHAPE[0]}×{SHAPE[1]} int16, {args.rounds} rounds", flush=True)
            medians, _times, size_mib, startup = ingest(args, client, tech, files, scratch)
            studies = client.get("/api/studies", headers=admin).json()
            first = studies[0]
            client.post(f"/api/studies/{first['id']}/assign", json={"group": "bench"}, headers=admin).raise_for_status()
            found = client.get("/dicomweb/studies", headers=reader).json()
            study_uid = found[0]["0020000D"]["Value"][0]
            listed = client.get(f"/dicomweb/studies/{study_uid}/instances", headers=reader).json()
            listed.sort(key=lambda item: item["00200013"]["Value"][0])
            frames = [
                f"/dicomweb/studies/{study_uid}/series/{item['0020000E']['Value'][0]}"
                f"/instances/{item['00080018']['Value'][0]}/frames/1/rendered"
                for item in listed
            ]
            png_bytes = len(client.get(frames[0], headers=reader).content)
        assert len(frames) == SLICES, len(frames)
        results = []
        for index, workers in enumerate(counts):
            if index:  # the same service folder, served by another number of processes
                served.process.terminate()
                served.process.wait(timeout=60)
                served = start_server(scratch / "home", kek, scratch / f"serve-{workers}.log", workers)
            for rate in (0.0, args.rate):
                pace = "as fast as each can" if rate == 0 else f"{rate:g} frames/s each"
                what = f"{workers} server processes, {args.viewers} viewers, {pace}, {args.seconds:g} s"
                print(f"load: {what}", flush=True)
                results.append(load(args, served, reader, frames, rate, workers))
                print("\n".join(_load_rows(results[-1:], args.viewers)), flush=True)
        with httpx.Client(base_url=served.url, timeout=300.0) as client:
            verified = client.get("/api/audit/verify", headers=admin).json()
        served.process.terminate()
        served.process.wait(timeout=60)
    finally:
        if served is not None and served.process.poll() is None:
            served.process.kill()
        shutil.rmtree(scratch, ignore_errors=True)

    ratio = medians["stow20"] / medians["encrypt"]
    lines = [
        "# `kedi serve` under load, measured",
        "",
        (
            f"Generated by `bench/bench_service.py`: Python {platform.python_version()}, {platform.machine()}, "
            f"{cores} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end "
            f"(1 / 5 / 15 min), {time.perf_counter() - started:.0f} s in all. A real `kedi serve` (uvicorn, "
            "SQLite database, objects on the local disk, the real MAC-chained audit: one row per request), with "
            "one process or with `--workers N` processes sharing the port; the clients are separate processes on "
            "the same cores."
        ),
        "",
        f"## STOW-RS ingest of {SLICES} CT slices ({SHAPE[0]}×{SHAPE[1]} int16, {size_mib:.0f} MiB)",
        "",
        (
            f"Median of {args.rounds} rounds, each on a copy of the slices with fresh UIDs (a new study); the "
            "reference is the real `kedi encrypt FOLDER -o OUT --key KEY` on the same folder in the same round "
            f"(a child process: its start-up, {startup:.2f} s for `kedi encrypt --help`, is included)."
        ),
        "",
        "| what | seconds | files/s | × kedi encrypt |",
        "|---|---|---|---|",
        (f"| `kedi encrypt` of the folder | {medians['encrypt']:.2f} | {SLICES / medians['encrypt']:.1f} | 1.00 |"),
        (
            f"| STOW-RS, {BATCH} files per request | {medians['stow20']:.2f} | {SLICES / medians['stow20']:.1f} | "
            f"{ratio:.2f} |"
        ),
        (
            f"| STOW-RS, one file per request | {medians['stow1']:.2f} | {SLICES / medians['stow1']:.1f} | "
            f"{medians['stow1'] / medians['encrypt']:.2f} |"
        ),
        "",
        (
            f"Goal: STOW-RS within {GOAL_INGEST_RATIO:g}× of `kedi encrypt`: "
            f"{'met' if ratio <= GOAL_INGEST_RATIO else 'NOT met'} ({ratio:.2f}× in requests of {BATCH})."
        ),
        "",
        f"## {args.viewers} viewers scrolling rendered frames",
        "",
        (
            f"Each viewer is its own process with its own keep-alive connection and bearer token (a radiologist "
            f"the study is assigned to), fetching `…/frames/1/rendered` (a {SHAPE[0]}×{SHAPE[1]} 8-bit PNG, "
            f"{png_bytes / 1024:.0f} KiB) of the {SLICES} slices up and down the stack, changing the window at each "
            f"end (the file's own, 40/400, −600/1500, 400/1800), for {args.seconds:g} s per run. Latency from "
            "each request's send to its last byte; every request is a real view: authenticated, checked against "
            "the study's key in the keystore, audited."
        ),
        "",
        *_load_rows(results, args.viewers),
        "",
        f"Goal p95 < {GOAL_P95_MS:g} ms with no error: "
        + "; ".join(
            f"{r.workers} process{'es' if r.workers > 1 else ''}, "
            f"{'as fast as each can' if r.rate == 0 else f'{r.rate:g} frames/s each'} "
            f"{'met' if r.percentiles[95] < GOAL_P95_MS and not r.failures else 'NOT met'}"
            for r in results
        )
        + ".",
        "",
        f"The audit trail verified after the runs: {verified['ok']} ({verified['entries']} entries).",
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
