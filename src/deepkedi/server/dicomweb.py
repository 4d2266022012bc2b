"""DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS over the encrypted archive, and the study administration routes.

Every route asks :mod:`deepkedi.server.policy` who may see what: a role without
images gets 403 whatever the study; a study the principal may not see is a 404,
exactly as one that does not exist; a study whose key was revoked is a 410. Every
upload, search, view, download and denial is audited with the study's pseudonymous
id as target (never a UID). docs/SERVICE.md ("DICOMweb") lists what is supported.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from deepkedi.errors import DeepKediError
from deepkedi.server.archive import (
    Archive,
    InstanceRecord,
    InvalidInstance,
    ParsedInstance,
    StoreOutcome,
    StudyGone,
    StudyRecord,
    one_key_check_per_request,
    parse_instance,
)
from deepkedi.server.deps import current_principal, get_service
from deepkedi.server.policy import may_see, may_upload, may_view_images
from deepkedi.server.principal import Principal, Role
from deepkedi.server.search import STUDY_MATCHING_KEYS, find_studies, matches_text
from deepkedi.server.service import Service

__all__ = ["router"]

router = APIRouter()


async def _one_key_check_per_request() -> None:
    # Async, so that it runs in the request's own context, which the route's thread inherits.
    one_key_check_per_request()


_dicomweb = APIRouter(prefix="/dicomweb", tags=["dicomweb"], dependencies=[Depends(_one_key_check_per_request)])
_studies = APIRouter(prefix="/api/studies", tags=["studies"])

PrincipalDep = Annotated[Principal, Depends(current_principal)]
ServiceDep = Annotated[Service, Depends(get_service)]

DICOM_JSON = "application/dicom+json"
#: PS3.4 / PS3.18 failure reasons used in STOW-RS responses.
FAILURE_REASONS = {0x0111: "duplicate SOP instance", 0xA700: "refused", 0xC000: "cannot understand"}
_NOT_FOUND = "no such study"
_MULTIPART_PARAM = re.compile(r';\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


# ----------------------------------------------------------------------------------- helpers


def _archive(service: Service) -> Archive:
    if service.archive is None:
        raise HTTPException(status_code=503, detail="the archive is not running")
    return service.archive


def _deny(service: Service, principal: Principal, operation: str, *, status: int, target: str | None = None) -> None:
    service.audit(principal, operation, outcome="denied", target=target, details={"status": status})
    detail = _NOT_FOUND if status == 404 else "your role may not do this"
    raise HTTPException(status_code=status, detail=detail)


def _require_images(service: Service, principal: Principal, operation: str) -> None:
    if not may_view_images(principal):
        _deny(service, principal, operation, status=403)


def _research(principal: Principal) -> bool:
    """Whether ``principal`` sees the de-identified view (UIDs, names, dates replaced; PS3.15 Basic Profile)."""
    return principal.role is Role.RESEARCHER


def _view(service: Service, principal: Principal, study: StudyRecord, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as ``principal`` may see them: de-identified for a researcher, as stored for the others."""
    if _research(principal):
        return _archive(service).deidentify_attributes(study, attributes)
    return dict(attributes)


def _study_for(service: Service, principal: Principal, study_uid: str, operation: str) -> StudyRecord:
    """The study ``study_uid`` if ``principal`` may see it; 403 / 404 / 410 (audited) otherwise."""
    _require_images(service, principal, operation)
    archive = _archive(service)
    study = archive.find_study(study_uid, deidentified=_research(principal))
    if study is None or not may_see(principal, study):
        # Same answer whether the study exists or not: guessing UIDs learns nothing.
        _deny(service, principal, operation, status=404, target=study.pseudonym if study else None)
    assert study is not None
    if study.revoked:
        service.audit(principal, operation, outcome="failed", target=study.pseudonym, details={"status": 410})
        raise HTTPException(status_code=410, detail="the study's key was revoked: its images are gone")
    return study


def _gone(service: Service, principal: Principal, operation: str, study: StudyRecord) -> HTTPException:
    service.audit(principal, operation, outcome="failed", target=study.pseudonym, details={"status": 410})
    return HTTPException(status_code=410, detail="the study's key was revoked: its images are gone")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/dicomweb"


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [{"Alphabetic": str(v)} for v in values]
    return {"vr": vr, "Value": values}


