"""``create_app``: the service's FastAPI application, its sign-in, user, token and audit routes.

:func:`create_app` opens the keystore at the service's database URL (creating it,
and the first administrator, on the first run), creates the service's tables in the
same database, wires the archive and the DICOMweb routes, and answers:

==========================  =====================  =============================================
route                       who                    what
==========================  =====================  =============================================
GET  /healthz               anyone                 liveness: ``{"status": "ok"}``
POST /api/login             anyone (throttled)     JSON or form ``username``, ``password``: sets
                                                   the session cookie, returns the CSRF token
POST /api/logout            signed in              ends the cookie's session
GET  /api/session           signed in              who you are, and the session's CSRF token
POST /api/tokens            signed in              a bearer token for an API client (shown once)
GET  /api/tokens            signed in              one's tokens (never the tokens themselves)
DELETE /api/tokens/{id}     signed in              revoke one of one's tokens
POST /api/password          signed in              change one's own password
GET  /api/users             admin                  the users
POST /api/users             admin                  create a user with a role and a group
POST /api/users/{name}/     admin                  disable a user; their sessions and tokens end
disable
GET  /api/audit             admin, auditor         the audit trail
GET  /api/audit/verify      admin, auditor         check the trail's MAC chain
POST /api/break-glass       radiologist            open an unassigned study for a time, for a
                                                   reason (:mod:`~deepkedi.server.breakglass`)
GET  /api/break-glass       admin, auditor         review every grant and its reason
POST /api/break-glass/{id}/ admin                  end a grant now
end
GET  /api/studies/{id}/     admin, auditor         one study's audit history, newest first
audit
==========================  =====================  =============================================

The DICOMweb routes are :mod:`deepkedi.server.dicomweb`'s; the web viewer's pages, its routes
and the security headers of every answer are :mod:`deepkedi.server.viewer`'s.

Every 401 and 403 is recorded in the audit trail (``request.denied``) by the exception
handler here, with the route's template (``/dicomweb/studies/{study}``), never the
path itself (it may hold a UID). docs/SERVICE.md, "Users, roles and sign-in", "Audit".
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

import deepkedi.server.archive as archive_module
from deepkedi._version import __version__
from deepkedi.errors import KeystoreError
from deepkedi.keys.keystore import Keystore
from deepkedi.server import accounts, breakglass, dicomweb, viewer
from deepkedi.server.config import ServiceConfig
from deepkedi.server.db import READ_ONLY, Base
from deepkedi.server.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    ServiceDep,
    client_address,
    require,
)
from deepkedi.server.principal import Principal, Role
from deepkedi.server.service import Service

__all__ = ["PUBLIC_ROUTES", "SERVICE_ACTOR", "create_app", "take_initial_admin_password"]

#: The audit actor of what the service does on its own (creating its keystore and first admin, starting).
SERVICE_ACTOR = "kedi-serve"
#: (method, path) of the routes that answer without a sign-in; every other route answers 401 to nobody.
PUBLIC_ROUTES = frozenset({("GET", "/healthz"), ("POST", "/api/login")}) | viewer.PUBLIC_ROUTES
#: Largest sign-in request body (a user name and a password).
_LOGIN_BODY_LIMIT = 8 << 10
#: Most audit entries one GET /api/audit returns.
_AUDIT_PAGE_LIMIT = 1000

AdminOnly = Annotated[Principal, Depends(require(Role.ADMIN))]
AuditReader = Annotated[Principal, Depends(require(Role.ADMIN, Role.AUDITOR))]


# ------------------------------------------------------------------------------- the database


def _service_engine(url: str) -> sa.Engine:
    """The engine of the service's tables: for SQLite the keystore's settings (WAL, FULL sync, queued writers)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    # A connection for each of the request threads that may look something up at once (uvicorn's thread
    # pool holds 40): beyond the pool, each request would open a connection and run the PRAGMAs below.
    engine = sa.create_engine(
        parsed, connect_args={"timeout": 60.0, "check_same_thread": False}, pool_size=20, max_overflow=20
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA secure_delete = ON")  # an ended session's hash does not linger in free pages
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # BEGIN IMMEDIATE, as the keystore does: a transaction that reads and then writes queues on the
        # busy timeout at its start instead of failing with "database is locked" when it upgrades. One that
        # only reads (Service.read_sessions) takes no write lock and does not queue behind the audit's writes.
        read_only = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _open_keystore(config: ServiceConfig) -> Keystore:
    """The keystore at the service's database URL; created (KEK version 1) on the first run."""
    url = config.resolved_database_url
    try:
        return Keystore.open(url, kek_source=config.kek_source)
    except KeystoreError as missing:
        try:
            return Keystore.init(url, kek_source=config.kek_source, actor=SERVICE_ACTOR)
        except KeystoreError:
            raise missing from None  # it exists but cannot be opened: say why it could not be opened


def _first_admin(service: Service, password: str | None) -> str | None:
    """Create the administrator when there is no user at all; returns a generated password, else None."""
    generated = None
    with service.sessions.begin() as db:
        if db.scalar(sa.select(sa.func.count()).select_from(accounts.User)):
            return None
        if password is None:
            password = generated = secrets.token_urlsafe(18)
        accounts.create_user(db, username=accounts.ADMIN_USERNAME, password=password, role=Role.ADMIN)
    service.audit(
        None,
        "user.create",
        outcome="ok",
        target=accounts.ADMIN_USERNAME,
        actor=SERVICE_ACTOR,
        details={
            "new_role": Role.ADMIN.value,
            "first_run": True,
            "password_source": "generated" if generated else "given",
        },
    )
    return generated


def take_initial_admin_password(app: FastAPI) -> str | None:
    """The first administrator's generated password, once: it is forgotten by the app as it is handed over."""
    password: str | None = getattr(app.state, "initial_admin_password", None)
    app.state.initial_admin_password = None
    return password


def create_app(config: ServiceConfig) -> FastAPI:
    """The service: keystore opened (or created), tables created, first admin made on the first run.

    On a first run without ``config.admin_password`` a random password is generated
    for the user ``admin``; :func:`take_initial_admin_password` hands it over once. It
    is never logged or stored in clear (only its argon2 hash).

    Raises
    ------
    AuthenticationError
        Wrong passphrase or KEK for the service's keystore.
    KeystoreError
        The database cannot be reached or holds a keystore of another version.
    ValueError
        ``config.admin_password`` is too short.
    """
    if config.admin_password is not None:
        accounts.check_password(config.admin_password)
    if config.database_url is None:
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    keystore = _open_keystore(config)
    engine = _service_engine(config.resolved_database_url)
    try:
        Base.metadata.create_all(engine)
        service = Service(
            config=config,
            engine=engine,
            sessions=sessionmaker(engine, expire_on_commit=False),
            keystore=keystore,
        )
        service.archive = archive = archive_module.Archive(service)
        generated = _first_admin(service, config.admin_password)
        service.audit(None, "service.start", outcome="ok", actor=SERVICE_ACTOR, details={"version": __version__})
    except BaseException:
        keystore.close()
        engine.dispose()
        raise

    app = FastAPI(
        title="deepkedi",
        version=__version__,
        # No Swagger UI (it loads from a CDN) and no schema for the unauthenticated: docs/SERVICE.md documents the API.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service
    app.state.login_throttle = accounts.LoginThrottle(
        service.sessions,
        service.read_sessions,
        archive.uid_hmac,  # keyed by the index secret: a stolen database cannot test guessed names
        per_user=config.login_failures_per_user,
        per_address=config.login_failures_per_address,
        window=config.login_window_seconds,
    )
    app.state.initial_admin_password = generated
    app.add_exception_handler(StarletteHTTPException, _audited_http_exception)
    app.include_router(_router)
    app.include_router(dicomweb.router)
    app.include_router(breakglass.router)
    viewer.install(app)  # the web viewer's pages and routes, and the security headers on every answer
    return app


# ------------------------------------------------------------------------------ refusals


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(no route)"


async def _audited_http_exception(request: Request, exc: Exception) -> Response:
    """Every 401 and 403 goes into the audit trail, then the usual JSON answer ``{"detail": ...}``."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (401, 403) and not getattr(request.state, "audited", False):
        service: Service = request.app.state.service
        principal: Principal | None = getattr(request.state, "principal", None)
        await run_in_threadpool(
            service.audit,
            principal,
            "request.denied",
            outcome="denied",
            target=_route_template(request),
            address=client_address(request),
            details={"method": request.method, "status": exc.status_code, "reason": str(exc.detail)[:200]},
        )
    return await http_exception_handler(request, exc)


# -------------------------------------------------------------------------------- routes

_router = APIRouter()


@_router.get("/healthz", tags=["service"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Needs no sign-in and says nothing else."""
    return {"status": "ok"}


def _set_session_cookie(response: Response, token: str, config: ServiceConfig) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=config.session_seconds,
        path="/",
        secure=config.secure_cookies,
        httponly=True,
        samesite="strict",
    )


async def _login_fields(request: Request) -> tuple[str, str]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > _LOGIN_BODY_LIMIT):
        raise HTTPException(status_code=413, detail=f"a sign-in request is at most {_LOGIN_BODY_LIMIT} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: Any
    if kind == "application/json":
        body = await request.body()
        if len(body) > _LOGIN_BODY_LIMIT:
            raise HTTPException(status_code=413, detail=f"a sign-in request is at most {_LOGIN_BODY_LIMIT} bytes")
        try:
            fields = json.loads(body)
        except ValueError:
            raise HTTPException(status_code=400, detail="the body is not JSON") from None
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = await request.form(max_files=0, max_fields=8)
    else:
        raise HTTPException(status_code=415, detail="send JSON or a form with username and password")
    username = fields.get("username") if hasattr(fields, "get") else None
    password = fields.get("password") if hasattr(fields, "get") else None
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise HTTPException(status_code=400, detail="give username and password")
    return username, password


@_router.post("/api/login", tags=["session"])
async def login(request: Request) -> Response:
    """Sign in with ``username`` and ``password`` (JSON or form): sets the session cookie, returns the CSRF token.

    After ``login_failures_per_user`` failures for one user name, or
    ``login_failures_per_address`` from one address, within ``login_window_seconds``,
    the answer is 429 with ``Retry-After`` and the password is not checked.
    """
    username, password = await _login_fields(request)
    request.state.audited = True  # this route audits its own outcome
    return await run_in_threadpool(_login, request, username, password)


def _login(request: Request, username: str, password: str) -> Response:
    service: Service = request.app.state.service
    throttle: accounts.LoginThrottle = request.app.state.login_throttle
    address = client_address(request)
    decision = throttle.check(username, address)
    principal: Principal | None = None
    token = None
    # The audit rows are written after the transaction: on SQLite it holds the database's write lock.
    with service.sessions.begin() as db:
        # Only a name that is a user's goes into the audit trail: what someone typed into the
        # user-name field may be a password.
        known = accounts.find_user(db, username) is not None
        if decision.allowed:
            user = accounts.authenticate(db, username, password)
            if user is not None:
                token = accounts.open_session(db, user, lifetime=service.config.session_seconds)
                principal = user.principal(address)
    actor = username if known else None
    if not decision.allowed:
        service.audit(None, "session.login", outcome="throttled", actor=actor, address=address)
        return JSONResponse(
            {"detail": f"too many failed sign-ins; try again in {decision.retry_after} s"},
            status_code=429,
            headers={"Retry-After": str(decision.retry_after)},
        )
    if principal is None or token is None:
        throttle.failed(username, address)
        reason = "wrong password or disabled" if known else "unknown user"
        service.audit(None, "session.login", outcome="failed", actor=actor, address=address, details={"reason": reason})
        return JSONResponse({"detail": "wrong user name or password"}, status_code=401)
    throttle.succeeded(username)
    service.audit(principal, "session.login", outcome="ok")
    response = JSONResponse(
        {
            "username": principal.username,
            "role": principal.role.value,
            "group": principal.group,
            "csrf_token": accounts.csrf_token_for(token),
        }
    )
    _set_session_cookie(response, token, service.config)
    return response


@_router.post("/api/logout", tags=["session"])
def logout(request: Request, principal: CurrentPrincipal, service: ServiceDep) -> Response:
    """End the cookie's session (a bearer token is ended by disabling its user)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.state.auth == "cookie" and cookie:
        with service.sessions.begin() as db:
            accounts.close_session(db, cookie)
    service.audit(principal, "session.logout", outcome="ok")
    response = JSONResponse({"status": "signed out"})
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=service.config.secure_cookies, httponly=True, samesite="strict"
    )
    return response


@_router.get("/api/session", tags=["session"])
def session_info(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Who is signed in; for a cookie session, its CSRF token (a page reloaded reads it here)."""
    answer: dict[str, Any] = {
        "username": principal.username,
        "role": principal.role.value,
        "group": principal.group,
        "auth": request.state.auth,
    }
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.state.auth == "cookie" and cookie:
        answer["csrf_token"] = accounts.csrf_token_for(cookie)
    return answer


class TokenRequest(BaseModel):
    label: str | None = Field(default=None, max_length=128)
    #: None: until the user is disabled.
    lifetime_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)


