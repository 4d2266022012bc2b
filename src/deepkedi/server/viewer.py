"""The web viewer: pages the service serves itself, the routes they read, and the security headers.

No CDN, no framework, no build step: plain HTML, CSS and JavaScript files inside the
package (``deepkedi/server/static``), each served by its own route, so that the
routes that answer without a sign-in are an explicit list (:data:`PUBLIC_ROUTES`)
holding only these files: no patient data, no study id. Everything a page shows
comes from signed-in API calls:

==============================================  =======================  ====================================
route                                           who                      what
==============================================  =======================  ====================================
GET /                                           anyone                   redirect to ``/viewer/``
GET /viewer/, /viewer/login, /viewer/study      anyone                   the pages (HTML shells, no data)
GET /viewer/static/{file}                       anyone                   their style sheet, scripts and icon
GET /api/viewer/studies                         signed in                the studies one may see, revoked
                                                                         ones flagged
GET /api/viewer/studies/{pseudonym}             signed in                one of them (404 for any other)
GET /api/studies/{pseudonym}/ciphertext/{n}     technologist,            the stored cipher image of the
                                                radiologist, researcher  study's n-th object, as a PNG
==============================================  =======================  ====================================

The viewer itself reads the DICOMweb routes (QIDO-RS search, WADO-RS metadata and
rendered frames with ``window=center,width``), which apply the access policy; the
decrypted image reaches only a role that may see the study. A study whose key was
revoked shows its **cipher image**: the index keeps the objects' names after the key
(and with it the sealed metadata) is destroyed, and :func:`deepkedi.api.cipher_image`
needs no key. Every response of the app carries the headers of :class:`SecurityHeaders`.
docs/SERVICE.md, "The web viewer".
"""

from __future__ import annotations

import functools
import io
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import RedirectResponse, Response

from deepkedi import api
from deepkedi.errors import DeepKediError
from deepkedi.server.archive import Archive, InstanceIndex, StudyGone, StudyRecord
from deepkedi.server.deps import CurrentPrincipal, ServiceDep
from deepkedi.server.policy import may_see, may_view_images, visible_filter
from deepkedi.server.principal import Principal, Role
from deepkedi.server.service import Service

__all__ = ["CONTENT_SECURITY_POLICY", "PUBLIC_ROUTES", "SecurityHeaders", "install", "router"]

#: What a page may load: its own scripts, styles, images and API calls; nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: The static files: name in the package's ``static`` folder → media type.
_ASSETS = {
    "kedi.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
    "studies.js": "text/javascript; charset=utf-8",
    "study.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The pages: route → HTML file.
_PAGES = {"/viewer/": "studies.html", "/viewer/login": "login.html", "/viewer/study": "study.html"}

#: (method, path) of the viewer's routes that answer without a sign-in: the pages and their files, no data.
PUBLIC_ROUTES = frozenset(
    {("GET", "/")} | {("GET", path) for path in _PAGES} | {("GET", f"/viewer/static/{name}") for name in _ASSETS}
)

#: The cipher image of an object whose pixels would take more than this is drawn from its raw bytes instead.
_CIPHER_IMAGE_LIMIT = 64 << 20
#: Side of the square a raw container is drawn as (its first bytes, one byte a pixel).
_RAW_SIDE = 512
_NOT_FOUND = "no such study"

router = APIRouter()


# ----------------------------------------------------------------------------------- headers


class SecurityHeaders:
    """ASGI middleware: the same protective headers on every HTTP response of the app.

    - ``Content-Security-Policy`` (:data:`CONTENT_SECURITY_POLICY`) and ``X-Frame-Options: DENY``:
      no inline or foreign script, no framing (clickjacking);
    - ``Referrer-Policy: no-referrer``: a URL (it may hold a study's UID) never leaves in a Referer;
    - ``X-Content-Type-Options: nosniff``, ``Cross-Origin-Opener-Policy`` and
      ``Cross-Origin-Resource-Policy: same-origin``: another site cannot embed an image or a
      script of the service;
    - ``Cache-Control: no-store`` unless the route chose otherwise (only the static files do):
      no image, metadata or list is kept in a browser's or a proxy's cache.
    """

    _HEADERS = (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    )

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self._HEADERS if item[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Add the viewer's routes and the security headers to ``app`` (called by ``create_app``)."""
    app.include_router(router)
    app.add_middleware(SecurityHeaders)


# ----------------------------------------------------------------------------------- pages


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files("deepkedi.server") / "static" / name).read_bytes()


def _file_route(path: str, name: str, media_type: str) -> None:
    """One GET route for one packaged file: no path parameter, so no other file can be named."""

    def serve() -> Response:
        # no-cache: the browser checks again at each use (an upgraded service serves new files at once).
        return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})

    serve.__name__ = "static_" + name.replace(".", "_").replace("-", "_")
    serve.__doc__ = f"The viewer's {name} (no data: the page asks the signed-in API for everything)."
    router.add_api_route(path, serve, methods=["GET"], tags=["viewer"], include_in_schema=False)