#: Keyword → (tag, VR) of every attribute QIDO-RS returns.
_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "StudyDate": ("00080020", "DA"),
    "StudyTime": ("00080030", "TM"),
    "AccessionNumber": ("00080050", "SH"),
    "ModalitiesInStudy": ("00080061", "CS"),
    "ReferringPhysicianName": ("00080090", "PN"),
    "StudyDescription": ("00081030", "LO"),
    "RetrieveURL": ("00081190", "UR"),
    "PatientName": ("00100010", "PN"),
    "PatientID": ("00100020", "LO"),
    "PatientBirthDate": ("00100030", "DA"),
    "PatientSex": ("00100040", "CS"),
    "StudyInstanceUID": ("0020000D", "UI"),
    "StudyID": ("00200010", "SH"),
    "NumberOfStudyRelatedSeries": ("00201206", "IS"),
    "NumberOfStudyRelatedInstances": ("00201208", "IS"),
    "Modality": ("00080060", "CS"),
    "SeriesDescription": ("0008103E", "LO"),
    "SeriesInstanceUID": ("0020000E", "UI"),
    "SeriesNumber": ("00200011", "IS"),
    "NumberOfSeriesRelatedInstances": ("00201209", "IS"),
    "SOPClassUID": ("00080016", "UI"),
    "SOPInstanceUID": ("00080018", "UI"),
    "InstanceNumber": ("00200013", "IS"),
    "Rows": ("00280010", "US"),
    "Columns": ("00280011", "US"),
    "NumberOfFrames": ("00280008", "IS"),
}
_TAG_TO_KEYWORD = {tag: keyword for keyword, (tag, _) in _ATTRIBUTES.items()}


def _dicom_json(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, value in attributes.items():
        if keyword in _ATTRIBUTES:
            tag, vr = _ATTRIBUTES[keyword]
            number = vr == "IS" and value not in (None, "")
            if number:
                out[tag] = _element(vr, [int(v) for v in value] if isinstance(value, list) else int(value))
            else:
                out[tag] = _element(vr, value)
    return dict(sorted(out.items()))


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, media_type=DICOM_JSON)


# ----------------------------------------------------------------------------------- STOW-RS


def _content_type_params(header: str) -> tuple[str, dict[str, str]]:
    media, _, rest = header.partition(";")
    params = {m.group(1).lower(): m.group(2).strip('"') for m in _MULTIPART_PARAM.finditer(";" + rest)}
    return media.strip().lower(), params


