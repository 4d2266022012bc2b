"""The one exception hierarchy of deepkedi.

Every expected failure raises a subclass of :class:`DeepKediError`. The command
line maps them to exit codes (DESIGN.md, "Fail clearly"):

==========================  =========  =======================================
exception                   exit code  meaning
==========================  =========  =======================================
``AuthenticationError``     3          wrong key, tampered or truncated container
``KeyNotFoundError``        3          the key the container names is not at hand
``UnsupportedImageError``   4          input cannot be read as a supported image
``FormatError``             4          input is not a deepkedi container at all
``KeyFileError``            4          a key file that cannot be read
==========================  =========  =======================================

Authentication failures stay opaque: a wrong key, a flipped bit and a
truncation raise the same :class:`AuthenticationError` with the same message, as
Fernet's ``InvalidToken`` does, so an attacker never learns which check failed.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "DeepKediError",
    "FormatError",
    "KeyFileError",
    "KeyNotFoundError",
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


class KeyFileError(DeepKediError):
    """A key file is missing, malformed, or of an unsupported version."""


class UnsupportedImageError(DeepKediError):
    """The input cannot be read as a supported medical image.

    The message names the file and the reason.
    """


class OutputExistsError(DeepKediError):
    """An output exists and replacing it was not asked for (``--force``)."""
