"""The running service's state, held on ``app.state.service``: settings, database, keystore, archive."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from deepkedi.server.db import READ_ONLY

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from deepkedi.keys.keystore import Keystore
    from deepkedi.server.archive import Archive
    from deepkedi.server.config import ServiceConfig
    from deepkedi.server.principal import Principal

__all__ = ["ANONYMOUS", "OUTCOMES", "AuditEvent", "Service"]

#: The audit actor of a request nobody signed in for.
ANONYMOUS = "-"
#: What :meth:`Service.audit` records as an event's outcome.
OUTCOMES = frozenset({"ok", "denied", "failed", "throttled"})


@dataclass(frozen=True)
class AuditEvent:
    """One audit row as :meth:`Service.audit` records it: what the keystore's ``record_event`` takes."""

    operation: str
    actor: str
    key_id: str | None
    details: dict[str, Any]


@dataclass
class Service:
    """Everything a route needs, built once by :func:`deepkedi.server.app.create_app`."""

    config: ServiceConfig
    engine: Engine
    sessions: sessionmaker[Session]
    keystore: Keystore
    archive: Archive | None = field(default=None)

    @functools.cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for work that only reads (who is signing in, index lookups): never for a write.

        On SQLite their transactions begin with a plain ``BEGIN``, a snapshot of the WAL
        beside the one writer, instead of ``BEGIN IMMEDIATE``: a view does not queue behind
        the audit rows other requests are writing. Elsewhere they are ordinary sessions.
        """
        return sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    def audit(
        self,
        principal: Principal | None,
        operation: str,
        *,
        outcome: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
        address: str | None = None,
        key_id: str | None = None,
    ) -> None:
        """Record one event in the keystore's MAC-chained audit trail (who, role, what, outcome, from where).

        ``outcome`` is ``"ok"``, ``"denied"`` or ``"failed"`` (``"throttled"`` for a
        refused sign-in); ``target`` a pseudonymous id or a route template (never a
        patient identifier or a DICOM UID in clear). The row's actor is the principal's
        user name, else ``actor`` (a known user name that failed to sign in), else
        ``"-"`` (nobody signed in); the address is the principal's, else ``address``.
        ``key_id`` names the study's data key when the event concerns one. ``details``
        must hold no secret, password, token or patient identifier.

        Break-glass: when the principal holds a grant in force for the study named by
        ``target``, or for one of the studies a search returned (``details["matches"]``,
        their pseudonymous ids), the row says so: ``break_glass`` true and the grants'
        ids in ``break_glass_grants``. So every search, view, metadata read, rendering
        and download made under a grant is flagged, whichever route made it.
        """
        event = self.audit_event(
            principal,
            operation,
            outcome=outcome,
            target=target,
            details=details,
            actor=actor,
            address=address,
            key_id=key_id,
        )
        self.keystore.record_event(event.operation, actor=event.actor, key_id=event.key_id, details=event.details)

    def audit_event(
        self,
        principal: Principal | None,
        operation: str,
        *,
        outcome: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
        address: str | None = None,
        key_id: str | None = None,
    ) -> AuditEvent:
        """The row :meth:`audit` would record, not yet written (for a write that commits it with its own rows)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        record: dict[str, Any] = dict(details or {})
        record.update(
            outcome=outcome,
            role=principal.role.value if principal is not None else None,
            address=principal.address if principal is not None and principal.address else address,
        )
        if target is not None:
            record["target"] = target
        if principal is not None and principal.break_glass:
            grants = _break_glass_grants(principal, target, record.get("matches"))
            if grants:
                record["break_glass"] = True
                record["break_glass_grants"] = grants
        who = principal.username if principal is not None else (actor or ANONYMOUS)
        return AuditEvent(operation=operation, actor=who, key_id=key_id, details=record)

    def close(self) -> None:
        """Release the database connections and forget the KEK."""
        self.keystore.close()
        self.engine.dispose()


def _break_glass_grants(principal: Principal, target: str | None, matches: Any) -> list[int]:
    """The ids of the principal's grants in force for ``target`` or any of ``matches`` (study pseudonyms)."""
    studies = [target] if target is not None else []
    if isinstance(matches, list):
        studies.extend(match for match in matches if isinstance(match, str))
    grants = {grant.grant_id for study in studies if (grant := principal.break_glass_for(study)) is not None}
    return sorted(grants)
