"""Key images: the secret of the ``paper`` suite, a greyscale PNG.

Deep-KEDI as published encrypts by XOR with a key *image* made by its ZZ-GAN
(seed paper, Sec. 3, Figs. 3, 4 and 7). Here that image is stored as a PNG, 8-bit
grey (mode ``L``) for 8-bit medical images or 16-bit grey for 16-bit ones, with
text chunks that mark it as a deepkedi key image and say where it came from:

========================== ==================================================
chunk                      value
========================== ==================================================
``deepkedi-key-image``     ``"1"``, the key image version
``seed``                   the generator's seed, decimal, or empty
``model-sha256``           SHA-256 (hex) of the generator's weights, or empty
``bits``                   ``"8"`` or ``"16"``
``created``                ISO 8601 UTC creation time
========================== ==================================================

The file *is* the secret: it is written atomically with mode 0600 and never
replaces a file unless asked, as key files are (:func:`deepkedi.keys.save_key`).
Containers record only :func:`key_image_id`, a public fingerprint.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from deepkedi.cipher.keytypes import KEY_IMAGE_ID_LABEL, KeyImage, key_image_id
from deepkedi.errors import KeyFileError
from deepkedi.fileio import atomic_output
from deepkedi.imaging.limits import check_decoded_size
from deepkedi.inputs import open_input

__all__ = [
    "KEY_IMAGE_CHUNK",
    "KEY_IMAGE_ID_LABEL",
    "KEY_IMAGE_VERSION",
    "KeyImage",
    "key_image_id",
    "load_key_image",
    "save_key_image",
]

KEY_IMAGE_VERSION = 1
KEY_IMAGE_CHUNK = "deepkedi-key-image"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: 16-bit grey PNG modes Pillow may report, depending on version and byte order.
_MODES_16 = ("I;16", "I;16B", "I;16L", "I")


def save_key_image(key_image: KeyImage, path: str | Path, *, force: bool = False) -> None:
    """Write ``key_image`` as a PNG (mode 0600, atomically, never replacing a file unless ``force``).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is false.
    """
    pixels = key_image.pixels
    if key_image.bits == 8:
        picture = Image.fromarray(pixels)  # a 2-D uint8 array is mode "L"
    else:
        # Pillow's 16-bit grey PNG writer takes mode "I;16": little-endian words in memory.
        picture = Image.frombytes("I;16", (pixels.shape[1], pixels.shape[0]), pixels.astype("<u2").tobytes())
    info = PngImagePlugin.PngInfo()
    info.add_text(KEY_IMAGE_CHUNK, str(KEY_IMAGE_VERSION))
    info.add_text("seed", "" if key_image.seed is None else str(int(key_image.seed)))
    info.add_text("model-sha256", key_image.model_sha256 or "")
    info.add_text("bits", str(key_image.bits))
    info.add_text("created", key_image.created)
    with atomic_output(path, force=force, mode=0o600) as fh:
        picture.save(fh, format="PNG", pnginfo=info)


def load_key_image(path: str | Path) -> KeyImage:
    """Read a key image written by :func:`save_key_image`.

    Raises
    ------
    KeyFileError
        The file is missing, not a PNG, a PNG without the ``deepkedi-key-image``
        chunk, of another version, or not 8- or 16-bit greyscale.
    InputTooLargeError
        Its dimensions would decode to more than the decoded-size limit allows
        (:mod:`deepkedi.imaging.limits`).
    """
    path = Path(path)
    try:
        with open_input(path, error=KeyFileError) as fh:
            if fh.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
                raise KeyFileError(f"{path}: not a key image (a key image is a PNG file)")
            fh.seek(0)
            with warnings.catch_warnings():
                # Pillow's multi-line bomb warning: the decoded-size limit below decides instead.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                picture = Image.open(fh, formats=["PNG"])
            with picture:
                # A key image is as large as its image: the decoded-size limit applies, from the
                # header's dimensions, before anything is inflated (4 bytes a pixel bounds every mode).
                width, height = picture.size
                check_decoded_size(path, 4 * width * height, file_size=os.fstat(fh.fileno()).st_size)
                picture.load()
                text = dict(getattr(picture, "text", {}) or {})
                mode = picture.mode
                raw = _pixels_of(picture, mode, path) if KEY_IMAGE_CHUNK in text else None
    except Image.DecompressionBombError:
        raise KeyFileError(
            f"{path}: the key image declares more pixels than Pillow decodes (a decompression bomb)"
        ) from None
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError) or exc.filename is None:
            raise KeyFileError(f"{path}: not a readable PNG key image ({exc})") from None
        raise KeyFileError(f"{path}: cannot read key image ({exc.strerror or exc})") from None
    if KEY_IMAGE_CHUNK not in text:
        raise KeyFileError(
            f"{path}: a PNG but not a deepkedi key image (no '{KEY_IMAGE_CHUNK}' text chunk); "
            "make one with `kedi keygen --suite paper`"
        )
    if text[KEY_IMAGE_CHUNK] != str(KEY_IMAGE_VERSION):
        raise KeyFileError(
            f"{path}: key image version {text[KEY_IMAGE_CHUNK]!r} is not supported by this release "
            f"(it reads version {KEY_IMAGE_VERSION})"
        )
    assert raw is not None
    bits = text.get("bits", "")
    if bits != str(8 * raw.dtype.itemsize):
        raise KeyFileError(
            f"{path}: the 'bits' chunk ({bits!r}) contradicts the PNG's {8 * raw.dtype.itemsize}-bit pixels"
        )
    seed_text = text.get("seed", "")
    try:
        seed = int(seed_text) if seed_text else None
    except ValueError:
        raise KeyFileError(f"{path}: the 'seed' chunk {seed_text!r} is not an integer") from None
    return KeyImage(
        pixels=raw,
        seed=seed,
        model_sha256=text.get("model-sha256") or None,
        created=text.get("created", ""),
    )


def _pixels_of(picture: Image.Image, mode: str, path: Path) -> np.ndarray:
    if mode == "L":
        return np.asarray(picture, dtype=np.uint8).copy()
    if mode in _MODES_16:
        values = np.asarray(picture)
        if values.dtype.kind not in "ui" or values.min(initial=0) < 0 or values.max(initial=0) > 0xFFFF:
            raise KeyFileError(f"{path}: 16-bit key image pixels out of range")
        return values.astype(np.uint16)
    raise KeyFileError(f"{path}: a key image is 8- or 16-bit greyscale, not PNG mode {mode!r}")
