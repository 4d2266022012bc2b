"""The one exception hierarchy of deepkedi.

Every expected failure raises a subclass of :class:`DeepKediError`. The command
line maps them to exit codes (DESIGN.md, "Fail clearly"):

==========================  =========  =======================================
exception                   exit code  meaning
==========================  =========  =======================================
``AuthenticationError``     3          wrong key, tampered or truncated container
``KeyNotFoundError``        3          the key the container names is not at hand
``KeyRevokedError``         3          the key was revoked (crypto-shredded) in the keystore
``UnsupportedImageError``   4          input cannot be read as a supported image
``FormatError``             4          input is not a deepkedi container at all
``KeyFileError``            4          a key file that cannot be read
``KeystoreError``           4          no keystore, another version, damaged or in conflict
``InputTooLargeError``      4          the input would decode to more bytes than allowed
``OutputError``             5          the output cannot be written (disk full, read-only, name too long)
==========================  =========  =======================================

The whole table of exit codes (the command line's ``cli/_common.py`` applies it):
0 success, 2 usage, 3 authentication (wrong key, tampered, truncated, revoked),
4 bad or unsupported input, 5 output or environment failure.

Authentication failures stay opaque: a wrong key, a flipped bit and a
truncation raise the same :class:`AuthenticationError` with the same message, as
Fernet's ``InvalidToken`` does, so an attacker never learns which check failed.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "DeepKediError",
    "FormatError",
    "InputTooLargeError",
    "KeyFileError",
    "KeyNotFoundError",
    "KeyRevokedError",
    "KeystoreError",
    "OutputError",
    "OutputExistsError",
    "UnsupportedImageError",
]


class DeepKediError(Exception):
    """Base class of every error deepkedi raises on purpose."""


class FormatError(DeepKediError):
    """The data is not a deepkedi container, or one of a version this release cannot read."""


class AuthenticationError(DeepKediError):
    """Decryption failed: wrong key, or the container was modified or truncated.

    The message never says which of these happened.
    """

    MESSAGE = "decryption failed: wrong key, or the file was modified or truncated"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.MESSAGE)


class KeyNotFoundError(DeepKediError):
    """The key a container was encrypted under is not available."""


class KeyRevokedError(DeepKediError):
    """The key was revoked in the keystore: its secret was destroyed and it can never be used again.

    Parameters
    ----------
    key_id
        The key id, 32 hexadecimal digits (public).
    revoked_at
        ISO 8601 UTC time of the revocation.
    """

    def __init__(self, key_id: str, revoked_at: str | None) -> None:
        self.key_id = key_id
        self.revoked_at = revoked_at
        when = f" at {revoked_at}" if revoked_at else ""
        super().__init__(f"key {key_id} was revoked{when}; its secret no longer exists")


class KeyFileError(DeepKediError):
    """A key file is missing, malformed, or of an unsupported version."""


class KeystoreError(DeepKediError):
    """A keystore is missing, of an unsupported version, damaged, or the operation conflicts with its state."""


class UnsupportedImageError(DeepKediError):
    """The input cannot be read as a supported medical image.

    The message names the file and the reason.
    """


class OutputExistsError(DeepKediError):
    """An output exists and replacing it was not asked for (``--force``)."""


class InputTooLargeError(UnsupportedImageError):
    """The input would decode to more bytes than the configured limit allows.

    Raised from the file's headers before decoding where they tell the size, and
    while streaming otherwise, so a small compressed file cannot exhaust memory.
    """


class OutputError(DeepKediError):
    """An output cannot be written: disk full, read-only folder, name too long, no permission.

    Nothing is left under the output's name when this is raised.
    """
