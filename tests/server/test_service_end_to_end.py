"""The whole service as one app (create_app): accounts, the encrypted archive, DICOMweb and the real audit trail.

A technologist uploads a study with a bearer token, the admin assigns it to a
radiologist's group, the radiologist retrieves every instance byte for byte, another
radiologist and the technologist's peers cannot even see it, and every step is in the
keystore's MAC-chained trail, which verifies; revocation then answers 410.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")

import pydicom
from fastapi import FastAPI
from fastapi.testclient import TestClient
from log_secrets import watch

from deepkedi.datasets import write_samples
from deepkedi.server.app import create_app
from tests.server.archive_app import multipart, split_multipart
from tests.server.test_accounts import ADMIN_PASSWORD, USER_PASSWORD, make_config, sign_in


@pytest.fixture(params=["sqlite", "postgresql"])
def service_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FastAPI]:
    """The service on its embedded SQLite, and on the real PostgreSQL server of the keystore's tests."""
    database_url = request.getfixturevalue("make_url")() if request.param == "postgresql" else None
    app = create_app(make_config(tmp_path / "service", database_url=database_url))
    yield app
    app.state.service.close()


def _bearer(app: FastAPI, username: str) -> TestClient:
    """A client that authenticates with a bearer token of ``username`` (API clients send no cookie or CSRF)."""
    signed_in = sign_in(app, username, USER_PASSWORD)
    answer = signed_in.post("/api/tokens", json={"label": "test"})
    assert answer.status_code == 201, answer.text
    client = TestClient(app)
    watch(answer.json()["token"])
    client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    return client


def test_upload_assign_view_deny_audit_revoke(service_app: FastAPI, tmp_path: Path) -> None:
    admin = sign_in(service_app, "admin", ADMIN_PASSWORD)
    for name, role, group in (
        ("tech", "technologist", None),
        ("rad-neuro", "radiologist", "neuro"),
        ("rad-chest", "radiologist", "chest"),
    ):
        made = admin.post(
            "/api/users", json={"username": name, "password": USER_PASSWORD, "role": role, "group": group}
        )
        assert made.status_code == 201, made.text

    write_samples(tmp_path / "samples")
    slices = sorted((tmp_path / "samples" / "study").iterdir())
    originals = {pydicom.dcmread(p).SOPInstanceUID: p.read_bytes() for p in slices}
    study_uid = str(pydicom.dcmread(slices[0]).StudyInstanceUID)

    tech = _bearer(service_app, "tech")
    body, content_type = multipart(list(originals.values()))
    stored = tech.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text

    listed = admin.get("/api/studies")
    assert listed.status_code == 200
    (study,) = listed.json()
    assert study["instances"] == len(originals) and study_uid not in listed.text
    assigned = admin.post(f"/api/studies/{study['id']}/assign", json={"group": "neuro"})
    assert assigned.status_code == 200, assigned.text

    neuro, chest = _bearer(service_app, "rad-neuro"), _bearer(service_app, "rad-chest")
    found = neuro.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})
    assert found.status_code == 200 and study_uid in found.text
    retrieved = neuro.get(
        f"/dicomweb/studies/{study_uid}", headers={"Accept": 'multipart/related; type="application/dicom"'}
    )
    assert retrieved.status_code == 200, retrieved.text
    parts = split_multipart(retrieved)
    assert sorted(hashlib.sha256(p).hexdigest() for p in parts) == sorted(
        hashlib.sha256(b).hexdigest() for b in originals.values()
    )

    # The other group's radiologist: the study does not exist for them, on search and on retrieval.
    assert study_uid not in chest.get("/dicomweb/studies").text
    assert chest.get(f"/dicomweb/studies/{study_uid}").status_code == 404

    trail = [entry.to_dict() for entry in service_app.state.service.keystore.audit_entries()]
    operations = [entry["operation"] for entry in trail]
    for expected in ("dicomweb.store", "study.assign", "dicomweb.search", "dicomweb.retrieve", "session.login"):
        assert expected in operations, (expected, sorted(set(operations)))
    assert study_uid not in repr(trail) and "DEMO^PATIENT" not in repr(trail)
    verified = admin.get("/api/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text

    revoked = admin.post(f"/api/studies/{study['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert neuro.get(f"/dicomweb/studies/{study_uid}").status_code == 410
