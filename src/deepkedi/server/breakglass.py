"""Break-glass access and its review, and a study's audit history (docs/SERVICE.md, "Break-glass access").

==================================  ==============  ==================================================
route                               who             what
==================================  ==============  ==================================================
POST /api/break-glass               radiologist     ``{"study_uid", "reason"}``: open a study not
                                                    assigned to you for ``break_glass_seconds`` (201)
GET  /api/break-glass               admin, auditor  every grant, newest first, its reason unsealed
POST /api/break-glass/{id}/end      admin           end a grant now
GET  /api/studies/{id}/audit        admin, auditor  the audit entries of one study, newest first
==================================  ==============  ==================================================

The radiologist cannot see the study in any list, so they name it by its
StudyInstanceUID, looked up by the index's keyed hash as QIDO-RS does; a study that
does not exist is 404 as on every DICOMweb route, a revoked one 410. Every request is
audited (``break_glass.grant``, ``break_glass.review``, ``break_glass.end``,
``audit.read``), the reason never: it is sealed in the database (:mod:`deepkedi.server.grants`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from deepkedi.keys.keystore.audit import AuditEntry
from deepkedi.server import grants
from deepkedi.server.accounts import _iso
from deepkedi.server.archive import Archive, ArchiveError, StudyGone, StudyIndex, StudyRecord, StudySeal
from deepkedi.server.deps import ServiceDep, require
from deepkedi.server.policy import is_assigned
from deepkedi.server.principal import Principal, Role
from deepkedi.server.service import Service

__all__ = ["GrantRequest", "router"]

router = APIRouter(tags=["break-glass"])

RadiologistOnly = Annotated[Principal, Depends(require(Role.RADIOLOGIST))]
AdminOnly = Annotated[Principal, Depends(require(Role.ADMIN))]
AuditReader = Annotated[Principal, Depends(require(Role.ADMIN, Role.AUDITOR))]

#: Largest break-glass request body: a UID and a reason of at most 1000 characters (4 bytes each in UTF-8).
_BODY_LIMIT = 8 << 10
#: Most entries one page of a review or of a study's audit history holds.
_PAGE_LIMIT = 1000
_NOT_FOUND = "no such study"
_GRANT = "break_glass.grant"


def _archive(service: Service) -> Archive:
    if service.archive is None:
        raise HTTPException(status_code=503, detail="the archive is not running")
    return service.archive


# ------------------------------------------------------------------------------ asking


class GrantRequest(BaseModel):
    """What a radiologist sends to break the glass: the study's UID and why."""

    model_config = ConfigDict(extra="forbid")

    study_uid: str = Field(min_length=1, max_length=64)
    reason: str = Field(repr=False)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return grants.check_reason(value)


async def _body(request: Request) -> bytes | None:
    """The request's body, or None when it is over :data:`_BODY_LIMIT` (declared or read)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > _BODY_LIMIT):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _BODY_LIMIT:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _grant_request(request: Request, principal: RadiologistOnly, service: ServiceDep) -> GrantRequest:
    """The request's JSON body, read once the caller is known to be a radiologist (401, 403 first); 413, 422 audited."""
    body = await _body(request)
    try:
        if body is None:
            raise HTTPException(status_code=413, detail=f"a break-glass request is at most {_BODY_LIMIT} bytes")
        try:
            return GrantRequest.model_validate(json.loads(body))
        except ValueError:  # not JSON, or pydantic's ValidationError (a ValueError)
            raise HTTPException(
                status_code=422,
                detail=f'send JSON {{"study_uid": the StudyInstanceUID, "reason": {grants.MIN_REASON_LENGTH} to '
                f"{grants.MAX_REASON_LENGTH} characters}}",
            ) from None
    except HTTPException as refused:
        # Neither the UID nor the reason goes into the trail or the answer.
        details = {"status": refused.status_code, "break_glass": True}
        await run_in_threadpool(service.audit, principal, _GRANT, outcome="failed", details=details)
        raise


def _refuse(service: Service, principal: Principal, status: int, detail: str, study: StudyRecord | None) -> NoReturn:
    service.audit(
        principal,
        _GRANT,
        outcome="failed",
        target=study.pseudonym if study is not None else None,
        details={"status": status, "break_glass": True},
    )
    raise HTTPException(status_code=status, detail=detail)


@router.post("/api/break-glass", status_code=201)
def break_glass(
    body: Annotated[GrantRequest, Depends(_grant_request)], principal: RadiologistOnly, service: ServiceDep
) -> dict[str, Any]:
    """Open a study not assigned to the radiologist, for ``break_glass_seconds``, for the reason given (sealed)."""
    archive = _archive(service)
    study = archive.find_study(body.study_uid)
    if study is None:
        _refuse(service, principal, 404, _NOT_FOUND, None)  # as on every DICOMweb route
    if study.revoked:
        _refuse(service, principal, 410, "the study's key was revoked: its images are gone", study)
    if is_assigned(principal, study):
        _refuse(service, principal, 409, "the study is assigned to you or your group: open it as usual", study)
    try:
        seal = archive.study_seal(study)
    except StudyGone:
        _refuse(service, principal, 410, "the study's key was revoked: its images are gone", study)
    lifetime = service.config.break_glass_seconds
    with service.sessions.begin() as db:
        row = grants.open_grant(
            db, user_id=principal.user_id, study_id=study.id, reason=body.reason, seal=seal, lifetime=lifetime
        )
        grant_id, expires = row.id, _iso(row.expires)
    service.audit(
        principal,
        _GRANT,
        outcome="ok",
        target=study.pseudonym,
        details={"break_glass": True, "grant_id": grant_id, "expires": expires, "lifetime_seconds": lifetime},
    )
    return {"grant_id": grant_id, "study": study.pseudonym, "expires": expires}


