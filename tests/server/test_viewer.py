"""The web viewer's routes without a browser: public pages without data, headers, the list per role, the cipher image.

The whole app of ``create_app`` (real audit trail) for the module, two studies
uploaded by a technologist and assigned to the neuro group; the browser itself is
tested in test_viewer_browser.py.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")

import pydicom
from fastapi import FastAPI
from fastapi.testclient import TestClient
from log_secrets import watch
from PIL import Image

from deepkedi import api
from deepkedi.datasets import write_samples
from deepkedi.server.app import PUBLIC_ROUTES, create_app
from deepkedi.server.archive import InstanceIndex
from deepkedi.server.dicomweb import render_frame
from deepkedi.server.viewer import CONTENT_SECURITY_POLICY, cipher_image_png
from tests.server.archive_app import multipart
from tests.server.test_accounts import ADMIN_PASSWORD, USER_PASSWORD, make_config, sign_in


@dataclass
class Viewer:
    app: FastAPI
    samples: Path
    clients: dict[str, TestClient]
    #: "liver" (six slices), "small" (CT_small.dcm) → pseudonym
    studies: dict[str, str]
    #: the KEK and the bearer tokens, which no log of the service may hold (tests/server/log_secrets.py)
    secrets: list[str | bytes]

    def trail(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.app.state.service.keystore.audit_entries()]


def _bearer(app: FastAPI, username: str, password: str = USER_PASSWORD) -> TestClient:
    signed_in = sign_in(app, username, password)
    answer = signed_in.post("/api/tokens", json={"label": "test"})
    assert answer.status_code == 201, answer.text
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    return client


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    folder = tmp_path_factory.mktemp("viewer-routes")
    config = make_config(folder / "service")
    app = create_app(config)
    try:
        admin = _bearer(app, "admin", ADMIN_PASSWORD)
        for name, role, group in (
            ("tech", "technologist", None),
            ("rad-neuro", "radiologist", "neuro"),
            ("rad-chest", "radiologist", "chest"),
            ("research", "researcher", None),
            ("audit", "auditor", None),
        ):
            made = admin.post(
                "/api/users", json={"username": name, "password": USER_PASSWORD, "role": role, "group": group}
            )
            assert made.status_code == 201, made.text
        clients = {"admin": admin} | {
            name: _bearer(app, name) for name in ("tech", "rad-neuro", "rad-chest", "research", "audit")
        }
        samples = folder / "samples"
        write_samples(samples)
        studies = {}
        for name, files in (
            ("liver", sorted((samples / "study").glob("*.dcm"))),
            ("small", [samples / "CT_small.dcm"]),
        ):
            body, content_type = multipart([f.read_bytes() for f in files])
            stored = clients["tech"].post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
            assert stored.status_code == 200, stored.text
            study = admin.get("/api/studies").json()[-1]
            assert admin.post(f"/api/studies/{study['id']}/assign", json={"group": "neuro"}).status_code == 200
            studies[name] = study["id"]
        tokens = [c.headers["Authorization"].split()[1] for c in clients.values()]
        assert isinstance(config.kek_source, bytes)
        yield Viewer(app=app, samples=samples, clients=clients, studies=studies, secrets=[config.kek_source, *tokens])
    finally:
        app.state.service.close()


@pytest.fixture(autouse=True)
def _watched(viewer: Viewer) -> None:
    watch(*viewer.secrets)  # each test's log recording starts from the shared passwords alone


VIEWER_PUBLIC = {path for method, path in PUBLIC_ROUTES if path == "/" or path.startswith("/viewer")}


def test_the_public_pages_are_the_packaged_files_and_hold_no_data(viewer: Viewer) -> None:
    anonymous = TestClient(viewer.app)
    assert len(VIEWER_PUBLIC) == 10
    static = resources.files("deepkedi.server") / "static"
    pages = {"/viewer/": "studies.html", "/viewer/login": "login.html", "/viewer/study": "study.html"}
    for path in sorted(VIEWER_PUBLIC - {"/"}):
        answer = anonymous.get(path)
        assert answer.status_code == 200, path
        name = pages.get(path) or path.rsplit("/", 1)[1]
        assert answer.content == (static / name).read_bytes(), path
        text = answer.text
        assert "DEMO" not in text and "ST-" not in text and "1.2.826" not in text
        # Nothing from elsewhere (no CDN): every reference is a path on this service.
        assert not re.search(r"(https?:)?//[a-z0-9]", re.sub(r"http://www\.w3\.org/2000/svg", "", text)), path
        if path.endswith(".html") or path in pages:
            # No inline script, handler or style: the Content-Security-Policy would block them anyway.
            assert not re.search(r"<script(?![^>]*\bsrc=)", text) and not re.search(r"\son[a-z]+=", text)
            assert " style=" not in text
    redirect = anonymous.get("/", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/viewer/"
    # The page's query string names a study; the page itself is the same shell for anyone.
    assert (
        anonymous.get(f"/viewer/study?study={viewer.studies['liver']}").content == (static / "study.html").read_bytes()
    )
    # Every file the package ships under static/ is served, and nothing else is.
    shipped = {p.name for p in static.iterdir() if p.is_file()}
    assert shipped == set(pages.values()) | {p.rsplit("/", 1)[1] for p in VIEWER_PUBLIC if "/static/" in p}
    assert anonymous.get("/viewer/static/../app.py").status_code == 404
    assert anonymous.get("/viewer/static/viewer.py").status_code == 404


def test_every_answer_carries_the_security_headers(viewer: Viewer) -> None:
    anonymous = TestClient(viewer.app)
    neuro = viewer.clients["rad-neuro"]
    first = pydicom.dcmread(sorted((viewer.samples / "study").glob("*.dcm"))[0])
    frame = (
        f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}/frames/1/rendered"
    )
    answers = {
        "page": anonymous.get("/viewer/study"),
        "script": anonymous.get("/viewer/static/study.js"),
        "refused": anonymous.get("/api/viewer/studies"),
        "list": neuro.get("/api/viewer/studies"),
        "frame": neuro.get(frame),
        "cipher": neuro.get(f"/api/studies/{viewer.studies['liver']}/ciphertext/1"),
    }
    assert answers["refused"].status_code == 401
    for name, answer in answers.items():
        headers = answer.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, name
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer", name
        assert headers["x-content-type-options"] == "nosniff", name
        expected = "no-cache" if name in ("page", "script") else "no-store"
        assert headers["cache-control"] == expected, name
    assert answers["frame"].headers["content-type"] == "image/png"
    assert answers["page"].headers["content-type"] == "text/html; charset=utf-8"
    assert answers["script"].headers["content-type"] == "text/javascript; charset=utf-8"


def test_the_list_shows_each_role_what_it_may_see(viewer: Viewer) -> None:
    liver = pydicom.dcmread(sorted((viewer.samples / "study").glob("*.dcm"))[0])

    def studies(user: str) -> dict[str, dict[str, Any]]:
        answer = viewer.clients[user].get("/api/viewer/studies")
        assert answer.status_code == 200, answer.text
        return {s["pseudonym"]: s for s in answer.json()["studies"]}

    for user in ("tech", "rad-neuro"):
        entry = studies(user)[viewer.studies["liver"]]
        assert entry["patient_name"] == "DEMO^PATIENT" and entry["patient_id"] == "DEMO-0001"
        assert entry["study_uid"] == str(liver.StudyInstanceUID) and entry["description"] == "liver CT phantom"
        assert (entry["series"], entry["instances"], entry["modalities"]) == (1, 6, ["CT"])
    assert studies("rad-chest") == {}
    research = studies("research")[viewer.studies["liver"]]
    assert not research["patient_name"] and str(research["patient_id"]).startswith("DK-")
    assert research["study_uid"].startswith("2.25.") and research["study_uid"] != str(liver.StudyInstanceUID)
    for user in ("admin", "audit"):
        listed = studies(user)
        assert set(viewer.studies.values()) <= set(listed)
        assert all("study_uid" not in s and "patient_name" not in s for s in listed.values())
        assert "DEMO" not in repr(listed) and str(liver.StudyInstanceUID) not in repr(listed)


def test_a_study_one_may_not_see_is_404_like_one_that_does_not_exist(viewer: Viewer) -> None:
    chest = viewer.clients["rad-chest"]
    liver = viewer.studies["liver"]
    answers = [chest.get(f"/api/viewer/studies/{p}") for p in (liver, "ST-000000000000000000000000", "..%2F..")]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert answers[0].json() == answers[1].json() == {"detail": "no such study"}
    assert chest.get(f"/api/studies/{liver}/ciphertext/1").json() == {"detail": "no such study"}
    denied = [e for e in viewer.trail() if e["operation"] == "viewer.study" and e["details"]["outcome"] == "denied"]
    assert any(e["details"].get("target") == liver and e["actor"] == "rad-chest" for e in denied)
    neuro = viewer.clients["rad-neuro"].get(f"/api/viewer/studies/{liver}").json()
    assert neuro["images"] is True and neuro["revoked"] is False and neuro["patient_name"] == "DEMO^PATIENT"
    audit = viewer.clients["audit"].get(f"/api/viewer/studies/{liver}").json()
    assert audit["images"] is False and "patient_name" not in audit


def _stored_objects(viewer: Viewer, pseudonym: str) -> list[bytes]:
    service = viewer.app.state.service
    study = service.archive.study_by_pseudonym(pseudonym)
    with service.sessions() as db:
        names = db.query(InstanceIndex.object_name).filter_by(study_id=study.id).order_by(InstanceIndex.id).all()
    return [service.archive.objects.get(name) for (name,) in names]


def test_the_ciphertext_route_draws_the_stored_cipher_image(viewer: Viewer) -> None:
    neuro = viewer.clients["rad-neuro"]
    liver = viewer.studies["liver"]
    answer = neuro.get(f"/api/studies/{liver}/ciphertext/1")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert shown.shape == (256, 256) and shown.dtype == np.uint8
    # The first stored object's cipher image, each 16-bit word by its high byte: no key was used.
    words = api.cipher_image(_stored_objects(viewer, liver)[0])
    assert np.array_equal(shown, (words.reshape(256, 256).view("<u2") >> 8).astype(np.uint8))
    plain = np.asarray(
        Image.open(io.BytesIO(render_frame(sorted((viewer.samples / "study").glob("*.dcm"))[0].read_bytes(), 1)))
    )
    assert abs(np.corrcoef(shown.ravel(), plain.ravel())[0, 1]) < 0.05
    counts = np.bincount(shown.ravel(), minlength=256) / shown.size
    assert -(counts[counts > 0] * np.log2(counts[counts > 0])).sum() > 7.99
    assert [neuro.get(f"/api/studies/{liver}/ciphertext/{n}").status_code for n in (0, 7)] == [404, 404]
    assert neuro.get(f"/api/studies/{liver}/ciphertext/6").status_code == 200
    assert viewer.clients["admin"].get(f"/api/studies/{liver}/ciphertext/1").status_code == 403
    assert viewer.clients["tech"].get(f"/api/studies/{liver}/ciphertext/1").status_code == 200
    served = [e for e in viewer.trail() if e["operation"] == "viewer.ciphertext" and e["details"]["outcome"] == "ok"]
    assert served and served[0]["details"]["target"] == liver and served[0]["details"]["object"] == 1


def test_a_revoked_study_keeps_its_ciphertext_and_loses_everything_else(viewer: Viewer) -> None:
    neuro = viewer.clients["rad-neuro"]
    small = viewer.studies["small"]
    before = neuro.get(f"/api/studies/{small}/ciphertext/1").content
    ct = pydicom.dcmread(viewer.samples / "CT_small.dcm")
    assert neuro.get(f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 200
    assert viewer.clients["admin"].post(f"/api/studies/{small}/revoke").status_code == 200

    entry = neuro.get(f"/api/viewer/studies/{small}").json()
    assert entry["revoked"] is True and entry["instances"] == 1 and entry["modalities"] == ["CT"]
    assert "patient_name" not in entry and "study_uid" not in entry  # shredded with the key
    listed = {s["pseudonym"]: s for s in neuro.get("/api/viewer/studies").json()["studies"]}
    assert listed[small]["revoked"] is True and listed[viewer.studies["liver"]]["revoked"] is False
    assert neuro.get(f"/api/studies/{small}/ciphertext/1").content == before  # the same stored bytes
    assert neuro.get(f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata").status_code == 410
    assert str(ct.StudyInstanceUID) not in neuro.get("/dicomweb/studies").text
    trail = viewer.trail()
    assert "CompressedSamples" not in repr(trail) and str(ct.StudyInstanceUID) not in repr(trail)
    assert viewer.clients["admin"].get("/api/audit/verify").json()["ok"] is True


def test_an_object_without_a_cipher_image_is_drawn_from_its_bytes() -> None:
    raw = bytes(range(256)) * 4096  # 1 MiB, not a container
    shown = np.asarray(Image.open(io.BytesIO(cipher_image_png(raw))))
    assert shown.shape == (512, 512) and np.array_equal(shown[0, :256], np.arange(256))
    assert np.asarray(Image.open(io.BytesIO(cipher_image_png(b"short")))).shape == (1, 512)
