"""The DICOM network node: C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE over the service's encrypted archive.

A modality or a viewer speaks DIMSE (PS3.7) to the same :class:`~deepkedi.server.service.Service`
as ``kedi serve``: the same keystore, archive, access policy and audit trail. Each peer is
known by its calling AE title, mapped to one of the service's users; that user's role says
what the peer may do (docs/DICOM_NODE.md):

- technologist (a modality): C-STORE; C-FIND, C-GET and C-MOVE of the studies it stored;
- radiologist (a viewer): C-FIND, C-GET and C-MOVE of the studies assigned to the user or their group;
- any other role: C-ECHO only (the de-identified research view is not offered over DIMSE).

An AE title not on the list is rejected at association (A-ASSOCIATE-RJ, "calling AE
title not recognised"). Every association, refusal, store, find, get and move is audited
(``dicom.associate``, ``dicom.store``, ``dicom.find``, ``dicom.get``, ``dicom.move``)
with the study's pseudonymous id as target, never a UID.

C-STORE keeps what the peer sent: the data set's bytes, as received, behind a File Meta
Information header, are what the archive encrypts, and what C-GET and C-MOVE (to the
configured destinations only) send back: the bytes after the meta header, never decoded
and re-encoded. The C-STORE response is a success only once the instance is stored (or
is a byte-identical duplicate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepkedi.fileio import scratch_folder
from deepkedi.server import accounts, grants
from deepkedi.server.archive import (
    STUDY_TAGS,
    Archive,
    InstanceRecord,
    InvalidInstance,
    StoreOutcome,
    StudyGone,
    StudyRecord,
    parse_instance,
)
from deepkedi.server.policy import may_see, may_upload
from deepkedi.server.principal import Principal, Role
from deepkedi.server.search import STUDY_MATCHING_KEYS, find_studies, matches_date, matches_text

if TYPE_CHECKING:
    from pydicom import Dataset
    from pynetdicom.events import Event
    from pynetdicom.transport import ThreadedAssociationServer

    from deepkedi.server.service import AuditEvent, Service

__all__ = [
    "DEFAULT_AE_TITLE",
    "QUERY_ROLES",
    "DicomNode",
    "check_ae_title",
    "parse_move_destinations",
    "parse_peers",
]

DEFAULT_AE_TITLE = "KEDI"
#: Roles whose peers may query (C-FIND) and retrieve (C-GET) the studies the policy lets their user see.
QUERY_ROLES = frozenset({Role.TECHNOLOGIST, Role.RADIOLOGIST})

# SOP classes (PS3.4): Verification, Study Root Query/Retrieve Information Model FIND and GET.
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
# DIMSE statuses (PS3.4 B.2.3, C.4; PS3.7 C).
SUCCESS = 0x0000
PENDING = 0xFF00
NOT_AUTHORISED = 0x0124
DUPLICATE = 0x0111
OUT_OF_RESOURCES = 0xA700
MOVE_DESTINATION_UNKNOWN = 0xA801
#: The largest P-DATA PDU the node accepts (its Maximum Length Received, PS3.8 D.3.3.1): 1 MiB.
MAXIMUM_PDU_SIZE = 1 << 20
#: Most presentation contexts one association may propose (PS3.8: context ids are odd numbers up to 255).
MAX_CONTEXTS = 128
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000

_LOG = logging.getLogger(__name__)
#: An AE title (PS3.5 6.2, VR AE): 1 to 16 characters of the default repertoire, no backslash, no control.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
_LEVELS = ("STUDY", "SERIES", "IMAGE")
#: Attributes a C-FIND answer may carry at each level (what the archive keeps, sealed, and what it counts).
_STUDY_RETURN = (
    *STUDY_TAGS,
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
_SERIES_RETURN = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)
_IMAGE_RETURN = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
)
_SERIES_MATCHING = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription")
_IMAGE_MATCHING = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")
#: Elements of an identifier that are not matching keys.
_NOT_KEYS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "TimezoneOffsetFromUTC"})


def check_ae_title(title: str) -> str:
    """``title`` without its padding, if it is a valid AE title (1-16 characters, no backslash); ValueError if not."""
    if not isinstance(title, str):
        raise TypeError("an AE title is a string")
    stripped = title.strip(" ")
    if not _AE_TITLE.fullmatch(stripped):
        raise ValueError(f"{title[:32]!r} is not an AE title (1 to 16 printable ASCII characters, no backslash)")
    return stripped


def parse_peers(value: Any) -> dict[str, str]:
    """The allow-list of peers, calling AE title → the service user it acts as, checked.

    ``value`` is a mapping (as read from the JSON file ``kedi dicom-node --peers`` takes):
    ``{"CT_SCANNER_1": "tech-ct", "VIEWER_1": "dr-house"}``.

    Raises
    ------
    ValueError
        Not a mapping of AE titles to user names, or an AE title given twice.
    """
    if not isinstance(value, Mapping) or not value:
        raise ValueError('the peers are a JSON object: {"CALLING_AE_TITLE": "user name", ...}')
    peers: dict[str, str] = {}
    for title, username in value.items():
        ae = check_ae_title(title)
        if not isinstance(username, str) or not username:
            raise ValueError(f"the peer {ae} must name a service user")
        if ae in peers:
            raise ValueError(f"the AE title {ae} is given twice")
        peers[ae] = accounts.check_username(username)
    return peers


def parse_move_destinations(value: Any) -> dict[str, tuple[str, int]]:
    """The C-MOVE destinations, AE title → (host, port), checked.

    ``value`` is a mapping (as read from the JSON file ``kedi dicom-node --move-destinations``
    takes): ``{"VIEWER_1_STORE": "10.1.2.3:104"}``. A C-MOVE may send only to these.

    Raises
    ------
    ValueError
        Not a mapping of AE titles to ``host:port``.
    """
    if not isinstance(value, Mapping):
        raise ValueError('the move destinations are a JSON object: {"AE_TITLE": "host:port", ...}')
    destinations: dict[str, tuple[str, int]] = {}
    for title, address in value.items():
        ae = check_ae_title(title)
        host, sep, port = str(address).rpartition(":") if isinstance(address, str) else ("", "", "")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"the move destination {ae} must be host:port")
        destinations[ae] = (host.strip("[]"), int(port))
    return destinations


@dataclass(frozen=True)
class _Peer:
    ae_title: str
    address: str | None


def _prefer_the_requestors_order(event: Event) -> None:
    """Accept, in each presentation context, the first transfer syntax the peer proposed that the node supports.

    pynetdicom otherwise takes the acceptor's own order, so that a modality proposing
    Explicit VR first would be told to send Implicit VR (re-encoded by it), and a C-GET
    peer proposing JPEG 2000 first would not be sent the JPEG 2000 instances the node
    holds (it never transcodes: it sends the stored bytes). The node's contexts are this
    association's own copy: reordering them changes no other association.
    """
    request = event.assoc.requestor.primitive
    if request is None:
        return
    order: dict[str, list[str]] = {}
    for context in request.presentation_context_definition_list:
        proposed = order.setdefault(str(context.abstract_syntax), [])
        proposed.extend(str(s) for s in context.transfer_syntax if str(s) not in proposed)
    for context in event.assoc.acceptor.supported_contexts:
        wanted = order.get(str(context.abstract_syntax))
        if wanted:
            supported = [str(s) for s in context.transfer_syntax]
            preferred: list[Any] = [s for s in wanted if s in supported] + [s for s in supported if s not in wanted]
            context.transfer_syntax = preferred


def _peer_of(event: Event) -> _Peer:
    requestor = event.assoc.requestor
    return _Peer(ae_title=str(requestor.ae_title).strip(), address=requestor.address or None)


def _status(code: int, comment: str | None = None) -> Dataset:
    from pydicom import Dataset

    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


def _values(identifier: Dataset, keyword: str) -> list[str]:
    """The non-empty values of ``keyword`` in a query identifier (a list for multi-valued UIDs)."""
    element = identifier.get(keyword)
    if element is None or element == "" or element is None:
        return []
    if type(element).__name__ == "MultiValue" or isinstance(element, (list, tuple)):
        return [str(v).strip() for v in element if str(v).strip()]
    text = str(element).strip("\x00 ")
    return [text] if text else []


def _set(ds: Dataset, keyword: str, value: Any) -> None:
    """Set ``keyword`` on an answer; a value the VR refuses leaves the element empty rather than failing the query."""
    if value is None:
        setattr(ds, keyword, "")
        return
    if isinstance(value, list):
        value = [str(v) for v in value] or ""
    elif isinstance(value, int):
        value = str(value)
    try:
        setattr(ds, keyword, value)
    except (ValueError, TypeError, OverflowError):
        setattr(ds, keyword, "")


class _Refused(Exception):
    """A query the node refuses: its DIMSE status and a one-line comment."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


