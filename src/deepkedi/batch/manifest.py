"""The batch manifest: one SQLite file recording what a folder run did to each input.

One row per input, keyed by its path relative to the input folder: size, SHA-256,
the key id of the encrypted side, the output path and size, the status
(``pending``, ``done``, ``skipped``, ``refused``, ``failed``) and the error. Only
the parent process writes it, one transaction per finished chunk, so a run killed
at any point leaves a consistent manifest that ``resume`` continues from
(docs/SCALE.md). The file is created private (0600).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MANIFEST_NAME", "Entry", "Manifest", "ManifestMismatchError", "Status"]

#: The manifest's default name, in the output folder (a dot name: folder runs skip it).
MANIFEST_NAME = ".kedi-manifest.sqlite"
SCHEMA_VERSION = "1"


class Status:
    """An entry's status."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    REFUSED = "refused"
    FAILED = "failed"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entry (
    rel TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT,
    key_id TEXT,
    output TEXT NOT NULL,
    output_size INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    updated REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Entry:
    """One input's row."""

    rel: str
    size: int
    output: str
    status: str
    sha256: str | None = None
    key_id: str | None = None
    output_size: int | None = None
    error: str | None = None


class ManifestMismatchError(ValueError):
    """The manifest belongs to another run (another mode, input folder or options)."""


class Manifest:
    """An open manifest; ``with Manifest(path) as m:`` closes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Private (0600): input names can carry patient names, and hashes identify files.
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def bind(self, run: dict[str, str]) -> None:
        """Record what this run is, or refuse a manifest made by a different one."""
        stored = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if stored:
            wanted = {"schema": SCHEMA_VERSION, **run}
            differs = sorted(k for k in wanted if stored.get(k) != wanted[k])
            if differs:
                raise ManifestMismatchError(
                    f"{self.path} records another run ({', '.join(differs)} differ); "
                    "give another --manifest or remove it"
                )
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)", [("schema", SCHEMA_VERSION), *run.items()]
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def entries(self) -> dict[str, Entry]:
        rows = self._db.execute(
            "SELECT rel, size, output, status, sha256, key_id, output_size, error FROM entry"
        ).fetchall()
        return {row[0]: Entry(*row) for row in rows}

    def record(self, entries: Iterable[Entry]) -> None:
        """Insert or replace ``entries`` in one transaction."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO entry (rel, size, output, status, sha256, key_id, output_size, error, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.rel, e.size, e.output, e.status, e.sha256, e.key_id, e.output_size, e.error, now) for e in entries],
            )

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM entry GROUP BY status").fetchall())

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries().values())


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
