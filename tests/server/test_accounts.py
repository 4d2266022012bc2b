"""Accounts, sign-in, roles and audit of the service (deepkedi.server.app, accounts, deps).

Every route the app has is enumerated from ``app.routes``: a route added later is
checked too. The app runs on a fresh database per test, its keystore unlocked with 32
random bytes (no scrypt), and cookies without Secure (TestClient speaks HTTP).

Every test that builds an app runs twice: on the embedded SQLite file and on a fresh
database of the real PostgreSQL server the keystore's tests start (tests/server/
postgres_fixtures.py; once per session, and under ``CI=true`` a missing server fails
rather than skips). What a test reads of the database it reads through the service's own
engine, so the same assertions hold on both; "at rest" means the SQLite file (and its WAL)
or, on PostgreSQL, the database's data files after a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra (pip install 'deepkedi[server]')")

from fastapi import FastAPI
from fastapi.testclient import TestClient

# Every user the tests create shares USER_PASSWORD (the throttling tests use wrong ones); both are
# watched in every service test's log (log_secrets.py).
from log_secrets import ADMIN_PASSWORD, USER_PASSWORD, watch
from sqlalchemy import text
from sqlalchemy.engine import make_url as parse_url
from typer.testing import CliRunner

from deepkedi.cli import app as kedi
from deepkedi.errors import AuthenticationError
from deepkedi.server.app import PUBLIC_ROUTES, create_app, take_initial_admin_password
from deepkedi.server.config import ServiceConfig
from deepkedi.server.deps import require


def make_config(home: Path, **changes: object) -> ServiceConfig:
    # RawKek (32 random bytes): no scrypt per test. Plain-HTTP test clients need cookies without Secure.
    kek = os.urandom(32)
    watch(kek)
    options: dict[str, object] = {
        "home": home,
        "kek_source": kek,
        "admin_password": ADMIN_PASSWORD,
        "secure_cookies": False,
    }
    options.update(changes)
    return ServiceConfig(**options)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: the service's embedded SQLite file; else a fresh database on the real PostgreSQL server."""
    return request.getfixturevalue("make_url")() if request.param == "postgresql" else None


@pytest.fixture
def service_app(tmp_path: Path, database_url: str | None) -> Iterator[FastAPI]:
    app = create_app(make_config(tmp_path / "service", database_url=database_url))
    yield app
    app.state.service.close()


class SignedIn:
    """A TestClient signed in by cookie, that sends the CSRF header on state-changing requests."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    def get(self, url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, **kwargs)  # type: ignore[arg-type]

    def post(self, url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        answer = self.client.post(url, headers=headers, **kwargs)  # type: ignore[arg-type]
        if url == "/api/tokens" and answer.status_code == 201:
            watch(answer.json()["token"])  # a bearer token must never reach the service's log
        return answer


def sign_in(app: FastAPI, username: str, password: str) -> SignedIn:
    client = TestClient(app)
    answer = client.post("/api/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    watch(answer.json()["csrf_token"], answer.cookies["kedi_session"])
    return SignedIn(client, answer.json()["csrf_token"])


@pytest.fixture
def admin(service_app: FastAPI) -> SignedIn:
    return sign_in(service_app, "admin", ADMIN_PASSWORD)


@pytest.fixture
def user_of(service_app: FastAPI, admin: SignedIn) -> Callable[[str], SignedIn]:
    """``user_of("radiologist")``: a new user with that role, signed in."""
    made: dict[str, SignedIn] = {}

    def make(role: str) -> SignedIn:
        if role not in made:
            name = f"{role}-1"
            answer = admin.post(
                "/api/users", json={"username": name, "password": USER_PASSWORD, "role": role, "group": "neuro"}
            )
            assert answer.status_code == 201, answer.text
            made[role] = sign_in(service_app, name, USER_PASSWORD)
        return made[role]

    return make


def _database_bytes(app: FastAPI) -> bytes:
    """Everything the database holds on disk for the service.

    SQLite: the main file, WAL and shared memory. PostgreSQL: the data files of the
    service's database after a checkpoint (the server's WAL is shared by every database).
    """
    url = parse_url(app.state.service.config.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        db = Path(str(url.database))
        return b"".join(path.read_bytes() for path in sorted(db.parent.glob(db.name + "*")))
    with app.state.service.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))
        oid = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
    folder = Path(str(url.query["host"])) / "data" / "base" / str(oid)
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    assert len(files) > 10, folder
    return b"".join(path.read_bytes() for path in files)


def _rows(app: FastAPI, sql: str, **params: object) -> list[tuple]:
    """Rows read through the service's own engine (SQLite or PostgreSQL alike)."""
    with app.state.service.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def _audit(app: FastAPI) -> list[dict]:
    return [entry.to_dict() for entry in app.state.service.keystore.audit_entries()]


