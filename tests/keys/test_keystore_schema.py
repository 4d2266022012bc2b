"""deepkedi.keys.keystore.schema: the tables, the SQLite engine's settings, database errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from deepkedi.errors import KeystoreError
from deepkedi.keys.keystore.schema import _database_errors, _display, _make_engine, _meta_value, _metadata


def test_the_tables_are_the_format() -> None:
    # docs/FORMAT.md §10.1
    assert {name: [c.name for c in table.columns] for name, table in _metadata.tables.items()} == {
        "keystore_meta": ["name", "value"],
        "kek_versions": ["version", "created", "kdf", "check_value"],
        "data_keys": [
            "key_id",
            "created",
            "suite",
            "kek_version",
            "wrapped",
            "state",
            "revoked_at",
            "label",
            "provenance",
        ],
        "audit": ["seq", "time", "actor", "operation", "key_id", "file_sha256", "details", "mac"],
    }


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    path = tmp_path / "ks.db"
    engine = _make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            _metadata.create_all(conn)
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "secure_delete", "foreign_keys", "busy_timeout")
            }
            assert pragma == {
                "journal_mode": "wal",
                "synchronous": 2,
                "secure_delete": 1,
                "foreign_keys": 1,
                "busy_timeout": 60000,
            }
            # BEGIN IMMEDIATE: the write lock is held from the start of the transaction, before any write.
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
            with pytest.raises(KeystoreError, match="metadata 'audit_head' is missing"):
                _meta_value(conn, "audit_head")
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:ks?mode=memory&uri=true"])
def test_a_sqlite_keystore_is_a_file(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory"):
        _make_engine(url)


def test_database_errors_name_the_url_without_its_password() -> None:
    url = "postgresql+psycopg://kedi:hunter2@db.hospital.local/kedi"
    assert "hunter2" not in _display(url) and "db.hospital.local" in _display(url)
    with pytest.raises(KeystoreError) as caught, _database_errors(url):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused\nsecond line"))
    assert str(caught.value) == f"keystore {_display(url)}: connection refused"
    with pytest.raises(ValueError), _database_errors(url):  # only driver errors are mapped
        raise ValueError("not a database error")