def _split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body (RFC 2046): headers (lower-case names) and content."""
    marker = b"--" + boundary.encode("latin-1")
    start = body.find(marker)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise InvalidInstance("the body is not multipart/related (no opening boundary)")
    parts: list[tuple[dict[str, str], bytes]] = []
    position = start + len(marker)
    delimiter = b"\r\n" + marker
    while True:
        if body[position : position + 2] == b"--":
            return parts
        if body[position : position + 2] != b"\r\n":
            raise InvalidInstance("malformed multipart body (boundary line)")
        position += 2
        end = body.find(delimiter, position)
        if end < 0:
            raise InvalidInstance("malformed multipart body (no closing boundary)")
        head_end = body.find(b"\r\n\r\n", position, end)
        if head_end < 0:
            if body[position:end].startswith(b"\r\n"):  # no headers at all
                head_end, content_start = position - 2, position + 2
            else:
                raise InvalidInstance("malformed multipart body (part headers)")
        else:
            content_start = head_end + 4
        headers: dict[str, str] = {}
        for line in body[position:head_end].split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise InvalidInstance("malformed multipart body (part header)")
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
        parts.append((headers, body[content_start:end]))
        position = end + len(delimiter)
        if len(parts) > 100_000:
            raise InvalidInstance("too many parts")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"the upload is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"the upload is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_upload(content_type: str, body: bytes) -> list[ParsedInstance]:
    media, params = _content_type_params(content_type)
    if media != "multipart/related":
        raise HTTPException(status_code=415, detail='STOW-RS takes multipart/related; type="application/dicom"')
    kind = params.get("type", "application/dicom").lower()
    if kind != "application/dicom":
        raise HTTPException(status_code=415, detail="only application/dicom parts are accepted")
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise HTTPException(status_code=400, detail="the multipart body has no boundary")
    try:
        parts = _split_multipart(body, boundary)
        if not parts:
            raise InvalidInstance("the upload holds no instance")
        parsed = []
        for headers, content in parts:
            part_type = headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
            if part_type != "application/dicom":
                raise InvalidInstance(f"a part is {part_type[:60]}, not application/dicom")
            parsed.append(parse_instance(content))
    except InvalidInstance as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return parsed


def _stow_response(outcomes: list[StoreOutcome], base: str) -> tuple[int, dict[str, Any]]:
    stored = [o for o in outcomes if o.stored]
    failed = [o for o in outcomes if not o.stored]
    payload: dict[str, Any] = {}
    studies = {o.study_instance_uid for o in stored}
    if len(studies) == 1:
        payload["00081190"] = _element("UR", f"{base}/studies/{next(iter(studies))}")
    if failed:
        payload["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _element("UI", o.sop_class_uid),
                    "00081155": _element("UI", o.sop_instance_uid),
                    "00081197": _element("US", o.failure_reason or 0x0110),
                }
                for o in failed
            ],
        }
    if stored:
        payload["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _element("UI", o.sop_class_uid),
                    "00081155": _element("UI", o.sop_instance_uid),
                    "00081190": _element(
                        "UR",
                        f"{base}/studies/{o.study_instance_uid}/series/{o.series_instance_uid}"
                        f"/instances/{o.sop_instance_uid}",
                    ),
                }
                for o in stored
            ],
        }
    # PS3.18 10.5.3: 200 all stored, 202 some (or warnings), 409 none (conflict with what is stored).
    status = 200 if not failed else (202 if stored else 409)
    return status, payload


@_dicomweb.post("/studies")
async def store_instances(request: Request, principal: PrincipalDep, service: ServiceDep) -> Response:
    """STOW-RS: store the instances of a multipart/related upload, encrypted."""
    if not may_upload(principal):
        _deny(service, principal, "dicomweb.store", status=403)
    archive = _archive(service)
    try:
        body = await _read_body(request, service.config.max_upload_bytes)
        parsed = _parse_upload(request.headers.get("content-type", ""), body)
    except HTTPException as exc:
        service.audit(principal, "dicomweb.store", outcome="failed", details={"status": exc.status_code})
        raise

    def store_all() -> list[StoreOutcome]:
        return archive.store_many(parsed, principal)

    outcomes = await run_in_threadpool(store_all)
    by_study: dict[str | None, list[StoreOutcome]] = {}
    for outcome in outcomes:
        by_study.setdefault(outcome.study_pseudonym, []).append(outcome)
    for pseudonym, items in by_study.items():
        ok = sum(1 for o in items if o.stored)
        reasons = sorted({FAILURE_REASONS.get(o.failure_reason or 0, "failed") for o in items if not o.stored})
        service.audit(
            principal,
            "dicomweb.store",
            outcome="ok" if ok else "failed",  # how many failed, and why, is in the details
            target=pseudonym,
            details={"stored": ok, "failed": len(items) - ok, **({"reasons": reasons} if reasons else {})},
        )
    status, payload = _stow_response(outcomes, _base_url(request))
    response = _json(payload, status)
    failed = next((o for o in outcomes if not o.stored), None)
    if failed is not None:
        # PS3.18 10.5.3.1: a Warning header may say why; one line, no identifier.
        response.headers["Warning"] = f'299 kedi "{failed.reason}"'
    return response


# ----------------------------------------------------------------------------------- QIDO-RS

_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}


def _query(request: Request, allowed: Iterable[str]) -> tuple[dict[str, list[str]], int, int]:
    """Matching keys (by keyword; tags given in hex are translated), limit and offset; 400 for the rest."""
    allowed = set(allowed)
    matching: dict[str, list[str]] = {}
    limit, offset = 1000, 0
    for key, value in request.query_params.multi_items():
        keyword = _TAG_TO_KEYWORD.get(key.upper(), key)
        if key in ("limit", "offset"):
            if not value.isdigit():
                raise HTTPException(status_code=400, detail=f"{key} must be a non-negative integer")
            if key == "limit":
                limit = min(int(value), 1000)
            else:
                offset = int(value)
        elif key in _CONTROL:
            continue
        elif keyword in allowed:
            matching.setdefault(keyword, []).extend(v for v in value.split(",") if v != "")
        else:
            raise HTTPException(status_code=400, detail=f"matching on {key[:64]} is not supported")
    return matching, limit, offset


@_dicomweb.get("/studies")
def search_for_studies(request: Request, principal: PrincipalDep, service: ServiceDep) -> Response:
    """QIDO-RS, study level: only the studies the principal may see."""
    operation = "dicomweb.search"
    _require_images(service, principal, operation)
    archive = _archive(service)
    matching, limit, offset = _query(request, STUDY_MATCHING_KEYS)
    research = _research(principal)
    try:
        selected = find_studies(archive, principal, matching, lambda s: _view(service, principal, s, s.attributes))
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    selected = selected[offset : offset + limit]
    views = [_view(service, principal, s, s.attributes) for s in selected]
    counts = archive.counts(s.id for s in selected)
    base = _base_url(request)
    results = []
    for study, attributes in zip(selected, views, strict=True):
        n_series, n_instances, modality_list = counts[study.id]
        attributes.update(
            ModalitiesInStudy=sorted(modality_list),
            NumberOfStudyRelatedSeries=n_series,
            NumberOfStudyRelatedInstances=n_instances,
            RetrieveURL=f"{base}/studies/{attributes.get('StudyInstanceUID', '')}",
        )
        results.append(_dicom_json(attributes))
    service.audit(
        principal,
        operation,
        outcome="ok",
        details={"level": "studies", "matches": [s.pseudonym for s in selected][:100], "deidentified": research},
    )
    return _json(results)


@_dicomweb.get("/studies/{study_uid}/series")
def search_for_series(study_uid: str, request: Request, principal: PrincipalDep, service: ServiceDep) -> Response:
    """QIDO-RS, series of one study."""
    operation = "dicomweb.search"
    study = _study_for(service, principal, study_uid, operation)
    archive = _archive(service)
    matching, limit, offset = _query(request, ("SeriesInstanceUID", "Modality"))
    modality = matching.get("Modality", [None])[0]
    try:
        series = archive.series(study, modality=modality)
        study = archive.unseal_study(study)
    except StudyGone:
        raise _gone(service, principal, operation, study) from None
    views = [(item, _view(service, principal, study, item.attributes)) for item in series]
    wanted = set(matching.get("SeriesInstanceUID", []))
    if wanted:
        views = [(item, attrs) for item, attrs in views if attrs.get("SeriesInstanceUID") in wanted]
    views = views[offset : offset + limit]
    counts: dict[int, int] = {}
    for instance in archive.instances(study):
        counts[instance.series_id] = counts.get(instance.series_id, 0) + 1
    base = _base_url(request)
    results = []
    for item, attributes in views:
        attributes.update(
            StudyInstanceUID=study_uid,
            NumberOfSeriesRelatedInstances=counts.get(item.id, 0),
            RetrieveURL=f"{base}/studies/{study_uid}/series/{attributes.get('SeriesInstanceUID', '')}",
        )
        results.append(_dicom_json(attributes))
    service.audit(principal, operation, outcome="ok", target=study.pseudonym, details={"level": "series"})
    return _json(results)


def _instances_of(
    service: Service, principal: Principal, study: StudyRecord, operation: str, series_uid: str | None
) -> tuple[list[InstanceRecord], dict[int, str]]:
    """The instances of ``study`` (of one series if given) and each series id's UID; 404 for an unknown series."""
    archive = _archive(service)
    try:
        series = archive.series(study, series_uid=series_uid, deidentified=_research(principal))
        if series_uid is not None and not series:
            _deny(service, principal, operation, status=404, target=study.pseudonym)
        uids = {s.id: str(_view(service, principal, study, s.attributes).get("SeriesInstanceUID", "")) for s in series}
        instances = [
            i
            for i in archive.instances(study, series_id=series[0].id if series_uid is not None else None)
            if i.series_id in uids
        ]
    except StudyGone:
        raise _gone(service, principal, operation, study) from None
    return instances, uids


