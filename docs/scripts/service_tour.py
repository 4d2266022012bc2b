"""A short tour of `kedi serve`, as `make demo` runs it: start, upload, view, denial, audit.

It starts the real service (`kedi serve`, a separate process on a free loopback port)
in a fresh folder, then acts as four people would, over HTTP only:

1. the admin signs in and creates a technologist, a radiologist, a second technologist
   and an auditor;
2. the technologist uploads the six-slice sample study through STOW-RS
   (``dicomweb-client``, a DICOMweb client nobody here wrote);
3. the admin assigns the study to the radiologist, who finds it (QIDO-RS), retrieves an
   instance (WADO-RS, compared byte for byte with the file uploaded) and a rendered frame
   (saved as a PNG);
4. the other technologist searches and asks for the study by its UID: nothing listed,
   404 (as for a study that does not exist); the uploader asks for the audit trail: 403;
5. the auditor verifies the MAC-chained audit trail and lists what it recorded;

then stops the service with SIGTERM (a clean stop, exit code 0) and checks that its log
names no password, patient or UID. Everything the tour
writes goes under ``--out`` (default ``demo-out/service``). Needs the ``server`` and
``test`` extras (``make demo`` installs ``[all]``).

    python docs/scripts/service_tour.py --out demo-out/service
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pydicom
from dicomweb_client.api import DICOMwebClient

from deepkedi.datasets import write_samples

STARTUP_S = 60.0
#: The password every tour user gets (the tour's service is thrown away afterwards).
USER_PASSWORD = "tour password " + secrets.token_hex(4)


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def start(home: Path, kek: Path, admin_password: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """`kedi serve` on 127.0.0.1 with a free port; returns the process and its URL."""
    command = [
        sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(home), "--kek-file", str(kek),
        "--admin-password-file", str(admin_password), "--host", "127.0.0.1", "--port", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("KEDI_PASSPHRASE", "KEDI_KEK", "KEDI_ADMIN_PASSWORD")}
    with log.open("w") as output:  # its standard output (the URL, uvicorn's request log) and errors
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
        )
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"kedi serve did not start; its log: {log}")


def bearer(url: str, username: str, password: str) -> dict[str, str]:
    """Sign in as a browser does (cookie + CSRF token), then get a bearer token for API calls."""
    with httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post("/api/login", json={"username": username, "password": password})
        answer.raise_for_status()
        # The cookie is Secure: httpx keeps it for HTTPS only, so send it by hand (as a browser does to localhost).
        cookie = answer.cookies.get("kedi_session") or ""
        issued = client.post(
            "/api/tokens",
            headers={"Cookie": f"kedi_session={cookie}", "X-CSRF-Token": answer.json()["csrf_token"]},
            json={"label": "service tour"},
        )
        issued.raise_for_status()
    return {"Authorization": f"Bearer {issued.json()['token']}"}


def tour(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    samples = out / "samples"
    write_samples(samples)
    study_files = sorted((samples / "study").glob("*.dcm"))
    home, kek, admin_file, log = out / "home", out / "kek", out / "admin-password", out / "serve.log"
    kek.write_bytes(os.urandom(32))
    admin_file.write_text(secrets.token_urlsafe(18))
    for secret in (kek, admin_file):
        secret.chmod(0o600)

    step("Start the service: kedi serve --home HOME --kek-file KEK --port 0")
    process, url = start(home, kek, admin_file, log)
    print(f"listening on {url}; its log: {log}")
    try:
        run(url, admin_file.read_text(), study_files, out)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    step(f"Stop with SIGTERM: kedi serve exited with code {code}")
    if code != 0:
        raise SystemExit(f"kedi serve exited with {code}; see {log}")
    logged = log.read_text()
    watched = {
        "the admin password": admin_file.read_text(),
        "the users' password": USER_PASSWORD,
        "the patient's name": "DEMO^PATIENT",
        "the study's UID": str(pydicom.dcmread(study_files[0]).StudyInstanceUID),
    }
    leaks = [what for what, secret in watched.items() if secret in logged]
    print(f"  its log ({logged.count(chr(10))} lines) names no password, patient or UID: {not leaks}")
    if leaks:
        raise SystemExit(f"the service's log holds {', '.join(leaks)}")
    print(f"\nThe service tour passed. Its folder: {out}")


def run(url: str, admin_password: str, study_files: list[Path], out: Path) -> None:
    step("The admin signs in and creates four users")
    admin = httpx.Client(base_url=url, timeout=60, headers=bearer(url, "admin", admin_password))
    users = [("tech.ana", "technologist", None), ("dr.ruiz", "radiologist", "neuro"),
             ("tech.ben", "technologist", None), ("audit.kim", "auditor", None)]  # fmt: skip
    for name, role, group in users:
        made = admin.post(
            "/api/users", json={"username": name, "password": USER_PASSWORD, "role": role, "group": group}
        )
        made.raise_for_status()
        print(f"  {name:10} {role}" + (f" (group {group})" if group else ""))

    step(f"tech.ana uploads the {len(study_files)}-slice study through STOW-RS (dicomweb-client)")
    ana_token = bearer(url, "tech.ana", USER_PASSWORD)
    uploader = DICOMwebClient(f"{url}/dicomweb", headers=ana_token)
    datasets = [pydicom.dcmread(path) for path in study_files]
    answer = uploader.store_instances(datasets)
    stored = answer.get("ReferencedSOPSequence", [])
    print(f"  stored {len(stored)} of {len(datasets)} instances, encrypted under the study's own key")
    if len(stored) != len(datasets):
        raise SystemExit("the upload was not stored whole")

    step("The admin assigns the study to dr.ruiz")
    listed = admin.get("/api/studies").json()
    pseudonym = listed[0]["id"]
    admin.post(f"/api/studies/{pseudonym}/assign", json={"user_id": None, "group": "neuro"}).raise_for_status()
    print(f"  study {pseudonym} (its pseudonymous id: the admin sees no patient data) -> group neuro")

    step("dr.ruiz searches (QIDO-RS), retrieves an instance (WADO-RS) and a rendered frame")
    ruiz_token = bearer(url, "dr.ruiz", USER_PASSWORD)
    viewer = DICOMwebClient(f"{url}/dicomweb", headers=ruiz_token)
    found = viewer.search_for_studies()
    print(f"  {len(found)} study found: patient {found[0]['00100010']['Value'][0]['Alphabetic']}")
    first = datasets[0]
    retrieved = viewer.retrieve_instance(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    same = retrieved == first  # every element, pixel data included
    print(f"  instance 1 retrieved, every element identical to the uploaded file: {same}")
    if not same:
        raise SystemExit("the retrieved instance differs from the uploaded one")
    radiologist = httpx.Client(base_url=url, timeout=60, headers=ruiz_token)
    frame_url = (
        f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}/frames/1/rendered"
    )
    png = radiologist.get(frame_url, params={"window": "40,400"})
    png.raise_for_status()
    (out / "rendered-frame.png").write_bytes(png.content)
    print(f"  frame 1 rendered with window 40/400: {out / 'rendered-frame.png'} ({len(png.content)} bytes)")

    step("tech.ben, who did not upload it, and tech.ana asking for the audit trail, are refused")
    other = httpx.Client(base_url=url, timeout=60, headers=bearer(url, "tech.ben", USER_PASSWORD))
    searched = other.get("/dicomweb/studies").json()
    direct = other.get(f"/dicomweb/studies/{first.StudyInstanceUID}/metadata")
    print(f"  tech.ben: search lists {len(searched)} studies; the study by its UID: {direct.status_code} "
          f"{direct.json()['detail']!r} (the same answer as for a study that does not exist)")  # fmt: skip
    ana = httpx.Client(base_url=url, timeout=60, headers=ana_token)
    refused = ana.get("/api/audit")
    print(f"  tech.ana: GET /api/audit -> {refused.status_code} {refused.json()['detail']!r}")
    if searched or direct.status_code != 404 or refused.status_code != 403:
        raise SystemExit("a refusal did not happen")

    step("audit.kim verifies the audit trail and reads it")
    auditor = httpx.Client(base_url=url, timeout=60, headers=bearer(url, "audit.kim", USER_PASSWORD))
    verified = auditor.get("/api/audit/verify").json()
    print(f"  MAC chain verified: {verified['ok']} ({verified['entries']} entries)")
    entries = auditor.get("/api/audit", params={"limit": 1000}).json()["entries"]
    counted = Counter((e["operation"], e["details"].get("outcome", "")) for e in entries)
    for (operation, outcome), count in sorted(counted.items()):
        print(f"  {count:4} x {operation:22} {outcome}")
    if not verified["ok"]:
        raise SystemExit("the audit trail does not verify")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out/service"))
    tour(parser.parse_args().out)


if __name__ == "__main__":
    main()