class DicomNode:
    """A DICOM application entity over ``service``'s archive (C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE SCP; Study Root).

    Parameters
    ----------
    service
        The running service (its archive, keystore, users and audit), as
        :func:`deepkedi.server.app.create_app` builds it.
    ae_title
        The node's own AE title; associations calling another title are rejected.
    peers
        The allow-list: calling AE title → the user name of the service user the peer acts as
        (:func:`parse_peers`).
    move_destinations
        Where a C-MOVE may send: AE title → ``"host:port"`` (:func:`parse_move_destinations`).

    Notes
    -----
    :meth:`start` sets pynetdicom's ``STORE_SEND_CHUNKED_DATASET`` for the process, so
    that C-GET sends a stored data set's bytes as they are, never decoded and re-encoded
    (the retrieving peer must accept the instance's transfer syntax).
    """

    def __init__(
        self,
        service: Service,
        *,
        ae_title: str = DEFAULT_AE_TITLE,
        peers: Mapping[str, str],
        move_destinations: Mapping[str, str] | None = None,
    ) -> None:
        if service.archive is None:
            raise ValueError("the service has no archive")
        self.service = service
        self.archive: Archive = service.archive
        self.ae_title = check_ae_title(ae_title)
        self.peers = parse_peers(peers)
        self.move_destinations = parse_move_destinations(move_destinations or {})
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._ae = self._application_entity()

    # ------------------------------------------------------------------------------ setup

    def _application_entity(self) -> Any:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        # The largest PDU the node receives: pynetdicom's default (16 KiB) splits a 512 x 512 CT slice
        # into 33 PDUs, each decoded by a Python loop; DCMTK sends up to 128 KiB when allowed (5).
        ae.maximum_pdu_size = MAXIMUM_PDU_SIZE
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.peers)
        ae.add_supported_context(VERIFICATION)
        # Every storage SOP class in every transfer syntax pydicom reads: the archive stores the bytes
        # as received and only parses the header. scp_role and scu_role: the same contexts carry the
        # C-STORE sub-operations of a C-GET, the peer then acting as the Storage SCP.
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
        ae.add_supported_context(STUDY_ROOT_FIND)
        ae.add_supported_context(STUDY_ROOT_GET)
        ae.add_supported_context(STUDY_ROOT_MOVE)
        # The associations a C-MOVE opens to its destination send stored bytes as they are, as C-GET does.
        open_association = ae.associate

        def associate(*args: Any, **kwargs: Any) -> Any:
            association = open_association(*args, **kwargs)
            _send_stored_bytes(association)
            return association

        ae.associate = associate  # type: ignore[method-assign]
        self._handlers = [
            (evt.EVT_REQUESTED, _prefer_the_requestors_order),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
        ]
        return ae

    def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port`` (0: a free port) in background threads; the address bound."""
        from pynetdicom import _config

        _config.STORE_SEND_CHUNKED_DATASET = True
        # pynetdicom logs every query identifier and every received data set's summary at INFO and
        # DEBUG: patient names and UIDs. Its warnings and errors say what failed, without them.
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the node is already running")
            self._server = self._ae.start_server((host, port), block=False, evt_handlers=self._handlers)
            bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop listening and end the open associations."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()

    # ------------------------------------------------------------------------------ peers

    def _principal(self, peer: _Peer) -> Principal | None:
        """The service user the peer acts as, with their break-glass grants in force; None if unknown or disabled."""
        username = self.peers.get(peer.ae_title)
        if username is None:
            return None
        with self.service.read_sessions() as db:
            user = accounts.find_user(db, username)
            if user is None or user.disabled:
                return None
            return grants.with_grants(db, user.principal(peer.address))

    def _audit(
        self,
        principal: Principal | None,
        operation: str,
        peer: _Peer,
        *,
        outcome: str,
        target: str | None = None,
        **details: Any,
    ) -> None:
        self.service.audit(principal, operation, outcome=outcome, target=target, **self._peer_fields(peer, details))

    def _audit_event(
        self,
        principal: Principal | None,
        operation: str,
        peer: _Peer,
        *,
        outcome: str,
        target: str | None = None,
        **details: Any,
    ) -> AuditEvent:
        """The audit row of ``operation`` by ``peer``, not yet written (:meth:`Service.audit_event`)."""
        return self.service.audit_event(
            principal, operation, outcome=outcome, target=target, **self._peer_fields(peer, details)
        )

    def _peer_fields(self, peer: _Peer, details: dict[str, Any]) -> dict[str, Any]:
        """What every audit row of a peer's operation carries: the AE titles, the peer's user and address."""
        record = {"calling_ae": peer.ae_title, "called_ae": self.ae_title, **details}
        return {"details": record, "actor": self.peers.get(peer.ae_title), "address": peer.address}

    def _on_accepted(self, event: Event) -> None:
        peer = _peer_of(event)
        principal = self._principal(peer)
        if principal is None:
            # On the list, but its user is unknown or disabled: every operation but C-ECHO is refused.
            self._audit(
                None, "dicom.associate", peer, outcome="denied", reason="the peer's user is unknown or disabled"
            )
        else:
            self._audit(principal, "dicom.associate", peer, outcome="ok")

    def _on_rejected(self, event: Event) -> None:
        peer = _peer_of(event)
        reason = "calling AE title not recognised" if peer.ae_title not in self.peers else "association rejected"
        self._audit(None, "dicom.associate", peer, outcome="denied", reason=reason)

    def _on_echo(self, event: Event) -> int:
        return SUCCESS

    # ------------------------------------------------------------------------------ C-STORE

    def _on_store(self, event: Event) -> Dataset:
        peer = _peer_of(event)
        try:
            return self._store(event, peer)
        except Exception as exc:  # noqa: BLE001 - never a success without a stored instance, never a crash
            _LOG.error("C-STORE from %s failed: %s", peer.ae_title, type(exc).__name__)
            with contextlib.suppress(Exception):
                self._audit(None, "dicom.store", peer, outcome="failed", status=f"0x{OUT_OF_RESOURCES:04X}")
            return _status(OUT_OF_RESOURCES, "the instance could not be stored")

    def _store(self, event: Event, peer: _Peer) -> Dataset:
        principal = self._principal(peer)
        if principal is None or not may_upload(principal):
            self._audit(principal, "dicom.store", peer, outcome="denied", status=f"0x{NOT_AUTHORISED:04X}")
            return _status(NOT_AUTHORISED, "this AE title may not store")
        request: Any = event.request  # a C-STORE request (the handler of EVT_C_STORE)
        try:
            parsed = parse_instance(event.encoded_dataset(include_meta=True))
        except InvalidInstance as exc:
            self._audit(
                principal, "dicom.store", peer, outcome="failed", status=f"0x{CANNOT_UNDERSTAND:04X}", reason=str(exc)
            )
            return _status(CANNOT_UNDERSTAND, str(exc))
        if (parsed.sop_class_uid, parsed.sop_uid) != (
            str(request.AffectedSOPClassUID or ""),
            str(request.AffectedSOPInstanceUID or ""),
        ):
            reason = "the data set's SOP Class or Instance UID is not the request's"
            self._audit(
                principal, "dicom.store", peer, outcome="failed", status=f"0x{DOES_NOT_MATCH:04X}", reason=reason
            )
            return _status(DOES_NOT_MATCH, reason)

        def stored_event(outcome: StoreOutcome) -> AuditEvent:
            # The event of an instance written now, committed with its index rows (one commit, not two).
            return self._audit_event(
                principal,
                "dicom.store",
                peer,
                outcome="ok",
                target=outcome.study_pseudonym,
                status=f"0x{SUCCESS:04X}",
                duplicate=False,
            )

        outcome = self.archive.store(parsed, principal, audit=stored_event)
        if outcome.stored and not outcome.already_stored:
            return _status(SUCCESS)  # audited with the index rows
        if outcome.stored:
            self._audit(
                principal,
                "dicom.store",
                peer,
                outcome="ok",
                target=outcome.study_pseudonym,
                status=f"0x{SUCCESS:04X}",
                duplicate=outcome.already_stored,
            )
            return _status(SUCCESS)
        code = outcome.failure_reason or OUT_OF_RESOURCES
        self._audit(
            principal,
            "dicom.store",
            peer,
            outcome="failed",
            target=outcome.study_pseudonym,
            status=f"0x{code:04X}",
            reason=outcome.reason,
        )
        return _status(code, outcome.reason)

    # ------------------------------------------------------------------------------ queries

    def _query_principal(self, peer: _Peer, operation: str) -> Principal:
        principal = self._principal(peer)
        if principal is None or principal.role not in QUERY_ROLES:
            self._audit(principal, operation, peer, outcome="denied", status=f"0x{NOT_AUTHORISED:04X}")
            raise _Refused(NOT_AUTHORISED, "this AE title may not query or retrieve")
        return principal

    @staticmethod
    def _level(identifier: Dataset) -> str:
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        if level not in _LEVELS:
            raise _Refused(DOES_NOT_MATCH, "QueryRetrieveLevel must be STUDY, SERIES or IMAGE")
        return level

    def _visible_study(self, principal: Principal, study_uid: str) -> StudyRecord | None:
        """The study if ``principal`` may see it and its key is in force; None otherwise (as if it did not exist)."""
        study = self.archive.find_study(study_uid)
        if study is None or study.revoked or not may_see(principal, study):
            return None
        return study

    def _one_uid(self, identifier: Dataset, keyword: str, level: str) -> str:
        values = _values(identifier, keyword)
        if len(values) != 1:
            raise _Refused(DOES_NOT_MATCH, f"a {level} query names exactly one {keyword}")
        return values[0]

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        peer = _peer_of(event)
        try:
            principal = self._query_principal(peer, "dicom.find")
            identifier = event.identifier
            level = self._level(identifier)
            answers, targets = self._find(principal, identifier, level)
        except _Refused as refused:
            if refused.status != NOT_AUTHORISED:
                self._audit(
                    None, "dicom.find", peer, outcome="failed", status=f"0x{refused.status:04X}", reason=refused.comment
                )
            yield refused.status, None
            return
        except Exception as exc:  # noqa: BLE001 - a failure status, never a dropped association
            _LOG.error("C-FIND from %s failed: %s", peer.ae_title, type(exc).__name__)
            yield CANNOT_UNDERSTAND, None
            return
        target = targets[0] if level != "STUDY" and targets else None
        self._audit(
            principal,
            "dicom.find",
            peer,
            outcome="ok",
            target=target,
            level=level,
            matches=targets[:100],
            answers=len(answers),
        )
        for answer in answers:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield PENDING, answer
        yield SUCCESS, None

    def _answer(
        self, identifier: Dataset, level: str, attributes: Mapping[str, Any], allowed: tuple[str, ...]
    ) -> Dataset:
        from pydicom import Dataset

        answer = Dataset()
        answer.SpecificCharacterSet = "ISO_IR 192"
        answer.QueryRetrieveLevel = level
        answer.RetrieveAETitle = self.ae_title
        for element in identifier:
            keyword = element.keyword
            if keyword in _NOT_KEYS or not keyword:
                continue
            _set(answer, keyword, attributes.get(keyword) if keyword in allowed else None)
        return answer

    @staticmethod
    def _matching(identifier: Dataset, allowed: tuple[str, ...], level: str) -> dict[str, list[str]]:
        matching: dict[str, list[str]] = {}
        for element in identifier:
            keyword = element.keyword
            if keyword in _NOT_KEYS or not keyword or element.VR == "SQ":
                continue
            values = _values(identifier, keyword)
            if not values:
                continue  # a return key only
            if keyword not in allowed:
                raise _Refused(CANNOT_UNDERSTAND, f"matching on {keyword[:40]} is not supported at {level} level")
            matching[keyword] = values
        return matching

    @staticmethod
    def _matches(attributes: Mapping[str, Any], matching: Mapping[str, list[str]]) -> bool:
        from pydicom.datadict import dictionary_VR

        for keyword, values in matching.items():
            vr = dictionary_VR(keyword)
            value = attributes.get(keyword)
            if vr == "UI":
                ok = str(value or "") in values
            elif vr in ("DA", "TM", "DT"):
                ok = any(matches_date(value, v) for v in values)
            else:
                ok = any(matches_text(value, v, case=vr != "PN") for v in values)
            if not ok:
                return False
        return True

    def _find(self, principal: Principal, identifier: Dataset, level: str) -> tuple[list[Dataset], list[str]]:
        archive = self.archive
        if level == "STUDY":
            matching = self._matching(identifier, STUDY_MATCHING_KEYS, level)
            if len(matching.get("ModalitiesInStudy", [])) > 1:
                raise _Refused(CANNOT_UNDERSTAND, "one modality per query")
            try:
                studies = find_studies(archive, principal, matching, lambda s: s.attributes)
            except ValueError as exc:
                raise _Refused(CANNOT_UNDERSTAND, str(exc)) from None
            counts = archive.counts(s.id for s in studies)
            answers = []
            for study in studies:
                n_series, n_instances, modalities = counts[study.id]
                attributes = {
                    **study.attributes,
                    "ModalitiesInStudy": sorted(modalities),
                    "NumberOfStudyRelatedSeries": n_series,
                    "NumberOfStudyRelatedInstances": n_instances,
                }
                answers.append(self._answer(identifier, level, attributes, _STUDY_RETURN))
            return answers, [s.pseudonym for s in studies]
        study_uid = self._one_uid(identifier, "StudyInstanceUID", level)
        keys = _SERIES_MATCHING if level == "SERIES" else ("SeriesInstanceUID", *_IMAGE_MATCHING)
        matching = self._matching(identifier, ("StudyInstanceUID", *keys), level)
        matching.pop("StudyInstanceUID", None)
        visible = self._visible_study(principal, study_uid)
        if visible is None:
            return [], []
        study = visible
        try:
            series = archive.series(study)
            instances = archive.instances(study)
        except StudyGone:
            return [], []
        answers = []
        if level == "SERIES":
            counted: dict[int, int] = {}
            for instance in instances:
                counted[instance.series_id] = counted.get(instance.series_id, 0) + 1
            for item in series:
                attributes = {
                    **item.attributes,
                    "StudyInstanceUID": study_uid,
                    "NumberOfSeriesRelatedInstances": counted.get(item.id, 0),
                }
                if self._matches(attributes, matching):
                    answers.append(self._answer(identifier, level, attributes, _SERIES_RETURN))
        else:
            series_uid = self._one_uid(identifier, "SeriesInstanceUID", level)
            matching.pop("SeriesInstanceUID", None)
            wanted = {s.id for s in series if s.attributes.get("SeriesInstanceUID") == series_uid}
            for instance in instances:
                attributes = {**instance.attributes, "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
                if instance.series_id in wanted and self._matches(attributes, matching):
                    answers.append(self._answer(identifier, level, attributes, _IMAGE_RETURN))
        return answers, [study.pseudonym]

    # ------------------------------------------------------------------------------ C-GET

    def _retrievable(
        self, principal: Principal, identifier: Dataset, level: str
    ) -> list[tuple[StudyRecord, list[InstanceRecord]]]:
        """The instances a C-GET identifier names among the studies ``principal`` may see, by study."""
        study_uids = _values(identifier, "StudyInstanceUID")
        if not study_uids or (level != "STUDY" and len(study_uids) != 1):
            raise _Refused(DOES_NOT_MATCH, "a C-GET names its StudyInstanceUID (one, below STUDY level)")
        series_uids = _values(identifier, "SeriesInstanceUID") if level != "STUDY" else []
        sop_uids = set(_values(identifier, "SOPInstanceUID")) if level == "IMAGE" else set()
        if level != "STUDY" and not series_uids:
            raise _Refused(DOES_NOT_MATCH, "a SERIES or IMAGE C-GET names its SeriesInstanceUID")
        if level == "IMAGE" and (len(series_uids) != 1 or not sop_uids):
            raise _Refused(DOES_NOT_MATCH, "an IMAGE C-GET names one SeriesInstanceUID and its SOPInstanceUIDs")
        found = []
        for study_uid in dict.fromkeys(study_uids):
            study = self._visible_study(principal, study_uid)
            if study is None:
                continue
            try:
                series = self.archive.series(study)
                instances = self.archive.instances(study)
            except StudyGone:
                continue
            if series_uids:
                wanted = {s.id for s in series if s.attributes.get("SeriesInstanceUID") in series_uids}
                instances = [i for i in instances if i.series_id in wanted]
            if sop_uids:
                instances = [i for i in instances if i.attributes.get("SOPInstanceUID") in sop_uids]
            if instances:
                found.append((study, instances))
        return found

    def _on_get(self, event: Event) -> Iterator[Any]:
        peer = _peer_of(event)
        try:
            principal = self._query_principal(peer, "dicom.get")
            identifier = event.identifier
            level = self._level(identifier)
            found = self._retrievable(principal, identifier, level)
        except _Refused as refused:
            if refused.status != NOT_AUTHORISED:
                self._audit(
                    None, "dicom.get", peer, outcome="failed", status=f"0x{refused.status:04X}", reason=refused.comment
                )
            yield 0
            yield refused.status, None
            return
        except Exception as exc:  # noqa: BLE001 - a failure status, never a dropped association
            _LOG.error("C-GET from %s failed: %s", peer.ae_title, type(exc).__name__)
            yield 0
            yield CANNOT_UNDERSTAND, None
            return
        _send_stored_bytes(event.assoc)
        yield sum(len(instances) for _, instances in found)
        yield from self._send(event, principal, peer, "dicom.get", level, found)

    def _send(
        self,
        event: Event,
        principal: Principal,
        peer: _Peer,
        operation: str,
        level: str,
        found: list[tuple[StudyRecord, list[InstanceRecord]]],
        **details: Any,
    ) -> Iterator[Any]:
        """The C-STORE sub-operations of a C-GET or C-MOVE: each instance decrypted, staged, sent as stored."""
        if not found:
            self._audit(principal, operation, peer, outcome="ok", level=level, instances=0, **details)
        with scratch_folder(_staging_dir(), "kedi-dicom-get") as folder:
            for study, instances in found:
                sent = 0
                failure = None
                for instance in instances:
                    if event.is_cancelled:
                        failure = "cancelled"
                        break
                    # The stored file is decrypted to a private staging folder (in memory where the
                    # system has /dev/shm) for pynetdicom to send the data set's bytes as they are.
                    path = folder / "instance.dcm"
                    try:
                        data = self.archive.read(study, instance)
                    except StudyGone:
                        failure = "the study's key was revoked"
                        break
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                    yield PENDING, _stored_instance(path, instance)
                    sent += 1
                self._audit(
                    principal,
                    operation,
                    peer,
                    outcome="failed" if failure else "ok",
                    target=study.pseudonym,
                    level=level,
                    instances=sent,
                    **details,
                    **({"reason": failure} if failure else {}),
                )
                if failure == "cancelled":
                    yield 0xFE00, None
                    return
                if failure:
                    yield CANNOT_UNDERSTAND, None
                    return

    # ------------------------------------------------------------------------------ C-MOVE

    def _on_move(self, event: Event) -> Iterator[Any]:
        from pynetdicom.presentation import build_context

        peer = _peer_of(event)
        name = str(event.move_destination or "").strip()
        destination = self.move_destinations.get(name)
        if destination is None:
            self._audit(
                None, "dicom.move", peer, outcome="failed", status=f"0x{MOVE_DESTINATION_UNKNOWN:04X}",
                destination=name[:16],
            )  # fmt: skip
            yield None, None
            return
        try:
            principal = self._query_principal(peer, "dicom.move")
            identifier = event.identifier
            level = self._level(identifier)
            found = self._retrievable(principal, identifier, level)
            syntaxes = sorted(
                {
                    (str(i.attributes.get("SOPClassUID", "")), str(i.attributes.get("TransferSyntaxUID", "")))
                    for _, instances in found
                    for i in instances
                }
            )
            if len(syntaxes) > MAX_CONTEXTS:
                raise _Refused(0xA701, "too many SOP classes and transfer syntaxes for one association")
        except _Refused as refused:
            if refused.status != NOT_AUTHORISED:
                self._audit(
                    None, "dicom.move", peer, outcome="failed", status=f"0x{refused.status:04X}",
                    reason=refused.comment,
                )  # fmt: skip
            yield destination
            yield 0
            yield refused.status, None
            return
        except Exception as exc:  # noqa: BLE001 - a failure status, never a dropped association
            _LOG.error("C-MOVE from %s failed: %s", peer.ae_title, type(exc).__name__)
            yield destination
            yield 0
            yield CANNOT_UNDERSTAND, None
            return
        # The association to the destination proposes exactly the stored SOP classes and transfer syntaxes.
        contexts = [build_context(sop_class, syntax) for sop_class, syntax in syntaxes]
        yield destination[0], destination[1], {"contexts": contexts}
        yield sum(len(instances) for _, instances in found)
        yield from self._send(event, principal, peer, "dicom.move", level, found, destination=name)


def _staging_dir() -> Path:
    """Where C-GET stages a decrypted file while it is sent: /dev/shm when the system has it."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


