"""The deepkedi container, version 1, in code.

``docs/FORMAT.md`` is the specification; this module implements its header.
Everything after the version byte may change in later versions.

Layout (integers big-endian)::

    magic          8 bytes   89 4B 45 44 49 0D 0A 1A   ("\\x89KEDI\\r\\n\\x1a")
    version        1 byte    0x01
    body_length    u16       length B of the header body
    body           B bytes   see ContainerHeader
    segments       n × (ciphertext ‖ 16-byte GCM tag)     suite hybrid
    cipher words   product(shape) little-endian words      suite paper (no tags)

For ``hybrid`` the whole header (magic through body) is the associated data of
every segment, so changing any header byte makes every segment fail. A
``paper`` container authenticates nothing (docs/FORMAT.md, section 9).
"""

from __future__ import annotations

import enum
import math
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.transforms.zigzag import ZigzagPattern

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MAGIC",
    "OPAQUE_FORMAT",
    "OPAQUE_SHAPE",
    "PAPER_DTYPES",
    "TAG_SIZE",
    "VERSION",
    "ContainerHeader",
    "Suite",
    "parse_header",
    "read_header_from",
]

MAGIC = b"\x89KEDI\r\n\x1a"
VERSION = 1
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
KEY_ID_SIZE = 16
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 1 << 10
MAX_SEGMENT_SIZE = 1 << 24
MAX_NDIM = 16
MAX_SEGMENTS = 1 << 32
#: The format name of an opaque container: a whole file sealed as bytes, with no pixel
#: array (docs/FORMAT.md 5.3). Its header's shape is OPAQUE_SHAPE and nothing else.
OPAQUE_FORMAT = "opaque"
OPAQUE_SHAPE = (0, 0)
#: A prefix this far (in bits) from the magic is a damaged container, not another kind of file.
MAGIC_DAMAGE_BITS = 2

_PREAMBLE = struct.Struct(">8sBH")
_FIXED = struct.Struct(">BBBcBB16s32s7sIQB")
_FORMAT_NAME = re.compile(rb"[a-z0-9][a-z0-9._-]{0,31}")

_PATTERN_CODES = {ZigzagPattern.VERTICAL: 1, ZigzagPattern.HORIZONTAL: 2, ZigzagPattern.DIAGONAL: 3}
_PATTERNS_BY_CODE = {code: pattern for pattern, code in _PATTERN_CODES.items()}
_FLAG_CHANNELS_LAST = 0x01
_DTYPE_SIZES = {b"u": (1, 2, 4, 8), b"i": (1, 2, 4, 8), b"f": (2, 4, 8), b"b": (1,)}


class Suite(enum.IntEnum):
    """Cipher suites of container version 1.

    ``HYBRID`` (1) is HKDF-SHA256 + segmented AES-256-GCM, authenticated and
    lossless. ``PAPER`` (2) is Deep-KEDI as published: speckle, zigzag scan and
    XOR with a key image; unauthenticated, lossy, insecure, for research only.
    """

    HYBRID = 1
    PAPER = 2


#: Pixel dtypes a ``paper`` container can hold: 8-bit images under an 8-bit key image,
#: 16-bit ones (unsigned or signed, XORed through their unsigned view) under a 16-bit one.
PAPER_DTYPES = (np.dtype("u1"), np.dtype("<u2"), np.dtype("<i2"))