for _path, _name in _PAGES.items():
    _file_route(_path, _name, "text/html; charset=utf-8")
for _name, _type in _ASSETS.items():
    _file_route(f"/viewer/static/{_name}", _name, _type)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """The service's address opens the viewer."""
    return RedirectResponse("/viewer/", status_code=307)


# ----------------------------------------------------------------------------------- data


def _archive(service: Service) -> Archive:
    if service.archive is None:
        raise HTTPException(status_code=503, detail="the archive is not running")
    return service.archive


def _identity(archive: Archive, principal: Principal, study: StudyRecord) -> dict[str, Any]:
    """What the list shows of a study whose key is alive: de-identified for a researcher (PS3.15)."""
    attributes = dict(study.attributes)
    if principal.role is Role.RESEARCHER:
        attributes = archive.deidentify_attributes(study, attributes)
    return {
        "study_uid": attributes.get("StudyInstanceUID"),
        "patient_name": attributes.get("PatientName"),
        "patient_id": attributes.get("PatientID"),
        "study_date": attributes.get("StudyDate"),
        "description": attributes.get("StudyDescription"),
        "accession": attributes.get("AccessionNumber"),
    }


def _entry(
    archive: Archive, principal: Principal, study: StudyRecord, counts: tuple[int, int, list[str]]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "pseudonym": study.pseudonym,
        "created": study.created,
        "revoked": study.revoked,
        "series": counts[0],
        "instances": counts[1],
        "modalities": sorted(counts[2]),
    }
    if may_view_images(principal) and not study.revoked:
        try:
            entry.update(_identity(archive, principal, archive.unseal_study(study)))
        except StudyGone:
            entry["revoked"] = True  # revoked in the keystore behind the service's back (kedi keys revoke)
    grant = principal.break_glass_for(study.pseudonym)
    if grant is not None:
        # Seen through break-glass, not an assignment: the page says so (every access is flagged in the audit).
        expires = datetime.fromtimestamp(grant.expires, timezone.utc).replace(microsecond=0)
        entry["break_glass"] = {"grant_id": grant.grant_id, "expires": expires.isoformat().replace("+00:00", "Z")}
    return entry


def _visible_studies(archive: Archive, principal: Principal) -> list[StudyRecord]:
    """The studies ``principal`` may see, revoked ones included; every study for an admin or auditor."""
    if may_view_images(principal):
        return archive.studies(visible_filter(principal), include_revoked=True)
    return archive.all_studies()  # pseudonyms and states only: _entry adds no identifier for these roles


@router.get("/api/viewer/studies", tags=["viewer"])
def viewer_studies(principal: CurrentPrincipal, service: ServiceDep) -> dict[str, Any]:
    """The study list of the viewer: every study the principal may see, with a ``revoked`` flag.

    For the image roles a live study also carries its StudyInstanceUID, patient name
    and ID, date and description (de-identified for a researcher); a revoked one only
    its pseudonym, counts and modalities (its metadata was shredded with its key). A
    study a radiologist sees through a break-glass grant carries ``break_glass`` (the
    grant's id and end). An admin or auditor gets every study without any identifier
    (for its audit history).
    """
    archive = _archive(service)
    studies = _visible_studies(archive, principal)
    counts = archive.counts(s.id for s in studies)
    entries = [_entry(archive, principal, s, counts[s.id]) for s in studies]
    service.audit(
        principal,
        "viewer.studies",
        outcome="ok",
        details={"studies": len(entries), "matches": [e["pseudonym"] for e in entries][:100]},
    )
    return {"studies": entries}


def _study_or_404(service: Service, principal: Principal, pseudonym: str, operation: str) -> StudyRecord:
    """The study if ``principal`` may see it (admins and auditors: any, for its audit); 404 otherwise, audited."""
    study = _archive(service).study_by_pseudonym(pseudonym)
    allowed = study is not None and (not may_view_images(principal) or may_see(principal, study))
    if not allowed:
        # The same answer whether the study exists or not: guessing pseudonyms learns nothing.
        service.audit(
            principal,
            operation,
            outcome="denied",
            target=study.pseudonym if study is not None else None,
            details={"status": 404},
        )
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    assert study is not None
    return study