# ------------------------------------------------------------------------------------ routes

#: The routes that answer without a sign-in, and nothing else (the app says the same in PUBLIC_ROUTES).
PUBLIC = {("GET", "/healthz"), ("POST", "/api/login")} | {
    # The web viewer's pages and their files: shells without data (tests/server/test_viewer.py checks that).
    ("GET", path)
    for path in (
        "/",
        "/viewer/",
        "/viewer/login",
        "/viewer/study",
        "/viewer/static/kedi.css",
        "/viewer/static/common.js",
        "/viewer/static/login.js",
        "/viewer/static/studies.js",
        "/viewer/static/study.js",
        "/viewer/static/favicon.svg",
    )
}


def _routes(routes: list) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, included routers walked (FastAPI keeps them as one entry each)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):  # an included router: its routes, prefix applied
            yield from _routes(route.effective_candidates())
            continue
        methods, path = getattr(route, "methods", None), getattr(route, "path", None)
        assert methods and isinstance(path, str), f"{route!r}: a route of another kind needs its own check here"
        for method in sorted(methods):
            yield method, path


def _every_route(app: FastAPI) -> list[tuple[str, str]]:
    # A made-up value for each path parameter ({study}, {username}, {path:path}).
    return [(method, re.sub(r"\{[^}]+\}", "1.2.840.99999.1", path)) for method, path in _routes(app.routes)]


def test_the_public_routes_are_the_listed_ones(service_app: FastAPI) -> None:
    assert set(PUBLIC_ROUTES) == PUBLIC
    client = TestClient(service_app)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.post("/api/login", json={}).status_code == 400  # answers, asks for credentials
    # No schema or Swagger UI (it would load from a CDN): the docs describe the API.
    assert all(client.get(path).status_code == 404 for path in ("/docs", "/redoc", "/openapi.json"))


def test_every_other_route_refuses_nobody_with_401(service_app: FastAPI) -> None:
    client = TestClient(service_app)
    routes = _every_route(service_app)
    assert len(routes) >= 10 and ("POST", "/api/users/1.2.840.99999.1/disable") in routes
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer kedi_not-a-token"}, {"Cookie": "kedi_session=forged"}):
            answer = client.request(method, path, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers, answer.status_code, answer.text)
            assert set(answer.json()) == {"detail"} and "\n" not in answer.json()["detail"]
            assert answer.headers["WWW-Authenticate"] == "Bearer"


ADMIN_ROUTES = [
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("POST", "/api/users/admin/disable"),
]
AUDIT_ROUTES = [("GET", "/api/audit"), ("GET", "/api/audit/verify")]


@pytest.mark.parametrize("role", ["technologist", "radiologist", "researcher", "auditor"])
def test_other_roles_get_403_on_admin_routes(role: str, user_of: Callable[[str], SignedIn]) -> None:
    user = user_of(role)
    body = {"username": "intruder", "password": USER_PASSWORD, "role": "admin"}
    for method, path in ADMIN_ROUTES:
        answer = user.client.request(method, path, json=body, headers={"X-CSRF-Token": user.csrf})
        assert answer.status_code == 403, (role, method, path, answer.text)
    for method, path in AUDIT_ROUTES:
        answer = user.client.request(method, path)
        assert answer.status_code == (200 if role == "auditor" else 403), (role, path)
    assert user.get("/api/session").json()["role"] == role


