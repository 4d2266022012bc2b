"""Break-glass grants: the table and what is done with it (docs/SERVICE.md, "Break-glass access").

A radiologist may open a study that is not assigned to them, in an emergency, by
giving a reason. The grant opens that study to them alone, for
``ServiceConfig.break_glass_seconds``; an administrator may end it earlier. While it
is in force, the principal of each of their requests carries it
(:class:`~deepkedi.server.principal.BreakGlassAccess`, resolved at sign-in by
:mod:`deepkedi.server.deps`): the access policy opens the study, and
:meth:`Service.audit <deepkedi.server.service.Service.audit>` flags every event on it.

The reason is free text that may name the patient: it is sealed
(:class:`~deepkedi.server.archive.StudySeal`, AES-256-GCM under a key derived from the
study's data key) with the grant's row as associated data, so it is not in clear at
rest, cannot be moved to another grant, and is shredded with the study's key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from deepkedi.server.accounts import User
from deepkedi.server.archive import StudyIndex, StudySeal
from deepkedi.server.db import Base
from deepkedi.server.principal import BreakGlassAccess, Principal, Role

__all__ = [
    "MAX_REASON_LENGTH",
    "MIN_REASON_LENGTH",
    "BreakGlassGrant",
    "GrantView",
    "check_reason",
    "current_time",
    "end_grant",
    "grants_in_force",
    "list_grants",
    "open_grant",
    "reason_binding",
    "with_grants",
]

#: Fewest characters a reason has (after surrounding white space is removed): a word or two is not a reason.
MIN_REASON_LENGTH = 10
#: Most characters a reason has.
MAX_REASON_LENGTH = 1000


class BreakGlassGrant(Base):
    """One break-glass grant: who, which study, when it ends (or was ended, by whom), the reason sealed."""

    __tablename__ = "service_break_glass"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("service_users.id"), index=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("archive_studies.id"), index=True)
    #: Seconds since the epoch (UTC).
    created: Mapped[float] = mapped_column(sa.Float)
    expires: Mapped[float] = mapped_column(sa.Float)
    #: When an administrator ended the grant early, and who (None while it runs its course).
    ended: Mapped[float | None] = mapped_column(sa.Float, default=None)
    ended_by: Mapped[int | None] = mapped_column(sa.ForeignKey("service_users.id"), default=None)
    #: The reason, sealed with the study's metadata key, bound to :func:`reason_binding` of this row's id.
    reason: Mapped[bytes] = mapped_column(sa.LargeBinary)

    def in_force(self, now: float) -> bool:
        return self.ended is None and self.expires > now


def current_time() -> float:
    """The clock grants are judged by, in seconds since the epoch (one place, so that tests can move it)."""
    return time.time()


def reason_binding(grant_id: int) -> str:
    """The associated data a grant's sealed reason is bound to (distinct from every binding of the index's rows)."""
    return f"break-glass-{grant_id}"


def check_reason(reason: str) -> str:
    """The reason as kept: surrounding white space removed; ``ValueError`` unless 10 to 1000 characters remain."""
    if not isinstance(reason, str):
        raise ValueError("the reason is text")
    reason = reason.strip()
    if not MIN_REASON_LENGTH <= len(reason) <= MAX_REASON_LENGTH:
        raise ValueError(f"the reason is {MIN_REASON_LENGTH} to {MAX_REASON_LENGTH} characters")
    return reason


def open_grant(
    db: Session,
    *,
    user_id: int,
    study_id: int,
    reason: str,
    seal: StudySeal,
    lifetime: float,
    now: float | None = None,
) -> BreakGlassGrant:
    """Grant ``study_id`` to ``user_id`` for ``lifetime`` seconds, the reason sealed (the caller commits)."""
    reason = check_reason(reason)
    if lifetime <= 0:
        raise ValueError("a grant's lifetime is a positive number of seconds")
    now = current_time() if now is None else now
    row = BreakGlassGrant(user_id=user_id, study_id=study_id, created=now, expires=now + lifetime, reason=b"")
    db.add(row)
    db.flush()  # the row's id is what the sealed reason is bound to
    row.reason = seal.seal(reason_binding(row.id), {"reason": reason})
    return row


def end_grant(row: BreakGlassGrant, *, by: int, now: float | None = None) -> None:
    """End ``row`` now (the caller commits); ``ValueError`` if it is no longer in force."""
    now = current_time() if now is None else now
    if not row.in_force(now):
        raise ValueError("the grant has already ended")
    row.ended, row.ended_by = now, by


def grants_in_force(db: Session, principal: Principal, *, now: float | None = None) -> tuple[BreakGlassAccess, ...]:
    """The radiologist's grants in force, one per study, for studies not assigned to them or their group.

    A study assigned to them since they broke the glass is open to them anyway: its
    accesses are no longer break-glass ones.
    """
    if principal.role is not Role.RADIOLOGIST:
        return ()
    now = current_time() if now is None else now
    rows = db.execute(
        _GRANTS_IN_FORCE, {"user_id": principal.user_id, "group": principal.group or None, "now": now}
    ).all()
    latest: dict[int, BreakGlassAccess] = {}
    for grant_id, study_id, pseudonym, expires in rows:
        latest.setdefault(study_id, BreakGlassAccess(grant_id, study_id, pseudonym, expires))
    return tuple(latest.values())


#: :func:`grants_in_force`'s query, built once (every radiologist's request runs it). The
#: assignment test is :func:`deepkedi.server.policy.assigned_filter`'s with the user and group
#: bound: a NULL group matches nothing, as no group does there. COALESCE: the assignment
#: columns may be NULL, and NOT NULL is NULL (the row would be dropped).
_GRANTS_IN_FORCE = (
    sa.select(BreakGlassGrant.id, BreakGlassGrant.study_id, StudyIndex.pseudonym, BreakGlassGrant.expires)
    .join(StudyIndex, StudyIndex.id == BreakGlassGrant.study_id)
    .where(
        BreakGlassGrant.user_id == sa.bindparam("user_id"),
        BreakGlassGrant.ended.is_(None),
        BreakGlassGrant.expires > sa.bindparam("now"),
        sa.not_(
            sa.func.coalesce(
                sa.or_(
                    StudyIndex.assigned_user_id == sa.bindparam("user_id"),
                    StudyIndex.assigned_group == sa.bindparam("group"),
                ),
                sa.false(),
            )
        ),
    )
    .order_by(BreakGlassGrant.expires.desc(), BreakGlassGrant.id.desc())
)


def with_grants(db: Session, principal: Principal, *, now: float | None = None) -> Principal:
    """``principal`` carrying its break-glass grants in force (unchanged for roles that cannot hold any)."""
    if principal.role is not Role.RADIOLOGIST:
        return principal
    found = grants_in_force(db, principal, now=now)
    if not found:
        return principal
    return replace(principal, break_glass=found)


@dataclass(frozen=True)
class GrantView:
    """A grant with the names a reviewer reads: the user's, the study's pseudonymous id, who ended it."""

    grant: BreakGlassGrant
    user: str
    study: str
    ended_by: str | None


def list_grants(db: Session, *, limit: int, before: int | None = None) -> list[GrantView]:
    """Grants newest first (``before``: only those with a smaller id), at most ``limit``."""
    ender = sa.orm.aliased(User)
    query = (
        sa.select(BreakGlassGrant, User.username, StudyIndex.pseudonym, ender.username)
        .join(User, User.id == BreakGlassGrant.user_id)
        .join(StudyIndex, StudyIndex.id == BreakGlassGrant.study_id)
        .outerjoin(ender, ender.id == BreakGlassGrant.ended_by)
        .order_by(BreakGlassGrant.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(BreakGlassGrant.id < before)
    return [GrantView(grant, user, study, ended_by) for grant, user, study, ended_by in db.execute(query).all()]
