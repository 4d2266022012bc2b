"""What `kedi serve` is started with: where the data lives and how the keystore is unlocked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepkedi.keys.keystore import KekSource

__all__ = ["ServiceConfig"]

#: Largest request body STOW-RS accepts (docs/SERVICE.md, "Limits").
DEFAULT_MAX_UPLOAD_BYTES = 512 << 20


@dataclass(frozen=True)
class ServiceConfig:
    """The service's settings; the CLI builds one from its options (the library reads no environment).

    Parameters
    ----------
    home
        The service's folder: the default SQLite database (users, sessions, study
        index, keystore) and the default storage live under it.
    kek_source
        Unlocks the keystore (a passphrase or a KEK file); never stored.
    database_url
        SQLAlchemy URL of the service's tables and keystore (default: SQLite under ``home``).
    storage
        Where the encrypted objects live (default: the folder ``home / "objects"``): a
        local folder, or an fsspec URL such as ``s3://bucket/prefix``
        (:mod:`deepkedi.server.objects`, docs/SERVICE.md, "Object storage").
    admin_password
        The first admin's password on first run; None: a random one, returned once.
    """

    home: Path
    kek_source: KekSource
    database_url: str | None = None
    storage: Path | str | None = None
    admin_password: str | None = field(default=None, repr=False)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    #: Session lifetime of a browser sign-in, in seconds.
    session_seconds: int = 8 * 3600
    #: Whether cookies carry the Secure attribute (off only for plain-HTTP loopback tests).
    secure_cookies: bool = True
    #: Failed sign-ins for one user name within ``login_window_seconds`` before sign-in is refused (429).
    login_failures_per_user: int = 5
    #: Failed sign-ins from one client address within the window before sign-in is refused (429); higher
    #: than per user because a hospital's clients often reach the service through one proxy or NAT address.
    login_failures_per_address: int = 20
    login_window_seconds: int = 15 * 60
    #: How long a break-glass grant opens a study to the radiologist who asked (docs/SERVICE.md, "Break-glass").
    break_glass_seconds: int = 3600

    def __post_init__(self) -> None:
        if self.session_seconds <= 0 or self.login_window_seconds <= 0:
            raise ValueError("session_seconds and login_window_seconds must be positive")
        if self.login_failures_per_user < 1 or self.login_failures_per_address < 1:
            raise ValueError("the sign-in failure limits must be at least 1")
        if not 0 < self.break_glass_seconds <= 7 * 86400:
            raise ValueError("break_glass_seconds must be positive and at most a week")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'service.db'}"

    @property
    def resolved_storage(self) -> Path | str:
        """The object storage's location: a local folder or an fsspec URL."""
        return self.storage or self.home / "objects"
