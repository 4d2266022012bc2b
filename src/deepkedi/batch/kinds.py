"""What one input of a folder run becomes: an image's container, or its bytes sealed opaque.

A study holds more than images: structured reports, a DICOMDIR, DICOM objects
without pixel data, PDFs, notes. A folder run protects every file: what deepkedi
reads as an image is encrypted as one (a ``.kedi`` container, or with ``as_dicom`` a
DICOM-native file when it is a DICOM image), and anything else is sealed whole into
an opaque ``.kedi`` container (docs/FORMAT.md 5.3) that decryption restores byte for
byte. With ``only_images`` the rest is skipped instead, with the reason (docs/SCALE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepkedi import api
from deepkedi.cipher.keytypes import Key
from deepkedi.errors import InputTooLargeError, UnsupportedImageError

__all__ = ["OPAQUE", "Encrypted", "container_output", "encrypt_one", "is_opaque_note", "opaque_note"]

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


def container_output(output: Path, as_dicom: bool) -> Path:
    """Where a ``.kedi`` container of the input planned at ``output`` goes: there, or with ``as_dicom``
    (whose outputs keep the input's name) beside the DICOM-native files, as ``NAME.kedi``."""
    return output.with_name(output.name + api.CONTAINER_SUFFIX) if as_dicom else output


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
    why = "not a DICOM file"
    if not as_dicom or is_dicom:
        try:
            return Encrypted(api.encrypt_file(source, output, key, as_dicom=as_dicom, pattern=pattern, force=force))
        except InputTooLargeError:
            raise  # an image past the decoding limit the caller set: a failure to report, not a file to seal
        except UnsupportedImageError as exc:
            why = str(exc)
    if only_images:
        scope = "DICOM images" if as_dicom else "images"
        return Encrypted(None, f"{why} (only_images: encrypts {scope} only)")
    target = container_output(output, as_dicom)
    if as_dicom:  # another image format (PNG, NIfTI...): its own container, beside
        try:
            return Encrypted(api.encrypt_file(source, target, key, pattern=pattern, force=force))
        except InputTooLargeError:
            raise
        except UnsupportedImageError as exc:
            why = str(exc)
    return Encrypted(api.encrypt_file(source, target, key, opaque=True, force=force), why)