def test_admin_routes_work_for_the_admin(admin: SignedIn, service_app: FastAPI) -> None:
    made = admin.post("/api/users", json={"username": "rad-a", "password": USER_PASSWORD, "role": "radiologist"})
    assert made.status_code == 201 and made.json()["role"] == "radiologist"
    again = admin.post("/api/users", json={"username": "rad-a", "password": USER_PASSWORD, "role": "radiologist"})
    assert again.status_code == 409
    short = admin.post("/api/users", json={"username": "rad-b", "password": "short", "role": "radiologist"})
    bad_role = admin.post("/api/users", json={"username": "rad-b", "password": USER_PASSWORD, "role": "root"})
    assert short.status_code == 422 and bad_role.status_code == 422
    names = {user["username"]: user for user in admin.get("/api/users").json()["users"]}
    assert set(names) == {"admin", "rad-a"} and not any("hash" in key for key in names["admin"])
    assert admin.post("/api/users/admin/disable").status_code == 409  # not oneself
    assert admin.post("/api/users/nobody/disable").status_code == 404


def test_a_disabled_user_is_signed_out_everywhere(admin: SignedIn, user_of: Callable[[str], SignedIn],
                                                  service_app: FastAPI) -> None:  # fmt: skip
    rad = user_of("radiologist")
    token = rad.post("/api/tokens").json()["token"]
    assert admin.post("/api/users/radiologist-1/disable").json()["disabled"] is True
    assert rad.get("/api/session").status_code == 401
    assert TestClient(service_app).get("/api/session", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    again = TestClient(service_app).post("/api/login", json={"username": "radiologist-1", "password": USER_PASSWORD})
    assert again.status_code == 401


def test_require_needs_a_role() -> None:
    with pytest.raises(ValueError):
        require()


# -------------------------------------------------------------------------------------- CSRF


def test_cookie_requests_that_change_state_need_the_csrf_header(admin: SignedIn, service_app: FastAPI) -> None:
    body = {"username": "tech-x", "password": USER_PASSWORD, "role": "technologist"}
    for headers in (
        {},
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": "0" * 64},
        {"X-CSRF-Token": admin.csrf[:-1] + ("1" if admin.csrf[-1] == "0" else "0")},
    ):
        answer = admin.client.post("/api/users", json=body, headers=headers)
        assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"], headers
        assert admin.client.post("/api/tokens", headers=headers).status_code == 403
    # Another session's token is not this one's.
    other = sign_in(service_app, "admin", ADMIN_PASSWORD)
    assert other.csrf != admin.csrf
    assert admin.client.post("/api/users", json=body, headers={"X-CSRF-Token": other.csrf}).status_code == 403
    # A form post (what a cross-site page can send) is refused the same way.
    assert admin.client.post("/api/users/admin/disable", data={"x": "1"}).status_code == 403
    # Nothing changed.
    assert [u["username"] for u in admin.get("/api/users").json()["users"]] == ["admin"]
    assert _rows(service_app, "SELECT count(*) FROM service_api_tokens") == [(0,)]
    assert admin.client.post("/api/logout").status_code == 403 and admin.get("/api/session").status_code == 200
    # The right header passes; reading needs none.
    assert admin.post("/api/users", json=body).status_code == 201
    assert admin.get("/api/session").json()["csrf_token"] == admin.csrf


def test_bearer_requests_need_no_csrf_and_the_token_is_stored_hashed(admin: SignedIn, service_app: FastAPI) -> None:
    made = admin.post("/api/tokens", json={"label": "pacs bridge"})
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("kedi_") and len(token) > 40
    api = TestClient(service_app)
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/session", headers=bearer).json() == {
        "username": "admin",
        "role": "admin",
        "group": None,
        "auth": "bearer",
    }
    created = api.post(
        "/api/users", headers=bearer, json={"username": "tech-y", "password": USER_PASSWORD, "role": "technologist"}
    )
    assert created.status_code == 201
    assert _rows(service_app, "SELECT token_sha256, label FROM service_api_tokens") == [
        (hashlib.sha256(token.encode()).hexdigest(), "pacs bridge")
    ]
    stored = _database_bytes(service_app)
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored  # the bytes read are the table's
    assert token.encode() not in stored
    # A bearer header that is wrong is refused, even with a valid cookie beside it.
    assert admin.client.get("/api/session", headers={"Authorization": "Bearer " + token[:-2]}).status_code == 401
    assert admin.client.get("/api/session", headers={"Authorization": "Basic YWRtaW46eA=="}).status_code == 401


