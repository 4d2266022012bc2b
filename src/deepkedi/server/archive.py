"""The encrypted archive: every stored object a deepkedi container under its study's keystore key."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepkedi.server.service import Service

__all__ = ["Archive"]


class Archive:
    """Stores and retrieves DICOM instances, encrypted, with a pseudonymous index (filled in by the archive work)."""

    def __init__(self, service: Service) -> None:
        self.service = service
