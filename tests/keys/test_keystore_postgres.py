"""The keystore contract against a real PostgreSQL server, started for this session in a temp folder.

The server listens on a Unix socket only (``listen_addresses=''``). initdb refuses to run as
root, so under root the server runs as ``nobody`` through ``runuser``. Skipped only when the
PostgreSQL server binaries or psycopg are not installed, and never under ``CI=true``: there a
missing one fails.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from external_tools import require_tool

from _keystore_suite import KeystoreContract

_POSTGRES = "the PostgreSQL server (initdb, pg_ctl; `make setup`)"


def _free_port() -> int:
    # The port only names the socket file (no TCP listener), but a free one avoids clashing with a local server.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, int]]:
    initdb = require_tool("initdb", install=_POSTGRES)
    pg_ctl = require_tool("pg_ctl", install=_POSTGRES)
    pytest.importorskip("psycopg", reason="psycopg 3 is needed: pip install 'deepkedi[postgres]'")
    base = Path(tempfile.mkdtemp(prefix="kedi-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        result = subprocess.run(prefix + list(args), capture_output=True, check=False, text=True, timeout=120, cwd=base)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    try:
        run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        # fsync off: a throwaway test server; the crash tests kill the client, not the server.
        run(
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses='' -c fsync=off -c max_connections=60",
            "start",
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield str(base), port
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
            timeout=120,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_url(postgres_server: tuple[str, int]) -> Callable[[], str]:
    import psycopg

    socket_dir, port = postgres_server
    counter = itertools.count()
    prefix = f"kedi_{os.getpid()}_{os.urandom(3).hex()}"

    def make() -> str:
        name = f"{prefix}_{next(counter)}"
        with psycopg.connect(host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}&port={port}"

    return make


class TestPostgresKeystore(KeystoreContract):
    def assert_shredded(self, url: str, wrapped: bytes) -> None:
        # revoke VACUUMs the table: after a checkpoint the old row version is gone from its file.
        import psycopg
        from sqlalchemy.engine import make_url

        parts = make_url(url)
        host, port = parts.query["host"], int(parts.query["port"])
        with psycopg.connect(host=host, port=port, user="postgres", dbname=parts.database, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            relative = conn.execute("SELECT pg_relation_filepath('data_keys')").fetchone()[0]
        assert wrapped not in (Path(host) / "data" / relative).read_bytes()


def test_unreachable_database_is_a_keystore_error(postgres_server: tuple[str, int]) -> None:
    from deepkedi.errors import KeystoreError
    from deepkedi.keys.keystore import Keystore

    socket_dir, port = postgres_server
    with pytest.raises(KeystoreError, match="nope"):
        Keystore.open(
            f"postgresql+psycopg://postgres:hunter2@/nope?host={socket_dir}&port={port}", kek_source=os.urandom(32)
        )
    with pytest.raises(KeystoreError) as excinfo:
        Keystore.init(
            f"postgresql+psycopg://postgres:hunter2@/nope?host={socket_dir}&port={port}",
            kek_source=os.urandom(32),
            actor="a",
        )
    assert "hunter2" not in str(excinfo.value)


def test_the_service_keeps_its_keystore_and_accounts_in_postgresql(make_url: Callable[[], str], tmp_path: Path) -> None:
    """`kedi serve --database postgresql+psycopg://...`: the first run creates the keystore and the service's
    tables in the one database, sign-in works, events join the audit chain, and a restart finds them."""
    pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")
    from fastapi.testclient import TestClient

    from deepkedi.server.app import create_app, take_initial_admin_password
    from deepkedi.server.config import ServiceConfig

    config = ServiceConfig(home=tmp_path / "service", kek_source=os.urandom(32), database_url=make_url())
    app = create_app(config)
    try:
        password = take_initial_admin_password(app)
        assert password is not None
        # Nothing on local disk but what is asked for: the (empty) object storage, no database file.
        local = [p for p in config.home.rglob("*") if p.is_file()] if config.home.exists() else []
        assert local == [], local
        client = TestClient(app, base_url="https://testserver")
        login = client.post("/api/login", json={"username": "admin", "password": password})
        assert login.status_code == 200
        made = client.post(
            "/api/users",
            json={"username": "rad", "password": "a radiologist passphrase", "role": "radiologist"},
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert made.status_code == 201
        assert client.get("/api/audit/verify").json()["ok"] is True
    finally:
        app.state.service.close()
    again = create_app(config)
    try:
        assert take_initial_admin_password(again) is None
        client = TestClient(again, base_url="https://testserver")
        assert (
            client.post("/api/login", json={"username": "rad", "password": "a radiologist passphrase"}).status_code
            == 200
        )
        assert client.get("/api/session").json()["role"] == "radiologist"
        operations = [entry.operation for entry in again.state.service.keystore.audit_entries()]
        assert operations.count("service.start") == 2 and "user.create" in operations
        assert again.state.service.keystore.verify_audit() == (True, None)
    finally:
        again.state.service.close()
