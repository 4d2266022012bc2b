"""`kill -9` of `kedi serve` in the middle of a STOW-RS upload of 200 files, then a restart on the same folder.

What was acknowledged (listed in a STOW-RS answer's Referenced SOP Sequence) is
retrievable byte for byte after the restart; whatever QIDO-RS lists is retrievable
(no half-stored instance shows); the MAC-chained audit trail verifies; no part file
or plaintext staging folder of the killed process is left (docs/SERVICE.md, "Crash
safety"). The kill lands at a seeded random point, while a request is in flight.
The part files and staging folder are found only if the restart failed to sweep
them: without that sweep, both seeds below leave some.
"""

from __future__ import annotations

import io
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn", reason="the server extra (pip install 'deepkedi[server]')")
pydicom = pytest.importorskip("pydicom")

SRC = str(Path(__file__).resolve().parents[2] / "src")
PASSWORD = "kill test admin " + secrets.token_hex(8)
FILES = 200
_OBJECT = re.compile(r"^[0-9a-f]{32}$")


def _instances(count: int, seed: int) -> dict[str, bytes]:
    """``count`` small CT slices (pydicom's CT_small.dcm, 128², with seeded pixels) of one study: SOP UID → file."""
    import numpy as np
    from pydicom.uid import generate_uid

    from deepkedi.datasets import sample_path

    template = pydicom.dcmread(sample_path("pydicom-CT_small.dcm"))
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    out = {}
    for number in range(1, count + 1):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number
        ds.PixelData = rng.integers(0, 2000, (int(ds.Rows), int(ds.Columns)), dtype=np.int16).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out[str(ds.SOPInstanceUID)] = buffer.getvalue()
    return out


def _start(home: Path, kek: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1", "KEDI_ADMIN_PASSWORD": PASSWORD}
    env.pop("KEDI_PASSPHRASE", None)
    env.pop("KEDI_KEK", None)
    command = [
        sys.executable,
        "-m",
        "deepkedi.cli",
        "serve",
        "--home",
        str(home),
        "--kek-file",
        str(kek),
        "--port",
        "0",
    ]
    # Into a file, not a pipe: uvicorn's access log (stdout) would fill a pipe nobody reads and stall the server.
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"kedi serve did not start:\n{log.read_text(errors='replace')}")


def _bearer(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = client.post("/api/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    cookie = re.match(r"kedi_session=([^;]+)", answer.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    issued = client.post(
        "/api/tokens", headers={"Cookie": f"kedi_session={cookie}", "X-CSRF-Token": answer.json()["csrf_token"]}
    )
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}


def _stow(datas: list[bytes]) -> tuple[bytes, str]:
    boundary = "kill-" + secrets.token_hex(8)
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + d + b"\r\n" for d in datas)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _parts(answer: httpx.Response) -> list[bytes]:
    """The parts of a multipart/related answer (RFC 2046), parsed here rather than by the server's own code."""
    boundary = re.search(r'boundary="?([^";]+)"?', answer.headers["content-type"]).group(1)  # type: ignore[union-attr]
    chunks = answer.content.split(b"--" + boundary.encode())
    assert chunks[-1].strip() == b"--", "no closing boundary"
    parts = []
    for chunk in chunks[1:-1]:
        _head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        parts.append(content.removesuffix(b"\r\n"))
    return parts


