"""The keystore: many master keys in one database, wrapped under a key-encryption key (KEK).

A hospital has one key per study, site or period, not one key file. The keystore
holds those *data keys* (the :class:`~deepkedi.keys.Key` master secrets the
``hybrid`` suite derives file keys from), each sealed with AES-256-GCM under a KEK
that is derived from a passphrase (scrypt) or from 32 bytes of key material and is
never stored. Every operation runs in one database transaction and appends to a
MAC-chained audit trail. The layout is specified in ``docs/FORMAT.md``
("Keystore"); operations and the threat model are in ``docs/KEYSTORE.md``.

SQLAlchemy Core carries it: SQLite by default (WAL journal, ``BEGIN IMMEDIATE`` so
concurrent processes queue instead of failing), PostgreSQL by URL
(``postgresql+psycopg://...``; writers serialise on a row lock).

This is a lower layer: it never prints, reads no environment variables and never
exits. The caller says who acts (``actor``, an OS user name) for the audit trail.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from deepkedi._json import loads_bounded
from deepkedi.errors import (
    AuthenticationError,
    FormatError,
    KeyNotFoundError,
    KeyRevokedError,
    KeystoreError,
)
from deepkedi.inputs import check_regular_input
from deepkedi.keys.keyfile import KEY_ID_BYTES, SECRET_BYTES, Key, generate_key, scrypt_parameters_allowed

__all__ = [
    "AuditEntry",
    "EXPORT_MAGIC",
    "KEYSTORE_VERSION",
    "KekSource",
    "KeyInfo",
    "Keystore",
    "PassphraseKek",
    "RawKek",
    "recipient_keypair",
    "recipient_private_key_from_pem",
    "recipient_public_key",
    "recipient_public_key_from_pem",
]

KEYSTORE_VERSION = 1
#: scrypt cost of a passphrase KEK; writers use 2**15 ≤ n ≤ 2**17 (default 2**17, 128 MiB, as OWASP advises).
SCRYPT_N = 2**17
SCRYPT_N_MIN = 2**15
SCRYPT_N_MAX_WRITE = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
MAC_BYTES = 32

WRAP_AAD = b"deepkedi/v1 keystore data key|"
KEK_INFO = b"deepkedi/v1 keystore kek"
CHECK_PLAINTEXT = b"deepkedi/v1 keystore kek check"
CHECK_AAD = b"deepkedi/v1 keystore kek check|"
AUDIT_SECRET_AAD = b"deepkedi/v1 keystore audit secret|"
AUDIT_KEY_INFO = b"deepkedi/v1 keystore audit key"
AUDIT_HEAD_PREFIX = b"deepkedi/v1 keystore audit head|"
EXPORT_MAGIC = b"\x89KEDIEXP"
EXPORT_VERSION = 1
EXPORT_INFO = b"deepkedi/v1 key export"
_EXPORT_HEADER = len(EXPORT_MAGIC) + 1 + 32
#: An export of a million keys is about 300 MB; larger ones are refused before parsing.
_EXPORT_MAX_BYTES = 512 << 20

ACTIVE = "active"
REVOKED = "revoked"

# --------------------------------------------------------------------------------------------- schema

_metadata = sa.MetaData()

_meta = sa.Table(
    "keystore_meta",
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

_kek_versions = sa.Table(
    "kek_versions",
    _metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("kdf", sa.Text, nullable=False),
    sa.Column("check_value", sa.LargeBinary, nullable=False),
)

_data_keys = sa.Table(
    "data_keys",
    _metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("suite", sa.String(16), nullable=False),
    sa.Column("kek_version", sa.Integer, sa.ForeignKey("kek_versions.version"), nullable=False, index=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("revoked_at", sa.String(40), nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("provenance", sa.Text, nullable=False),
)

_audit = sa.Table(
    "audit",
    _metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=True),
    sa.Column("file_sha256", sa.String(64), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("mac", sa.LargeBinary, nullable=False),
)

# ----------------------------------------------------------------------------------------- KEK sources


@dataclass(frozen=True, repr=False)
class PassphraseKek:
    """A KEK derived from a passphrase with scrypt (``n`` applies when a new KEK version is made)."""

    passphrase: str = field(repr=False)
    scrypt_n: int = SCRYPT_N

    def __post_init__(self) -> None:
        if not isinstance(self.passphrase, str) or not self.passphrase:
            raise ValueError("the passphrase is empty")

    def __repr__(self) -> str:
        return "PassphraseKek(passphrase=<hidden>)"


@dataclass(frozen=True, repr=False)
class RawKek:
    """A KEK derived (HKDF-SHA256) from 32 bytes of key material, e.g. a key file's or an HSM's secret."""

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != SECRET_BYTES:
            raise ValueError(f"KEK material must be {SECRET_BYTES} bytes, got {len(self.material)}")

    def __repr__(self) -> str:
        return "RawKek(material=<hidden>)"


#: A KEK source: a :class:`PassphraseKek`, a :class:`RawKek`, a ``str`` (passphrase) or 32 ``bytes`` (material).
KekSource = Union[PassphraseKek, RawKek, str, bytes]


def _as_source(source: KekSource) -> PassphraseKek | RawKek:
    if isinstance(source, (PassphraseKek, RawKek)):
        return source
    if isinstance(source, str):
        return PassphraseKek(source)
    if isinstance(source, (bytes, bytearray)):
        return RawKek(bytes(source))
    raise TypeError("kek_source must be a passphrase (str), 32 bytes of key material, PassphraseKek or RawKek")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stored_json(value: Any, what: str) -> Any:
    """A JSON field of the keystore; a damaged one raises :class:`KeystoreError` naming ``what``."""
    try:
        return loads_bounded(value)
    except (TypeError, ValueError):
        raise KeystoreError(f"the keystore is damaged: its {what} are malformed") from None


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _new_derivation(source: PassphraseKek | RawKek) -> dict[str, Any]:
    """Fresh KDF parameters (random salt) for a new KEK version."""
    salt = os.urandom(SALT_BYTES)
    if isinstance(source, PassphraseKek):
        n = source.scrypt_n
        if not (SCRYPT_N_MIN <= n <= SCRYPT_N_MAX_WRITE and n & (n - 1) == 0):
            raise ValueError(f"scrypt n must be a power of two in [2**15, 2**17], got {n}")
        return {"kdf": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
    return {"kdf": "hkdf-sha256", "salt": _b64(salt)}


def _derive_kek(source: PassphraseKek | RawKek, params: Mapping[str, Any]) -> bytes:
    """The KEK of one version from its stored parameters. A source of the other kind cannot match."""
    try:
        salt = _unb64(params.get("salt"))
        kdf = params.get("kdf")
        if kdf == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        elif kdf != "hkdf-sha256":
            raise KeystoreError(f"unsupported KEK derivation {kdf!r}")
    except (AttributeError, KeyError, TypeError, ValueError, binascii.Error):
        raise KeystoreError("the keystore's KEK parameters are malformed") from None
    if kdf == "scrypt":
        if not isinstance(source, PassphraseKek):
            raise AuthenticationError("this keystore's KEK comes from a passphrase; give the passphrase")
        # Refuse costs above the writers' own before running them: a modified store must not
        # make us allocate gigabytes (scrypt needs 128·r·n bytes).
        if not scrypt_parameters_allowed(n, r, p, n_min=SCRYPT_N_MIN):
            raise KeystoreError(
                f"the keystore's scrypt parameters n={n}, r={r}, p={p} are refused: this release reads "
                f"n a power of two ≥ 2**15 and n·r·p ≤ 2**20 (128 MiB)"
            )
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(source.passphrase.encode("utf-8"))
    if not isinstance(source, RawKek):
        raise AuthenticationError("this keystore's KEK comes from key material (a KEK file), not a passphrase")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=KEK_INFO).derive(source.material)


# ------------------------------------------------------------------------------------------ primitives


def _u32(value: int) -> bytes:
    return int(value).to_bytes(4, "big")


def _wrap(aead: AESGCM, key_id: bytes, kek_version: int, secret: bytes) -> bytes:
    """``nonce ‖ AES-256-GCM(KEK, nonce, secret, WRAP_AAD ‖ key_id ‖ u32(kek_version))``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, secret, WRAP_AAD + key_id + _u32(kek_version))


