"""The keystore's tables and database engine (docs/FORMAT.md §10.1).

SQLAlchemy Core: SQLite by default (a file, WAL journal, ``BEGIN IMMEDIATE`` so that
concurrent processes queue instead of failing), PostgreSQL by URL. Driver failures
become one :class:`~deepkedi.errors.KeystoreError` naming the URL, password hidden.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from deepkedi.errors import KeystoreError, require_extra

KEYSTORE_VERSION = 1

#: Execution option of a connection whose transactions only read: on SQLite they begin with a plain
#: ``BEGIN`` (a WAL snapshot, no write lock) instead of ``BEGIN IMMEDIATE``.
READ_ONLY = "deepkedi_read_only"
#: Execution option of a write transaction whose commit need not survive a power loss, only a crash of
#: the process (SQLite: ``synchronous = NORMAL`` for it; PostgreSQL: ``synchronous_commit = off``).
RELAXED_SYNC = "deepkedi_relaxed_sync"

#: Values of ``data_keys.state``.
ACTIVE = "active"
REVOKED = "revoked"

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


def _sqlite_path(url: sa.URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _make_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _server_engine(parsed)
    if _sqlite_path(parsed) is None:
        raise ValueError("a SQLite keystore must be a file (sqlite:///PATH), not an in-memory database")
    # pysqlite's own transaction handling would BEGIN DEFERRED lazily; take control of it so that every
    # transaction starts with BEGIN IMMEDIATE: writers queue on the busy timeout from the start instead of
    # failing with "database is locked" when a read lock must be upgraded (SQLAlchemy's pysqlite recipe).
    # Pooled: a service that records one audit row per request would otherwise open a connection (and run
    # the PRAGMAs below) for each row, inside the one-writer critical section. Connections move between
    # threads, never used by two at once (the pool hands each to one checkout).
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": 60.0, "check_same_thread": False},
        poolclass=sa.pool.QueuePool,
        pool_size=4,
        max_overflow=16,
    )

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
        # A transaction that only reads (READ_ONLY) takes no write lock: in WAL mode it reads a snapshot
        # beside the one writer, instead of queueing behind every audit row another thread is writing.
        options = connection.get_execution_options()
        if options.get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        # Set for every write transaction, so that a pooled connection a relaxed one used is FULL again.
        # WAL + NORMAL: the commit is in the log (the OS's page cache) when it returns, so it survives the
        # process being killed, but the log is synced only at checkpoints: a power loss may lose it.
        connection.exec_driver_sql(f"PRAGMA synchronous = {'NORMAL' if options.get(RELAXED_SYNC) else 'FULL'}")
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _server_engine(parsed: sa.URL) -> sa.Engine:
    """The engine of a database server's URL; a missing driver or unknown database is one clear error.

    ``postgresql+psycopg://`` is the supported server (the ``postgres`` extra brings psycopg 3);
    another driver SQLAlchemy knows works when it is installed.
    """
    try:
        scheme = f"{parsed.get_backend_name()}+{parsed.get_driver_name()}"  # loads the dialect
    except sa.exc.NoSuchModuleError:
        raise ValueError(
            f"keystore URL: {parsed.drivername!r} is not a database SQLAlchemy knows; "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    if scheme == "postgresql+psycopg":
        require_extra("psycopg", "postgres", feature="a PostgreSQL keystore")
    try:
        return sa.create_engine(parsed)
    except ImportError as error:  # the driver of a database SQLAlchemy knows is not installed
        raise ValueError(
            f"keystore URL: the {scheme} driver ({error.name}) is not installed; "
            "PostgreSQL keystores use postgresql+psycopg://USER@HOST/DB (pip install 'deepkedi[postgres]')"
        ) from None


def _display(url: str | sa.URL) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def _database_errors(url: str | sa.URL) -> Iterator[None]:
    """Turn driver failures (server down, disk full, lock timeout) into one ``KeystoreError``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:  # operational, interface, programming, and "file is not a database"
        reason = str(getattr(exc, "orig", exc) or type(exc).__name__).strip().splitlines()
        raise KeystoreError(f"keystore {_display(url)}: {reason[0] if reason else 'database error'}") from None


def _meta_value(conn: sa.Connection, name: str) -> str:
    value = conn.execute(sa.select(_meta.c.value).where(_meta.c.name == name)).scalar_one_or_none()
    if value is None:
        raise KeystoreError(f"the keystore is damaged: metadata {name!r} is missing")
    return value
