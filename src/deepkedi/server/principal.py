"""Roles and the signed-in user, as every route sees them (no FastAPI import here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BreakGlassAccess", "Principal", "Role"]


class Role(str, enum.Enum):
    """Least-privilege roles of the service (docs/SERVICE.md, "Roles")."""

    #: Users, keys, the audit trail; no images.
    ADMIN = "admin"
    #: Uploads studies; sees only the studies they uploaded.
    TECHNOLOGIST = "technologist"
    #: Views the studies assigned to them or to their group (or, with a reason, any: break-glass).
    RADIOLOGIST = "radiologist"
    #: De-identified data only: pixels, a PS3.15-de-identified header, pseudonymous ids.
    RESEARCHER = "researcher"
    #: Reads and verifies the audit trail; no images.
    AUDITOR = "auditor"


@dataclass(frozen=True)
class BreakGlassAccess:
    """An unexpired break-glass grant held for a study the holder could not otherwise see (docs/SERVICE.md)."""

    grant_id: int
    #: The study's row in the index, and its pseudonymous id (what the audit trail names).
    study_id: int
    study: str
    #: When the grant ends, in seconds since the epoch (UTC).
    expires: float


@dataclass(frozen=True)
class Principal:
    """Who is asking: resolved from a session cookie or a bearer token by :mod:`deepkedi.server.deps`."""

    user_id: int
    username: str
    role: Role
    #: The radiology group the user belongs to (studies can be assigned to a group), if any.
    group: str | None = None
    #: Where the request came from, as the audit records it.
    address: str | None = None
    #: The break-glass grants in force for this request (radiologists only), resolved when the
    #: request is signed in: the access policy opens these studies, the audit flags every event on them.
    break_glass: tuple[BreakGlassAccess, ...] = ()

    def break_glass_for(self, study: str) -> BreakGlassAccess | None:
        """The grant in force for the study with pseudonymous id ``study``, if any."""
        return next((grant for grant in self.break_glass if grant.study == study), None)
