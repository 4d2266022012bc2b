"""`kedi serve` as a real process on a free loopback port: it answers, signs in over HTTP, and stops on SIGTERM.

The port is 0 (the kernel picks a free one) and the process prints the URL it
listens on. SIGTERM and SIGINT are a requested stop: the service shuts down
cleanly and exits 0 (docs/SERVICE.md, "Running the service").
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn", reason="the server extra (pip install 'deepkedi[server]')")

SRC = str(Path(__file__).resolve().parents[2] / "src")
STARTUP_S = 60.0


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str, first_lines: list[str]) -> None:
        self.process, self.url, self.first_lines = process, url, first_lines


def _start(home: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    """`kedi serve` on 127.0.0.1, port 0; returns once it prints its URL."""
    command = [sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(home), "--port", "0", *extra]
    environment = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1", **(env or {})}
    for name in ("KEDI_PASSPHRASE", "KEDI_KEK", "KEDI_ADMIN_PASSWORD"):
        if env is None or name not in env:
            environment.pop(name, None)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=environment
    )
    lines: list[str] = []
    deadline = time.monotonic() + STARTUP_S
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return Served(process, found.group(1), lines)
    process.kill()
    _out, err = process.communicate(timeout=10)
    pytest.fail(f"kedi serve did not start: {''.join(lines)}\n{err}")


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    path.write_bytes(os.urandom(32))
    return path


@pytest.fixture
def served(tmp_path: Path, kek_file: Path) -> Iterator[Served]:
    server = _start(tmp_path / "service", "--kek-file", str(kek_file))
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.communicate(timeout=10)


def test_serve_answers_signs_in_and_stops_on_sigterm(served: Served, tmp_path: Path) -> None:
    printed = "".join(served.first_lines)
    password = re.search(r"password: (\S+)", printed).group(1)  # type: ignore[union-attr]
    assert httpx.get(f"{served.url}/healthz", timeout=10).json() == {"status": "ok"}
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/api/session").status_code == 401
        answer = client.post("/api/login", json={"username": "admin", "password": password})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
        # httpx keeps a Secure cookie for HTTPS only: send it by hand, as a browser on localhost does.
        token = re.match(r"kedi_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
        session = client.get("/api/session", headers={"Cookie": f"kedi_session={token}"})
        assert session.json()["username"] == "admin"
        issued = client.post(
            "/api/tokens",
            headers={"Cookie": f"kedi_session={token}", "X-CSRF-Token": answer.json()["csrf_token"]},
        )
        assert issued.status_code == 201
        bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert client.get("/api/audit/verify", headers=bearer).json()["ok"] is True
        # A search-like query string never reaches the log.
        client.get("/healthz", params={"PatientName": "DOE^JANE"})
        client.get("/dicomweb/studies/1.2.826.0.1.3680043.8.498.12345/series")  # a UID in the path is masked
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    out, err = served.process.communicate(timeout=30)
    assert served.process.returncode == 0, (out, err)
    assert time.monotonic() - started < 10
    assert "Stopped." in out and "Traceback" not in err
    log = printed + out + err
    assert "DOE^JANE" not in log and "PatientName" not in log
    assert "3680043" not in log and "/dicomweb/studies/{uid}/series" in log
    assert log.count(password) == 1  # printed once, never logged
    assert issued.json()["token"] not in log and token not in log
    # The second start prints no password.
    again = _start(tmp_path / "service", "--kek-file", str(tmp_path / "kek"))
    try:
        assert "password" not in "".join(again.first_lines)
        again.process.send_signal(signal.SIGINT)
        out, err = again.process.communicate(timeout=30)
        assert again.process.returncode == 0, (out, err)
    finally:
        if again.process.poll() is None:
            again.process.kill()


def test_the_admin_password_can_come_from_the_environment(tmp_path: Path, kek_file: Path) -> None:
    chosen = "a long admin passphrase from the environment"
    done = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(tmp_path / "s"), "--kek-file", str(kek_file),
         "--init-only"],
        env={**os.environ, "PYTHONPATH": SRC, "KEDI_ADMIN_PASSWORD": chosen},
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert chosen not in done.stdout + done.stderr and "password:" not in done.stdout


def test_a_taken_port_and_a_wrong_kek_are_one_line_each(served: Served, tmp_path: Path, kek_file: Path) -> None:
    port = served.url.rsplit(":", 1)[1]
    other = tmp_path / "other"
    base = [sys.executable, "-m", "deepkedi.cli", "serve", "--kek-file", str(kek_file)]
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("KEDI_PASSPHRASE", None)
    taken = subprocess.run(
        [*base, "--home", str(other), "--port", port],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert taken.returncode == 5 and taken.stderr.count("\n") == 1 and "cannot listen" in taken.stderr, taken.stderr
    wrong = tmp_path / "wrong-kek"
    wrong.write_bytes(os.urandom(32))
    refused = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "serve", "--kek-file", str(wrong), "--home", str(tmp_path / "service"),
         "--init-only"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1, refused.stderr
    # A passphrase is needed and no terminal can be asked: a usage error, before anything is created.
    missing = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(tmp_path / "none"), "--init-only"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and not (tmp_path / "none").exists(), missing.stderr


def test_workers_share_the_port_and_the_database_and_stop_together(tmp_path: Path, kek_file: Path) -> None:
    chosen = "a long admin passphrase for workers"
    server = _start(tmp_path / "service", "--kek-file", str(kek_file), "--workers", "2",
                    env={"KEDI_ADMIN_PASSWORD": chosen})  # fmt: skip
    try:
        assert "with 2 workers" in "".join(server.first_lines)
        # Sign-ins land on either process; the throttle counts them all (it is in the database).
        codes = []
        for _ in range(7):
            with httpx.Client(base_url=server.url, timeout=30) as client:  # a new connection each time
                codes.append(
                    client.post("/api/login", json={"username": "admin", "password": "guess guess guess"}).status_code
                )
        assert codes == [401] * 5 + [429] * 2
        parent = workers_of(server.process.pid)
        assert len(parent) == 2, parent
        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=60)
        assert server.process.returncode == 0, (out, err)
        assert out.count("Started server process") + err.count("Started server process") == 2
        assert "Stopped." in out and "Traceback" not in err
        assert all(not Path(f"/proc/{pid}").exists() for pid in parent)  # no worker left behind
        assert chosen not in out + err
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate(timeout=10)


def workers_of(pid: int, count: int = 2) -> list[int]:
    """The pids of ``pid``'s ``count`` children (/proc), once they are all forked."""
    deadline = time.monotonic() + 30
    while True:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        if len(children) >= count or time.monotonic() > deadline:
            return children
        time.sleep(0.05)


def test_a_worker_that_dies_stops_the_service(tmp_path: Path, kek_file: Path) -> None:
    server = _start(tmp_path / "service", "--kek-file", str(kek_file), "--workers", "2")
    try:
        os.kill(workers_of(server.process.pid)[0], signal.SIGKILL)
        out, err = server.process.communicate(timeout=60)
        assert server.process.returncode == 5, (out, err)
        assert "a worker ended" in err and "Traceback" not in err
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate(timeout=10)