#: The attribute of an answer dataset that names the staged file a C-GET sub-operation sends as it is.
_STAGED_PATH = "_kedi_staged_path"


def _stored_instance(path: Path, instance: InstanceRecord) -> Dataset:
    """What the C-GET handler yields for one instance: a stand-in naming the staged file (sent by path)."""
    from pydicom import Dataset

    stand_in = Dataset()
    stand_in.SOPClassUID = str(instance.attributes.get("SOPClassUID", ""))
    stand_in.SOPInstanceUID = str(instance.attributes.get("SOPInstanceUID", ""))
    object.__setattr__(stand_in, _STAGED_PATH, str(path))
    return stand_in


def _send_stored_bytes(assoc: Any) -> None:
    """Make ``assoc``'s C-STORE sub-operations send a stand-in's staged file by path, its bytes untouched.

    pynetdicom's C-GET service takes only datasets from the handler, and encoding a
    decoded dataset again does not always give back the bytes received (about one file
    in ten of pydicom's test files differs). Sent by path, with
    ``STORE_SEND_CHUNKED_DATASET`` (set by :meth:`DicomNode.start`), the data set goes
    out as it was stored. A peer that accepted no context in the stored syntax is sent the
    decoded data set, converted by pynetdicom where it can be (explicit <-> implicit VR
    little endian, deflated); otherwise that sub-operation fails. Only this association's
    method is replaced.
    """
    if getattr(assoc, "_kedi_sends_stored_bytes", False):
        return
    original = assoc.send_c_store

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Any:
        staged = getattr(dataset, _STAGED_PATH, None)
        if staged is None:
            return original(dataset, *args, **kwargs)
        try:
            return original(staged, *args, **kwargs)
        except ValueError:
            # The peer accepted no context in the stored syntax (nothing was sent). Decoded, the data
            # set may still go in another uncompressed little endian syntax (explicit <-> implicit VR,
            # deflated), which pynetdicom converts to: the same elements, not the same bytes.
            import pydicom

            return original(pydicom.dcmread(staged), *args, **kwargs)

    assoc.send_c_store = send_c_store
    assoc._kedi_sends_stored_bytes = True