# ------------------------------------------------------------------------------ review


def _reason(archive: Archive, seals: dict[str, StudySeal | None], view: grants.GrantView) -> dict[str, Any]:
    """The grant's reason unsealed, or why it cannot be: the study's key revoked, or the sealed blob altered."""
    if view.study not in seals:
        study = archive.study_by_pseudonym(view.study)
        try:
            seals[view.study] = None if study is None else archive.study_seal(study)
        except StudyGone:
            seals[view.study] = None
    seal = seals[view.study]
    if seal is None:
        return {"reason": None, "revoked": True}
    try:
        reason = seal.open(grants.reason_binding(view.grant.id), view.grant.reason).get("reason")
    except ArchiveError:
        return {"reason": None, "revoked": False, "tampered": True}
    return {"reason": reason if isinstance(reason, str) else None, "revoked": False}


@router.get("/api/break-glass")
def review_break_glass(
    principal: AuditReader,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=_PAGE_LIMIT)] = 200,
    before: Annotated[int | None, Query(ge=1, description="grants with a smaller id")] = None,
) -> dict[str, Any]:
    """Every break-glass grant, newest first, with its reason unsealed (null once the study's key is revoked)."""
    archive = _archive(service)
    now = grants.current_time()
    with service.sessions() as db:
        views = grants.list_grants(db, limit=limit, before=before)
    seals: dict[str, StudySeal | None] = {}
    answer = [
        {
            "id": view.grant.id,
            "user": view.user,
            "study": view.study,
            "created": _iso(view.grant.created),
            "expires": _iso(view.grant.expires),
            "ended": _iso(view.grant.ended),
            "ended_by": view.ended_by,
            "active": view.grant.in_force(now),
            **_reason(archive, seals, view),
        }
        for view in views
    ]
    service.audit(principal, "break_glass.review", outcome="ok", details={"returned": len(answer), "before": before})
    return {"grants": answer, "next_before": answer[-1]["id"] if len(answer) == limit else None}


@router.post("/api/break-glass/{grant_id}/end")
def end_break_glass(grant_id: int, principal: AdminOnly, service: ServiceDep) -> dict[str, Any]:
    """End a grant now (admin): the radiologist's next request no longer opens the study."""
    status, pseudonym = 200, None
    with service.sessions.begin() as db:
        row = db.get(grants.BreakGlassGrant, grant_id)
        if row is None:
            status = 404
        else:
            study = db.get(StudyIndex, row.study_id)
            pseudonym = study.pseudonym if study is not None else None
            try:
                grants.end_grant(row, by=principal.user_id)
            except ValueError:
                status = 409
    details: dict[str, Any] = {"break_glass": True, "grant_id": grant_id}
    if status != 200:
        service.audit(
            principal, "break_glass.end", outcome="failed", target=pseudonym, details={**details, "status": status}
        )
        detail = "no such grant" if status == 404 else "the grant has already ended"
        raise HTTPException(status_code=status, detail=detail)
    service.audit(principal, "break_glass.end", outcome="ok", target=pseudonym, details=details)
    return {"grant_id": grant_id, "study": pseudonym, "status": "ended"}


# ------------------------------------------------------------------------------ a study's audit history


def _concerns(entry: AuditEntry, study: StudyRecord) -> bool:
    """Whether ``entry`` is about ``study``: its target, one of a search's matches, or its data key's own row."""
    details = entry.details
    if details.get("target") == study.pseudonym:
        return True
    matches = details.get("matches")
    if isinstance(matches, list) and study.pseudonym in matches:
        return True
    return entry.key_id is not None and entry.key_id.lower() == study.key_id.lower()


@router.get("/api/studies/{pseudonym}/audit")
def study_audit(
    pseudonym: str,
    principal: AuditReader,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=_PAGE_LIMIT)] = 200,
    before: Annotated[int | None, Query(ge=1, description="entries with a smaller sequence number")] = None,
) -> dict[str, Any]:
    """The audit entries about one study, newest first: what was done to it, by whom, and its key's own rows."""
    study = _archive(service).study_by_pseudonym(pseudonym)
    if study is None:
        service.audit(principal, "audit.read", outcome="failed", details={"status": 404})
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    about = [entry for entry in reversed(service.keystore.audit_entries()) if _concerns(entry, study)]
    total = len(about)
    if before is not None:
        about = [entry for entry in about if entry.seq < before]
    page = about[:limit]
    service.audit(
        principal,
        "audit.read",
        outcome="ok",
        target=study.pseudonym,
        details={"returned": len(page), "before": before},
    )
    return {
        "study": study.pseudonym,
        "entries": [entry.to_dict() for entry in page],
        "total": total,
        "next_before": page[-1].seq if len(about) > limit else None,
    }
