"""FastAPI dependencies: the service, who is asking (401 if nobody), and whether the role may (403)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from deepkedi.server.principal import Principal
from deepkedi.server.service import Service

__all__ = ["current_principal", "get_service"]


def get_service(request: Request) -> Service:
    """The :class:`Service` of this app."""
    service: Service = request.app.state.service
    return service


def current_principal(request: Request) -> Principal:
    """The signed-in user (session cookie, or ``Authorization: Bearer``); 401 otherwise."""
    raise HTTPException(status_code=401, detail="sign in first")  # filled in by the accounts work
