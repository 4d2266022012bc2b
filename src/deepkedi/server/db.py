"""The service's tables (SQLAlchemy 2): one declarative base that every server module's tables share.

SQLite by default (a file under the service's folder), PostgreSQL by URL. Nothing
in these tables identifies a patient: studies, series and instances are indexed
by keyed pseudonyms of their UIDs (docs/SERVICE.md lists every column kept in
clear and why).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

__all__ = ["READ_ONLY", "Base"]

#: Execution option of the service's engine for transactions that only read: on SQLite they begin with
#: a plain ``BEGIN`` (a WAL snapshot beside the one writer) instead of ``BEGIN IMMEDIATE``.
READ_ONLY = "deepkedi_read_only"


class Base(DeclarativeBase):
    """The declarative base of every table of the service."""