def _search_instances(
    study_uid: str, series_uid: str | None, request: Request, principal: Principal, service: Service
) -> Response:
    operation = "dicomweb.search"
    study = _study_for(service, principal, study_uid, operation)
    matching, limit, offset = _query(request, ("SOPInstanceUID", "SOPClassUID", "InstanceNumber"))
    instances, uids = _instances_of(service, principal, study, operation, series_uid)
    selected = []
    views = [(instance, _view(service, principal, study, instance.attributes)) for instance in instances]
    for instance, attrs in views:
        if any(not any(matches_text(attrs.get(keyword), v) for v in values) for keyword, values in matching.items()):
            continue
        selected.append((instance, attrs))
    selected = selected[offset : offset + limit]
    base = _base_url(request)
    results = []
    for instance, attrs in selected:
        series = uids[instance.series_id]
        attributes = {k: v for k, v in attrs.items() if k in _ATTRIBUTES}
        attributes.update(
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series,
            RetrieveURL=f"{base}/studies/{study_uid}/series/{series}/instances/{attributes.get('SOPInstanceUID', '')}",
        )
        results.append(_dicom_json(attributes))
    service.audit(principal, operation, outcome="ok", target=study.pseudonym, details={"level": "instances"})
    return _json(results)


@_dicomweb.get("/studies/{study_uid}/instances")
def search_for_study_instances(
    study_uid: str, request: Request, principal: PrincipalDep, service: ServiceDep
) -> Response:
    """QIDO-RS, instances of one study."""
    return _search_instances(study_uid, None, request, principal, service)


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}/instances")
def search_for_series_instances(
    study_uid: str, series_uid: str, request: Request, principal: PrincipalDep, service: ServiceDep
) -> Response:
    """QIDO-RS, instances of one series."""
    return _search_instances(study_uid, series_uid, request, principal, service)


