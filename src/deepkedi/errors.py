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
``MissingExtraError``       2          an optional dependency (an extra) is not installed
==========================  =========  =======================================

The whole table of exit codes (the command line's ``cli/_common.py`` applies it):
0 success, 2 usage, 3 authentication (wrong key, tampered, truncated, revoked),
4 bad or unsupported input, 5 output or environment failure.

Authentication failures stay opaque: a wrong key, a flipped bit and a
truncation raise the same :class:`AuthenticationError` with the same message, as
Fernet's ``InvalidToken`` does, so an attacker never learns which check failed.

Optional dependencies (the extras of ``pyproject.toml``) are imported through
:func:`require_extra`, the one place that turns a missing one into a
:class:`MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

__all__ = [
    "AuthenticationError",
    "DeepKediError",
    "FormatError",
    "InputTooLargeError",
    "KeyFileError",
    "KeyNotFoundError",
    "KeyRevokedError",
    "KeystoreError",
    "MissingExtraError",
    "OutputError",
    "OutputExistsError",
    "UnsupportedImageError",
    "require_extra",
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


#: The distribution a person installs for each optional module, as its error names it.
_DISTRIBUTIONS: Final = {
    "torch": "PyTorch",
    "safetensors": "safetensors",
    "matplotlib": "matplotlib",
    "cv2": "opencv-python-headless",
    "psycopg": "psycopg",
}
#: What to know before installing it, where there is something.
_NOTES: Final = {
    "torch": " (without a GPU, install PyTorch's CPU build first: docs/INSTALL.md)",
}


class MissingExtraError(DeepKediError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Also an :class:`ImportError`, so code that guards an optional import the usual
    way keeps working. The command line ends it in one line and exit code 2: the
    command asked for needs a package this installation lacks, and nothing is
    wrong with the inputs.

    Parameters
    ----------
    module
        The module that failed to import (``"torch"``).
    extra
        The extra of ``deepkedi`` that installs it (``"gan"``).
    feature
        What needs it, as the message starts (``"the ZZ-GAN"``).
    """

    def __init__(self, module: str, extra: str, *, feature: str) -> None:
        self.module = module
        self.extra = extra
        self.feature = feature
        package = _DISTRIBUTIONS.get(module, module)
        note = _NOTES.get(module, "")
        super().__init__(f"{feature} needs {package}: pip install 'deepkedi[{extra}]'{note}", name=module)


def require_extra(module: str, extra: str, *, feature: str) -> ModuleType:
    """Import the optional ``module``; :class:`MissingExtraError` naming ``extra`` when it is absent.

    The one way deepkedi imports an optional dependency, so every missing one ends
    the same way: ``kedi: error: kedi reproduce (its figures) needs matplotlib: pip install 'deepkedi[report]'``.

    Examples
    --------
    >>> require_extra("math", "none", feature="arithmetic").sqrt(4.0)
    2.0
    >>> try:
    ...     require_extra("no_such_module_x", "gan", feature="the ZZ-GAN")
    ... except MissingExtraError as error:
    ...     print(error)
    the ZZ-GAN needs no_such_module_x: pip install 'deepkedi[gan]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = (error.name or module).partition(".")[0]
        if top != module.partition(".")[0]:
            raise  # the module is there but one of its own imports is broken: not a missing extra
        raise MissingExtraError(module, extra, feature=feature) from error
