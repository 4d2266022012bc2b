"""FastAPI dependencies: the service, who is asking (401 if nobody), and whether the role may (403).

A request is signed in by a bearer token (``Authorization: Bearer kedi_...``, API
clients) or by the session cookie ``kedi_session`` (browsers). A state-changing
request (POST, PUT, PATCH, DELETE) signed in by the cookie must also carry the
session's CSRF token in ``X-CSRF-Token``: a cross-site form can make the browser send
the cookie, never that header. Bearer requests are exempt (a browser never adds the
header on its own). Refusals are audited by the app's exception handler
(:mod:`deepkedi.server.app`), which finds the principal on ``request.state``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from deepkedi.server import accounts, grants
from deepkedi.server.principal import Principal, Role
from deepkedi.server.service import Service

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "STATE_CHANGING",
    "CurrentPrincipal",
    "ServiceDep",
    "client_address",
    "current_principal",
    "get_service",
    "require",
]

#: The browser session's cookie.
SESSION_COOKIE = "kedi_session"
#: The header that carries the session's CSRF token.
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change state, and so need the CSRF token when signed in by the cookie.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def get_service(request: Request) -> Service:
    """The :class:`Service` of this app.

    Async only so that FastAPI calls it in the event loop: a plain ``def`` dependency is
    run in the thread pool, a hop between threads per request for one attribute read.
    """
    service: Service = request.app.state.service
    return service


def client_address(request: Request) -> str | None:
    """The client's address as the server sees it (behind a proxy: as uvicorn's ``--forwarded-allow-ips`` allows)."""
    return request.client.host if request.client is not None else None


def current_principal(request: Request) -> Principal:
    """The signed-in user (session cookie, or ``Authorization: Bearer``); 401 otherwise, 403 on a CSRF failure.

    Sets ``request.state.principal`` and ``request.state.auth`` (``"bearer"`` or ``"cookie"``).
    A radiologist's principal carries their break-glass grants in force (:mod:`deepkedi.server.grants`).
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    service: Service = request.app.state.service
    address = client_address(request)
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    with service.read_sessions() as db:
        if authorization is not None:
            # A request that names a bearer token stands or falls by it: no falling back to the cookie.
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("use Authorization: Bearer TOKEN")
            principal = accounts.principal_for_token(db, token.strip(), address=address)
            if principal is None:
                raise _unauthorized("the bearer token is unknown, expired or revoked")
            how = "bearer"
        elif cookie:
            principal = accounts.principal_for_session(db, cookie, address=address)
            if principal is None:
                raise _unauthorized("the session has ended; sign in again")
            how = "cookie"
        else:
            raise _unauthorized("sign in first")
        # A radiologist's break-glass grants in force: the policy and the audit read them from the principal.
        principal = grants.with_grants(db, principal)
    request.state.principal = principal
    request.state.auth = how
    if how == "cookie" and request.method in STATE_CHANGING:
        assert cookie is not None
        if not accounts.csrf_matches(cookie, request.headers.get(CSRF_HEADER)):
            raise HTTPException(status_code=403, detail=f"the {CSRF_HEADER} header is missing or wrong")
    return principal


def _unauthorized(detail: str) -> HTTPException:
    # RFC 9110 §15.5.2: a 401 names the scheme that would be accepted.
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ServiceDep = Annotated[Service, Depends(get_service)]


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` through: 401 for nobody, 403 for another role.

    Examples
    --------
    >>> from deepkedi.server.principal import Role
    >>> admin_only = require(Role.ADMIN)
    >>> admin_only.__name__
    'require_admin'
    """
    if not roles:
        raise ValueError("name at least one role")
    allowed = frozenset(Role(role) for role in roles)

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(status_code=403, detail=f"the {principal.role.value} role may not do this")
        return principal

    check.__name__ = "require_" + "_".join(sorted(role.value for role in allowed))
    return check