# ----------------------------------------------------------------------------------- WADO-RS


def _multipart(parts: Iterable[bytes]) -> Response:
    boundary = secrets.token_hex(16)
    chunks: list[bytes] = []
    for data in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"))
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return Response(
        b"".join(chunks),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


def _read_all(
    service: Service,
    principal: Principal,
    study: StudyRecord,
    instances: list[InstanceRecord],
    operation: str,
) -> Iterator[bytes]:
    """The files of ``instances``: as uploaded, or de-identified for a researcher."""
    archive = _archive(service)
    research = _research(principal)
    for instance in instances:
        try:
            data = archive.read(study, instance)
            yield archive.deidentify(study, data) if research else data
        except StudyGone:
            raise _gone(service, principal, operation, study) from None


def _retrieve(
    service: Service,
    principal: Principal,
    study_uid: str,
    series_uid: str | None,
    sop_uid: str | None,
    operation: str = "dicomweb.retrieve",
) -> tuple[StudyRecord, list[InstanceRecord]]:
    """The study and the instances a WADO-RS URL names; 403 / 404 / 410 (audited) as the policy says."""
    study = _study_for(service, principal, study_uid, operation)
    if sop_uid is None:
        instances, _ = _instances_of(service, principal, study, operation, series_uid)
    else:
        # One instance: looked up by the keyed hashes of its series and SOP Instance UIDs, not by listing the series.
        archive, research = _archive(service), _research(principal)
        try:
            found = (
                archive.instance(study, series_uid=series_uid, sop_uid=sop_uid, deidentified=research)
                if series_uid is not None
                else None
            )
        except StudyGone:
            raise _gone(service, principal, operation, study) from None
        instances = [found] if found is not None else []
    if not instances:
        _deny(service, principal, operation, status=404, target=study.pseudonym)
    return study, instances


@_dicomweb.get("/studies/{study_uid}")
def retrieve_study(study_uid: str, principal: PrincipalDep, service: ServiceDep) -> Response:
    """WADO-RS: every instance of a study, as uploaded."""
    study, instances = _retrieve(service, principal, study_uid, None, None)
    body = list(_read_all(service, principal, study, instances, "dicomweb.retrieve"))
    service.audit(
        principal, "dicomweb.retrieve", outcome="ok", target=study.pseudonym, details={"instances": len(body)}
    )
    return _multipart(body)


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}")
def retrieve_series(study_uid: str, series_uid: str, principal: PrincipalDep, service: ServiceDep) -> Response:
    """WADO-RS: every instance of a series, as uploaded."""
    study, instances = _retrieve(service, principal, study_uid, series_uid, None)
    body = list(_read_all(service, principal, study, instances, "dicomweb.retrieve"))
    service.audit(
        principal, "dicomweb.retrieve", outcome="ok", target=study.pseudonym, details={"instances": len(body)}
    )
    return _multipart(body)


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}")
def retrieve_instance(
    study_uid: str, series_uid: str, sop_uid: str, principal: PrincipalDep, service: ServiceDep
) -> Response:
    """WADO-RS: one instance, byte for byte as uploaded."""
    study, instances = _retrieve(service, principal, study_uid, series_uid, sop_uid)
    body = list(_read_all(service, principal, study, instances, "dicomweb.retrieve"))
    service.audit(principal, "dicomweb.retrieve", outcome="ok", target=study.pseudonym, details={"instances": 1})
    return _multipart(body)


