"""The running service's state, held on ``app.state.service``: settings, database, keystore, archive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from deepkedi.keys.keystore import Keystore
    from deepkedi.server.archive import Archive
    from deepkedi.server.config import ServiceConfig
    from deepkedi.server.principal import Principal

__all__ = ["Service"]


@dataclass
class Service:
    """Everything a route needs, built once by :func:`deepkedi.server.app.create_app`."""

    config: ServiceConfig
    engine: Engine
    sessions: sessionmaker[Session]
    keystore: Keystore
    archive: Archive | None = field(default=None)

    def audit(
        self,
        principal: Principal | None,
        operation: str,
        *,
        outcome: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record one event in the keystore's MAC-chained audit trail (who, role, what, outcome, from where).

        ``outcome`` is ``"ok"``, ``"denied"`` or ``"failed"``; ``target`` a pseudonymous id
        (never a patient identifier or a DICOM UID in clear).
        """
        raise NotImplementedError  # filled in by the accounts work (Keystore.record_event)
