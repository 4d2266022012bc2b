"""The :class:`Keystore`: data keys in one database, every operation one transaction, audited.

Each operation runs in one database transaction that holds the write lock and the
audit head (:meth:`Keystore._write`), changes the tables of :mod:`.schema`, and
appends its audit rows (:mod:`.audit`) in the same transaction. Keys are wrapped under
the KEK (:mod:`.kek`); exports use :mod:`.export`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deepkedi._json import loads_bounded
from deepkedi.errors import AuthenticationError, KeyNotFoundError, KeyRevokedError, KeystoreError
from deepkedi.inputs import check_regular_input
from deepkedi.keys.keyfile import KEY_ID_BYTES, Key, generate_key
from deepkedi.keys.keystore.audit import (
    AuditEntry,
    _audit_key,
    _chain_rows,
    _entry,
    _Head,
    _head_json,
    _open_audit_secret,
    _verify_chain,
    _wrapped_audit_secret,
)
from deepkedi.keys.keystore.export import (
    _export_payload,
    _open_export,
    _parse_export_payload,
    _recipient_fingerprint,
    _recipient_private,
    _recipient_raw,
    _seal_export,
)
from deepkedi.keys.keystore.kek import (
    KekSource,
    _as_source,
    _check_matches,
    _check_value,
    _derive_kek,
    _new_derivation,
    _unwrap,
    _wrap,
)
from deepkedi.keys.keystore.schema import (
    ACTIVE,
    KEYSTORE_VERSION,
    READ_ONLY,
    RELAXED_SYNC,
    REVOKED,
    _audit,
    _data_keys,
    _database_errors,
    _display,
    _kek_versions,
    _make_engine,
    _meta,
    _meta_value,
    _metadata,
    _sqlite_path,
)


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
            "key_id": self.key_id,
            "created": self.created,
            "suite": self.suite,
            "kek_version": self.kek_version,
            "state": self.state,
            "revoked_at": self.revoked_at,
            "label": self.label,
            "provenance": dict(self.provenance),
        }


def _info_from_row(row: Any) -> KeyInfo:
    try:
        provenance = loads_bounded(row.provenance)
    except (TypeError, ValueError):
        provenance = {}
    return KeyInfo(
        key_id=row.key_id,
        created=row.created,
        suite=row.suite,
        kek_version=row.kek_version,
        state=row.state,
        revoked_at=row.revoked_at,
        label=row.label,
        provenance=provenance if isinstance(provenance, dict) else {},
    )


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

    def __init__(
        self, engine: sa.Engine, *, kek: bytes | None, kek_version: int | None, audit_key: bytes | None
    ) -> None:
        # Private: use Keystore.open / Keystore.init, which check the KEK before handing out a store.
        self._engine = engine
        # Reads that need no write lock (key_info): on SQLite they do not queue behind audit writes.
        self._reader = engine.execution_options(**{READ_ONLY: True})
        # Writes of events that need not survive a power loss (record_event(durable=False)).
        self._relaxed = engine.execution_options(**{RELAXED_SYNC: True})
        # Writers of this process queue here, woken in turn, rather than in SQLite's busy handler,
        # which polls with sleeps of up to 100 ms (other processes still queue there).
        self._write_lock = threading.RLock()
        # Service events waiting to be written; one thread at a time writes all of them (group commit).
        self._events: list[_QueuedEvent] = []
        self._events_ready = threading.Condition()
        self._events_writer = False
        self._is_sqlite = engine.dialect.name == "sqlite"
        # Writers of other processes on the same SQLite file (kedi serve --workers) queue on a file lock
        # beside it, woken by the kernel when it is released, not in SQLite's polling busy handler.
        self._file_lock = _WriterFileLock.beside(engine.url.database) if self._is_sqlite else None
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
                conn.execute(
                    sa.insert(_kek_versions).values(
                        version=1, created=_now(), kdf=json.dumps(params), check_value=_check_value(kek, 1)
                    )
                )
                conn.execute(
                    sa.insert(_meta),
                    [
                        {"name": "format_version", "value": str(KEYSTORE_VERSION)},
                        {"name": "current_kek_version", "value": "1"},
                        {"name": "audit_secret", "value": _wrapped_audit_secret(kek, 1, audit_secret)},
                        {"name": "audit_head", "value": _head_json(_audit_key(audit_secret), _Head(0, 0, bytes(32)))},
                    ],
                )
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
                        f"(it reads version {KEYSTORE_VERSION})"
                    )
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
        if self._file_lock is not None:
            self._file_lock.close()

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
    def _write(self, *, durable: bool = True) -> Iterator[tuple[sa.Connection, _Head]]:
        """One transaction that holds the keystore's write lock and the audit head.

        SQLite: ``BEGIN IMMEDIATE`` already holds the database's one write lock. PostgreSQL: the
        ``FOR UPDATE`` lock on the audit head row queues writers, so audit sequence numbers never race.
        Not ``durable``: the commit survives a crash of the process, not a power loss (no sync of its own).
        """
        engine = self._engine if durable else self._relaxed
        with (
            self._write_lock,
            self._file_lock or contextlib.nullcontext(),
            _database_errors(self._engine.url),
            engine.begin() as conn,
        ):
            if not durable and conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            value = conn.execute(_AUDIT_HEAD_FOR_UPDATE).scalar_one_or_none()
            current = conn.execute(_CURRENT_KEK_VERSION).scalar_one_or_none()
            if value is None or current is None:
                raise KeystoreError("the keystore is damaged: its metadata is missing")
            if self._kek_version is not None and int(current) != self._kek_version:
                raise KeystoreError(
                    f"the KEK was rotated to version {current} by another process; open the keystore again"
                )
            try:
                doc = loads_bounded(value)
                head = _Head(int(doc["count"]), int(doc["last_seq"]), bytes.fromhex(doc["last_mac"]))
            except (KeyError, TypeError, ValueError):
                raise KeystoreError("the keystore is damaged: its audit head is malformed") from None
            yield conn, head

    def _append(
        self,
        conn: sa.Connection,
        head: _Head,
        actor: str,
        events: Sequence[tuple[str, str | None, str | None, Mapping[str, Any]]],
    ) -> None:
        """Append audit rows chained from the head (not from the last row, so a cut tail stays visible)."""
        self._append_rows(conn, head, self._chain(head, actor, events))

    def _chain(
        self, head: _Head, actor: str, events: Sequence[tuple[str, str | None, str | None, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Audit rows chained from ``head``, which moves on past them (nothing written yet)."""
        assert self._audit_key is not None
        rows = _chain_rows(self._audit_key, head, actor, events)
        if rows:
            head.count, head.last_seq, head.last_mac = head.count + len(rows), rows[-1]["seq"], rows[-1]["mac"]
        return rows

    def _append_rows(self, conn: sa.Connection, head: _Head, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (from :meth:`_chain`) and the MAC'd head that now names the last of them."""
        assert self._audit_key is not None
        if not rows:
            return
        conn.execute(_INSERT_AUDIT, rows)
        conn.execute(_SET_AUDIT_HEAD, {"head": _head_json(self._audit_key, head)})

    def _row(self, conn: sa.Connection, key_id: str) -> Any:
        return conn.execute(_KEY_ROW, {"key_id": key_id}).one_or_none()

    def _key_from_row(self, aead: AESGCM, row: Any) -> Key:
        raw_id = bytes.fromhex(row.key_id)
        try:
            secret = _unwrap(aead, raw_id, row.kek_version, row.wrapped)
        except InvalidTag:
            raise AuthenticationError(f"the keystore entry of key {row.key_id} was modified") from None
        info = _info_from_row(row)
        return Key(key_id=raw_id, secret=secret, created=row.created, suite=row.suite, provenance=info.provenance)

    def _insert_keys(
        self,
        conn: sa.Connection,
        head: _Head,
        keys: Sequence[tuple[Key, str | None]],
        actor: str,
        operation: str,
        details: Mapping[str, Any],
    ) -> None:
        aead, version = self._need_kek()
        rows = []
        for key, label in keys:
            if key.suite != "hybrid":
                raise ValueError(f"the keystore holds hybrid master keys, not {key.suite!r} keys")
            rows.append(
                {
                    "key_id": key.key_id_hex,
                    "created": key.created or _now(),
                    "suite": key.suite,
                    "kek_version": version,
                    "wrapped": _wrap(aead, key.key_id, version, key.secret),
                    "state": ACTIVE,
                    "revoked_at": None,
                    "label": label,
                    "provenance": json.dumps(dict(key.provenance), sort_keys=True),
                }
            )
        if rows:
            try:
                conn.execute(sa.insert(_data_keys), rows)
            except sa.exc.IntegrityError:
                raise KeystoreError("a key with one of these ids is already in the keystore") from None
        self._append(
            conn,
            head,
            actor,
            [
                (operation, key.key_id_hex, None, {**details, **({"label": label} if label else {})})
                for key, label in keys
            ],
        )

    def _rewrap_rows(
        self,
        conn: sa.Connection,
        old: AESGCM,
        old_version: int,
        new: AESGCM,
        new_version: int,
        limit: int | None = None,
    ) -> int:
        query = (
            sa.select(_data_keys.c.key_id, _data_keys.c.wrapped)
            .where(_data_keys.c.kek_version == old_version, _data_keys.c.state == ACTIVE)
            .order_by(_data_keys.c.key_id)
        )
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

    def new_key(
        self,
        *,
        label: str | None = None,
        provenance: Mapping[str, Any] | None = None,
        actor: str,
        gan: bool | None = None,
    ) -> Key:
        """Create, store and return a new hybrid master key.

        The secret comes from :func:`deepkedi.keys.generate_key`: OS randomness, mixed
        with a ZZ-GAN key image when PyTorch is installed (``gan`` as there).
        ``provenance`` is merged into the generated provenance (public; no secrets).
        """
        _check_actor(actor)
        key = generate_key(gan=gan)
        if provenance:
            key = Key(
                key_id=key.key_id,
                secret=key.secret,
                created=key.created,
                suite=key.suite,
                provenance={**key.provenance, **provenance},
            )
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
                    "run rewrap with that version's passphrase or KEK"
                )
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
        with _database_errors(self._engine.url), self._reader.begin() as conn:
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
            conn.execute(
                sa.update(_data_keys)
                .where(_data_keys.c.key_id == key_hex)
                .values(wrapped=b"", state=REVOKED, revoked_at=when)
            )
            self._append(conn, head, actor, [("revoke", key_hex, None, {})])
            row = self._row(conn, key_hex)
        if self._is_sqlite:
            # Move the page images out of the WAL into the (secure_delete) main file and truncate the WAL,
            # so the old wrapped secret does not linger in the journal.
            raw = self._engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None  # a connection the pool just handed out is open
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
            conn.execute(
                sa.insert(_kek_versions).values(
                    version=new_version,
                    created=_now(),
                    kdf=json.dumps(params),
                    check_value=_check_value(new_kek, new_version),
                )
            )
            audit_secret = _open_audit_secret(self._kek, _meta_value(conn, "audit_secret"))
            conn.execute(
                sa.update(_meta)
                .where(_meta.c.name == "audit_secret")
                .values(value=_wrapped_audit_secret(new_kek, new_version, audit_secret))
            )
            conn.execute(sa.update(_meta).where(_meta.c.name == "current_kek_version").values(value=str(new_version)))
            moved = 0
            if batch_size is None:
                moved = self._rewrap_rows(conn, old_aead, old_version, new_aead, new_version)
            self._append(
                conn,
                head,
                actor,
                [
                    (
                        "rotate",
                        None,
                        None,
                        {
                            "from_kek_version": old_version,
                            "to_kek_version": new_version,
                            "kdf": params["kdf"],
                            "rewrapped": moved,
                            "batched": batch_size is not None,
                        },
                    )
                ],
            )
        self._kek, self._kek_version = new_kek, new_version
        if batch_size is not None:
            moved = 0
            while True:
                with self._write() as (conn, head):
                    done = self._rewrap_rows(conn, old_aead, old_version, new_aead, new_version, limit=batch_size)
                    if done:
                        moved += done
                    else:
                        self._append(
                            conn,
                            head,
                            actor,
                            [
                                (
                                    "rewrap",
                                    None,
                                    None,
                                    {
                                        "from_kek_versions": [old_version],
                                        "to_kek_version": new_version,
                                        "rewrapped": moved,
                                    },
                                )
                            ],
                        )
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
                .group_by(_data_keys.c.kek_version)
            ).all()
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
            versions = {
                row.version: row
                for row in conn.execute(sa.select(_kek_versions).where(_kek_versions.c.version.in_(list(pending))))
            }
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
                    "give that version's passphrase or KEK"
                )
        moved = 0
        with self._write() as (conn, head):
            for version, aead in openers.items():
                moved += self._rewrap_rows(conn, aead, version, new_aead, new_version)
            self._append(
                conn,
                head,
                actor,
                [
                    (
                        "rewrap",
                        None,
                        None,
                        {"from_kek_versions": sorted(openers), "to_kek_version": new_version, "rewrapped": moved},
                    )
                ],
            )
        return moved

    # ---------------------------------------------------------------------------- export/import

    def export(
        self, key_ids: Iterable[str | bytes], recipient_public_key: bytes | X25519PublicKey, *, actor: str
    ) -> bytes:
        """Seal keys for another site's recipient key (X25519 ECIES; docs/FORMAT.md, "Key export").

        The blob holds the secrets: anyone with the recipient's private key reads them.

        Raises
        ------
        KeyNotFoundError, KeyRevokedError
            One of the keys is unknown or revoked (nothing is exported).
        """
        _check_actor(actor)
        recipient_raw = _recipient_raw(recipient_public_key)
        fingerprint = _recipient_fingerprint(recipient_raw)
        ids = [_key_id_bytes(k).hex() for k in key_ids]
        if not ids:
            raise ValueError("name at least one key to export")
        aead, version = self._need_kek()
        entries: list[tuple[Key, str | None]] = []
        with self._write() as (conn, head):
            for key_hex in dict.fromkeys(ids):
                row = self._row(conn, key_hex)
                if row is None:
                    raise KeyNotFoundError(f"key {key_hex} is not in the keystore")
                if row.state == REVOKED:
                    raise KeyRevokedError(key_hex, row.revoked_at)
                if row.kek_version != version:
                    raise KeystoreError(
                        f"key {key_hex} is still wrapped under KEK version {row.kek_version}; run rewrap first"
                    )
                entries.append((self._key_from_row(aead, row), row.label))
            self._append(
                conn,
                head,
                actor,
                [("export", key.key_id_hex, None, {"recipient": fingerprint}) for key, _label in entries],
            )
        return _seal_export(_export_payload(entries), recipient_raw)

    def import_(self, blob: bytes, recipient_private_key: bytes | X25519PrivateKey, *, actor: str) -> dict[str, str]:
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
        entries = _parse_export_payload(_open_export(blob, _recipient_private(recipient_private_key)))
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
                        raise KeystoreError(
                            f"key {key.key_id_hex} is already in the keystore with a different secret; nothing imported"
                        )
                    outcome[key.key_id_hex] = "present"
            self._insert_keys(conn, head, fresh, actor, "import", {})
        return outcome

    # ---------------------------------------------------------------------------------- audit

    def record_event(
        self,
        operation: str,
        *,
        actor: str,
        key_id: str | bytes | None = None,
        details: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> None:
        """Append one event of a service built on the keystore (a sign-in, a view, a refusal) to the audit trail.

        The row is chained and MAC'd like the keystore's own, so :meth:`verify_audit`
        (``kedi keys audit --verify``) covers it, and committed before this returns;
        events other threads record meanwhile share its transaction (group commit).
        Needs the KEK (the audit key comes from it).

        Parameters
        ----------
        operation
            What happened, 1 to 32 printable characters, e.g. ``"session.login"``. The
            keystore's own operation names (``init``, ``new``, ``get``, ``revoke``…) are
            refused: a service event cannot pass for a key operation.
        actor
            Who acted (the service's user name).
        key_id
            The data key concerned, if any (32 hexadecimal digits or the 16 bytes).
        details
            A JSON object, public: never a secret or a patient identifier.
        durable
            ``False`` for a high-rate event whose row may be lost in a power loss (never in a
            crash of the process: it is committed, in SQLite's log, when this returns), as a
            PACS's own index is: its transaction does not wait for a sync of the disk (SQLite
            ``synchronous = NORMAL``, PostgreSQL ``synchronous_commit = off``). A power loss can
            only cut the trail's tail, which :meth:`verify_audit` then still accepts as a chain;
            key operations are always durable. Shares a transaction with durable events
            queued meanwhile, which makes it durable.

        Raises
        ------
        ValueError
            A refused operation name, an empty actor, a malformed key id, details that
            are not a JSON object, or a keystore opened without its KEK.
        """
        self._write_event(self._service_event(operation, actor=actor, key_id=key_id, details=details, durable=durable))

    def _service_event(
        self,
        operation: str,
        *,
        actor: str,
        key_id: str | bytes | None,
        details: Mapping[str, Any] | None,
        durable: bool = True,
    ) -> _QueuedEvent:
        """A service event checked as :meth:`record_event` documents (the same ``ValueError``), not yet written."""
        _check_actor(actor)
        if (
            not isinstance(operation, str)
            or not 1 <= len(operation) <= 32
            or not operation.isprintable()
            or operation.strip() != operation
        ):
            raise ValueError("an audit operation is 1 to 32 printable characters without surrounding spaces")
        if operation in _KEYSTORE_OPERATIONS:
            raise ValueError(f"{operation!r} is one of the keystore's own operations; name the service event otherwise")
        key_hex = None if key_id is None else _key_id_bytes(key_id).hex()
        payload = dict(details or {})
        try:
            json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError("audit details must be a JSON object (strings, numbers, lists, objects)") from None
        self._need_kek()
        return _QueuedEvent(actor, (operation, key_hex, None, payload), durable=durable)

    @contextlib.contextmanager
    def recording_events(self) -> Iterator[tuple[sa.Connection, EventRecorder]]:
        """One write transaction on the keystore's database for a service's own rows and its audit events, together.

        Yields the transaction's connection, on which the service writes its own tables
        (they must live in the keystore's database), and a function that appends a
        service event as :meth:`record_event` does (same arguments, same checks), chained
        and MAC'd in this transaction. Everything commits at the end of the ``with``
        block, in one commit (one sync on SQLite), or nothing does if it raises: a row
        is never there without its audit event, nor the event without the row. It holds
        the keystore's write lock: call no other keystore method inside the block.
        """
        self._need_kek()
        with self._write() as (conn, head):

            def record(
                operation: str,
                *,
                actor: str,
                key_id: str | bytes | None = None,
                details: Mapping[str, Any] | None = None,
            ) -> None:
                queued = self._service_event(operation, actor=actor, key_id=key_id, details=details)
                self._append(conn, head, queued.actor, [queued.event])

            yield conn, record

    def _write_event(self, event: _QueuedEvent) -> None:
        """Commit ``event``'s row, with whatever other threads queued meanwhile (group commit); return once written.

        The thread that finds no writer at work becomes it: it takes every queued event
        and writes them, in arrival order, in one transaction (one fsync on SQLite instead
        of one per event). The others wait until their own row is committed, or share the
        transaction's failure. A service that audits every request under load would
        otherwise be bounded by one fsync per request.
        """
        batch: list[_QueuedEvent] = []
        with self._events_ready:
            self._events.append(event)
            while not event.done and self._events_writer:
                self._events_ready.wait()
            if not event.done:
                self._events_writer = True
                batch, self._events = self._events, []
        if batch:
            written = False
            try:
                durable = any(queued.durable for queued in batch)
                with self._write() if durable else self._write(durable=False) as (conn, head):
                    rows = [row for queued in batch for row in self._chain(head, queued.actor, [queued.event])]
                    self._append_rows(conn, head, rows)  # one insert and one head update for the batch
                written = True
            finally:
                # The writer's own failure propagates from here; the others' calls raise this one.
                failed = None if written else KeystoreError("the audit transaction that held this event failed")
                with self._events_ready:
                    for queued in batch:
                        queued.done, queued.error = True, (None if queued is event else failed)
                    self._events_writer = False
                    self._events_ready.notify_all()
        if event.error is not None:
            raise event.error

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
        return _verify_chain(self._audit_key, rows, head_value)


class EventRecorder(Protocol):
    """What :meth:`Keystore.recording_events` yields to append a service event as record_event does."""

    def __call__(
        self,
        operation: str,
        *,
        actor: str,
        key_id: str | bytes | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None: ...


@dataclass
class _QueuedEvent:
    """One service event waiting for :meth:`Keystore._write_event`: its row, then whether (and how) it was written."""

    actor: str
    event: tuple[str, str | None, str | None, Mapping[str, Any]]
    durable: bool = True
    done: bool = False
    error: BaseException | None = None


#: Operations the keystore itself writes (docs/FORMAT.md §10.1); :meth:`Keystore.record_event` refuses them.
_KEYSTORE_OPERATIONS = frozenset({"init", "new", "add", "get", "rotate", "rewrap", "revoke", "export", "import"})


def _check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("actor must name who acts (an OS user name) for the audit trail")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


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


def _stored_json(value: Any, what: str) -> Any:
    """A JSON field of the keystore; a damaged one raises :class:`KeystoreError` naming ``what``."""
    try:
        return loads_bounded(value)
    except (TypeError, ValueError):
        raise KeystoreError(f"the keystore is damaged: its {what} are malformed") from None


class _WriterFileLock:
    """An exclusive ``flock`` on ``DATABASE-writer.lock``, taken around each write transaction (re-entrant).

    SQLite lets one writer at a time in and makes the others poll (sleeps of up to 100 ms);
    with several processes on one database file, each waiting writer would add that to its
    latency. Taken before ``BEGIN IMMEDIATE`` and released after the commit, this lock queues
    the writers of every process in the kernel instead, so a waiter runs as soon as the lock
    is free. Callers already hold the keystore's thread lock: one descriptor per keystore.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._depth = 0

    @classmethod
    def beside(cls, database: str | None) -> _WriterFileLock | None:
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        try:
            return cls(database + "-writer.lock")
        except OSError:
            return None  # a read-only folder: SQLite's own locking still holds

    def __enter__(self) -> None:
        import fcntl

        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        import fcntl

        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


# Statements a service runs at every request (a key's state, an audit event), built once:
# building one cost about as much as running it.
_KEY_ROW = sa.select(_data_keys).where(_data_keys.c.key_id == sa.bindparam("key_id"))
_AUDIT_HEAD_FOR_UPDATE = sa.select(_meta.c.value).where(_meta.c.name == "audit_head").with_for_update()
_CURRENT_KEK_VERSION = sa.select(_meta.c.value).where(_meta.c.name == "current_kek_version")
_INSERT_AUDIT = sa.insert(_audit)
_SET_AUDIT_HEAD = sa.update(_meta).where(_meta.c.name == "audit_head").values(value=sa.bindparam("head"))