def _metadata_of(data: bytes) -> dict[str, Any]:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    payload: dict[str, Any] = ds.to_json_dict()
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if syntax:
        payload["00020010"] = _element("UI", str(syntax))
    return dict(sorted(payload.items()))


def _metadata(
    service: Service, principal: Principal, study_uid: str, series_uid: str | None, sop_uid: str | None
) -> Response:
    operation = "dicomweb.metadata"
    study, instances = _retrieve(service, principal, study_uid, series_uid, sop_uid, operation)
    results = [_metadata_of(data) for data in _read_all(service, principal, study, instances, operation)]
    service.audit(principal, operation, outcome="ok", target=study.pseudonym, details={"instances": len(results)})
    return _json(results)


@_dicomweb.get("/studies/{study_uid}/metadata")
def retrieve_study_metadata(study_uid: str, principal: PrincipalDep, service: ServiceDep) -> Response:
    """WADO-RS: the DICOM JSON metadata of every instance of a study (no pixel data)."""
    return _metadata(service, principal, study_uid, None, None)


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}/metadata")
def retrieve_series_metadata(study_uid: str, series_uid: str, principal: PrincipalDep, service: ServiceDep) -> Response:
    """WADO-RS: the DICOM JSON metadata of every instance of a series."""
    return _metadata(service, principal, study_uid, series_uid, None)


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata")
def retrieve_instance_metadata(
    study_uid: str, series_uid: str, sop_uid: str, principal: PrincipalDep, service: ServiceDep
) -> Response:
    """WADO-RS: the DICOM JSON metadata of one instance."""
    return _metadata(service, principal, study_uid, series_uid, sop_uid)


#: Working memory one rendered frame may take (as float64): 512 MiB, an 8192 x 8192 colour frame.
MAX_RENDERED_FRAME_BYTES = 512 << 20


def render_frame(
    data: bytes, frame: int, window: tuple[float, float] | None = None, *, media: str = "png", quality: int = 90
) -> bytes:
    """Frame ``frame`` (1-based) of a DICOM file as an 8-bit PNG (``media="jpeg"``: a JPEG of ``quality``), windowed.

    The window is ``window`` (center, width) if given, else the file's first
    Window Center / Width, else the frame's minimum to maximum (after the modality LUT).

    Raises
    ------
    IndexError
        No such frame.
    """
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, convert_color_space, pixel_array

    ds = pydicom.dcmread(io.BytesIO(data))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not 1 <= frame <= frames:
        raise IndexError(frame)
    # One frame decoded, never the whole multi-frame; and a frame that claims more than
    # the limit (a decompression bomb) is refused before anything is decoded.
    frame_bytes = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * 8  # float64 below
    if frame_bytes > MAX_RENDERED_FRAME_BYTES:
        raise ValueError("the frame is too large to render")
    pixels = pixel_array(ds, index=frame - 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3:
        if photometric.startswith("YBR") and ds.file_meta.TransferSyntaxUID.is_compressed is False:
            # pydicom converts JPEG's YCbCr to RGB itself; native YBR data is converted here.
            pixels = convert_color_space(pixels, photometric, "RGB")
        rgb = pixels.astype(np.float64)
        top = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        image = Image.fromarray(np.clip(rgb * (255.0 / top), 0, 255).astype(np.uint8), mode="RGB")
    elif photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(pixels, ds).astype(np.float64)
        top = float(rgb.max() or 1.0)
        image = Image.fromarray(np.clip(rgb * (255.0 / top), 0, 255).astype(np.uint8), mode="RGB")
    else:
        values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
        if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
            center, width = ds.WindowCenter, ds.WindowWidth
            center = center[0] if type(center).__name__ == "MultiValue" else center
            width = width[0] if type(width).__name__ == "MultiValue" else width
            window = (float(center), float(width))
        if window is not None and window[1] > 0:
            low, high = window[0] - window[1] / 2.0, window[0] + window[1] / 2.0
        else:
            low, high = float(values.min()), float(values.max())
        scaled = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0) * 255.0
        if photometric == "MONOCHROME1":
            scaled = 255.0 - scaled
        image = Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
    out = io.BytesIO()
    if media == "jpeg":
        image.save(out, format="JPEG", quality=quality)
    else:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


