"""Break-glass access (deepkedi.server.breakglass, grants) and a study's audit history, through create_app.

A technologist uploads a study that nobody is assigned; a radiologist cannot see it
until they break the glass with a reason; then they can, alone, for the grant's
lifetime, and every access is flagged in the real MAC-chained audit trail. The reason
is sealed: it is nowhere in the database's bytes or the trail, and reviewers (admin,
auditor) read it through the API. Time is moved through ``grants.current_time``.
"""

from __future__ import annotations

import calendar
import hashlib
import importlib.util
import io
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")

import pydicom
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deepkedi.datasets import write_samples
from deepkedi.server import grants
from deepkedi.server.app import create_app
from tests.server.archive_app import multipart, split_multipart
from tests.server.test_accounts import ADMIN_PASSWORD, USER_PASSWORD, SignedIn, make_config, sign_in

#: The reason given in these tests; the token in it is searched for in every byte the service keeps.
REASON = "Trauma bay 3, unconscious patient, the assigned reader is unreachable (quokka-7731-zebra)"
SECRET_TOKEN = b"quokka-7731-zebra"


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return [p.read_bytes() for p in sorted((folder / "study").iterdir())]


@dataclass
class World:
    app: FastAPI
    admin: SignedIn
    study_uid: str
    pseudonym: str
    originals: dict[str, bytes]
    users: dict[str, SignedIn]

    def trail(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.app.state.service.keystore.audit_entries()]

    def database_bytes(self) -> bytes:
        home = Path(self.app.state.service.config.home)
        return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def _make_world(home: Path, slices: list[bytes], **config: Any) -> World:
    app = create_app(make_config(home, **config))
    try:
        admin = sign_in(app, "admin", ADMIN_PASSWORD)
        users = {}
        for name, role, group in (
            ("tech", "technologist", None),
            ("rad-a", "radiologist", "neuro"),
            ("rad-b", "radiologist", "neuro"),
            ("researcher", "researcher", None),
            ("auditor", "auditor", None),
        ):
            made = admin.post(
                "/api/users", json={"username": name, "password": USER_PASSWORD, "role": role, "group": group}
            )
            assert made.status_code == 201, made.text
            users[name] = sign_in(app, name, USER_PASSWORD)
        body, content_type = multipart(slices)
        stored = users["tech"].post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
        assert stored.status_code == 200, stored.text
        (study,) = admin.get("/api/studies").json()
        assert study["assigned_user_id"] is None and study["assigned_group"] is None
        originals = {
            str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID): data for data in slices
        }
        study_uid = str(pydicom.dcmread(io.BytesIO(slices[0]), stop_before_pixels=True).StudyInstanceUID)
        return World(app, admin, study_uid, study["id"], originals, users)
    except BaseException:
        app.state.service.close()
        raise


@pytest.fixture
def world(tmp_path: Path, slices: list[bytes]) -> Iterator[World]:
    made = _make_world(tmp_path / "service", slices)
    yield made
    made.app.state.service.close()


def _break_glass(user: SignedIn, study_uid: str, reason: str = REASON) -> Any:
    return user.post("/api/break-glass", json={"study_uid": study_uid, "reason": reason})


def _first_instance_url(world: World) -> str:
    data = next(iter(world.originals.values()))
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return f"/dicomweb/studies/{world.study_uid}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _reads(world: World, user: SignedIn) -> dict[str, Any]:
    """One of each kind of access to the study: search, series search, retrieval, metadata, rendering."""
    instance = _first_instance_url(world)
    return {
        "search": user.get("/dicomweb/studies"),
        "search_uid": user.get("/dicomweb/studies", params={"StudyInstanceUID": world.study_uid}),
        "series": user.get(f"/dicomweb/studies/{world.study_uid}/series"),
        "retrieve": user.get(f"/dicomweb/studies/{world.study_uid}"),
        "metadata": user.get(f"/dicomweb/studies/{world.study_uid}/metadata"),
        "render": user.get(f"{instance}/frames/1/rendered"),
    }


def _assert_no_access(world: World, user: SignedIn) -> None:
    answers = _reads(world, user)
    assert answers["search"].status_code == 200 and world.study_uid not in answers["search"].text
    assert answers["search_uid"].status_code == 200 and answers["search_uid"].json() == []
    for kind in ("series", "retrieve", "metadata", "render"):
        assert answers[kind].status_code == 404, (kind, answers[kind].status_code)
        assert answers[kind].json() == {"detail": "no such study"}