@_router.post("/api/tokens", status_code=201, tags=["session"])
def create_token(principal: CurrentPrincipal, service: ServiceDep, body: TokenRequest | None = None) -> dict[str, Any]:
    """A bearer token for the signed-in user's API clients, shown this once (only its SHA-256 is kept)."""
    body = body or TokenRequest()
    with service.sessions.begin() as db:
        try:
            row, token = accounts.issue_api_token(
                db, principal.user_id, label=body.label, lifetime=body.lifetime_seconds
            )
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        answer = {"id": row.id, "token": token, "label": row.label, "expires": accounts._iso(row.expires)}
    service.audit(principal, "token.create", outcome="ok", target=f"token:{answer['id']}")
    return answer


@_router.get("/api/tokens", tags=["session"])
def tokens(principal: CurrentPrincipal, service: ServiceDep) -> dict[str, Any]:
    """The signed-in user's bearer tokens (id, label, times; never a token)."""
    with service.sessions() as db:
        return {"tokens": [row.to_dict() for row in accounts.list_api_tokens(db, principal.user_id)]}


@_router.delete("/api/tokens/{token_id}", tags=["session"])
def revoke_token(token_id: int, principal: CurrentPrincipal, service: ServiceDep) -> dict[str, str]:
    """Revoke one of the signed-in user's bearer tokens now (404 for another user's or an unknown id)."""
    with service.sessions.begin() as db:
        revoked = accounts.revoke_api_token(db, principal.user_id, token_id)
    if not revoked:
        raise HTTPException(status_code=404, detail="you have no token with this id")
    service.audit(principal, "token.revoke", outcome="ok", target=f"token:{token_id}")
    return {"status": "revoked"}