def _unwrap(aead: AESGCM, key_id: bytes, kek_version: int, wrapped: bytes) -> bytes:
    """Raises ``InvalidTag`` for a wrong KEK or a modified entry (also when moved to another key id)."""
    if len(wrapped) != NONCE_BYTES + SECRET_BYTES + 16:
        raise InvalidTag()
    return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], WRAP_AAD + key_id + _u32(kek_version))


def _check_value(kek: bytes, version: int) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, CHECK_PLAINTEXT, CHECK_AAD + _u32(version))


def _check_matches(kek: bytes, version: int, check: bytes) -> bool:
    """Whether ``kek`` opens the check value of KEK ``version``.

    Raises
    ------
    KeystoreError
        The stored check value is not bytes (the database was edited).
    """
    if not isinstance(check, (bytes, bytearray, memoryview)):
        raise KeystoreError(f"the keystore is damaged: the check value of KEK version {version} is malformed")
    try:
        plain = AESGCM(kek).decrypt(check[:NONCE_BYTES], check[NONCE_BYTES:], CHECK_AAD + _u32(version))
    except (InvalidTag, ValueError):
        return False
    return constant_time.bytes_eq(plain, CHECK_PLAINTEXT)


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hmac_ok(key: bytes, data: bytes, expected: bytes) -> bool:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    try:
        mac.verify(expected)
    except InvalidSignature:
        return False
    return True


def _audit_key(audit_secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AUDIT_KEY_INFO).derive(audit_secret)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _audit_row_bytes(seq: int, time: str, actor: str, operation: str, key_id: str | None,
                     file_sha256: str | None, details: Mapping[str, Any]) -> bytes:
    return _canonical([seq, time, actor, operation, key_id, file_sha256, dict(details)])


def _head_bytes(count: int, last_seq: int, last_mac: bytes) -> bytes:
    return AUDIT_HEAD_PREFIX + _canonical([count, last_seq, last_mac.hex()])


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _now_precise() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _key_id_bytes(key_id: str | bytes) -> bytes:
    if isinstance(key_id, bytes):
        raw = key_id
    else:
        try:
            raw = bytes.fromhex(key_id)
        except (TypeError, ValueError):
            raw = b""
    if len(raw) != KEY_ID_BYTES:
        raise ValueError(f"a key id is {2 * KEY_ID_BYTES} hexadecimal digits, got {key_id!r}")
    return raw


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class KeyInfo:
    """What the keystore says about one data key; never the secret."""

    key_id: str
    created: str
    suite: str
    kek_version: int
    state: str
    revoked_at: str | None
    label: str | None
    provenance: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id, "created": self.created, "suite": self.suite, "kek_version": self.kek_version,
            "state": self.state, "revoked_at": self.revoked_at, "label": self.label,
            "provenance": dict(self.provenance),
        }


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit trail."""

    seq: int
    time: str
    actor: str
    operation: str
    key_id: str | None
    file_sha256: str | None
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "time": self.time, "actor": self.actor, "operation": self.operation,
            "key_id": self.key_id, "file_sha256": self.file_sha256, "details": dict(self.details),
        }


@dataclass
class _Head:
    count: int
    last_seq: int
    last_mac: bytes


def _info_from_row(row: Any) -> KeyInfo:
    try:
        provenance = loads_bounded(row.provenance)
    except (TypeError, ValueError):
        provenance = {}
    return KeyInfo(
        key_id=row.key_id, created=row.created, suite=row.suite, kek_version=row.kek_version, state=row.state,
        revoked_at=row.revoked_at, label=row.label, provenance=provenance if isinstance(provenance, dict) else {},
    )


# ------------------------------------------------------------------------------------------- engine


def _sqlite_path(url: sa.URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _make_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed)
    if _sqlite_path(parsed) is None:
        raise ValueError("a SQLite keystore must be a file (sqlite:///PATH), not an in-memory database")
    # pysqlite's own transaction handling would BEGIN DEFERRED lazily; take control of it so that every
    # transaction starts with BEGIN IMMEDIATE: writers queue on the busy timeout from the start instead of
    # failing with "database is locked" when a read lock must be upgraded (SQLAlchemy's pysqlite recipe).
    engine = sa.create_engine(parsed, connect_args={"timeout": 60.0}, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed transaction survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous = FULL")
        # Revocation must overwrite the wrapped secret on disk, not merely unlink it from the b-tree.
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextlib.contextmanager
def _database_errors(url: str | sa.URL) -> Iterator[None]:
    """Turn driver failures (server down, disk full, lock timeout) into one ``KeystoreError``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:  # operational, interface, programming, and "file is not a database"
        reason = str(getattr(exc, "orig", exc) or type(exc).__name__).strip().splitlines()
        raise KeystoreError(f"keystore {_display(url)}: {reason[0] if reason else 'database error'}") from None


