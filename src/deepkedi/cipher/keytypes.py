"""The key value types the ciphers consume: a hybrid master :class:`Key` and a paper :class:`KeyImage`.

They are plain values (no files, no keystore): :mod:`deepkedi.keys` reads and
writes them (key files, key image PNGs, the keystore) and re-exports them, and
sits above this layer; the ciphers below it take them as arguments.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "KEY_ID_BYTES",
    "KEY_IMAGE_ID_LABEL",
    "KEY_IMAGE_ID_SIZE",
    "SECRET_BYTES",
    "Key",
    "KeyImage",
    "key_image_id",
]

SECRET_BYTES = 32
KEY_ID_BYTES = 16
KEY_IMAGE_ID_LABEL = b"deepkedi/v1 paper key id"
KEY_IMAGE_ID_SIZE = 16
_BITS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}


@dataclass(frozen=True, repr=False)
class Key:
    """A master key: 32 secret bytes and their public identity.

    Parameters
    ----------
    key_id
        16 public bytes naming the key; containers record it in their header.
    secret
        32 secret bytes, the input keying material of every per-file key.
    created
        ISO 8601 UTC creation time.
    suite
        The suite the key is meant for (``"hybrid"``).
    provenance
        Where the secret's entropy came from (JSON-safe; no secret values).
    """

    key_id: bytes
    secret: bytes = field(repr=False)
    created: str = ""
    suite: str = "hybrid"
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_BYTES:
            raise ValueError(f"key_id must be {KEY_ID_BYTES} bytes, got {len(self.key_id)}")
        if len(self.secret) != SECRET_BYTES:
            raise ValueError(f"secret must be {SECRET_BYTES} bytes, got {len(self.secret)}")

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def __repr__(self) -> str:  # never show the secret
        return f"Key(key_id={self.key_id_hex!r}, suite={self.suite!r}, created={self.created!r})"


def _checked_pixels(pixels: object) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"key image pixels must be a NumPy array, not {type(pixels).__name__}")
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ValueError(f"a key image is one 2-D plane (rows, cols); got shape {pixels.shape}")
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize not in (1, 2):
        raise TypeError(f"key image pixels must be uint8 or uint16, not {pixels.dtype}")
    return pixels


@dataclass(frozen=True, repr=False, eq=False)
class KeyImage:
    """A ``paper``-suite key: one greyscale plane XORed onto every image plane.

    Parameters
    ----------
    pixels
        2-D ``uint8`` (8-bit key) or ``uint16`` (16-bit key) array.
    seed
        The generator's seed, if known. As secret as the key: with the public
        weights and the initial image it regenerates the key.
    model_sha256
        Hex SHA-256 of the generator weights that made it, if known.
    created
        ISO 8601 UTC creation time.
    """

    pixels: np.ndarray
    seed: int | None = None
    model_sha256: str | None = None
    created: str = ""

    def __post_init__(self) -> None:
        pixels = _checked_pixels(self.pixels)
        # Native byte order, C-contiguous and read-only: the key never changes under a user.
        frozen = np.array(pixels, dtype=pixels.dtype.newbyteorder("="), order="C", copy=True)
        frozen.setflags(write=False)
        object.__setattr__(self, "pixels", frozen)

    @property
    def bits(self) -> int:
        """8 or 16."""
        return _BITS[np.dtype(self.pixels.dtype)]

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def key_id(self) -> bytes:
        """The public fingerprint recorded in containers (:func:`key_image_id`)."""
        return key_image_id(self.pixels)

    def describe(self) -> str:
        """``"a 512×512 16-bit key image"``: for messages."""
        rows, cols = self.shape
        return f"a {rows}×{cols} {self.bits}-bit key image"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyImage):
            return NotImplemented
        return (
            self.pixels.dtype == other.pixels.dtype
            and np.array_equal(self.pixels, other.pixels)
            and (self.seed, self.model_sha256, self.created) == (other.seed, other.model_sha256, other.created)
        )

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:  # never show the pixels
        rows, cols = self.shape
        return f"KeyImage({rows}x{cols}, bits={self.bits}, key_id={self.key_id.hex()!r}, created={self.created!r})"


def key_image_id(pixels: np.ndarray) -> bytes:
    """The 16-byte public fingerprint of a key image.

    ``SHA-256("deepkedi/v1 paper key id" ‖ u8 bits ‖ u64 rows ‖ u64 cols ‖
    pixels)[:16]``, integers big-endian, pixels in raster order as little-endian
    words (docs/FORMAT.md, section 9.3).

    Examples
    --------
    >>> import numpy as np
    >>> len(key_image_id(np.zeros((4, 4), np.uint8)))
    16
    """
    pixels = _checked_pixels(pixels)
    bits = 8 * pixels.dtype.itemsize
    words = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    digest = hashlib.sha256(KEY_IMAGE_ID_LABEL)
    digest.update(struct.pack(">BQQ", bits, *pixels.shape))
    digest.update(words.data.cast("B"))
    return digest.digest()[:KEY_IMAGE_ID_SIZE]
