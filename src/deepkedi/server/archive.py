"""The encrypted archive: every stored object a deepkedi container under its study's keystore key.

On arrival, an instance's file is encrypted whole (:func:`deepkedi.api.encrypt_bytes`,
the hybrid suite: AES-256-GCM, byte-exact restore) under its study's data key and
written under a random name to the object storage (a local folder, or an fsspec URL:
:mod:`deepkedi.server.objects`). The index tables
hold no identifier in clear: the DICOM UIDs and the Patient ID are indexed by
HMAC-SHA256 under a service secret (itself derived from a keystore key, never
stored in clear), and what QIDO-RS returns (UIDs, names, dates, descriptions) is a
metadata blob sealed with AES-256-GCM under a key derived from the study's data key.
docs/SERVICE.md ("The encrypted archive", "What is kept in clear, and why") lists
every column.

Revoking a study's key (crypto-shredding, :meth:`Archive.revoke`) makes its objects
and its metadata undecryptable; reads then raise :class:`StudyGone`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Mapped, mapped_column

from deepkedi import api
from deepkedi.cipher.dicom_native import deidentified_uid, deidentify_dataset, patient_pseudonym
from deepkedi.errors import DeepKediError, KeyNotFoundError, KeyRevokedError
from deepkedi.fileio import remove_stale_parts
from deepkedi.imaging.limits import allowed_decoded_size, format_size
from deepkedi.keys import Key
from deepkedi.server.db import Base
from deepkedi.server.objects import ObjectStore, object_path

if TYPE_CHECKING:
    from pydicom import Dataset

    from deepkedi.server.principal import Principal
    from deepkedi.server.service import AuditEvent, Service

__all__ = [
    "STUDY_TAGS",
    "Archive",
    "ArchiveError",
    "InstanceRecord",
    "InvalidInstance",
    "SeriesRecord",
    "StoreOutcome",
    "StudyGone",
    "StudyIndex",
    "StudyRecord",
    "StudySeal",
    "object_path",
    "one_key_check_per_request",
]

#: Label of the keystore key the index HMAC secret is derived from.
INDEX_KEY_LABEL = "service index"
_INDEX_INFO = b"deepkedi serve index hmac v1"
_INDEX_KEY_SETTING = "index_key_id"
_META_INFO = b"deepkedi serve metadata v1"
_RESEARCH_INFO = b"deepkedi serve research uids v1"
#: What a de-identified instance says was done to it (Deidentification Method, 0012,0063).
DEIDENTIFICATION_METHOD = "PS3.15 Basic Profile (kedi serve research view)"
_META_AAD = b"deepkedi-serve-meta-v1\x00"
_NONCE_BYTES = 12
_PSEUDONYM = re.compile(r"^ST-[0-9A-F]{24}$")
#: Memory the cache of rendered frames may hold (plaintext-derived PNGs: memory only, dropped on revocation).
RENDER_CACHE_BYTES = 64 << 20
#: Actor the keystore records for the service's own key operations.
SERVICE_ACTOR = "kedi-serve"
#: The study keys found active in the keystore during the current request (see :func:`one_key_check_per_request`).
_checked_keys: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("kedi_checked_keys", default=None)


def one_key_check_per_request() -> None:
    """From here on in this context (one request), a study key's state is read from the keystore once, not per lookup.

    A rendered frame looks the study's key up three times (series, instance, frame) and a
    study's retrieval once per instance; each lookup read the key's state in the keystore.
    Outside such a request every lookup still reads it. A key revoked while a request runs
    is seen by the next request (through the API, :meth:`Archive.revoke` also drops the
    cached key at once).
    """
    _checked_keys.set(set())


# Attributes kept (sealed) for QIDO-RS, by level.
#: The study attributes the archive keeps, sealed (what a search can match and answer).
STUDY_TAGS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDescription",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
)
_SERIES_TAGS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription")
_INSTANCE_TAGS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")


class ArchiveError(DeepKediError):
    """A request the archive refuses (the message is one line, safe to show)."""


class InvalidInstance(ArchiveError):
    """The uploaded bytes are not a DICOM instance the archive can store."""


class _InstanceTaken(Exception):
    """An index row of the instance collides with one another writer committed meanwhile (a unique key)."""


class StudyGone(ArchiveError):
    """The study's key was revoked: its objects can never be decrypted again (HTTP 410)."""


# ----------------------------------------------------------------------------------- tables


class ArchiveSetting(Base):
    """The archive's own settings (the keystore id of the index key): public values only."""

    __tablename__ = "archive_settings"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(256))


class StudyIndex(Base):
    """One study: pseudonymous id, keyed hashes, key id, who may see it; its metadata sealed."""

    __tablename__ = "archive_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.String(32), unique=True)
    uid_hmac: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: Keyed hash of the de-identified StudyInstanceUID researchers see (docs/SERVICE.md).
    deid_hmac: Mapped[str] = mapped_column(sa.String(64), unique=True)
    patient_hmac: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    key_id: Mapped[str] = mapped_column(sa.String(32))
    uploader_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    assigned_user_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    assigned_group: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    created: Mapped[str] = mapped_column(sa.String(32))
    revoked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    meta: Mapped[bytes] = mapped_column(sa.LargeBinary)