@router.get("/api/viewer/studies/{pseudonym}", tags=["viewer"])
def viewer_study(pseudonym: str, principal: CurrentPrincipal, service: ServiceDep) -> dict[str, Any]:
    """One study of the list (404 ``no such study`` for one the principal may not see, as for none)."""
    study = _study_or_404(service, principal, pseudonym, "viewer.study")
    archive = _archive(service)
    entry = _entry(archive, principal, study, archive.counts([study.id])[study.id])
    entry["images"] = may_view_images(principal)
    service.audit(
        principal, "viewer.study", outcome="ok", target=study.pseudonym, details={"revoked": entry["revoked"]}
    )
    return entry


def _object_names(service: Service, study: StudyRecord) -> list[str]:
    """The study's object names in arrival order: clear index columns, there after its key is revoked."""
    with service.sessions() as db:
        query = sa.select(InstanceIndex.object_name).where(InstanceIndex.study_id == study.id)
        return list(db.scalars(query.order_by(InstanceIndex.id)))


def cipher_image_png(container: bytes) -> bytes:
    """A stored container as an 8-bit grey PNG: its cipher image, or its raw bytes where it has none.

    The cipher image (:func:`deepkedi.api.cipher_image`, no key needed) holds the
    ciphertext of each pixel word where the plain pixel lies, the picture of the paper's
    Figs. 8-10; its first plane is shown, each word by its most significant byte
    (uniform bytes for AES-GCM). A container whose pixels would take more than 64 MiB,
    or that the cipher image cannot be drawn from, is shown as its first 512 x 512
    bytes, one byte a pixel (fewer rows for a smaller container).
    """
    import numpy as np
    from PIL import Image

    plane: np.ndarray | None = None
    try:
        header = api.read_header(container).header
        if header.pixel_length <= _CIPHER_IMAGE_LIMIT and np.prod(header.shape) > 0:
            pixels = api.cipher_image(container)
            plane = pixels.reshape((-1, *pixels.shape[-2:]))[0] if pixels.ndim >= 2 else None
            if plane is not None and (plane.dtype.kind not in "uif" or min(plane.shape) == 0):
                plane = None  # bool or colour words: drawn from the raw bytes
    except (DeepKediError, ValueError):
        plane = None
    if plane is not None:
        words = np.ascontiguousarray(plane).view(f"<u{plane.dtype.itemsize}")
        grey = (words >> (8 * plane.dtype.itemsize - 8)).astype(np.uint8)
    else:
        raw = np.frombuffer(container[: _RAW_SIDE * _RAW_SIDE], dtype=np.uint8)
        rows = max(1, len(raw) // _RAW_SIDE)
        grey = np.resize(raw, rows * _RAW_SIDE).reshape(rows, _RAW_SIDE) if len(raw) else np.zeros((1, 1), np.uint8)
    out = io.BytesIO()
    Image.fromarray(grey, mode="L").save(out, format="PNG", compress_level=1)
    return out.getvalue()


@router.get("/api/studies/{pseudonym}/ciphertext/{number}", tags=["viewer"])
def study_ciphertext(pseudonym: str, number: int, principal: CurrentPrincipal, service: ServiceDep) -> Response:
    """The cipher image of the study's ``number``-th stored object (from 1, in arrival order), as a PNG.

    For whoever may see the study (403 for a role without images, 404 for a study one
    may not see); works whether or not the study's key was revoked: nothing is decrypted.
    """
    operation = "viewer.ciphertext"
    if not may_view_images(principal):
        raise HTTPException(status_code=403, detail="your role may not do this")  # audited as request.denied
    study = _study_or_404(service, principal, pseudonym, operation)
    names = _object_names(service, study)
    if not 1 <= number <= len(names):
        service.audit(principal, operation, outcome="failed", target=study.pseudonym, details={"status": 404})
        raise HTTPException(status_code=404, detail="no such object")
    container = _archive(service).objects.get(names[number - 1])
    png = cipher_image_png(container)
    service.audit(
        principal, operation, outcome="ok", target=study.pseudonym, details={"object": number, "revoked": study.revoked}
    )
    return Response(png, media_type="image/png")
