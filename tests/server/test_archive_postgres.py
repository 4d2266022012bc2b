"""The archive on PostgreSQL: the same index, keystore and routes on a real server started for the session.

The server is the one the keystore's PostgreSQL tests start (tests/keys/test_keystore_postgres.py:
a temporary cluster on a Unix socket); skipped only where its binaries or psycopg are missing,
never under ``CI=true``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from archive_app import ADMIN, RAD_A, RAD_B, TECH_A, ArchiveApp, build, close, multipart, split_multipart
from fastapi.testclient import TestClient

from deepkedi.datasets import write_samples


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.dcm"))}


@pytest.fixture
def archive(tmp_path: Path, make_url: Callable[[], str]) -> Iterator[ArchiveApp]:
    holder = build(tmp_path / "home", database_url=make_url())
    try:
        yield holder
    finally:
        close(holder)


def _uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _url(data: bytes) -> str:
    study, series, sop = _uids(data)
    return f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"


def test_round_trip_policy_revocation_and_nothing_at_rest_on_postgres(
    archive: ArchiveApp, samples: dict[str, bytes], postgres_server: tuple[str, int]
) -> None:
    import psycopg
    from sqlalchemy.engine import make_url as parse_url

    with TestClient(archive.app) as client:
        archive.act_as(TECH_A)
        body, content_type = multipart(list(samples.values()))
        response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
        assert response.status_code == 200, response.text
        response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
        assert response.status_code == 200  # the same files again: acknowledged, nothing written
        for data in samples.values():
            assert split_multipart(client.get(_url(data))) == [data]
        ct, mr = samples["CT_small.dcm"], samples["MR_small.dcm"]
        pseudonym = archive.service.archive.find_study(_uids(ct)[0]).pseudonym
        archive.act_as(ADMIN)
        assert client.post(f"/api/studies/{pseudonym}/assign", json={"user_id": RAD_A.user_id}).status_code == 200
        archive.act_as(RAD_A)
        assert [s["0020000D"]["Value"][0] for s in client.get("/dicomweb/studies").json()] == [_uids(ct)[0]]
        assert client.get(_url(mr)).status_code == 404
        archive.act_as(RAD_B)
        assert client.get(_url(ct)).status_code == 404
        archive.act_as(ADMIN)
        assert client.post(f"/api/studies/{pseudonym}/revoke").status_code == 200
        archive.act_as(RAD_A)
        assert client.get(_url(ct)).status_code == 410
    # At rest: the server's data files, after a checkpoint, hold no name, ID or UID of the samples.
    url = parse_url(archive.service.config.resolved_database_url)
    host, port = url.query["host"], int(url.query["port"])
    with psycopg.connect(host=host, port=port, user="postgres", dbname=url.database, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    needles = set()
    for data in samples.values():
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        needles |= {str(ds.PatientName).encode(), ds.StudyInstanceUID.encode(), ds.SOPInstanceUID.encode()}
    files = [p for p in (Path(host) / "data" / "base" / str(oid)).rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [(p.name, n[:20]) for p in files for n in needles if n in p.read_bytes()] == []