def test_break_glass_opens_the_study_to_that_radiologist_alone_and_flags_every_access(world: World) -> None:
    rad_a, rad_b = world.users["rad-a"], world.users["rad-b"]
    _assert_no_access(world, rad_a)

    short = _break_glass(rad_a, world.study_uid, reason="  urgent!   ")  # 7 characters once stripped
    assert short.status_code == 422 and "urgent" not in short.text
    assert _break_glass(rad_a, world.study_uid, reason="x" * 1001).status_code == 422
    unknown = _break_glass(rad_a, "1.2.826.0.1.3680043.99999.1")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no such study"}  # as DICOMweb answers
    _assert_no_access(world, rad_a)

    before = time.time()
    granted = _break_glass(rad_a, world.study_uid)
    assert granted.status_code == 201, granted.text
    answer = granted.json()
    assert set(answer) == {"grant_id", "study", "expires"} and answer["study"] == world.pseudonym
    expires = calendar.timegm(time.strptime(answer["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before + 3600 - 2 <= expires <= time.time() + 3600 + 1
    start = world.trail()[-1]["seq"]

    answers = _reads(world, rad_a)
    assert all(r.status_code == 200 for r in answers.values()), {k: r.status_code for k, r in answers.items()}
    assert world.study_uid in answers["search"].text and len(answers["search_uid"].json()) == 1
    parts = split_multipart(answers["retrieve"])
    assert sorted(hashlib.sha256(p).hexdigest() for p in parts) == sorted(
        hashlib.sha256(b).hexdigest() for b in world.originals.values()
    )
    assert len(answers["metadata"].json()) == len(world.originals)
    assert answers["render"].headers["content-type"] == "image/png" and answers["render"].content[:4] == b"\x89PNG"

    # Every access under the grant is flagged, with the grant's id.
    under = [e for e in world.trail() if e["seq"] > start and e["actor"] == "rad-a"]
    assert {e["operation"] for e in under} == {
        "dicomweb.search",
        "dicomweb.retrieve",
        "dicomweb.metadata",
        "dicomweb.render",
    }
    assert len(under) == len(answers)
    for entry in under:
        assert entry["details"]["break_glass"] is True, entry
        assert entry["details"]["break_glass_grants"] == [answer["grant_id"]], entry
        assert entry["details"]["outcome"] == "ok"

    # The other radiologist of the same group still sees nothing, and their refusals are not flagged.
    mark = world.trail()[-1]["seq"]
    _assert_no_access(world, rad_b)
    assert not any(e["details"].get("break_glass") for e in world.trail() if e["seq"] > mark)

    # The grant's own row: who, which study, until when, flagged; never the reason. The refusals are there too.
    trail = world.trail()
    (grant_row,) = [e for e in trail if e["operation"] == "break_glass.grant" and e["details"]["outcome"] == "ok"]
    assert grant_row["actor"] == "rad-a" and grant_row["details"]["target"] == world.pseudonym
    assert grant_row["details"]["break_glass"] is True and grant_row["details"]["grant_id"] == answer["grant_id"]
    assert grant_row["details"]["expires"] == answer["expires"]
    failed = [
        e["details"]["status"]
        for e in trail
        if e["operation"] == "break_glass.grant" and e["details"]["outcome"] == "failed"
    ]
    assert sorted(failed) == [404, 422, 422]
    assert "quokka" not in repr(trail) and world.study_uid not in repr(trail) and "urgent" not in repr(trail)

    # Sealed at rest: not in the database (main file, WAL), not in any object.
    assert SECRET_TOKEN not in world.database_bytes()
    assert REASON.encode()[:40] not in world.database_bytes()

    verified = world.admin.get("/api/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"] is True


def test_only_radiologists_break_the_glass(world: World) -> None:
    for role in ("tech", "researcher", "auditor", "admin"):
        user = world.admin if role == "admin" else world.users[role]
        refused = _break_glass(user, world.study_uid)
        assert refused.status_code == 403, (role, refused.text)
        assert world.admin.get("/api/break-glass").json()["grants"] == []
        denied = world.trail()[-2]  # the review above audited itself after the refusal
        assert denied["operation"] == "request.denied" and denied["details"]["target"] == "/api/break-glass"
        assert denied["actor"] == ("admin" if role == "admin" else role) and denied["details"]["status"] == 403


def test_a_cookie_request_without_the_csrf_header_is_refused(world: World) -> None:
    rad_a = world.users["rad-a"]
    forged = rad_a.client.post("/api/break-glass", json={"study_uid": world.study_uid, "reason": REASON})
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    wrong = rad_a.client.post(
        "/api/break-glass",
        json={"study_uid": world.study_uid, "reason": REASON},
        headers={"X-CSRF-Token": "0" * 64},
    )
    assert wrong.status_code == 403
    assert world.admin.get("/api/break-glass").json()["grants"] == []
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 404

    # An API client with a bearer token needs no CSRF header.
    token = rad_a.post("/api/tokens", json={"label": "pacs"}).json()["token"]
    bearer = TestClient(world.app)
    bearer.headers["Authorization"] = f"Bearer {token}"
    assert bearer.post("/api/break-glass", json={"study_uid": world.study_uid, "reason": REASON}).status_code == 201
    assert bearer.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200


def test_an_expired_grant_opens_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rad_a = world.users["rad-a"]
    assert _break_glass(rad_a, world.study_uid).status_code == 201
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200
    real = grants.current_time
    monkeypatch.setattr(grants, "current_time", lambda: real() + 3599)
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200  # a second before the end
    monkeypatch.setattr(grants, "current_time", lambda: real() + 3601)
    _assert_no_access(world, rad_a)
    (grant,) = world.admin.get("/api/break-glass").json()["grants"]
    assert grant["active"] is False and grant["reason"] == REASON


def test_a_short_configured_lifetime(tmp_path: Path, slices: list[bytes]) -> None:
    app = create_app(make_config(tmp_path / "service", break_glass_seconds=1))
    try:
        admin = sign_in(app, "admin", ADMIN_PASSWORD)
        for name, role in (("tech", "technologist"), ("rad", "radiologist")):
            made = admin.post("/api/users", json={"username": name, "password": USER_PASSWORD, "role": role})
            assert made.status_code == 201
        body, content_type = multipart(slices[:1])
        tech = sign_in(app, "tech", USER_PASSWORD)
        assert tech.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
        study_uid = str(pydicom.dcmread(io.BytesIO(slices[0]), stop_before_pixels=True).StudyInstanceUID)
        rad = sign_in(app, "rad", USER_PASSWORD)
        granted = _break_glass(rad, study_uid)
        assert granted.status_code == 201
        assert rad.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 200
        time.sleep(1.05)
        assert rad.get(f"/dicomweb/studies/{study_uid}/metadata").status_code == 404
    finally:
        app.state.service.close()


def test_reviewers_read_the_reason_and_the_admin_ends_a_grant(world: World) -> None:
    rad_a = world.users["rad-a"]
    grant_id = _break_glass(rad_a, world.study_uid).json()["grant_id"]
    second = _break_glass(world.users["rad-b"], world.study_uid, reason="Second opinion needed during the night shift")
    assert second.status_code == 201

    for reviewer in (world.admin, world.users["auditor"]):
        review = reviewer.get("/api/break-glass")
        assert review.status_code == 200, review.text
        listed = review.json()["grants"]
        assert [g["id"] for g in listed] == [second.json()["grant_id"], grant_id]  # newest first
        first = listed[1]
        assert first["user"] == "rad-a" and first["study"] == world.pseudonym and first["reason"] == REASON
        assert first["active"] is True and first["ended"] is None and first["revoked"] is False
    for other in ("tech", "rad-a", "researcher"):
        assert world.users[other].get("/api/break-glass").status_code == 403
    page = world.admin.get("/api/break-glass", params={"limit": 1}).json()
    assert [g["id"] for g in page["grants"]] == [second.json()["grant_id"]] and page["next_before"] == page["grants"][
        0
    ]["id"]
    rest = world.admin.get("/api/break-glass", params={"limit": 1, "before": page["next_before"]}).json()
    assert [g["id"] for g in rest["grants"]] == [grant_id]

    assert world.users["auditor"].post(f"/api/break-glass/{grant_id}/end").status_code == 403
    assert rad_a.post(f"/api/break-glass/{grant_id}/end").status_code == 403
    ended = world.admin.post(f"/api/break-glass/{grant_id}/end")
    assert ended.status_code == 200 and ended.json() == {
        "grant_id": grant_id,
        "study": world.pseudonym,
        "status": "ended",
    }
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 404  # at once
    assert world.users["rad-b"].get(f"/dicomweb/studies/{world.study_uid}").status_code == 200  # theirs runs on
    assert world.admin.post(f"/api/break-glass/{grant_id}/end").status_code == 409
    assert world.admin.post("/api/break-glass/999999/end").status_code == 404
    (after,) = [g for g in world.admin.get("/api/break-glass").json()["grants"] if g["id"] == grant_id]
    assert after["active"] is False and after["ended_by"] == "admin" and after["ended"] is not None

    # A sealed reason is bound to its grant: swapped between two grants, neither opens.
    database = Path(world.app.state.service.config.home) / "service.db"
    with sqlite3.connect(database) as conn:
        (a,), (b,) = conn.execute("select reason from service_break_glass order by id").fetchall()
        conn.execute("update service_break_glass set reason = ? where id = ?", (b, grant_id))
        conn.execute("update service_break_glass set reason = ? where id = ?", (a, second.json()["grant_id"]))
    swapped = world.users["auditor"].get("/api/break-glass").json()["grants"]
    assert all(g["reason"] is None and g["tampered"] is True and g["revoked"] is False for g in swapped)

    trail = world.trail()
    operations = [e["operation"] for e in trail]
    assert operations.count("break_glass.review") >= 4
    (end_row,) = [e for e in trail if e["operation"] == "break_glass.end" and e["details"]["outcome"] == "ok"]
    assert end_row["actor"] == "admin" and end_row["details"]["target"] == world.pseudonym
    assert "quokka" not in repr(trail) and "night shift" not in repr(trail)
    assert world.admin.get("/api/audit/verify").json()["ok"] is True


def test_a_revoked_study_shreds_the_reason_and_cannot_be_broken_into(world: World) -> None:
    assert _break_glass(world.users["rad-a"], world.study_uid).status_code == 201
    assert world.admin.post(f"/api/studies/{world.pseudonym}/revoke").status_code == 200
    (grant,) = world.admin.get("/api/break-glass").json()["grants"]
    assert grant["reason"] is None and grant["revoked"] is True
    assert world.users["rad-a"].get(f"/dicomweb/studies/{world.study_uid}").status_code == 410
    assert _break_glass(world.users["rad-b"], world.study_uid).status_code == 410


def test_an_assigned_study_needs_no_break_glass(world: World) -> None:
    assigned = world.admin.post(f"/api/studies/{world.pseudonym}/assign", json={"group": "neuro"})
    assert assigned.status_code == 200
    assert _break_glass(world.users["rad-a"], world.study_uid).status_code == 409
    assert world.users["rad-a"].get(f"/dicomweb/studies/{world.study_uid}").status_code == 200


def test_a_grant_stops_flagging_once_the_study_is_assigned(world: World) -> None:
    rad_a = world.users["rad-a"]
    assert _break_glass(rad_a, world.study_uid).status_code == 201
    assert world.admin.post(f"/api/studies/{world.pseudonym}/assign", json={"group": "neuro"}).status_code == 200
    mark = world.trail()[-1]["seq"]
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200
    (row,) = [e for e in world.trail() if e["seq"] > mark and e["operation"] == "dicomweb.retrieve"]
    assert "break_glass" not in row["details"]


def test_the_study_audit_history(world: World) -> None:
    rad_a = world.users["rad-a"]
    assert _break_glass(rad_a, world.study_uid).status_code == 201
    assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200
    assert world.users["rad-b"].get(f"/dicomweb/studies/{world.study_uid}").status_code == 404

    url = f"/api/studies/{world.pseudonym}/audit"
    for reviewer in (world.admin, world.users["auditor"]):
        history = reviewer.get(url)
        assert history.status_code == 200, history.text
        answer = history.json()
        entries = answer["entries"]
        seqs = [e["seq"] for e in entries]
        assert (
            seqs == sorted(seqs, reverse=True)
            and answer["total"] == len(entries)
            and answer["study"] == world.pseudonym
        )
        operations = {e["operation"] for e in entries}
        assert {"dicomweb.store", "break_glass.grant", "dicomweb.retrieve", "new"} <= operations, operations
        for entry in entries:
            details = entry["details"]
            assert (
                details.get("target") == world.pseudonym
                or world.pseudonym in details.get("matches", [])
                or entry["key_id"] is not None
            ), entry
        # Another study's or an account's events are not in it.
        assert "session.login" not in operations and "user.create" not in operations
        assert any(e["actor"] == "rad-b" and e["details"]["outcome"] == "denied" for e in entries)

    first = world.admin.get(url, params={"limit": 2}).json()
    assert len(first["entries"]) == 2 and first["next_before"] == first["entries"][-1]["seq"]
    second = world.admin.get(url, params={"limit": 2, "before": first["next_before"]}).json()
    full = world.admin.get(url).json()
    assert full["entries"][0]["operation"] == "audit.read"  # reading the history is part of it
    older = [e["seq"] for e in full["entries"] if e["seq"] <= first["entries"][0]["seq"]]
    assert [e["seq"] for e in first["entries"] + second["entries"]] == older[:4]
    last = world.admin.get(url, params={"limit": 1000, "before": 2}).json()
    assert last["next_before"] is None and all(e["seq"] < 2 for e in last["entries"])

    for other in ("tech", "rad-a", "researcher"):
        assert world.users[other].get(url).status_code == 403
    assert world.admin.get("/api/studies/ST-000000000000000000000000/audit").status_code == 404
    assert world.admin.get("/api/studies/..%2F..%2Fetc/audit").status_code == 404
    reads = [
        e for e in world.trail() if e["operation"] == "audit.read" and e["details"].get("target") == world.pseudonym
    ]
    assert len(reads) >= 4


def test_kedi_serve_sets_the_lifetime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import deepkedi.server.app as app_module
    from deepkedi.cli import app as kedi

    kek = tmp_path / "kek"
    kek.write_bytes(os.urandom(32))
    made = []
    real = app_module.create_app

    def recording(config: Any) -> FastAPI:
        made.append(config)
        return real(config)

    monkeypatch.setattr(app_module, "create_app", recording)
    base = ["serve", "--home", str(tmp_path / "s"), "--kek-file", str(kek), "--init-only"]
    monkeypatch.setenv("KEDI_ADMIN_PASSWORD", ADMIN_PASSWORD)
    done = CliRunner().invoke(kedi, [*base, "--break-glass-minutes", "15"])
    assert done.exit_code == 0, done.output
    assert made[-1].break_glass_seconds == 15 * 60
    assert CliRunner().invoke(kedi, [*base]).exit_code == 0 and made[-1].break_glass_seconds == 3600
    assert CliRunner().invoke(kedi, [*base, "--break-glass-minutes", "0"]).exit_code == 2


# ------------------------------------------------------------------------------------ PostgreSQL

_KEYS = Path(__file__).parents[1] / "keys"
if str(_KEYS) not in sys.path:
    sys.path.insert(0, str(_KEYS))  # the fixtures' module imports its neighbour _keystore_suite
_SPEC = importlib.util.spec_from_file_location("_break_glass_postgres_server", _KEYS / "test_keystore_postgres.py")
assert _SPEC is not None and _SPEC.loader is not None
_server = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_server)
postgres_server = _server.postgres_server
make_url = _server.make_url


def test_break_glass_on_postgres(
    tmp_path: Path, slices: list[bytes], make_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant, its flagged accesses, the sealed reason, expiry and the end of a grant, on a real PostgreSQL."""
    world = _make_world(tmp_path / "service", slices, database_url=make_url())
    try:
        rad_a = world.users["rad-a"]
        _assert_no_access(world, rad_a)
        grant_id = _break_glass(rad_a, world.study_uid).json()["grant_id"]
        mark = world.trail()[-1]["seq"]
        answers = _reads(world, rad_a)
        assert all(r.status_code == 200 for r in answers.values()), {k: r.status_code for k, r in answers.items()}
        flagged = [e["details"].get("break_glass_grants") for e in world.trail() if e["seq"] > mark]
        assert flagged == [[grant_id]] * len(answers)
        (grant,) = world.users["auditor"].get("/api/break-glass").json()["grants"]
        assert grant["reason"] == REASON and grant["active"] is True
        real = grants.current_time
        monkeypatch.setattr(grants, "current_time", lambda: real() + 3601)
        _assert_no_access(world, rad_a)
        monkeypatch.setattr(grants, "current_time", real)
        assert rad_a.get(f"/dicomweb/studies/{world.study_uid}").status_code == 200
        assert world.admin.post(f"/api/break-glass/{grant_id}/end").status_code == 200
        _assert_no_access(world, rad_a)
        history = world.admin.get(f"/api/studies/{world.pseudonym}/audit").json()["entries"]
        assert "break_glass.end" in {e["operation"] for e in history}
        assert world.admin.get("/api/audit/verify").json()["ok"] is True
    finally:
        world.app.state.service.close()