def _hamming(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class ContainerHeader:
    """The header of a version-1 container (authenticated for ``hybrid``, not for ``paper``).

    Parameters
    ----------
    suite
        The cipher suite.
    pattern
        Zigzag scan order of each image plane in the payload.
    channels_last
        Whether the last axis of ``shape`` holds the samples of one pixel.
    dtype
        Little-endian dtype of the pixel words in the payload.
    shape
        Shape of the pixel array (image planes on the trailing axes).
    key_id
        The 16-byte id of the master key (``hybrid``) or the fingerprint of the
        key image (``paper``, :func:`deepkedi.cipher.keytypes.key_image_id`).
    salt
        32 random bytes, the HKDF salt of this file's key (``paper``: zeros).
    nonce_prefix
        7 random bytes, the first part of every segment nonce (``paper``: zeros).
    segment_size
        Plaintext bytes per segment (the last segment may be shorter); unused
        by ``paper``, which writes :data:`DEFAULT_SEGMENT_SIZE`.
    residual_length
        Length of the restoration section that precedes the pixel words.
    format
        Name of the original file's format (``"dicom"``, ``"nifti"``, ``"array"``...).
    """

    suite: Suite
    pattern: ZigzagPattern
    channels_last: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    key_id: bytes
    salt: bytes
    nonce_prefix: bytes
    segment_size: int
    residual_length: int
    format: str

    def __post_init__(self) -> None:
        dtype = np.dtype(self.dtype)
        kind = dtype.kind.encode()
        if kind not in _DTYPE_SIZES or dtype.itemsize not in _DTYPE_SIZES[kind]:
            raise ValueError(f"unsupported pixel dtype {dtype}")
        if dtype.itemsize > 1 and dtype.byteorder == ">":
            raise ValueError("payload dtypes are little-endian")
        if self.format == OPAQUE_FORMAT:
            self._check_opaque(dtype)
        elif not 2 <= len(self.shape) <= MAX_NDIM or any(d < 1 for d in self.shape):
            raise ValueError(f"shape must have 2..{MAX_NDIM} positive dimensions, got {self.shape}")
        if self.channels_last and len(self.shape) < 3:
            raise ValueError("channels_last needs at least 3 dimensions")
        if len(self.key_id) != KEY_ID_SIZE or len(self.salt) != SALT_SIZE:
            raise ValueError("key_id must be 16 bytes and salt 32 bytes")
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError("nonce_prefix must be 7 bytes")
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment_size must be in [{MIN_SEGMENT_SIZE}, {MAX_SEGMENT_SIZE}]")
        if self.residual_length < 0:
            raise ValueError("residual_length must be non-negative")
        if not _FORMAT_NAME.fullmatch(self.format.encode("ascii", "replace")):
            raise ValueError(f"format name {self.format!r} must be 1-32 of [a-z0-9._-]")
        object.__setattr__(self, "suite", Suite(self.suite))
        if self.suite is Suite.PAPER:
            self._check_paper(dtype)
        if self.segment_count > MAX_SEGMENTS:
            raise ValueError("payload too large for 2**32 segments; use a larger segment_size")
        object.__setattr__(self, "dtype", np.dtype(dtype.newbyteorder("<")) if dtype.itemsize > 1 else dtype)
        object.__setattr__(self, "pattern", ZigzagPattern(self.pattern))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def _check_paper(self, dtype: np.dtype) -> None:
        # A paper container has no restoration section, no salt and no nonces: fixed
        # values, so that a damaged suite byte or a hybrid header is not mistaken for one.
        if dtype.newbyteorder("<") not in PAPER_DTYPES:
            raise ValueError(f"suite paper holds uint8, uint16 or int16 pixels, not {dtype}")
        if self.channels_last:
            raise ValueError("suite paper holds greyscale planes only (channels_last must be false)")
        if self.residual_length != 0:
            raise ValueError("suite paper has no restoration section (residual_length must be 0)")
        if any(self.salt) or any(self.nonce_prefix):
            raise ValueError("suite paper has no salt or nonce prefix (they must be zero bytes)")

    def _check_opaque(self, dtype: np.dtype) -> None:
        # One encoding only: the fields that describe pixels are fixed, so an opaque header
        # cannot pass for an image's, nor an image's for an opaque one.
        if tuple(self.shape) != OPAQUE_SHAPE or dtype != np.dtype("u1") or self.channels_last:
            raise ValueError(f"an opaque container has shape {OPAQUE_SHAPE}, dtype uint8 and no channels_last")
        if ZigzagPattern(self.pattern) is not ZigzagPattern.HORIZONTAL:
            raise ValueError("an opaque container's pattern is horizontal")
        if Suite(self.suite) is not Suite.HYBRID:
            raise ValueError("only suite hybrid holds opaque containers")

    @property
    def opaque(self) -> bool:
        """Whether this container holds a whole file as bytes (no pixel array): docs/FORMAT.md 5.3."""
        return self.format == OPAQUE_FORMAT

    # -- derived sizes -----------------------------------------------------------------
    @property
    def plane_shape(self) -> tuple[int, int]:
        return (self.shape[-3], self.shape[-2]) if self.channels_last else (self.shape[-2], self.shape[-1])

    @property
    def pixel_length(self) -> int:
        """Bytes of pixel words in the payload."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def payload_length(self) -> int:
        return self.residual_length + self.pixel_length

    @property
    def authenticated(self) -> bool:
        """Whether the container's integrity is protected (false for the ``paper`` suite)."""
        return self.suite is Suite.HYBRID

    @property
    def segment_count(self) -> int:
        """GCM segments after the header (0 for ``paper``: its cipher words carry no tags)."""
        if self.suite is Suite.PAPER:
            return 0
        return max(1, -(-self.payload_length // self.segment_size))

    @property
    def encoded_length(self) -> int:
        return _PREAMBLE.size + _FIXED.size + len(self.format) + 8 * len(self.shape)

    @property
    def container_length(self) -> int:
        """Exact size in bytes of a container with this header."""
        return self.encoded_length + self.payload_length + TAG_SIZE * self.segment_count

    # -- encoding ----------------------------------------------------------------------
    def encode(self) -> bytes:
        """The header bytes, also the associated data of every segment."""
        name = self.format.encode("ascii")
        body = (
            _FIXED.pack(
                int(self.suite),
                _PATTERN_CODES[self.pattern],
                _FLAG_CHANNELS_LAST if self.channels_last else 0,
                self.dtype.kind.encode(),
                self.dtype.itemsize,
                len(self.shape),
                self.key_id,
                self.salt,
                self.nonce_prefix,
                self.segment_size,
                self.residual_length,
                len(name),
            )
            + name
            + struct.pack(f">{len(self.shape)}Q", *self.shape)
        )
        return _PREAMBLE.pack(MAGIC, VERSION, len(body)) + body


def parse_header(data: bytes | bytearray | memoryview) -> ContainerHeader:
    """Parse the header at the start of ``data`` (at least the whole header; any longer buffer,
    such as a whole container in memory, is fine: only the header's bytes are read).

    Raises
    ------
    FormatError
        ``data`` does not start like a deepkedi container at all.
    AuthenticationError
        It starts like one but the header is damaged, truncated, or of an
        unknown version: a container that was modified, reported like every
        other modification.
    """
    data = memoryview(data).cast("B")
    head = bytes(data[: len(MAGIC)])
    if _hamming(head, MAGIC[: len(head)]) > MAGIC_DAMAGE_BITS:
        raise FormatError("not a deepkedi container")
    try:
        magic, version, body_length = _PREAMBLE.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise ValueError("magic or version")
        body = bytes(data[_PREAMBLE.size : _PREAMBLE.size + body_length])
        if len(body) != body_length:
            raise ValueError("truncated header")
        (
            suite,
            pattern,
            flags,
            kind,
            itemsize,
            ndim,
            key_id,
            salt,
            nonce_prefix,
            segment_size,
            residual_length,
            name_length,
        ) = _FIXED.unpack_from(body, 0)
        if flags & ~_FLAG_CHANNELS_LAST or pattern not in _PATTERNS_BY_CODE:
            raise ValueError("flags or pattern")
        if kind not in _DTYPE_SIZES or itemsize not in _DTYPE_SIZES[kind] or not 2 <= ndim <= MAX_NDIM:
            raise ValueError("dtype or ndim")
        offset = _FIXED.size
        name = body[offset : offset + name_length]
        if not _FORMAT_NAME.fullmatch(name):
            raise ValueError("format name")
        offset += name_length
        if body_length != offset + 8 * ndim:
            raise ValueError("body length")
        shape = struct.unpack_from(f">{ndim}Q", body, offset)
        dtype = np.dtype(f"<{kind.decode()}{itemsize}") if kind != b"b" else np.dtype(bool)
        return ContainerHeader(
            suite=Suite(suite),
            pattern=_PATTERNS_BY_CODE[pattern],
            channels_last=bool(flags & _FLAG_CHANNELS_LAST),
            dtype=dtype,
            shape=tuple(shape),
            key_id=key_id,
            salt=salt,
            nonce_prefix=nonce_prefix,
            segment_size=segment_size,
            residual_length=residual_length,
            format=name.decode("ascii"),
        )
    except (ValueError, struct.error, OverflowError):
        raise AuthenticationError() from None


def read_header_from(fh: BinaryIO) -> tuple[ContainerHeader, bytes]:
    """Read the header from the current position of ``fh``: the header and its encoded bytes.

    Reads exactly the header's bytes (the preamble says how many), so ``fh`` is
    left at the first byte after it.

    Raises
    ------
    FormatError
        The file does not start like a deepkedi container.
    AuthenticationError
        It starts like one but the header is damaged or truncated.
    """
    start = fh.read(_PREAMBLE.size)
    if len(start) < _PREAMBLE.size:
        parse_header(start)  # FormatError for other files, AuthenticationError if damaged
        raise AuthenticationError()
    body_length = int.from_bytes(start[len(MAGIC) + 1 : _PREAMBLE.size], "big")
    data = start + fh.read(body_length)
    header = parse_header(data)
    return header, data[: header.encoded_length]