# Two seeds whose kill lands while an object is being encrypted (its plaintext staged, its part file open).
@pytest.mark.parametrize("seed", [16, 18])
def test_kill_9_mid_upload_loses_nothing_acknowledged(tmp_path: Path, seed: int) -> None:
    files = _instances(FILES, seed)
    order = list(files)
    rng = random.Random(seed)
    # One to three files per request, as a modality sends them; the kill comes after a random number of answers.
    batches: list[list[str]] = []
    while sum(map(len, batches)) < FILES:
        start = sum(map(len, batches))
        batches.append(order[start : start + rng.randint(1, 3)])
    kill_after = rng.randint(5, len(batches) - 20)
    kill_delay = rng.uniform(0.0, 0.03)
    home, kek = tmp_path / "service", tmp_path / "kek"
    kek.write_bytes(os.urandom(32))
    process, url = _start(home, kek, tmp_path / "first.log")
    killed_pid = process.pid
    acknowledged: set[str] = set()
    refused: list[str] = []
    in_flight: list[list[str]] = []
    answers = threading.Semaphore(0)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            admin = _bearer(client, "admin", PASSWORD)
            made = client.post(
                "/api/users",
                json={"username": "tech", "password": PASSWORD, "role": "technologist"},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            tech = _bearer(client, "tech", PASSWORD)

        def upload() -> None:
            with httpx.Client(base_url=url, timeout=30, headers=tech) as uploader:
                for batch in batches:
                    body, content_type = _stow([files[sop] for sop in batch])
                    try:
                        answer = uploader.post(
                            "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
                        )
                    except httpx.HTTPError:
                        in_flight.append(batch)  # the server died while this request was on its way
                        return
                    if answer.status_code != 200:
                        refused.append(f"{answer.status_code} {answer.text[:200]}")
                        return
                    referenced = answer.json()["00081199"]["Value"]
                    acknowledged.update(item["00081155"]["Value"][0] for item in referenced)
                    answers.release()

        thread = threading.Thread(target=upload)
        thread.start()
        for _ in range(kill_after):
            assert answers.acquire(timeout=30), "the upload stalled"
        time.sleep(kill_delay)  # the next request is on its way or being stored
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        if process.poll() is None:
            process.kill()
    assert refused == []
    assert kill_after <= len(acknowledged) < FILES and len(in_flight) == 1, (kill_after, len(acknowledged))

    process, url = _start(home, kek, tmp_path / "second.log")
    # The restart removed what the killed process was writing: no part file among the objects, no
    # plaintext staging folder of its pid.
    staging = Path("/dev/shm") if os.access("/dev/shm", os.W_OK | os.X_OK) else Path(tempfile.gettempdir())
    leftovers = [*(home / "objects").rglob(f"*-{killed_pid}-*"), *staging.glob(f".kedi-serve.kedi-*-{killed_pid}-*")]
    assert leftovers == []
    objects = [p for p in (home / "objects").rglob("*") if p.is_file()]
    try:
        with httpx.Client(base_url=url, timeout=30, headers=tech) as client:
            found = client.get("/dicomweb/studies")
            assert found.status_code == 200, found.text
            study_uid = found.json()[0]["0020000D"]["Value"][0]
            listed = client.get(f"/dicomweb/studies/{study_uid}/instances", params={"limit": 1000}).json()
            listed_sops = {item["00080018"]["Value"][0]: item["0020000E"]["Value"][0] for item in listed}
            # Every acknowledged instance is listed; whatever is listed (acknowledged or in flight when the
            # server died) comes back whole, byte for byte as uploaded.
            assert acknowledged <= set(listed_sops), sorted(acknowledged - set(listed_sops))[:3]
            assert set(listed_sops) <= set(files)
            # At most the files of the request in flight are stored without an index row (never served).
            assert len(listed_sops) <= len(objects) <= len(listed_sops) + len(in_flight[0])
            for sop, series_uid in listed_sops.items():
                answer = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}")
                assert answer.status_code == 200, (sop, answer.status_code, answer.text[:200])
                assert _parts(answer) == [files[sop]], sop
            # The interrupted upload can be sent again: what is stored is acknowledged, the rest stored now.
            body, content_type = _stow([files[sop] for sop in order])
            again = client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
            assert again.status_code == 200, again.text[:300]
            assert len(again.json()["00081199"]["Value"]) == FILES
        with httpx.Client(base_url=url, timeout=60) as client:
            admin = _bearer(client, "admin", PASSWORD)
            verified = client.get("/api/audit/verify", headers=admin).json()
            assert verified["ok"] is True and verified["first_bad_seq"] is None, verified
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    # Under the storage folder, only whole objects named by the archive's grammar.
    objects = [p for p in (home / "objects").rglob("*") if p.is_file()]
    assert len(objects) >= FILES
    assert all(_OBJECT.match(p.name) and p.parent.name == p.name[:2] for p in objects), [
        p.name for p in objects if not _OBJECT.match(p.name)
    ][:3]
