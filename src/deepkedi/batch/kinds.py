"""What one input of a folder run becomes: an image's container, or its bytes sealed opaque.

A study holds more than images: structured reports, a DICOMDIR, DICOM objects
without pixel data, PDFs, notes. A folder run protects every file: what deepkedi
reads as an image is encrypted as one (a ``.kedi`` container, or with ``as_dicom`` a
DICOM-native file when it is a DICOM image), and anything else is sealed whole into
an opaque ``.kedi`` container (docs/FORMAT.md 5.3) that decryption restores byte for
byte. With ``only_images`` the rest is skipped instead, with the reason (docs/SCALE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from deepkedi import api
from deepkedi.cipher.keytypes import Key
from deepkedi.errors import InputTooLargeError, UnsupportedImageError

__all__ = [
    "OPAQUE",
    "Encrypted",
    "container_output",
    "encrypt_one",
    "encrypt_one_bytes",
    "is_opaque_note",
    "opaque_note",
]

#: The ``described`` kind of a file sealed opaque, beside ``container`` and ``dicom-native``.
OPAQUE = "opaque"
#: How the manifest's ``error`` column of a ``done`` entry starts when the file was sealed opaque.
_NOTE = "sealed opaque: "


def opaque_note(why: str | None) -> str:
    """The manifest note of a file sealed opaque: that it was, and why it is not an image."""
    return _NOTE + (why or "not an image")


def is_opaque_note(text: str | None) -> bool:
    return text is not None and text.startswith(_NOTE)


@dataclass(frozen=True)
class Encrypted:
    """One input's fate: ``result`` is None when it was skipped; ``why`` says why it was skipped or sealed opaque."""

    result: api.FileResult | None
    why: str | None = None

    @property
    def opaque(self) -> bool:
        return self.result is not None and self.result.info.opaque


def container_output(output: str, as_dicom: bool) -> str:
    """Where a ``.kedi`` container of the input planned at ``output`` (a path or a URL) goes: there,
    or with ``as_dicom`` (whose outputs keep the input's name) beside the DICOM-native files, as ``NAME.kedi``."""
    return output + api.CONTAINER_SUFFIX if as_dicom else output


_T = TypeVar("_T")


def _choose(
    encrypt: Callable[[bool, bool, bool], _T], *, as_dicom: bool, is_dicom: bool, only_images: bool
) -> tuple[_T | None, str | None, bool]:
    """Try each kind in turn with ``encrypt(as_dicom, opaque, beside)``.

    Returns ``(result, why, beside)``; ``result`` is None when the file is skipped.
    """
    why = "not a DICOM file"
    if not as_dicom or is_dicom:
        try:
            return encrypt(as_dicom, False, False), None, False
        except InputTooLargeError:
            raise  # an image past the decoding limit the caller set: a failure to report, not a file to seal
        except UnsupportedImageError as exc:
            why = str(exc)
    if only_images:
        scope = "DICOM images" if as_dicom else "images"
        return None, f"{why} (only_images: encrypts {scope} only)", False
    if as_dicom:  # another image format (PNG, NIfTI...): its own container, beside
        try:
            return encrypt(False, False, True), None, True
        except InputTooLargeError:
            raise
        except UnsupportedImageError as exc:
            why = str(exc)
    return encrypt(False, True, as_dicom), why, as_dicom


def encrypt_one(
    source: Path,
    output: Path,
    key: Key,
    *,
    as_dicom: bool,
    is_dicom: bool,
    pattern: str | None,
    force: bool,
    only_images: bool,
) -> Encrypted:
    """Encrypt ``source`` as an image when it is one; otherwise seal it opaque, or skip it (``only_images``).

    With ``as_dicom``, a DICOM image becomes a DICOM-native file at ``output``; anything
    else (``is_dicom`` says whether ``source`` starts like a DICOM file: one that does
    not is never handed to the DICOM-native writer) is encrypted as without ``as_dicom``,
    into ``NAME.kedi`` beside it, unless ``only_images`` skips it.
    """
    beside = Path(container_output(str(output), as_dicom))

    def encrypt(native: bool, opaque: bool, elsewhere: bool) -> api.FileResult:
        target = beside if elsewhere else output
        if opaque:
            return api.encrypt_file(source, target, key, opaque=True, force=force)
        return api.encrypt_file(source, target, key, as_dicom=native, pattern=pattern, force=force)

    result, why, _ = _choose(encrypt, as_dicom=as_dicom, is_dicom=is_dicom, only_images=only_images)
    return Encrypted(result, why)


def encrypt_one_bytes(
    data: bytes, key: Key, *, name: str, as_dicom: bool, is_dicom: bool, pattern: str | None, only_images: bool
) -> tuple[bytes | None, str | None, bool]:
    """:func:`encrypt_one` for a file held in memory: ``(encrypted bytes or None if skipped, why, beside)``.

    ``beside`` says the bytes go to :func:`container_output` rather than to the planned output.
    """

    def encrypt(native: bool, opaque: bool, elsewhere: bool) -> bytes:
        if opaque:
            return api.encrypt_bytes(data, key, opaque=True, name=name)
        return api.encrypt_bytes(data, key, as_dicom=native, pattern=pattern, name=name)

    return _choose(encrypt, as_dicom=as_dicom, is_dicom=is_dicom, only_images=only_images)