class SeriesIndex(Base):
    """One series of a study: keyed hash of its UID, its modality (clear, for search), metadata sealed."""

    __tablename__ = "archive_series"
    __table_args__ = (sa.UniqueConstraint("study_id", "uid_hmac"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_studies.id"), index=True)
    uid_hmac: Mapped[str] = mapped_column(sa.String(64))
    deid_hmac: Mapped[str] = mapped_column(sa.String(64), index=True)
    modality: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    meta: Mapped[bytes] = mapped_column(sa.LargeBinary)


class InstanceIndex(Base):
    """One stored instance: keyed hash of its SOP Instance UID, its random object name, sizes; metadata sealed."""

    __tablename__ = "archive_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_studies.id"), index=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_series.id"), index=True)
    uid_hmac: Mapped[str] = mapped_column(sa.String(64), unique=True)
    deid_hmac: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_name: Mapped[str] = mapped_column(sa.String(32), unique=True)
    size: Mapped[int] = mapped_column(sa.Integer)
    stored_size: Mapped[int] = mapped_column(sa.Integer)
    created: Mapped[str] = mapped_column(sa.String(32))
    meta: Mapped[bytes] = mapped_column(sa.LargeBinary)


# ----------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StudyRecord:
    """A study as the service sees it once its metadata is unsealed."""

    id: int
    pseudonym: str
    key_id: str
    uploader_id: int
    assigned_user_id: int | None
    assigned_group: str | None
    created: str
    revoked: bool
    #: Unsealed study-level attributes (keyword → value); empty when the key is revoked.
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class SeriesRecord:
    id: int
    study_id: int
    modality: str | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class InstanceRecord:
    id: int
    study_id: int
    series_id: int
    object_name: str
    size: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class StoreOutcome:
    """What happened to one uploaded instance (STOW-RS builds its response from these)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    stored: bool
    #: The study's pseudonymous id (None when nothing could be stored or the study is not the uploader's).
    study_pseudonym: str | None = None
    #: PS3.18 / PS3.4 failure reason when not stored (0x0111 duplicate, 0xA700, 0xC000...).
    failure_reason: int | None = None
    #: True when the same instance, byte for byte, was already stored (nothing written again).
    already_stored: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ParsedInstance:
    """The attributes of an uploaded file the archive indexes, read once with pydicom."""

    data: bytes
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    patient_id: str | None
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


class StudySeal:
    """AES-256-GCM under a study's metadata key (HKDF of its data key): JSON objects bound to a row's identity.

    A sealed blob is a random 96-bit nonce, then the ciphertext and tag; the
    associated data names the row (``binding``), so a blob cannot be moved to another row.
    """

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead

    def seal(self, binding: str, value: Mapping[str, Any]) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(dict(value), sort_keys=True, separators=(",", ":")).encode("utf-8")
        return nonce + self._aead.encrypt(nonce, plain, _META_AAD + binding.encode("ascii"))

    def open(self, binding: str, blob: bytes) -> dict[str, Any]:
        """The sealed object; :class:`ArchiveError` if the blob was altered or belongs to another row."""
        try:
            plain = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _META_AAD + binding.encode("ascii"))
        except InvalidTag:
            raise ArchiveError("sealed metadata failed authentication") from None
        value = json.loads(plain)
        return value if isinstance(value, dict) else {}


# ----------------------------------------------------------------------------------- helpers


def is_pseudonym(text: str) -> bool:
    """Whether ``text`` has the shape of a study's pseudonymous id (``ST-`` and 24 hex digits)."""
    return isinstance(text, str) and _PSEUDONYM.fullmatch(text) is not None


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> Any:
    """A JSON-friendly value of a pydicom element value (person names and multi-values as text)."""
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        return value if not isinstance(value, str) else value.strip("\x00 ")
    if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return str(value).strip("\x00 ")


def _pick(ds: Dataset, names: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in ds:
            out[name] = _text(ds.get(name))
    return out


def parse_instance(data: bytes) -> ParsedInstance:
    """Read the attributes the archive indexes from a DICOM file's bytes (pixels not decoded).

    Raises
    ------
    InvalidInstance
        Not a DICOM Part 10 file, or one without the UIDs every stored instance needs.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if len(data) < 132 or data[128:132] != b"DICM":
        raise InvalidInstance("not a DICOM Part 10 file (no DICM preamble)")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        _check_pixel_length(ds)
        values = {
            name: str(ds.get(name, "") or "").strip("\x00 ")
            for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
        }
        study, series, instance = _pick(ds, STUDY_TAGS), _pick(ds, _SERIES_TAGS), _pick(ds, _INSTANCE_TAGS)
        patient_id = str(ds.get("PatientID", "") or "").strip("\x00 ") or None
        syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    except InvalidInstance:
        raise
    except (InvalidDicomError, EOFError) as exc:
        raise InvalidInstance(f"not a readable DICOM file ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - pydicom fails on hostile input in many ways
        raise InvalidInstance(f"not a readable DICOM file ({type(exc).__name__})") from None
    for name, value in values.items():
        if not value:
            raise InvalidInstance(f"the DICOM file has no {name}")
        if len(value) > 64 or not re.fullmatch(r"[0-9.]+", value):
            raise InvalidInstance(f"the DICOM file's {name} is not a valid UID")
    instance["TransferSyntaxUID"] = syntax
    instance["sha256"] = hashlib.sha256(data).hexdigest()
    return ParsedInstance(
        data=data,
        study_uid=values["StudyInstanceUID"],
        series_uid=values["SeriesInstanceUID"],
        sop_uid=values["SOPInstanceUID"],
        sop_class_uid=values["SOPClassUID"],
        patient_id=patient_id,
        study=study,
        series=series,
        instance=instance,
    )


def _check_pixel_length(ds: Dataset) -> None:
    """Refuse native Pixel Data shorter than its rows, columns, frames and bits say (a truncated file)."""
    if "PixelData" not in ds:
        return
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    try:
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("NumberOfFrames", 1) or 1)
            * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.BitsAllocated)
            + 7
        ) // 8
    except (AttributeError, TypeError, ValueError):
        raise InvalidInstance("the DICOM file's image attributes are missing or malformed") from None
    if syntax is not None and syntax.is_compressed:
        # Compressed pixels: what they claim to decode to is bounded like every deepkedi reader
        # bounds it (deepkedi.imaging.limits), so that a few kilobytes cannot claim gigabytes.
        allowed = allowed_decoded_size(len(ds.PixelData))
        if expected > allowed:
            raise InvalidInstance(
                f"the image claims {format_size(expected)} of pixels, over the limit of {format_size(allowed)} "
                "for its size (a decompression bomb?)"
            )
        return
    if len(ds.PixelData) < expected:
        raise InvalidInstance("the DICOM file is truncated (Pixel Data shorter than its image attributes say)")


def _staging_dir() -> str | None:
    """A memory-backed folder for the plaintext that encryption stages, when the system has one."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


# ----------------------------------------------------------------------------------- archive


class Archive:
    """Stores and retrieves DICOM instances, encrypted, with a pseudonymous index.

    Parameters
    ----------
    service
        The running service: its keystore (unlocked), its database sessions and the
        object storage of its configuration (a local folder or an fsspec URL).
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        #: The encrypted objects: the only way the service reaches its storage.
        self.objects = ObjectStore(service.config.resolved_storage)
        self._lock = threading.Lock()
        self._index_key: bytes | None = None
        self._keys: dict[str, Key] = {}
        self._staging = _staging_dir() or tempfile.gettempdir()
        # A killed process (kill -9, a power cut) may have left the plaintext it was staging and the
        # part files of objects it was writing (never served: no index row names them): gone now.
        remove_stale_parts(self._staging)
        self.objects.sweep()
        # Rendered frames, in memory only (never on disk), least recently used first out.
        self._rendered: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._rendered_bytes = 0
        self._rendered_lock = threading.Lock()

    # ------------------------------------------------------------------------------ keys

    def _index_secret(self) -> bytes:
        """The HMAC key of the index, derived from the keystore key labelled "service index" (made on first use)."""
        if self._index_key is not None:
            return self._index_key
        with self._lock:
            if self._index_key is None:
                key_id = self._setting(_INDEX_KEY_SETTING)
                if key_id is None:
                    made = self.service.keystore.new_key(label=INDEX_KEY_LABEL, actor=SERVICE_ACTOR, gan=False)
                    # Two processes starting together may each make one: the first row written wins.
                    key_id = self._claim_setting(_INDEX_KEY_SETTING, made.key_id_hex)
                    if key_id != made.key_id_hex:
                        self.service.keystore.revoke(made.key_id_hex, actor=SERVICE_ACTOR)
                key = self.service.keystore.get_key(key_id, actor=SERVICE_ACTOR)
                self._index_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INDEX_INFO).derive(
                    key.secret
                )
        return self._index_key

    def research_uid_key(self, key: Key) -> bytes:
        """The study's key for the de-identified UIDs researchers see (HKDF of its data key)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_RESEARCH_INFO).derive(key.secret)

    def deid_hmac(self, kind: str, key: Key, uid: str) -> str:
        """Keyed hash of the de-identified replacement of ``uid`` (how a researcher's URL finds a row)."""
        return self.uid_hmac("deid-" + kind, deidentified_uid(self.research_uid_key(key), uid))

    def _setting(self, name: str) -> str | None:
        with self._session(read_only=True) as session:
            row = session.get(ArchiveSetting, name)
            return None if row is None else row.value

    def _claim_setting(self, name: str, value: str) -> str:
        """Write ``name`` = ``value`` unless a value is there already; the value in force."""
        try:
            with self._session() as session:
                session.add(ArchiveSetting(name=name, value=value))
        except sa.exc.IntegrityError:
            pass
        found = self._setting(name)
        assert found is not None
        return found

    def uid_hmac(self, kind: str, value: str) -> str:
        """HMAC-SHA256 (hex) of a UID or Patient ID under the index secret; ``kind`` separates the namespaces."""
        label = kind.encode("ascii") + b"\x00"
        return hmac.new(self._index_secret(), label + value.strip("\x00 ").encode("utf-8"), hashlib.sha256).hexdigest()

    def _study_key(self, key_id: str) -> Key:
        """The study's data key; :class:`StudyGone` once revoked (checked in the keystore at every use, or request)."""
        checked = _checked_keys.get()
        if checked is None or key_id not in checked:
            try:
                state = self.service.keystore.key_info(key_id).state
            except KeyNotFoundError:
                raise StudyGone("the study's key is gone") from None
            if state != "active":
                self._keys.pop(key_id, None)
                raise StudyGone("the study's key was revoked")
            if checked is not None:
                checked.add(key_id)
        key = self._keys.get(key_id)
        if key is None:
            try:
                key = self.service.keystore.get_key(key_id, actor=SERVICE_ACTOR)
            except (KeyRevokedError, KeyNotFoundError):
                raise StudyGone("the study's key was revoked") from None
            self._keys[key_id] = key
        return key

    # ------------------------------------------------------------------------------ sealing

    @staticmethod
    def _meta_aead(key: Key) -> AESGCM:
        return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_META_INFO).derive(key.secret))

    def _seal(self, key: Key, binding: str, attributes: Mapping[str, Any]) -> bytes:
        return StudySeal(self._meta_aead(key)).seal(binding, attributes)

    def _unseal(self, key: Key, binding: str, blob: bytes) -> dict[str, Any]:
        return StudySeal(self._meta_aead(key)).open(binding, blob)

    def study_seal(self, study: StudyRecord) -> StudySeal:
        """The sealing of ``study``'s metadata, for a row of another table that belongs to the study.

        The row's binding must not collide with the index's own (the pseudonym,
        ``series-N``, an object name): e.g. ``break-glass-N``. Revoking the study's
        key shreds what was sealed with it. Raises :class:`StudyGone` once revoked.
        """
        return StudySeal(self._meta_aead(self._require_key(study)))

    # ------------------------------------------------------------------------------ sessions

    @contextlib.contextmanager
    def _session(self, *, read_only: bool = False) -> Iterator[sa.orm.Session]:
        """One transaction; ``read_only`` for lookups that write nothing (on SQLite: no write lock taken)."""
        with (self.service.read_sessions if read_only else self.service.sessions)() as session:
            # Rows are turned into records after the commit: keep their loaded values.
            session.expire_on_commit = False
            with session.begin():
                yield session

    # ------------------------------------------------------------------------------ storing

    def store(
        self,
        parsed: ParsedInstance,
        principal: Principal,
        *,
        audit: Callable[[StoreOutcome], AuditEvent] | None = None,
    ) -> StoreOutcome:
        """Encrypt and store one instance for ``principal`` (who becomes the uploader of a new study).

        A duplicate SOP Instance UID is refused (failure 0x0111) unless it is the same
        file byte for byte, which is acknowledged without writing anything (a retried
        upload). An instance of a study another user uploaded is refused (0xA700: the
        uploader holds the study's UID already, so this tells them nothing new about it).
        Nothing is left behind by a refusal or a failure: the object is written first,
        then its index rows in one transaction; a new study's key is revoked if its
        first instance cannot be stored.

        ``audit``: the audit event of the instance once stored (:meth:`Service.audit_event
        <deepkedi.server.service.Service.audit_event>` of the outcome), committed in the same
        transaction as its index rows (one commit, one sync on SQLite, instead of two): the
        event is there if and only if the rows are. Called only for an instance written
        now; the caller audits the other outcomes (a duplicate, a refusal) itself.
        """
        study_h = self.uid_hmac("study", parsed.study_uid)
        with self._lock:
            # One writer at a time decides whether a study is new (never two keys for one study).
            # A lookup: a read transaction (this lock, not the database's, keeps two writers from both
            # deciding that a study is new; another process is caught by the unique index).
            # The same read transaction looks for an instance of the same SOP Instance UID.
            sop_h = self.uid_hmac("instance", parsed.sop_uid)
            with self._session(read_only=True) as session:
                existing = session.scalars(sa.select(StudyIndex).where(StudyIndex.uid_hmac == study_h)).one_or_none()
                study = None if existing is None else self._study_record(existing, unseal=False)
                same_uid = (
                    None
                    if existing is None
                    else session.scalars(sa.select(InstanceIndex).where(InstanceIndex.uid_hmac == sop_h)).one_or_none()
                )
            if study is None:
                return self._store_new_study(parsed, principal, study_h, audit)
        return self._store_in(study, parsed, principal, same_uid, audit)

    def _outcome(self, parsed: ParsedInstance, **fields: Any) -> StoreOutcome:
        return StoreOutcome(
            sop_class_uid=parsed.sop_class_uid,
            sop_instance_uid=parsed.sop_uid,
            study_instance_uid=parsed.study_uid,
            series_instance_uid=parsed.series_uid,
            **fields,
        )

    def _store_new_study(
        self,
        parsed: ParsedInstance,
        principal: Principal,
        study_h: str,
        audit: Callable[[StoreOutcome], AuditEvent] | None = None,
    ) -> StoreOutcome:
        pseudonym = "ST-" + secrets.token_hex(12).upper()
        # The label is the pseudonymous id: the keystore never sees a patient identifier.
        key = self.service.keystore.new_key(label=f"study {pseudonym}", actor=SERVICE_ACTOR, gan=False)
        study = StudyIndex(
            pseudonym=pseudonym,
            uid_hmac=study_h,
            deid_hmac=self.deid_hmac("study", key, parsed.study_uid),
            patient_hmac=self.uid_hmac("patient", parsed.patient_id) if parsed.patient_id else None,
            key_id=key.key_id_hex,
            uploader_id=principal.user_id,
            created=_now(),
            revoked=False,
            meta=self._seal(key, pseudonym, parsed.study),
        )
        try:
            outcome = self._write_instance(parsed, key, pseudonym, new_study=study, audit=audit)
        except BaseException:
            self.service.keystore.revoke(key.key_id_hex, actor=SERVICE_ACTOR)  # never used: shred it
            raise
        if not outcome.stored:
            self.service.keystore.revoke(key.key_id_hex, actor=SERVICE_ACTOR)  # never used: shred it
        else:
            self._keys[key.key_id_hex] = key
        return outcome

    def _store_in(
        self,
        study: StudyRecord,
        parsed: ParsedInstance,
        principal: Principal,
        existing: InstanceIndex | None,
        audit: Callable[[StoreOutcome], AuditEvent] | None = None,
    ) -> StoreOutcome:
        """Store ``parsed`` in ``study``; ``existing``: the indexed instance of the same SOP Instance UID, if any."""
        if study.uploader_id != principal.user_id:
            return self._outcome(
                parsed,
                stored=False,
                study_pseudonym=study.pseudonym,
                failure_reason=0xA700,
                reason="the study belongs to another uploader",
            )
        try:
            key = self._require_key(study)
        except StudyGone:
            return self._outcome(
                parsed,
                stored=False,
                study_pseudonym=study.pseudonym,
                failure_reason=0xA700,
                reason="the study's key was revoked",
            )
        if existing is not None:
            same = (
                existing.study_id == study.id
                and self._unseal(key, existing.object_name, existing.meta).get("sha256") == parsed.instance["sha256"]
            )
            if same:
                return self._outcome(parsed, stored=True, study_pseudonym=study.pseudonym, already_stored=True)
            return self._outcome(
                parsed,
                stored=False,
                study_pseudonym=study.pseudonym,
                failure_reason=0x0111,
                reason="an instance with this SOP Instance UID is already stored",
            )
        return self._write_instance(parsed, key, study.pseudonym, study_id=study.id, audit=audit)

    def _write_instance(
        self,
        parsed: ParsedInstance,
        key: Key,
        pseudonym: str,
        *,
        study_id: int | None = None,
        new_study: StudyIndex | None = None,
        audit: Callable[[StoreOutcome], AuditEvent] | None = None,
    ) -> StoreOutcome:
        written = self._encrypt_object(parsed, key)
        if isinstance(written, str):
            return self._outcome(parsed, stored=False, study_pseudonym=pseudonym, failure_reason=0xC000, reason=written)
        name, stored_size = written
        stored = self._outcome(parsed, stored=True, study_pseudonym=pseudonym)

        def add_rows(session: sa.orm.Session) -> None:
            nonlocal study_id
            if new_study is not None:
                session.add(new_study)
                session.flush()
                study_id = new_study.id
            assert study_id is not None
            self._index_rows(session, study_id, key, [(parsed, name, stored_size)], {})
            session.flush()

        try:
            if audit is None:
                with self._session() as session:
                    add_rows(session)
            else:
                # The index rows and the audit event in one transaction of the keystore's database
                # (the service's: one URL holds both), committed together.
                event = audit(stored)
                with self.service.keystore.recording_events() as (connection, record):
                    with sa.orm.Session(bind=connection, expire_on_commit=False) as session:
                        try:
                            add_rows(session)
                        except sa.exc.IntegrityError:
                            raise _InstanceTaken from None  # (the keystore would report it as its own failure)
                    record(event.operation, actor=event.actor, key_id=event.key_id, details=event.details)
        except (sa.exc.IntegrityError, _InstanceTaken):
            self.objects.delete(name)
            return self._outcome(
                parsed,
                stored=False,
                study_pseudonym=pseudonym,
                failure_reason=0x0111,
                reason="an instance with this SOP Instance UID is already stored",
            )
        except BaseException:
            self.objects.delete(name)
            raise
        return stored

    def _encrypt_object(self, parsed: ParsedInstance, key: Key) -> tuple[str, int] | str:
        """Encrypt ``parsed`` into a new object: (name, size), or the one-line reason it cannot be."""
        name = secrets.token_hex(16)
        # The object first, then its index rows: a crash in between leaves an unreferenced
        # object (never served), never a row without its object. The plaintext is staged in a
        # private folder (the image reader maps files), in memory where the system has
        # /dev/shm, and sealed into memory in one pass; only the container reaches the object
        # storage, written as atomically as it allows (a local folder: a part file synced and
        # moved into place).
        try:
            data = api.encrypt_bytes(parsed.data, key, name="instance.dcm", tmp_dir=self._staging)
            self.objects.put(name, data)
        except DeepKediError as exc:
            self._discard(name)
            return f"cannot be encrypted ({type(exc).__name__})"
        except BaseException:
            self._discard(name)
            raise
        return name, len(data)

    def _discard(self, name: str) -> None:
        """Remove what a failed write may have left under ``name`` (nothing names it yet), if anything."""
        with contextlib.suppress(Exception):
            self.objects.delete(name)

    def _index_rows(
        self,
        session: sa.orm.Session,
        study_id: int,
        key: Key,
        items: list[tuple[ParsedInstance, str, int]],
        series_ids: dict[str, int],
    ) -> None:
        """Add the series (if new) and instance rows of ``items`` (parsed, object name, stored size) to ``study_id``."""
        for parsed, name, stored_size in items:
            series_h = self.uid_hmac("series", parsed.series_uid)
            series_id = series_ids.get(series_h)
            if series_id is None:
                series = session.scalars(
                    sa.select(SeriesIndex).where(SeriesIndex.study_id == study_id, SeriesIndex.uid_hmac == series_h)
                ).one_or_none()
                if series is None:
                    modality = str(parsed.series.get("Modality") or "")[:16] or None
                    series = SeriesIndex(
                        study_id=study_id,
                        uid_hmac=series_h,
                        deid_hmac=self.deid_hmac("series", key, parsed.series_uid),
                        modality=modality,
                        meta=b"",
                    )
                    session.add(series)
                    session.flush()
                    series.meta = self._seal(key, f"series-{series.id}", parsed.series)
                series_id = series_ids[series_h] = series.id
            session.add(
                InstanceIndex(
                    study_id=study_id,
                    series_id=series_id,
                    uid_hmac=self.uid_hmac("instance", parsed.sop_uid),
                    deid_hmac=self.deid_hmac("instance", key, parsed.sop_uid),
                    object_name=name,
                    size=len(parsed.data),
                    stored_size=stored_size,
                    created=_now(),
                    meta=self._seal(key, name, parsed.instance),
                )
            )

    def store_many(self, items: list[ParsedInstance], principal: Principal) -> list[StoreOutcome]:
        """Store the instances of one upload, in order, with the outcome of each (as :meth:`store`).

        Instances of one study that follow each other are indexed in one transaction
        (one commit for the lot, not one per file); whenever that fast path meets
        something unusual (a duplicate, a conflict), it falls back to :meth:`store`
        for each remaining instance, so the outcomes are the same either way.
        """
        outcomes: list[StoreOutcome] = []
        start = 0
        while start < len(items):
            end = start + 1
            while end < len(items) and items[end].study_uid == items[start].study_uid:
                end += 1
            first = self.store(items[start], principal)
            outcomes.append(first)
            if end > start + 1:
                outcomes.extend(self._store_run(items[start + 1 : end], principal, first))
            start = end
        return outcomes

    def _store_run(self, run: list[ParsedInstance], principal: Principal, first: StoreOutcome) -> list[StoreOutcome]:
        """Instances of the study ``first`` was stored in: one transaction, or :meth:`store` one by one."""
        slow = [self.store(item, principal) for item in run] if not first.stored else None
        if slow is not None:
            return slow
        study = self.find_study(run[0].study_uid)
        sops = [self.uid_hmac("instance", item.sop_uid) for item in run]
        if study is None or study.uploader_id != principal.user_id or study.revoked or len(set(sops)) != len(sops):
            return [self.store(item, principal) for item in run]
        with self._session() as session:
            taken = session.scalars(sa.select(sa.func.count()).where(InstanceIndex.uid_hmac.in_(sops))).one()
        if taken:
            return [self.store(item, principal) for item in run]
        try:
            key = self._require_key(study)
        except StudyGone:
            return [self.store(item, principal) for item in run]
        written: list[tuple[ParsedInstance, str, int]] = []
        names: list[str] = []
        outcomes: dict[int, StoreOutcome] = {}
        try:
            for index, item in enumerate(run):
                result = self._encrypt_object(item, key)
                if isinstance(result, str):
                    outcomes[index] = self._outcome(
                        item, stored=False, study_pseudonym=study.pseudonym, failure_reason=0xC000, reason=result
                    )
                    continue
                name, size = result
                names.append(name)
                written.append((item, name, size))
            with self._session() as session:
                self._index_rows(session, study.id, key, written, {})
        except sa.exc.IntegrityError:
            for name in names:
                self.objects.delete(name)
            return [self.store(item, principal) for item in run]
        except BaseException:
            for name in names:
                self.objects.delete(name)
            raise
        return [
            outcomes.get(i) or self._outcome(item, stored=True, study_pseudonym=study.pseudonym)
            for i, item in enumerate(run)
        ]

    # ------------------------------------------------------------------------------ reading

    def _study_record(self, row: StudyIndex, *, unseal: bool) -> StudyRecord:
        attributes: Mapping[str, Any] = {}
        if unseal and not row.revoked:
            attributes = self._unseal(self._study_key(row.key_id), row.pseudonym, row.meta)
        return StudyRecord(
            id=row.id,
            pseudonym=row.pseudonym,
            key_id=row.key_id,
            uploader_id=row.uploader_id,
            assigned_user_id=row.assigned_user_id,
            assigned_group=row.assigned_group,
            created=row.created,
            revoked=row.revoked,
            attributes=attributes,
        )

    def find_study(self, study_uid: str, *, deidentified: bool = False) -> StudyRecord | None:
        """The study of ``study_uid`` (looked up by its keyed hash), metadata still sealed; None if unknown.

        ``deidentified``: ``study_uid`` is the de-identified UID a researcher sees.
        """
        kind = "deid-study" if deidentified else "study"
        with self._session(read_only=True) as session:
            row = session.scalars(_STUDY_BY_HMAC[deidentified], {"hmac": self.uid_hmac(kind, study_uid)}).one_or_none()
            return None if row is None else self._study_record(row, unseal=False)

    def study_by_pseudonym(self, pseudonym: str) -> StudyRecord | None:
        if not is_pseudonym(pseudonym):
            return None
        with self._session(read_only=True) as session:
            row = session.scalars(sa.select(StudyIndex).where(StudyIndex.pseudonym == pseudonym)).one_or_none()
            return None if row is None else self._study_record(row, unseal=False)

    def studies(
        self,
        where: sa.ColumnElement[bool],
        *,
        study_uids: Iterable[str] = (),
        deidentified: bool = False,
        patient_id: str | None = None,
        modality: str | None = None,
        include_revoked: bool = False,
    ) -> list[StudyRecord]:
        """Studies matching ``where`` (the access policy's filter) and the keyed-hash and modality filters, unsealed."""
        query = sa.select(StudyIndex).where(where).order_by(StudyIndex.id)
        uids = list(study_uids)
        if uids:
            column, kind = (StudyIndex.deid_hmac, "deid-study") if deidentified else (StudyIndex.uid_hmac, "study")
            query = query.where(column.in_([self.uid_hmac(kind, u) for u in uids]))
        if patient_id is not None:
            query = query.where(StudyIndex.patient_hmac == self.uid_hmac("patient", patient_id))
        if modality is not None:
            query = query.where(
                StudyIndex.id.in_(sa.select(SeriesIndex.study_id).where(SeriesIndex.modality == modality))
            )
        if not include_revoked:
            query = query.where(StudyIndex.revoked.is_(False))
        with self._session(read_only=True) as session:
            rows = list(session.scalars(query))
        records = []
        for row in rows:
            try:
                records.append(self._study_record(row, unseal=not include_revoked))
            except StudyGone:
                continue  # revoked outside the service (kedi keys revoke): nothing to show
        return records

    def unseal_study(self, study: StudyRecord) -> StudyRecord:
        """``study`` with its attributes; :class:`StudyGone` if its key was revoked."""
        if study.revoked:
            raise StudyGone("the study's key was revoked")
        with self._session(read_only=True) as session:
            row = session.get(StudyIndex, study.id)
            assert row is not None
        # Unsealed after the transaction: the key lookup reads the keystore, which on SQLite waits
        # for the write lock this service's transactions take at their start (BEGIN IMMEDIATE).
        return self._study_record(row, unseal=True)

    def series(
        self,
        study: StudyRecord,
        *,
        series_uid: str | None = None,
        modality: str | None = None,
        deidentified: bool = False,
    ) -> list[SeriesRecord]:
        """The series of ``study`` (optionally one, by UID), unsealed."""
        key = self._require_key(study)
        query = sa.select(SeriesIndex).where(SeriesIndex.study_id == study.id).order_by(SeriesIndex.id)
        if series_uid is not None:
            if deidentified:
                query = query.where(SeriesIndex.deid_hmac == self.uid_hmac("deid-series", series_uid))
            else:
                query = query.where(SeriesIndex.uid_hmac == self.uid_hmac("series", series_uid))
        if modality is not None:
            query = query.where(SeriesIndex.modality == modality)
        with self._session(read_only=True) as session:
            rows = list(session.scalars(query))
        return [
            SeriesRecord(
                id=r.id,
                study_id=r.study_id,
                modality=r.modality,
                attributes=self._unseal(key, f"series-{r.id}", r.meta),
            )
            for r in rows
        ]

    def instances(
        self,
        study: StudyRecord,
        *,
        series_id: int | None = None,
        sop_uid: str | None = None,
        deidentified: bool = False,
    ) -> list[InstanceRecord]:
        """The instances of ``study`` (optionally of one series, or one by SOP Instance UID), unsealed."""
        key = self._require_key(study)
        query = sa.select(InstanceIndex).where(InstanceIndex.study_id == study.id).order_by(InstanceIndex.id)
        if series_id is not None:
            query = query.where(InstanceIndex.series_id == series_id)
        if sop_uid is not None:
            if deidentified:
                query = query.where(InstanceIndex.deid_hmac == self.uid_hmac("deid-instance", sop_uid))
            else:
                query = query.where(InstanceIndex.uid_hmac == self.uid_hmac("instance", sop_uid))
        with self._session(read_only=True) as session:
            rows = list(session.scalars(query))
        return [self._instance_record(key, r) for r in rows]

    def _instance_record(self, key: Key, row: InstanceIndex) -> InstanceRecord:
        """``row`` with its metadata unsealed under the study's ``key``."""
        return InstanceRecord(
            id=row.id,
            study_id=row.study_id,
            series_id=row.series_id,
            object_name=row.object_name,
            size=row.size,
            attributes=self._unseal(key, row.object_name, row.meta),
        )

    def instance(
        self, study: StudyRecord, *, series_uid: str, sop_uid: str, deidentified: bool = False
    ) -> InstanceRecord | None:
        """The instance ``sop_uid`` of series ``series_uid`` of ``study`` (one query, by keyed hashes), unsealed.

        None when the study has no such instance in that series. What a WADO-RS URL naming
        one instance needs, without listing or unsealing the study's series.
        """
        key = self._require_key(study)
        prefix = "deid-" if deidentified else ""
        values = {
            "study_id": study.id,
            "instance": self.uid_hmac(prefix + "instance", sop_uid),
            "series": self.uid_hmac(prefix + "series", series_uid),
        }
        with self._session(read_only=True) as session:
            row = session.scalars(_INSTANCE_BY_HMACS[deidentified], values).first()
        if row is None:
            return None
        return self._instance_record(key, row)

    def counts(self, study_ids: Iterable[int]) -> dict[int, tuple[int, int, list[str]]]:
        """Per study: number of series, number of instances, the modalities (clear columns only)."""
        ids = list(study_ids)
        out: dict[int, tuple[int, int, list[str]]] = {i: (0, 0, []) for i in ids}
        if not ids:
            return out
        with self._session(read_only=True) as session:
            for sid, n_series, n_inst in session.execute(
                sa.select(
                    InstanceIndex.study_id,
                    sa.func.count(sa.distinct(InstanceIndex.series_id)),
                    sa.func.count(InstanceIndex.id),
                )
                .where(InstanceIndex.study_id.in_(ids))
                .group_by(InstanceIndex.study_id)
            ):
                out[sid] = (n_series, n_inst, [])
            for sid, modality in session.execute(
                sa.select(SeriesIndex.study_id, SeriesIndex.modality).where(SeriesIndex.study_id.in_(ids)).distinct()
            ):
                if modality:
                    out[sid][2].append(modality)
        return out

    def _require_key(self, study: StudyRecord) -> Key:
        if study.revoked:
            raise StudyGone("the study's key was revoked")
        return self._study_key(study.key_id)

    def read(self, study: StudyRecord, instance: InstanceRecord) -> bytes:
        """The original file of ``instance``, byte for byte (authenticated, SHA-256 checked)."""
        key = self._require_key(study)
        return api.decrypt_bytes(self.objects.get(instance.object_name), key)

    def rendered(
        self, study: StudyRecord, instance: InstanceRecord, how: tuple[Any, ...], render: Callable[[bytes], bytes]
    ) -> bytes:
        """``render`` of the instance's file, kept in a memory cache keyed by the instance and ``how``.

        The study's key is checked at every call, cached or not: a revoked study is
        :class:`StudyGone` at once (and :meth:`revoke` drops its frames).
        """
        self._require_key(study)
        cache_key = (study.id, instance.object_name, *how)
        with self._rendered_lock:
            hit = self._rendered.get(cache_key)
            if hit is not None:
                self._rendered.move_to_end(cache_key)
                return hit
        image = render(self.read(study, instance))
        with self._rendered_lock:
            if cache_key not in self._rendered and len(image) <= RENDER_CACHE_BYTES // 8:
                self._rendered[cache_key] = image
                self._rendered_bytes += len(image)
                while self._rendered_bytes > RENDER_CACHE_BYTES:
                    _, dropped = self._rendered.popitem(last=False)
                    self._rendered_bytes -= len(dropped)
        return image

    def _forget_rendered(self, study_id: int) -> None:
        with self._rendered_lock:
            for cache_key in [k for k in self._rendered if k[0] == study_id]:
                self._rendered_bytes -= len(self._rendered.pop(cache_key))

    # ------------------------------------------------------------------------------ research view

    def _deidentifiers(self, study: StudyRecord) -> tuple[Callable[[str], str], Callable[[str], str]]:
        uid_key = self.research_uid_key(self._require_key(study))
        return functools.partial(deidentified_uid, uid_key), functools.partial(patient_pseudonym, uid_key)

    def deidentify(self, study: StudyRecord, data: bytes) -> bytes:
        """``data`` (an instance of ``study``) de-identified under the PS3.15 Basic Profile, as a DICOM file.

        The header goes through the same profile as ``kedi encrypt --as-dicom``: names,
        IDs, dates, free text and private elements removed or replaced, UIDs replaced by
        keyed pseudonyms (consistent within the study, the same ones QIDO shows a
        researcher); the pixels are kept (burnt-in text is not removed).
        """
        import pydicom

        new_uid, pseudonym = self._deidentifiers(study)
        ds = pydicom.dcmread(io.BytesIO(data))
        deidentify_dataset(ds, new_uid, pseudonym)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    def deidentify_attributes(self, study: StudyRecord, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Sealed-metadata attributes (keyword → value) as a researcher may see them (the same profile)."""
        from pydicom import Dataset
        from pydicom.datadict import tag_for_keyword

        new_uid, pseudonym = self._deidentifiers(study)
        ds = Dataset()
        known = [k for k in attributes if tag_for_keyword(k) is not None]  # not the archive's own (sha256)
        for keyword in known:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                setattr(ds, keyword, attributes[keyword])
        deidentify_dataset(ds, new_uid, pseudonym)
        return {keyword: _text(ds.get(keyword)) for keyword in known if keyword in ds}

    # ------------------------------------------------------------------------------ administration

    def all_studies(self) -> list[StudyRecord]:
        """Every study, metadata sealed (the admin's list: pseudonymous ids, assignment, state)."""
        with self._session(read_only=True) as session:
            rows = list(session.scalars(sa.select(StudyIndex).order_by(StudyIndex.id)))
            return [self._study_record(r, unseal=False) for r in rows]

    def assign(self, study: StudyRecord, *, user_id: int | None, group: str | None) -> StudyRecord:
        """Assign ``study`` to a radiologist and/or a group (None clears that side)."""
        with self._session() as session:
            row = session.get(StudyIndex, study.id)
            assert row is not None
            row.assigned_user_id = user_id
            row.assigned_group = group
            session.flush()
            return self._study_record(row, unseal=False)

    def revoke(self, study: StudyRecord, *, actor: str) -> StudyRecord:
        """Crypto-shred ``study``: revoke its keystore key; its objects stay, undecryptable forever."""
        self.service.keystore.revoke(study.key_id, actor=actor)
        self._keys.pop(study.key_id, None)
        self._forget_rendered(study.id)
        with self._session() as session:
            row = session.get(StudyIndex, study.id)
            assert row is not None
            row.revoked = True
            session.flush()
            return self._study_record(row, unseal=False)


# Lookups every WADO-RS request runs, built once with bound parameters (building a statement
# cost about as much as running it), by whether the UIDs are the de-identified ones.
_STUDY_BY_HMAC = {
    deidentified: sa.select(StudyIndex).where(
        (StudyIndex.deid_hmac if deidentified else StudyIndex.uid_hmac) == sa.bindparam("hmac")
    )
    for deidentified in (False, True)
}
_INSTANCE_BY_HMACS = {
    deidentified: sa.select(InstanceIndex)
    .join(SeriesIndex, SeriesIndex.id == InstanceIndex.series_id)
    .where(
        InstanceIndex.study_id == sa.bindparam("study_id"),
        SeriesIndex.study_id == sa.bindparam("study_id"),
        (InstanceIndex.deid_hmac if deidentified else InstanceIndex.uid_hmac) == sa.bindparam("instance"),
        (SeriesIndex.deid_hmac if deidentified else SeriesIndex.uid_hmac) == sa.bindparam("series"),
    )
    for deidentified in (False, True)
}