#: The rendered media types, by preference when the client accepts several equally (PS3.18 §8.3.5).
RENDERED_MEDIA = {"image/png": "png", "image/jpeg": "jpeg"}


def rendered_media(accept: str | None) -> str | None:
    """The rendered media type for an ``Accept`` header: ``"png"``, ``"jpeg"``, or None (none acceptable: 406).

    The highest quality value wins; ``*/*``, ``image/*`` or no header give PNG (lossless:
    what a diagnostic display should get); JPEG only when the client prefers it.

    >>> rendered_media("image/jpeg"), rendered_media("image/png;q=0.5, image/jpeg"), rendered_media(None)
    ('jpeg', 'jpeg', 'png')
    >>> rendered_media("image/*"), rendered_media("application/dicom") is None
    ('png', True)
    """
    if not accept or not accept.strip():
        return "png"
    best: tuple[float, int, str] | None = None
    for order, item in enumerate(accept.split(",")):
        kind, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.lower()
        media = "png" if kind in ("*/*", "image/*") else RENDERED_MEDIA.get(kind)
        if media is not None and q > 0 and (best is None or (q, -order) > (best[0], best[1])):
            best = (q, -order, media)
    return best[2] if best else None


def _window(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    fields = value.split(",")
    try:
        center, width = float(fields[0]), float(fields[1])
    except (IndexError, ValueError):
        raise HTTPException(status_code=400, detail="window is center,width[,linear]") from None
    if len(fields) > 2 and fields[2].strip().lower() not in ("", "linear"):
        raise HTTPException(status_code=400, detail="only the linear window function is supported")
    if width <= 0:
        raise HTTPException(status_code=400, detail="the window width must be positive")
    return center, width


@_dicomweb.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frame}/rendered")
def retrieve_rendered_frame(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame: int,
    principal: PrincipalDep,
    service: ServiceDep,
    request: Request,
    window: str | None = None,
    quality: Annotated[int, Query(ge=1, le=100)] = 90,
) -> Response:
    """WADO-RS rendered: one frame as an 8-bit PNG, or a JPEG when the Accept header prefers it.

    ``window=center,width`` overrides the file's window; ``quality`` (1-100) is the JPEG's.
    """
    operation = "dicomweb.render"
    chosen = _window(window)
    media = rendered_media(request.headers.get("accept"))
    if media is None:
        raise HTTPException(status_code=406, detail="rendered frames are image/png or image/jpeg")
    study, instances = _retrieve(service, principal, study_uid, series_uid, sop_uid, operation)
    how = (media, frame, chosen, quality if media == "jpeg" else None)
    try:
        image = _archive(service).rendered(
            study, instances[0], how, lambda data: render_frame(data, frame, chosen, media=media, quality=quality)
        )
    except StudyGone:
        raise _gone(service, principal, operation, study) from None
    except IndexError:
        service.audit(principal, operation, outcome="failed", target=study.pseudonym, details={"status": 404})
        raise HTTPException(status_code=404, detail="no such frame") from None
    # Deliberate: a stored instance that cannot be shown is 422, not a 500. pydicom raises
    # NotImplementedError (no decoder for the transfer syntax), RuntimeError (a decoder that
    # fails), AttributeError (no Rows, Columns or Pixel Data) and ValueError (bad pixel
    # description); render_frame raises ValueError for a frame too large to render.
    except (DeepKediError, ValueError, NotImplementedError, RuntimeError, AttributeError) as exc:
        service.audit(principal, operation, outcome="failed", target=study.pseudonym, details={"status": 422})
        raise HTTPException(status_code=422, detail=f"the frame cannot be rendered ({type(exc).__name__})") from None
    service.audit(principal, operation, outcome="ok", target=study.pseudonym, details={"frame": frame})
    return Response(image, media_type=f"image/{media}")