# --------------------------------------------------------------------------- sign-in, cookies


def test_session_cookie_attributes_and_storage(tmp_path: Path, database_url: str | None) -> None:
    app = create_app(make_config(tmp_path / "secure", secure_cookies=True, database_url=database_url))
    try:
        client = TestClient(app, base_url="https://testserver")
        answer = client.post("/api/login", data={"username": "admin", "password": ADMIN_PASSWORD})  # a form works too
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        token = re.match(r"kedi_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "path=/", "samesite=strict", "max-age=28800"} <= attributes
        assert len(token) >= 43  # 32 random bytes
        assert _rows(app, "SELECT token_sha256 FROM service_sessions") == [
            (hashlib.sha256(token.encode()).hexdigest(),)
        ]
        assert token.encode() not in _database_bytes(app)
        assert answer.json()["csrf_token"].encode() not in _database_bytes(app)
        assert client.get("/api/session").json()["auth"] == "cookie"
        assert client.post("/api/logout", headers={"X-CSRF-Token": answer.json()["csrf_token"]}).status_code == 200
        assert _rows(app, "SELECT count(*) FROM service_sessions") == [(0,)]
        # The old cookie opens nothing any more.
        assert TestClient(app).get("/api/session", headers={"Cookie": f"kedi_session={token}"}).status_code == 401
    finally:
        app.state.service.close()


def test_passwords_are_stored_as_argon2id_hashes(admin: SignedIn, user_of: Callable[[str], SignedIn],
                                                  service_app: FastAPI) -> None:  # fmt: skip
    user_of("researcher")
    hashes = dict(_rows(service_app, "SELECT username, password_hash FROM service_users"))
    assert set(hashes) == {"admin", "researcher-1"}
    assert all(value.startswith("$argon2id$") for value in hashes.values())
    assert hashes["admin"] != hashes["researcher-1"]
    stored = _database_bytes(service_app)
    assert ADMIN_PASSWORD.encode() not in stored and USER_PASSWORD.encode() not in stored


def test_wrong_password_and_unknown_user_get_the_same_answer(service_app: FastAPI) -> None:
    client = TestClient(service_app)
    wrong = client.post("/api/login", json={"username": "admin", "password": "not the password"})
    unknown = client.post("/api/login", json={"username": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong user name or password"}
    assert (
        client.post("/api/login", content=b"username=admin", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    assert client.post("/api/login", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400


def test_sign_in_is_throttled_per_user_name(service_app: FastAPI) -> None:
    client = TestClient(service_app)
    for _ in range(5):
        assert client.post("/api/login", json={"username": "admin", "password": "guess guess guess"}).status_code == 401
    refused = client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert refused.status_code == 429  # even the right password: it is not checked while throttled
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert "Set-Cookie" not in refused.headers
    # Case does not dodge the count; another user is not locked out by it.
    assert client.post("/api/login", json={"username": "ADMIN", "password": "x" * 12}).status_code == 429
    outcomes = [e["details"]["outcome"] for e in _audit(service_app) if e["operation"] == "session.login"]
    assert outcomes == ["failed"] * 5 + ["throttled", "throttled"]


def test_processes_of_one_service_share_the_count_and_it_holds_no_name(
    tmp_path: Path, database_url: str | None
) -> None:
    # Two apps on one database stand for the processes of `kedi serve --workers 2` (or a restart).
    config = make_config(tmp_path / "service", database_url=database_url)
    first = create_app(config)
    second = create_app(config)
    try:
        for app in (first, second, first, second, first):
            answer = TestClient(app).post("/api/login", json={"username": "admin", "password": "guess guess guess"})
            assert answer.status_code == 401
        assert (
            TestClient(second).post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code
            == 429
        )
        TestClient(first).post("/api/login", json={"username": USER_PASSWORD, "password": "typed the wrong way"})
        stored = _database_bytes(first)
        assert USER_PASSWORD.encode() not in stored  # a name typed (maybe a password) is kept only as a keyed hash
        assert _rows(first, "SELECT count(*) FROM service_login_failures WHERE subject LIKE 'user:%'") == [(6,)]
    finally:
        first.state.service.close()
        second.state.service.close()


def test_sign_in_is_throttled_per_address(tmp_path: Path, database_url: str | None) -> None:
    app = create_app(make_config(tmp_path / "addr", login_failures_per_address=3, database_url=database_url))
    try:
        client = TestClient(app)
        for name in ("a1", "a2", "a3"):
            assert client.post("/api/login", json={"username": name, "password": "guess guess"}).status_code == 401
        answer = client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert answer.status_code == 429 and "Retry-After" in answer.headers
    finally:
        app.state.service.close()


def test_a_success_clears_the_user_names_count(service_app: FastAPI) -> None:
    client = TestClient(service_app)
    for _ in range(4):
        client.post("/api/login", json={"username": "admin", "password": "guess guess guess"})
    assert client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200
    for _ in range(4):
        assert client.post("/api/login", json={"username": "admin", "password": "guess guess"}).status_code == 401


# ------------------------------------------------------------------------------- first run


def test_the_first_run_password_is_handed_over_once_and_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, database_url: str | None
) -> None:
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "first"
    config = make_config(home, admin_password=None, database_url=database_url)
    app = create_app(config)
    try:
        password = take_initial_admin_password(app)
        assert password is not None
        watch(password)
        assert password is not None and len(password) >= 20
        assert take_initial_admin_password(app) is None  # once
        client = TestClient(app)
        assert client.post("/api/login", json={"username": "admin", "password": password}).status_code == 200
        trail = json.dumps(_audit(app))
        assert password not in trail
        first = [e for e in _audit(app) if e["operation"] == "user.create"]
        assert first[0]["details"]["password_source"] == "generated" and first[0]["actor"] == "kedi-serve"
        assert password.encode() not in _database_bytes(app)
        assert all(password.encode() not in path.read_bytes() for path in home.rglob("*") if path.is_file())
    finally:
        app.state.service.close()
    # A second start of the same service: the same admin, no new password.
    again = create_app(config)
    try:
        assert take_initial_admin_password(again) is None
        assert TestClient(again).post("/api/login", json={"username": "admin", "password": password}).status_code == 200
    finally:
        again.state.service.close()
    assert password not in caplog.text


def test_a_wrong_kek_does_not_open_the_service(tmp_path: Path, database_url: str | None) -> None:
    config = make_config(tmp_path / "s", database_url=database_url)
    create_app(config).state.service.close()
    with pytest.raises(AuthenticationError):
        create_app(make_config(tmp_path / "s", database_url=database_url))  # other random bytes
    with pytest.raises(ValueError, match="at least"):
        create_app(make_config(tmp_path / "t", admin_password="short"))


# ------------------------------------------------------------------------------------- audit


def test_account_events_and_refusals_are_audited(admin: SignedIn, user_of: Callable[[str], SignedIn],
                                                 service_app: FastAPI) -> None:  # fmt: skip
    rad = user_of("radiologist")
    token = rad.post("/api/tokens").json()["token"]
    TestClient(service_app).post("/api/login", json={"username": "radiologist-1", "password": "wrong wrong wrong"})
    TestClient(service_app).post("/api/login", json={"username": USER_PASSWORD, "password": "typed the wrong way"})
    rad.get("/api/users")  # 403
    TestClient(service_app).get("/api/audit")  # 401
    admin.client.post("/api/users/radiologist-1/disable")  # 403: no CSRF header
    admin.post("/api/users/radiologist-1/disable")
    rad.client.post("/api/logout", headers={"X-CSRF-Token": rad.csrf})  # 401: disabled, the session is gone
    admin.post("/api/logout")

    trail = _audit(service_app)
    # The service's own events (each has an outcome), not the keystore's (init, and the index key made at first use).
    seen = [(e["actor"], e["operation"], e["details"]["outcome"]) for e in trail if "outcome" in e["details"]]
    assert seen[:2] == [("kedi-serve", "user.create", "ok"), ("kedi-serve", "service.start", "ok")]
    expected = [
        ("admin", "session.login", "ok"),
        ("admin", "user.create", "ok"),
        ("radiologist-1", "session.login", "ok"),
        ("radiologist-1", "token.create", "ok"),
        ("radiologist-1", "session.login", "failed"),
        ("-", "session.login", "failed"),  # the name typed was not a user's: it is not recorded
        ("radiologist-1", "request.denied", "denied"),
        ("-", "request.denied", "denied"),
        ("admin", "request.denied", "denied"),
        ("admin", "user.disable", "ok"),
        ("-", "request.denied", "denied"),
        ("admin", "session.logout", "ok"),
    ]
    assert seen[2:] == expected
    denied = [e["details"] for e in trail if e["operation"] == "request.denied"]
    assert [(d["target"], d["status"], d["role"]) for d in denied] == [
        ("/api/users", 403, "radiologist"),
        ("/api/audit", 401, None),
        ("/api/users/{username}/disable", 403, "admin"),
        ("/api/logout", 401, None),
    ]
    assert all(
        e["details"]["address"] == "testclient"
        for e in trail
        if e["actor"] not in ("kedi-serve",) and e["operation"] != "init"
    )
    text = json.dumps(trail)
    for secret in (ADMIN_PASSWORD, USER_PASSWORD, token, rad.csrf, admin.csrf):
        assert secret not in text


def test_the_audit_api_lists_and_verifies_and_sees_an_edit(admin: SignedIn, user_of: Callable[[str], SignedIn],
                                                           service_app: FastAPI, tmp_path: Path) -> None:  # fmt: skip
    auditor = user_of("auditor")
    listed = auditor.get("/api/audit", params={"limit": 3}).json()
    assert len(listed["entries"]) == 3 and listed["total"] >= 6
    assert [e["seq"] for e in listed["entries"]] == [1, 2, 3]
    later = auditor.get("/api/audit", params={"since": 3, "limit": 1}).json()["entries"]
    assert [e["seq"] for e in later] == [4]
    assert auditor.get("/api/audit", params={"limit": 5000}).status_code == 422
    verdict = auditor.get("/api/audit/verify").json()
    assert verdict["ok"] is True and verdict["first_bad_seq"] is None
    # The service's rows are the keystore's rows: `kedi keys audit --verify` checks them too.
    kek_file = tmp_path / "kek"
    kek = service_app.state.service.config.kek_source
    kek_file.write_bytes(kek)
    url = service_app.state.service.config.resolved_database_url
    ok = CliRunner().invoke(kedi, ["keys", "audit", "--verify", "--keystore", url, "--kek-file", str(kek_file)])
    assert ok.exit_code == 0, ok.output
    # Someone with the database edits who signed in: the chain names the row.
    seq = next(e["seq"] for e in _audit(service_app) if e["operation"] == "session.login" and e["actor"] == "auditor-1")
    with service_app.state.service.engine.begin() as conn:
        conn.execute(text("UPDATE audit SET actor = 'admin' WHERE seq = :seq"), {"seq": seq})
    verdict = auditor.get("/api/audit/verify").json()
    assert verdict == {"ok": False, "first_bad_seq": seq, "entries": verdict["entries"]}
    bad = CliRunner().invoke(kedi, ["keys", "audit", "--verify", "--keystore", url, "--kek-file", str(kek_file)])
    assert bad.exit_code == 3 and f"sequence {seq}" in bad.output


def test_a_user_changes_their_password_and_their_other_sessions_end(
    user_of: Callable[[str], SignedIn], service_app: FastAPI
) -> None:
    rad = user_of("radiologist")
    elsewhere = sign_in(service_app, "radiologist-1", USER_PASSWORD)
    new = "a brand new radiologist passphrase"
    body = {"current_password": USER_PASSWORD, "new_password": new}
    assert rad.client.post("/api/password", json=body).status_code == 403  # CSRF applies
    assert rad.post("/api/password", json={**body, "new_password": "short"}).status_code == 422
    assert rad.post("/api/password", json=body).status_code == 200
    assert rad.get("/api/session").status_code == 200 and elsewhere.get("/api/session").status_code == 401
    client = TestClient(service_app)
    assert client.post("/api/login", json={"username": "radiologist-1", "password": USER_PASSWORD}).status_code == 401
    assert client.post("/api/login", json={"username": "radiologist-1", "password": new}).status_code == 200
    # Guessing the current password through a session is throttled like sign-in.
    guesses = [
        rad.post("/api/password", json={"current_password": f"guess number {i}", "new_password": new}).status_code
        for i in range(6)
    ]
    assert guesses == [400] * 5 + [429]  # the sign-in that succeeded above cleared the count
    outcomes = [e["details"]["outcome"] for e in _audit(service_app) if e["operation"] == "user.password"]
    assert outcomes == ["ok"] + ["failed"] * 5 + ["throttled"]
    assert new not in json.dumps(_audit(service_app))


def test_concurrent_requests_neither_fail_nor_lose_audit_rows(admin: SignedIn, service_app: FastAPI) -> None:
    """Service tables and keystore share one database: concurrent writers queue (SQLite) or interleave
    (PostgreSQL), none sees "locked" or a duplicate audit sequence number."""
    token = admin.post("/api/tokens").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    before = len(_audit(service_app))
    answers: list[int] = []

    def work() -> None:
        client = TestClient(service_app)
        for i in range(12):
            if i % 3 == 0:
                answers.append(client.get("/api/users").status_code)  # 401, audited
            elif i % 3 == 1:
                answers.append(client.get("/api/session", headers=bearer).status_code)  # 200, read only
            else:
                answers.append(client.post("/api/tokens", headers=bearer).status_code)  # 201, written and audited

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == sorted([401, 200, 201] * 4 * 6)
    assert len(_audit(service_app)) == before + 2 * 4 * 6
    assert _rows(service_app, "SELECT count(*) FROM service_api_tokens") == [(1 + 4 * 6,)]
    assert service_app.state.service.keystore.verify_audit() == (True, None)


def test_a_user_lists_and_revokes_their_own_tokens_only(
    admin: SignedIn, user_of: Callable[[str], SignedIn], service_app: FastAPI
) -> None:
    tech = user_of("technologist")
    mine = tech.post("/api/tokens", json={"label": "scanner 3", "lifetime_seconds": 3600}).json()
    theirs = admin.post("/api/tokens").json()
    listed = tech.get("/api/tokens").json()["tokens"]
    assert [(t["id"], t["label"]) for t in listed] == [(mine["id"], "scanner 3")] and listed[0]["expires"]
    assert mine["token"] not in json.dumps(listed)
    # Another user's token id is "not yours", the same as an unknown one; CSRF applies to the cookie.
    assert tech.client.delete(f"/api/tokens/{theirs['id']}", headers={"X-CSRF-Token": tech.csrf}).status_code == 404
    assert tech.client.delete("/api/tokens/999", headers={"X-CSRF-Token": tech.csrf}).status_code == 404
    assert tech.client.delete(f"/api/tokens/{mine['id']}").status_code == 403
    api = TestClient(service_app)
    assert api.get("/api/session", headers={"Authorization": f"Bearer {mine['token']}"}).status_code == 200
    assert tech.client.delete(f"/api/tokens/{mine['id']}", headers={"X-CSRF-Token": tech.csrf}).status_code == 200
    assert api.get("/api/session", headers={"Authorization": f"Bearer {mine['token']}"}).status_code == 401
    assert api.get("/api/session", headers={"Authorization": f"Bearer {theirs['token']}"}).status_code == 200
    revoked = [e for e in _audit(service_app) if e["operation"] == "token.revoke"]
    assert [(e["actor"], e["details"]["target"]) for e in revoked] == [("technologist-1", f"token:{mine['id']}")]