class PasswordChange(BaseModel):
    current_password: str = Field(repr=False, max_length=1024)
    new_password: str = Field(repr=False, max_length=1024)


@_router.post("/api/password", tags=["session"])
def change_password(
    request: Request, body: PasswordChange, principal: CurrentPrincipal, service: ServiceDep
) -> dict[str, str]:
    """Change one's own password (the current one is asked again); the user's other sessions end."""
    cookie = request.cookies.get(SESSION_COOKIE) if request.state.auth == "cookie" else None
    # A stolen session must not become a way to guess the password: the sign-in throttle counts here too.
    throttle: accounts.LoginThrottle = request.app.state.login_throttle
    decision = throttle.check(principal.username, principal.address)
    if not decision.allowed:
        service.audit(principal, "user.password", outcome="throttled", target=principal.username)
        raise HTTPException(
            status_code=429,
            detail=f"too many failed attempts; try again in {decision.retry_after} s",
            headers={"Retry-After": str(decision.retry_after)},
        )
    with service.sessions.begin() as db:
        try:
            changed = accounts.change_password(
                db, principal.user_id, body.current_password, body.new_password, keep_session=cookie
            )
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
    service.audit(principal, "user.password", outcome="ok" if changed else "failed", target=principal.username)
    if not changed:
        throttle.failed(principal.username, principal.address)
        raise HTTPException(status_code=400, detail="the current password is wrong")
    return {"status": "password changed"}