# ----------------------------------------------------------------------------------- administration


class Assignment(BaseModel):
    """Who a study is assigned to: a radiologist (user id), a group, or both; null clears."""

    user_id: int | None = Field(default=None, ge=1)
    group: str | None = Field(default=None, min_length=1, max_length=128)


async def _assignment(request: Request, principal: PrincipalDep, service: ServiceDep) -> Assignment:
    """The assignment in the request's JSON body, read only once the user is known to be an admin (401, 403 first)."""
    if principal.role is not Role.ADMIN:
        _deny(service, principal, "study.assign", status=403)
    try:
        return Assignment.model_validate(await request.json())
    except (ValueError, ValidationError):
        raise HTTPException(
            status_code=422, detail='the body must be JSON: {"user_id": int or null, "group": str or null}'
        ) from None


def _admin_study(service: Service, principal: Principal, pseudonym: str, operation: str) -> StudyRecord:
    if principal.role is not Role.ADMIN:
        _deny(service, principal, operation, status=403)
    study = _archive(service).study_by_pseudonym(pseudonym)
    if study is None:
        service.audit(principal, operation, outcome="failed", details={"status": 404})
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    return study


def _admin_view(study: StudyRecord, counts: tuple[int, int, list[str]]) -> dict[str, Any]:
    return {
        "id": study.pseudonym,
        "created": study.created,
        "uploader_id": study.uploader_id,
        "assigned_user_id": study.assigned_user_id,
        "assigned_group": study.assigned_group,
        "revoked": study.revoked,
        "series": counts[0],
        "instances": counts[1],
        "modalities": sorted(counts[2]),
    }


@_studies.get("")
def list_studies(principal: PrincipalDep, service: ServiceDep) -> list[dict[str, Any]]:
    """The admin's list: pseudonymous ids, assignment and state; no identifier."""
    if principal.role is not Role.ADMIN:
        _deny(service, principal, "study.list", status=403)
    archive = _archive(service)
    studies = archive.all_studies()
    counts = archive.counts(s.id for s in studies)
    service.audit(principal, "study.list", outcome="ok", details={"studies": len(studies)})
    return [_admin_view(s, counts[s.id]) for s in studies]


@_studies.post("/{pseudonym}/assign")
def assign_study(
    pseudonym: str,
    assignment: Annotated[Assignment, Depends(_assignment)],
    principal: PrincipalDep,
    service: ServiceDep,
) -> dict[str, Any]:
    """Assign a study to a radiologist and/or a group (admin)."""
    study = _admin_study(service, principal, pseudonym, "study.assign")
    archive = _archive(service)
    study = archive.assign(study, user_id=assignment.user_id, group=assignment.group)
    service.audit(
        principal,
        "study.assign",
        outcome="ok",
        target=study.pseudonym,
        details={"user_id": assignment.user_id, "group": assignment.group},
    )
    return _admin_view(study, archive.counts([study.id])[study.id])


@_studies.post("/{pseudonym}/revoke")
def revoke_study(pseudonym: str, principal: PrincipalDep, service: ServiceDep) -> dict[str, Any]:
    """Crypto-shred a study (admin): its key is destroyed; every later read is 410 Gone."""
    study = _admin_study(service, principal, pseudonym, "study.revoke")
    archive = _archive(service)
    study = archive.revoke(study, actor=f"{principal.username} (serve)")
    service.audit(principal, "study.revoke", outcome="ok", target=study.pseudonym)
    return _admin_view(study, archive.counts([study.id])[study.id])


router.include_router(_dicomweb)
router.include_router(_studies)
