"""A small service around the archive and the DICOMweb routes, for the archive's tests.

It builds what ``create_app`` builds for these routes (a Service on SQLite under a
temporary folder, its keystore, the archive) and stands in for the accounts side:
the principal is whoever the test says (``current_principal`` overridden) and the
audit is recorded in a list (``Service.audit`` replaced) so that tests can assert it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from deepkedi.keys.keystore import Keystore
from deepkedi.server import dicomweb
from deepkedi.server.archive import Archive
from deepkedi.server.config import ServiceConfig
from deepkedi.server.db import Base
from deepkedi.server.deps import current_principal
from deepkedi.server.principal import Principal, Role
from deepkedi.server.service import Service

TECH_A = Principal(user_id=1, username="tech-a", role=Role.TECHNOLOGIST)
TECH_B = Principal(user_id=2, username="tech-b", role=Role.TECHNOLOGIST)
RAD_A = Principal(user_id=3, username="rad-a", role=Role.RADIOLOGIST, group="neuro")
RAD_B = Principal(user_id=4, username="rad-b", role=Role.RADIOLOGIST, group="chest")
ADMIN = Principal(user_id=5, username="admin", role=Role.ADMIN)
AUDITOR = Principal(user_id=6, username="auditor", role=Role.AUDITOR)
RESEARCHER = Principal(user_id=7, username="researcher", role=Role.RESEARCHER)


@dataclass
class ArchiveApp:
    app: FastAPI
    service: Service
    home: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    principal: Principal = TECH_A

    def act_as(self, principal: Principal) -> None:
        self.principal = principal

    def events_of(self, operation: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["operation"] == operation]


def build(
    home: Path,
    *,
    max_upload_bytes: int = 64 << 20,
    database_url: str | None = None,
    storage: Path | str | None = None,
) -> ArchiveApp:
    home.mkdir(parents=True, exist_ok=True)
    config = ServiceConfig(
        home=home,
        kek_source=os.urandom(32),
        max_upload_bytes=max_upload_bytes,
        database_url=database_url,
        storage=storage,
    )
    url = config.resolved_database_url
    keystore = Keystore.init(url, kek_source=config.kek_source, actor="test")
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    service = Service(config=config, engine=engine, sessions=sessionmaker(engine), keystore=keystore)
    holder = ArchiveApp(app=FastAPI(), service=service, home=home)

    def audit(
        principal: Principal | None,
        operation: str,
        *,
        outcome: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        holder.events.append(
            {
                "user": principal.username if principal else None,
                "operation": operation,
                "outcome": outcome,
                "target": target,
                "details": details or {},
            }
        )

    service.audit = audit  # type: ignore[method-assign]
    service.archive = Archive(service)
    holder.app.state.service = service
    holder.app.include_router(dicomweb.router)
    holder.app.dependency_overrides[current_principal] = lambda: holder.principal
    return holder


def close(holder: ArchiveApp) -> None:
    holder.service.engine.dispose()
    holder.service.keystore.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    from deepkedi.server.logs import protect_access_log

    port = free_port()
    # As `kedi serve` logs: every request at INFO, through the same access-log filter. No log_config:
    # uvicorn's records reach the root logger, where each test's secret check reads them (log_secrets.py).
    protect_access_log()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def multipart(parts: list[bytes], boundary: str = "kedi-test-boundary") -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def split_multipart(response: Any) -> list[bytes]:
    """The parts of a multipart/related response (httpx)."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    marker = b"--" + boundary.encode()
    parts = []
    for chunk in response.content.split(marker)[1:]:
        if chunk.startswith(b"--"):
            break
        _head, _, body = chunk.partition(b"\r\n\r\n")
        parts.append(body[:-2] if body.endswith(b"\r\n") else body)
    return parts