# ----------------------------------------------------------------------------------------- keystore


class Keystore:
    """A keystore at a database URL. Create with :meth:`init`, reach with :meth:`open`.

    Opened with a KEK source, every operation is available; opened without one,
    only :meth:`list_keys`, :meth:`key_info` and :meth:`audit_entries` (no secrets,
    nothing written).

    Examples
    --------
    >>> import tempfile, os
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "ks.db")
    >>> with Keystore.init(url, kek_source=os.urandom(32), actor="alice") as store:
    ...     key = store.new_key(label="study 7", actor="alice", gan=False)
    ...     store.get_key(key.key_id_hex, actor="alice") == key
    True
    """

    def __init__(self, engine: sa.Engine, *, kek: bytes | None, kek_version: int | None,
                 audit_key: bytes | None) -> None:
        # Private: use Keystore.open / Keystore.init, which check the KEK before handing out a store.
        self._engine = engine
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._kek = kek
        self._kek_version = kek_version
        self._audit_key = audit_key

    # --------------------------------------------------------------------------------- lifecycle

    @classmethod
    def init(cls, url: str, *, kek_source: KekSource, actor: str) -> Keystore:
        """Create a keystore at ``url`` (KEK version 1) and open it.

        Raises
        ------
        KeystoreError
            A keystore already exists there.
        """
        source = _as_source(kek_source)
        _check_actor(actor)
        params = _new_derivation(source)
        kek = _derive_kek(source, params)
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = _sqlite_path(parsed)
            if path is not None and path.exists():
                check_regular_input(path, error=KeystoreError)
            if path is not None and not path.exists():
                if not path.parent.is_dir():
                    raise ValueError(f"the keystore folder {path.parent} does not exist")
                # Create the file 0600 before SQLite does (it would follow the umask); WAL files copy its mode.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = _make_engine(url)
        audit_secret = os.urandom(32)
        try:
            with _database_errors(url), engine.begin() as conn:
                if sa.inspect(conn).has_table(_meta.name):
                    raise KeystoreError(f"a keystore already exists at {_display(url)}; open it instead")
                _metadata.create_all(conn)
                conn.execute(sa.insert(_kek_versions).values(
                    version=1, created=_now(), kdf=json.dumps(params), check_value=_check_value(kek, 1)))
                conn.execute(sa.insert(_meta), [
                    {"name": "format_version", "value": str(KEYSTORE_VERSION)},
                    {"name": "current_kek_version", "value": "1"},
                    {"name": "audit_secret", "value": _wrapped_audit_secret(kek, 1, audit_secret)},
                    {"name": "audit_head", "value": _head_json(_audit_key(audit_secret), _Head(0, 0, bytes(32)))},
                ])
            store = cls(engine, kek=kek, kek_version=1, audit_key=_audit_key(audit_secret))
            with store._write() as (conn, head):
                store._append(conn, head, actor, [("init", None, None, {"kek_version": 1, "kdf": params["kdf"]})])
        except BaseException:
            engine.dispose()
            raise
        return store

    @classmethod
    def open(cls, url: str, *, kek_source: KekSource | None = None) -> Keystore:
        """Open the keystore at ``url``; with ``kek_source``, check it against the current KEK version.

        Raises
        ------
        KeystoreError
            No keystore there, or one of another version.
        AuthenticationError
            Wrong passphrase or KEK material (the message never says more).
        """
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = _sqlite_path(parsed)
            if path is not None and not path.is_file():
                raise KeystoreError(f"no keystore at {path}; create one with 'kedi keys init'")
        engine = _make_engine(url)
        try:
            with _database_errors(url), engine.connect() as conn:
                if not sa.inspect(conn).has_table(_meta.name):
                    raise KeystoreError(f"no keystore at {_display(url)}; create one with 'kedi keys init'")
                meta = {row.name: row.value for row in conn.execute(sa.select(_meta))}
                version = meta.get("format_version")
                if version != str(KEYSTORE_VERSION):
                    raise KeystoreError(
                        f"keystore format version {version!r} is not supported by this release "
                        f"(it reads version {KEYSTORE_VERSION})")
                if kek_source is None:
                    return cls(engine, kek=None, kek_version=None, audit_key=None)
                try:
                    current = int(meta["current_kek_version"])
                except (KeyError, TypeError, ValueError):
                    raise KeystoreError("the keystore is damaged: its current KEK version is malformed") from None
                row = conn.execute(sa.select(_kek_versions).where(_kek_versions.c.version == current)).one_or_none()
                if row is None:
                    raise KeystoreError("the keystore is damaged: its current KEK version is missing")
            kek = _derive_kek(_as_source(kek_source), _stored_json(row.kdf, "KEK parameters"))
            if not _check_matches(kek, current, row.check_value):
                raise AuthenticationError("wrong passphrase or KEK for this keystore")
            audit_secret = _open_audit_secret(kek, meta.get("audit_secret"))
            return cls(engine, kek=kek, kek_version=current, audit_key=_audit_key(audit_secret))
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Release the database connections and forget the KEK."""
        self._kek = self._audit_key = None
        self._engine.dispose()

    def __enter__(self) -> Keystore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Keystore(url={_display(self._engine.url)!r}, kek_version={self._kek_version!r})"

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return _display(self._engine.url)

    @property
    def kek_version(self) -> int | None:
        """The KEK version this handle holds (``None`` when opened without a KEK)."""
        return self._kek_version

    # --------------------------------------------------------------------------------- internals

    def _need_kek(self) -> tuple[AESGCM, int]:
        if self._kek is None or self._kek_version is None:
            raise ValueError("the keystore was opened without its passphrase or KEK; open it with kek_source")
        return AESGCM(self._kek), self._kek_version

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[sa.Connection, _Head]]:
        """One transaction that holds the keystore's write lock and the audit head.

        SQLite: ``BEGIN IMMEDIATE`` already holds the database's one write lock. PostgreSQL: the
        ``FOR UPDATE`` lock on the audit head row queues writers, so audit sequence numbers never race.
        """
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            value = conn.execute(
                sa.select(_meta.c.value).where(_meta.c.name == "audit_head").with_for_update()
            ).scalar_one_or_none()
            current = conn.execute(
                sa.select(_meta.c.value).where(_meta.c.name == "current_kek_version")).scalar_one_or_none()
            if value is None or current is None:
                raise KeystoreError("the keystore is damaged: its metadata is missing")
            if self._kek_version is not None and int(current) != self._kek_version:
                raise KeystoreError(
                    f"the KEK was rotated to version {current} by another process; open the keystore again")
            try:
                doc = loads_bounded(value)
                head = _Head(int(doc["count"]), int(doc["last_seq"]), bytes.fromhex(doc["last_mac"]))
            except (KeyError, TypeError, ValueError):
                raise KeystoreError("the keystore is damaged: its audit head is malformed") from None
            yield conn, head

    def _append(self, conn: sa.Connection, head: _Head, actor: str,
                events: Sequence[tuple[str, str | None, str | None, Mapping[str, Any]]]) -> None:
        """Append audit rows chained from the head (not from the last row, so a cut tail stays visible)."""
        assert self._audit_key is not None
        rows = []
        prev, seq = head.last_mac, head.last_seq
        for operation, key_id, file_sha256, details in events:
            seq += 1
            time = _now_precise()
            mac = _hmac(self._audit_key,
                        prev + _audit_row_bytes(seq, time, actor, operation, key_id, file_sha256, details))
            rows.append({"seq": seq, "time": time, "actor": actor, "operation": operation, "key_id": key_id,
                         "file_sha256": file_sha256, "details": json.dumps(dict(details), sort_keys=True),
                         "mac": mac})
            prev = mac
        if not rows:
            return
        conn.execute(sa.insert(_audit), rows)
        head.count, head.last_seq, head.last_mac = head.count + len(rows), seq, prev
        conn.execute(sa.update(_meta).where(_meta.c.name == "audit_head").values(
            value=_head_json(self._audit_key, head)))

    def _row(self, conn: sa.Connection, key_id: str) -> Any:
        return conn.execute(sa.select(_data_keys).where(_data_keys.c.key_id == key_id)).one_or_none()

    def _key_from_row(self, aead: AESGCM, row: Any) -> Key:
        raw_id = bytes.fromhex(row.key_id)
        try:
            secret = _unwrap(aead, raw_id, row.kek_version, row.wrapped)
        except InvalidTag:
            raise AuthenticationError(f"the keystore entry of key {row.key_id} was modified") from None
        info = _info_from_row(row)
        return Key(key_id=raw_id, secret=secret, created=row.created, suite=row.suite, provenance=info.provenance)

    def _insert_keys(self, conn: sa.Connection, head: _Head, keys: Sequence[tuple[Key, str | None]], actor: str,
                     operation: str, details: Mapping[str, Any]) -> None:
        aead, version = self._need_kek()
        rows = []
        for key, label in keys:
            if key.suite != "hybrid":
                raise ValueError(f"the keystore holds hybrid master keys, not {key.suite!r} keys")
            rows.append({
                "key_id": key.key_id_hex, "created": key.created or _now(), "suite": key.suite,
                "kek_version": version, "wrapped": _wrap(aead, key.key_id, version, key.secret), "state": ACTIVE,
                "revoked_at": None, "label": label, "provenance": json.dumps(dict(key.provenance), sort_keys=True),
            })
        if rows:
            try:
                conn.execute(sa.insert(_data_keys), rows)
            except sa.exc.IntegrityError:
                raise KeystoreError("a key with one of these ids is already in the keystore") from None
        self._append(conn, head, actor, [
            (operation, key.key_id_hex, None, {**details, **({"label": label} if label else {})})
            for key, label in keys
        ])

    def _rewrap_rows(self, conn: sa.Connection, old: AESGCM, old_version: int, new: AESGCM, new_version: int,
                     limit: int | None = None) -> int:
        query = (sa.select(_data_keys.c.key_id, _data_keys.c.wrapped)
                 .where(_data_keys.c.kek_version == old_version, _data_keys.c.state == ACTIVE)
                 .order_by(_data_keys.c.key_id))
        if limit is not None:
            query = query.limit(limit)
        updates = []
        for key_id, wrapped in conn.execute(query):
            raw_id = bytes.fromhex(key_id)
            try:
                secret = _unwrap(old, raw_id, old_version, wrapped)
            except InvalidTag:
                # Abort the whole transaction: a half-rotated store must never hold an entry we cannot open.
                raise AuthenticationError(f"the keystore entry of key {key_id} was modified") from None
            updates.append({"b_key_id": key_id, "b_wrapped": _wrap(new, raw_id, new_version, secret)})
        if updates:
            # One executemany: 10,000 rows in one statement round, not 10,000 ORM flushes.
            conn.execute(
                sa.update(_data_keys)
                .where(_data_keys.c.key_id == sa.bindparam("b_key_id"), _data_keys.c.kek_version == old_version)
                .values(wrapped=sa.bindparam("b_wrapped"), kek_version=new_version),
                updates,
            )
        return len(updates)

    # ------------------------------------------------------------------------------------ keys

    def new_key(self, *, label: str | None = None, provenance: Mapping[str, Any] | None = None, actor: str,
                gan: bool | None = None) -> Key:
        """Create, store and return a new hybrid master key.

        The secret comes from :func:`deepkedi.keys.generate_key`: OS randomness, mixed
        with a ZZ-GAN key image when PyTorch is installed (``gan`` as there).
        ``provenance`` is merged into the generated provenance (public; no secrets).
        """
        _check_actor(actor)
        key = generate_key(gan=gan)
        if provenance:
            key = Key(key_id=key.key_id, secret=key.secret, created=key.created, suite=key.suite,
                      provenance={**key.provenance, **provenance})
        self.add_key(key, label=label, actor=actor, _operation="new")
        return key

    def new_keys(self, count: int, *, label: str | None = None, actor: str, gan: bool | None = False) -> list[Key]:
        """Create ``count`` keys in one transaction (provisioning, benchmarks). GAN off by default: it costs ~40 ms."""
        _check_actor(actor)
        if count < 0:
            raise ValueError("count must be ≥ 0")
        keys = [generate_key(gan=gan) for _ in range(count)]
        with self._write() as (conn, head):
            self._insert_keys(conn, head, [(key, label) for key in keys], actor, "new", {})
        return keys

    def add_key(self, key: Key, *, label: str | None = None, actor: str, _operation: str = "add") -> None:
        """Store an existing master key (e.g. one from a key file).

        Raises
        ------
        KeystoreError
            A key with this id is already stored.
        """
        _check_actor(actor)
        self._need_kek()
        with self._write() as (conn, head):
            self._insert_keys(conn, head, [(key, label)], actor, _operation, {})

    def get_key(self, key_id: str | bytes, *, actor: str, file_sha256: str | None = None) -> Key:
        """The master key ``key_id``, for encrypting or decrypting; every call is audited.

        Parameters
        ----------
        key_id
            32 hexadecimal digits (or the 16 bytes).
        actor
            Who asks (OS user name).
        file_sha256
            SHA-256 (hex) of the file the key is wanted for, recorded in the audit trail.

        Raises
        ------
        KeyNotFoundError
            No such key in this keystore.
        KeyRevokedError
            The key was revoked; its secret is gone.
        KeystoreError
            The key is still wrapped under an older KEK version (an interrupted rotation): run :meth:`rewrap`.
        """
        _check_actor(actor)
        key_hex = _key_id_bytes(key_id).hex()
        if file_sha256 is not None and (len(file_sha256) != 64 or not _is_hex(file_sha256)):
            raise ValueError("file_sha256 must be 64 hexadecimal digits")
        aead, version = self._need_kek()
        refusal: Exception | None = None
        key: Key | None = None
        with self._write() as (conn, head):
            row = self._row(conn, key_hex)
            if row is None:
                refusal = KeyNotFoundError(f"key {key_hex} is not in the keystore")
                details: dict[str, Any] = {"refused": "unknown key"}
            elif row.state == REVOKED:
                refusal = KeyRevokedError(key_hex, row.revoked_at)
                details = {"refused": "revoked"}
            elif row.kek_version != version:
                refusal = KeystoreError(
                    f"key {key_hex} is still wrapped under KEK version {row.kek_version} (an interrupted rotation); "
                    "run rewrap with that version's passphrase or KEK")
                details = {"refused": f"kek version {row.kek_version}"}
            else:
                key = self._key_from_row(aead, row)
                details = {}
            # A refusal is audited too: who asked for a revoked key matters.
            self._append(conn, head, actor, [("get", key_hex, file_sha256, details)])
        if refusal is not None:
            raise refusal
        assert key is not None
        return key

    def key_info(self, key_id: str | bytes) -> KeyInfo:
        """What the keystore holds about ``key_id`` (no secret). Raises :class:`KeyNotFoundError`."""
        key_hex = _key_id_bytes(key_id).hex()
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            row = self._row(conn, key_hex)
        if row is None:
            raise KeyNotFoundError(f"key {key_hex} is not in the keystore")
        return _info_from_row(row)

    def list_keys(self) -> list[KeyInfo]:
        """Every key, oldest first (no secrets)."""
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            rows = conn.execute(sa.select(_data_keys).order_by(_data_keys.c.created, _data_keys.c.key_id)).all()
        return [_info_from_row(row) for row in rows]

    def revoke(self, key_id: str | bytes, *, actor: str) -> KeyInfo:
        """Crypto-shred ``key_id``: its wrapped secret is overwritten and it can never be used again.

        Irreversible. Images encrypted under the key become unreadable here; copies of
        the key elsewhere (exports, old backups) are beyond the keystore's reach
        (docs/KEYSTORE.md). Revoking a revoked key changes nothing.
        """
        _check_actor(actor)
        key_hex = _key_id_bytes(key_id).hex()
        self._need_kek()
        with self._write() as (conn, head):
            row = self._row(conn, key_hex)
            if row is None:
                raise KeyNotFoundError(f"key {key_hex} is not in the keystore")
            if row.state == REVOKED:
                return _info_from_row(row)
            when = _now()
            conn.execute(sa.update(_data_keys).where(_data_keys.c.key_id == key_hex).values(
                wrapped=b"", state=REVOKED, revoked_at=when))
            self._append(conn, head, actor, [("revoke", key_hex, None, {})])
            row = self._row(conn, key_hex)
        if self._is_sqlite:
            # Move the page images out of the WAL into the (secure_delete) main file and truncate the WAL,
            # so the old wrapped secret does not linger in the journal.
            raw = self._engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        elif self._engine.dialect.name == "postgresql":
            # The UPDATE left the old row version in the table's pages; VACUUM prunes it (outside
            # a transaction). The server's WAL keeps it until its segments are recycled.
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM {_data_keys.name}")
        return _info_from_row(row)

    # ------------------------------------------------------------------------------- rotation

    def rotate(self, new_kek_source: KekSource, *, actor: str, batch_size: int | None = None) -> int:
        """Make a new KEK version current and re-wrap every active data key under it; returns the version.

        Data keys do not change, so every image encrypted before still decrypts.
        By default everything happens in ONE transaction: a crash leaves the store
        as it was (old KEK) and rotating again completes. With ``batch_size`` the
        new version is committed first and keys are re-wrapped ``batch_size`` per
        transaction (shorter locks on a large shared store); a crash then leaves
        keys on the old version, which :meth:`rewrap` finishes with the old KEK.
        """
        _check_actor(actor)
        old_aead, old_version = self._need_kek()
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be ≥ 1")
        source = _as_source(new_kek_source)
        params = _new_derivation(source)
        new_kek = _derive_kek(source, params)  # scrypt runs before the write lock is taken
        new_aead = AESGCM(new_kek)
        assert self._kek is not None
        with self._write() as (conn, head):
            new_version = (conn.execute(sa.select(sa.func.max(_kek_versions.c.version))).scalar_one() or 0) + 1
            conn.execute(sa.insert(_kek_versions).values(
                version=new_version, created=_now(), kdf=json.dumps(params),
                check_value=_check_value(new_kek, new_version)))
            audit_secret = _open_audit_secret(self._kek, _meta_value(conn, "audit_secret"))
            conn.execute(sa.update(_meta).where(_meta.c.name == "audit_secret").values(
                value=_wrapped_audit_secret(new_kek, new_version, audit_secret)))
            conn.execute(sa.update(_meta).where(_meta.c.name == "current_kek_version").values(
                value=str(new_version)))
            moved = 0
            if batch_size is None:
                moved = self._rewrap_rows(conn, old_aead, old_version, new_aead, new_version)
            self._append(conn, head, actor, [("rotate", None, None, {
                "from_kek_version": old_version, "to_kek_version": new_version, "kdf": params["kdf"],
                "rewrapped": moved, "batched": batch_size is not None})])
        self._kek, self._kek_version = new_kek, new_version
        if batch_size is not None:
            moved = 0
            while True:
                with self._write() as (conn, head):
                    done = self._rewrap_rows(conn, old_aead, old_version, new_aead, new_version, limit=batch_size)
                    if done:
                        moved += done
                    else:
                        self._append(conn, head, actor, [("rewrap", None, None, {
                            "from_kek_versions": [old_version], "to_kek_version": new_version,
                            "rewrapped": moved})])
                if not done:
                    break
        return new_version

    def stragglers(self) -> dict[int, int]:
        """Active keys still wrapped under an older KEK version: ``{version: count}`` (empty when none)."""
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            current = int(_meta_value(conn, "current_kek_version"))
            rows = conn.execute(
                sa.select(_data_keys.c.kek_version, sa.func.count())
                .where(_data_keys.c.state == ACTIVE, _data_keys.c.kek_version != current)
                .group_by(_data_keys.c.kek_version)).all()
        return {int(version): int(count) for version, count in rows}

    def rewrap(self, old_kek_sources: Iterable[KekSource] = (), *, actor: str) -> int:
        """Finish an interrupted batched rotation: re-wrap keys still on older KEK versions; returns how many.

        ``old_kek_sources`` are the passphrases or KEK material of those versions
        (each is tried against each version's check value). With no stragglers this
        does nothing and returns 0.

        Raises
        ------
        AuthenticationError
            No source given opens a version that still wraps keys.
        """
        _check_actor(actor)
        new_aead, new_version = self._need_kek()
        pending = self.stragglers()
        if not pending:
            return 0
        sources = [_as_source(s) for s in old_kek_sources]
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            versions = {row.version: row for row in conn.execute(
                sa.select(_kek_versions).where(_kek_versions.c.version.in_(list(pending))))}
        openers: dict[int, AESGCM] = {}
        for version in pending:
            row = versions.get(version)
            if row is None:
                raise KeystoreError(f"the keystore is damaged: KEK version {version} is missing")
            params = _stored_json(row.kdf, "KEK parameters")
            for source in sources:
                try:
                    kek = _derive_kek(source, params)
                except AuthenticationError:
                    continue  # a source of the other kind
                if _check_matches(kek, version, row.check_value):
                    openers[version] = AESGCM(kek)
                    break
            else:
                raise AuthenticationError(
                    f"{pending[version]} key(s) are still wrapped under KEK version {version}; "
                    "give that version's passphrase or KEK")
        moved = 0
        with self._write() as (conn, head):
            for version, aead in openers.items():
                moved += self._rewrap_rows(conn, aead, version, new_aead, new_version)
            self._append(conn, head, actor, [("rewrap", None, None, {
                "from_kek_versions": sorted(openers), "to_kek_version": new_version, "rewrapped": moved})])
        return moved

    # ---------------------------------------------------------------------------- export/import

    def export(self, key_ids: Iterable[str | bytes], recipient_public_key: bytes | X25519PublicKey, *,
               actor: str) -> bytes:
        """Seal keys for another site's recipient key (X25519 ECIES; docs/FORMAT.md, "Key export").

        The blob holds the secrets: anyone with the recipient's private key reads them.

        Raises
        ------
        KeyNotFoundError, KeyRevokedError
            One of the keys is unknown or revoked (nothing is exported).
        """
        _check_actor(actor)
        recipient = recipient_public_key if isinstance(recipient_public_key, X25519PublicKey) \
            else recipient_public_key_from_pem(recipient_public_key)
        recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        fingerprint = hashlib.sha256(recipient_raw).hexdigest()[:32]
        ids = [_key_id_bytes(k).hex() for k in key_ids]
        if not ids:
            raise ValueError("name at least one key to export")
        aead, version = self._need_kek()
        entries = []
        with self._write() as (conn, head):
            for key_hex in dict.fromkeys(ids):
                row = self._row(conn, key_hex)
                if row is None:
                    raise KeyNotFoundError(f"key {key_hex} is not in the keystore")
                if row.state == REVOKED:
                    raise KeyRevokedError(key_hex, row.revoked_at)
                if row.kek_version != version:
                    raise KeystoreError(f"key {key_hex} is still wrapped under KEK version {row.kek_version}; "
                                        "run rewrap first")
                key = self._key_from_row(aead, row)
                entries.append({"key_id": key_hex, "secret": _b64(key.secret), "created": key.created,
                                "suite": key.suite, "label": row.label, "provenance": dict(key.provenance)})
            self._append(conn, head, actor, [
                ("export", e["key_id"], None, {"recipient": fingerprint}) for e in entries])
        plaintext = json.dumps(entries, sort_keys=True).encode("utf-8")
        return _export_from_parts(plaintext, recipient_raw, X25519PrivateKey.generate(), os.urandom(NONCE_BYTES))

    def import_(self, blob: bytes, recipient_private_key: bytes | X25519PrivateKey, *,
                actor: str) -> dict[str, str]:
        """Store the keys of an export sealed to us; returns ``{key_id: outcome}``.

        Outcomes: ``"imported"``; ``"present"`` (the same key is already here);
        ``"revoked"`` (revoked here: a revoked key is never brought back).

        Raises
        ------
        FormatError
            Not a deepkedi key export, or of another version.
        AuthenticationError
            Not sealed to this recipient key, or modified.
        KeystoreError
            A key id already here holds a different secret (nothing is imported).
        """
        _check_actor(actor)
        private = recipient_private_key if isinstance(recipient_private_key, X25519PrivateKey) \
            else recipient_private_key_from_pem(recipient_private_key)
        entries = _parse_export_payload(_open_export(blob, private))
        aead, version = self._need_kek()
        outcome: dict[str, str] = {}
        with self._write() as (conn, head):
            fresh: list[tuple[Key, str | None]] = []
            for key, label in entries:
                row = self._row(conn, key.key_id_hex)
                if row is None:
                    fresh.append((key, label))
                    outcome[key.key_id_hex] = "imported"
                elif row.state == REVOKED:
                    outcome[key.key_id_hex] = "revoked"
                else:
                    here = self._key_from_row(aead, row) if row.kek_version == version else None
                    if here is None or not constant_time.bytes_eq(here.secret, key.secret):
                        raise KeystoreError(f"key {key.key_id_hex} is already in the keystore with a different "
                                            "secret; nothing imported")
                    outcome[key.key_id_hex] = "present"
            self._insert_keys(conn, head, fresh, actor, "import", {})
        return outcome

    # ---------------------------------------------------------------------------------- audit

    def audit_entries(self) -> list[AuditEntry]:
        """The audit trail in sequence order."""
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            rows = conn.execute(sa.select(_audit).order_by(_audit.c.seq)).all()
        return [_entry(row) for row in rows]

    def verify_audit(self) -> tuple[bool, int | None]:
        """Check the audit trail: ``(True, None)``, or ``(False, first bad sequence number)``.

        Detects an edited row (its MAC), a deleted or reordered row (sequence gap or
        chain break), and a cut tail (the MAC'd head in the metadata names the last
        sequence number and MAC).
        """
        if self._audit_key is None:
            raise ValueError("verifying the audit trail needs the keystore's passphrase or KEK")
        with _database_errors(self._engine.url), self._engine.begin() as conn:
            rows = conn.execute(sa.select(_audit).order_by(_audit.c.seq)).all()
            head_value = _meta_value(conn, "audit_head")
        prev, expected = bytes(MAC_BYTES), 1
        for row in rows:
            if row.seq != expected:
                return False, expected
            try:
                details = loads_bounded(row.details)
            except (TypeError, ValueError):
                return False, row.seq
            data = prev + _audit_row_bytes(row.seq, row.time, row.actor, row.operation, row.key_id,
                                           row.file_sha256, details if isinstance(details, dict) else {})
            if not isinstance(details, dict) or not _hmac_ok(self._audit_key, data, bytes(row.mac)):
                return False, row.seq
            prev, expected = bytes(row.mac), expected + 1
        try:
            doc = loads_bounded(head_value)
            head = _Head(int(doc["count"]), int(doc["last_seq"]), bytes.fromhex(doc["last_mac"]))
            head_mac = bytes.fromhex(doc["mac"])
        except (KeyError, TypeError, ValueError):
            return False, expected
        if not _hmac_ok(self._audit_key, _head_bytes(head.count, head.last_seq, head.last_mac), head_mac):
            return False, expected
        if head.last_seq != expected - 1 or head.count != len(rows) or head.last_mac != prev:
            return False, min(head.last_seq, expected - 1) + 1
        return True, None


# ----------------------------------------------------------------------------------- module helpers


def _check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("actor must name who acts (an OS user name) for the audit trail")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _display(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def _meta_value(conn: sa.Connection, name: str) -> str:
    value = conn.execute(sa.select(_meta.c.value).where(_meta.c.name == name)).scalar_one_or_none()
    if value is None:
        raise KeystoreError(f"the keystore is damaged: metadata {name!r} is missing")
    return value


def _head_json(audit_key: bytes, head: _Head) -> str:
    mac = _hmac(audit_key, _head_bytes(head.count, head.last_seq, head.last_mac))
    return json.dumps({"count": head.count, "last_seq": head.last_seq, "last_mac": head.last_mac.hex(),
                       "mac": mac.hex()})


def _wrapped_audit_secret(kek: bytes, version: int, audit_secret: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(kek).encrypt(nonce, audit_secret, AUDIT_SECRET_AAD + _u32(version))
    return json.dumps({"kek_version": version, "wrapped": _b64(sealed)})


def _open_audit_secret(kek: bytes, value: str) -> bytes:
    try:
        doc = loads_bounded(value)
        sealed = _unb64(doc["wrapped"])
        return AESGCM(kek).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                   AUDIT_SECRET_AAD + _u32(int(doc["kek_version"])))
    except (InvalidTag, KeyError, TypeError, ValueError, binascii.Error):
        raise AuthenticationError("wrong passphrase or KEK for this keystore") from None


def _entry(row: Any) -> AuditEntry:
    try:
        details = loads_bounded(row.details)
    except (TypeError, ValueError):
        details = {"unreadable": True}
    return AuditEntry(seq=row.seq, time=row.time, actor=row.actor, operation=row.operation, key_id=row.key_id,
                      file_sha256=row.file_sha256, details=details if isinstance(details, dict) else {})


# ------------------------------------------------------------------------------ recipients & export


def recipient_keypair() -> tuple[bytes, bytes]:
    """A new X25519 recipient key pair: ``(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)``.

    The private PEM is a secret (write it 0600); the public PEM is given to the sites that export to you.
    """
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def recipient_public_key_from_pem(pem: bytes) -> X25519PublicKey:
    """Parse a recipient public key (PEM); ``ValueError`` when it is not an X25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValueError("not a recipient public key (X25519, PEM); make one with 'kedi keys recipient'") from None
    if not isinstance(key, X25519PublicKey):
        raise ValueError("the recipient public key is not an X25519 key")
    return key


def recipient_private_key_from_pem(pem: bytes) -> X25519PrivateKey:
    """Parse a recipient private key (PEM); ``ValueError`` when it is not an X25519 private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("not a recipient private key (X25519, PEM); make one with 'kedi keys recipient'") from None
    if not isinstance(key, X25519PrivateKey):
        raise ValueError("the recipient private key is not an X25519 key")
    return key


def recipient_public_key(private_pem: bytes) -> bytes:
    """The public PEM belonging to a recipient private PEM."""
    return recipient_private_key_from_pem(private_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _export_key(shared: bytes, ephemeral_raw: bytes, recipient_raw: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_raw + recipient_raw,
                info=EXPORT_INFO).derive(shared)


def _export_from_parts(plaintext: bytes, recipient_raw: bytes, ephemeral: X25519PrivateKey, nonce: bytes) -> bytes:
    """The deterministic seam of :meth:`Keystore.export` (ephemeral key and nonce injected)."""
    recipient = X25519PublicKey.from_public_bytes(recipient_raw)
    ephemeral_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _export_key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    header = EXPORT_MAGIC + bytes([EXPORT_VERSION]) + ephemeral_raw
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)


def _open_export(blob: bytes, private: X25519PrivateKey) -> bytes:
    if len(blob) < len(EXPORT_MAGIC) + 1 or blob[: len(EXPORT_MAGIC)] != EXPORT_MAGIC:
        raise FormatError("not a deepkedi key export")
    if blob[len(EXPORT_MAGIC)] != EXPORT_VERSION:
        raise FormatError(f"key export version {blob[len(EXPORT_MAGIC)]} is not supported by this release "
                          f"(it reads version {EXPORT_VERSION})")
    if len(blob) < _EXPORT_HEADER + NONCE_BYTES + 16:
        raise AuthenticationError("cannot open the key export: not sealed to this recipient, or modified")
    header, nonce = blob[:_EXPORT_HEADER], blob[_EXPORT_HEADER:_EXPORT_HEADER + NONCE_BYTES]
    ephemeral_raw = header[len(EXPORT_MAGIC) + 1:]
    recipient_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _export_key(shared, ephemeral_raw, recipient_raw)
        return AESGCM(key).decrypt(nonce, blob[_EXPORT_HEADER + NONCE_BYTES:], header)
    except (InvalidTag, ValueError):
        # ValueError: a low-order ephemeral point (all-zero shared secret); as opaque as a bad tag.
        raise AuthenticationError("cannot open the key export: not sealed to this recipient, or modified") from None


def _parse_export_payload(plaintext: bytes) -> list[tuple[Key, str | None]]:
    try:
        entries = loads_bounded(plaintext, max_bytes=_EXPORT_MAX_BYTES)
        if not isinstance(entries, list):
            raise ValueError
        keys = []
        for e in entries:
            provenance = e.get("provenance") or {}
            label = e.get("label")
            keys.append((Key(key_id=bytes.fromhex(e["key_id"]), secret=_unb64(e["secret"]), created=str(e["created"]),
                             suite=str(e.get("suite", "hybrid")),
                             provenance=provenance if isinstance(provenance, dict) else {}),
                         label if isinstance(label, str) else None))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError,
            binascii.Error):
        # Authenticated yet malformed: a writer bug, not an attack; never echo the content (it holds secrets).
        raise FormatError("the key export is malformed") from None
    return keys