class UserCreate(BaseModel):
    username: str
    password: str = Field(repr=False)
    role: Role
    group: str | None = None


@_router.get("/api/users", tags=["users"])
def users(principal: AdminOnly, service: ServiceDep) -> dict[str, Any]:
    """Every user (never a password hash)."""
    with service.sessions() as db:
        return {"users": [user.to_dict() for user in accounts.list_users(db)]}


@_router.post("/api/users", status_code=201, tags=["users"])
def create_user(body: UserCreate, principal: AdminOnly, service: ServiceDep) -> dict[str, Any]:
    """Create a user with a role and, for radiologists, a group."""
    with service.sessions.begin() as db:
        try:
            user = accounts.create_user(
                db, username=body.username, password=body.password, role=body.role, group=body.group
            )
        except ValueError as exc:
            status = 409 if "already exists" in str(exc) else 422
            raise HTTPException(status_code=status, detail=str(exc)) from None
        answer = user.to_dict()
    service.audit(
        principal,
        "user.create",
        outcome="ok",
        target=body.username,
        details={"new_role": body.role.value, "group": body.group},
    )
    return answer


@_router.post("/api/users/{username}/disable", tags=["users"])
def disable_user(username: str, principal: AdminOnly, service: ServiceDep) -> dict[str, Any]:
    """Disable a user: they can no longer sign in, and their sessions and tokens end now."""
    if username == principal.username:
        raise HTTPException(status_code=409, detail="an administrator cannot disable their own account")
    with service.sessions.begin() as db:
        user = accounts.find_user(db, username)
        if user is None:
            raise HTTPException(status_code=404, detail="no such user")
        accounts.disable_user(db, user)
        answer = user.to_dict()
    service.audit(principal, "user.disable", outcome="ok", target=username)
    return answer


@_router.get("/api/audit", tags=["audit"])
def audit_trail(
    principal: AuditReader,
    service: ServiceDep,
    since: Annotated[int, Query(ge=0, description="entries after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=_AUDIT_PAGE_LIMIT)] = 200,
) -> dict[str, Any]:
    """The audit trail in sequence order, ``limit`` entries after ``since`` (the keystore's and the service's)."""
    entries = service.keystore.audit_entries()
    page = [entry.to_dict() for entry in entries if entry.seq > since][:limit]
    service.audit(principal, "audit.read", outcome="ok", details={"since": since, "returned": len(page)})
    return {"entries": page, "total": len(entries)}


@_router.get("/api/audit/verify", tags=["audit"])
def audit_verify(principal: AuditReader, service: ServiceDep) -> dict[str, Any]:
    """Check the whole trail: ``ok`` false names the first edited, deleted or reordered entry."""
    ok, first_bad = service.keystore.verify_audit()
    count = len(service.keystore.audit_entries())
    service.audit(principal, "audit.verify", outcome="ok", details={"verified": ok, "first_bad_seq": first_bad})
    return {"ok": ok, "first_bad_seq": first_bad, "entries": count}
