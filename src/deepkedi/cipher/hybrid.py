"""The ``hybrid`` suite: HKDF-SHA256 per-file keys, segmented AES-256-GCM.

This is Deep-KEDI's own future work ("merge the robustness of conventional AES
with the deep-learning GAN", the paper's conclusion): the master key (GAN key
material mixed with OS randomness once the ZZ-GAN lands; OS randomness alone
now) never encrypts anything itself. Each container draws a fresh 32-byte salt,

    file_key = HKDF-SHA256(IKM = master secret, salt, info = "deepkedi/v1 hybrid payload key", L = 32)

and the payload, laid out as ``restoration section ‖ pixel words in zigzag
order``, is sealed by :mod:`deepkedi.cipher.stream`. The paper's zigzag scan is
kept: the pixel words of each plane enter the cipher in the chosen pattern's
order, and the ciphertext of those words, put back in place, is the cipher image
the paper's statistics are computed on (:func:`cipher_image`).

Public functions draw salts and nonce prefixes from ``os.urandom``; the private
``_encrypt_from_parts`` and ``_encrypt_file_from_parts`` take them as
arguments, for known-answer vectors only (Fernet's ``_encrypt_from_parts``).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import json
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deepkedi._json import DEFAULT_MAX_BYTES, loads_bounded
from deepkedi.cipher.format import (
    DEFAULT_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    OPAQUE_FORMAT,
    OPAQUE_SHAPE,
    SALT_SIZE,
    ContainerHeader,
    Suite,
    parse_header,
    read_header_from,
)
from deepkedi.cipher.keytypes import Key
from deepkedi.cipher.layout import BATCH_BYTES, as_planes, scanned_view, scratch_bytes
from deepkedi.cipher.stream import SegmentReader, SegmentWriter, open_segments, seal_segments
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.fileio import atomic_output, atomic_output_path, check_distinct, output_mode
from deepkedi.imaging import MedicalImage, read_image, write_image
from deepkedi.inputs import check_regular_input, open_input
from deepkedi.transforms.patterns import DEFAULT_PATTERN
from deepkedi.transforms.zigzag import ZigzagPattern, zigzag_scan, zigzag_unscan

__all__ = [
    "DEFAULT_PATTERN",
    "HKDF_INFO",
    "PreparedFile",
    "Progress",
    "decrypt_file",
    "decrypt_image",
    "decrypt_pixels",
    "decrypt_stream",
    "derive_file_key",
    "encrypt_file",
    "encrypt_file_to_bytes",
    "encrypt_image",
    "encrypt_opaque_file",
    "encrypt_opaque_to_bytes",
    "held_length",
    "prepare_file",
    "seal_file",
    "seal_opaque",
]

HKDF_INFO = b"deepkedi/v1 hybrid payload key"

#: Called with (bytes done, bytes total) as a file is processed.
Progress = Callable[[int, int], None]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def derive_file_key(secret: bytes, salt: bytes) -> bytes:
    """The per-container AES-256 key: HKDF-SHA256 over the master secret (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=HKDF_INFO).derive(secret)


def _payload_dtype(dtype: np.dtype) -> np.dtype:
    """Little-endian form of ``dtype``: the byte order of pixel words in every container."""
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def _in_memory_head(pixels: np.ndarray | MedicalImage) -> tuple[np.ndarray, bool, str, bytes]:
    """Pixels, channels_last, format name and restoration head of an in-memory input."""
    if isinstance(pixels, MedicalImage):
        meta = {"restore": "none", "image": _image_meta(pixels, "image")}
        return pixels.pixels, pixels.channels_last, pixels.format, _residual_head(meta, 0)
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"expected a NumPy array or a MedicalImage, not {type(pixels).__name__}")
    if pixels.ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions (rows, cols); got shape {pixels.shape}")
    if pixels.dtype.kind not in "uifb":
        raise TypeError(f"pixels must be boolean, integer or floating point, not {pixels.dtype}")
    return pixels, False, "array", _array_head(pixels.dtype.str)


@functools.lru_cache(maxsize=64)
def _array_head(dtype: str) -> bytes:
    # The head of a plain array depends on its dtype alone: built once per dtype.
    return _residual_head(
        {"restore": "none", "image": _image_meta(MedicalImage(np.empty((1, 1), dtype)), "ndarray")}, 0
    )


def _image_meta(image: MedicalImage, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "dtype": image.pixels.dtype.str,
        "format": image.format,
        "photometric": image.photometric,
        "samples_per_pixel": image.samples_per_pixel,
        "channels_last": image.channels_last,
        "spacing": list(image.spacing) if image.spacing is not None else None,
        "modality": image.modality,
        "bits_stored": image.bits_stored,
        "metadata": dict(image.metadata),
    }


def _residual_head(meta: dict[str, Any], prefix_length: int) -> bytes:
    """``u32 meta length ‖ meta JSON ‖ u64 prefix length`` (the prefix bytes follow)."""
    blob = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(blob) > DEFAULT_MAX_BYTES:  # a reader refuses larger meta (docs/FORMAT.md 5.1)
        raise UnsupportedImageError(
            f"the image's description takes {len(blob)} bytes of JSON (at most {DEFAULT_MAX_BYTES})"
        )
    return _U32.pack(len(blob)) + blob + _U64.pack(prefix_length)


def _residual_length(head: bytes, prefix_length: int, suffix_length: int) -> int:
    return len(head) + prefix_length + _U64.size + suffix_length


def _header_for(
    pixels: np.ndarray,
    channels_last: bool,
    format: str,
    key: Key,
    *,
    pattern: ZigzagPattern | str,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int,
    residual_length: int,
    source: Path | None = None,
) -> ContainerHeader:
    """The header for ``pixels``; with ``source``, an image the container cannot hold is that file's error."""
    if key.suite != "hybrid":
        raise ValueError(f"a {key.suite!r} key cannot be used with the hybrid suite")
    if len(salt) != SALT_SIZE or len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise ValueError("salt must be 32 bytes and nonce_prefix 7 bytes")
    pattern = ZigzagPattern(pattern)
    try:
        return ContainerHeader(
            suite=Suite.HYBRID,
            pattern=pattern,
            channels_last=channels_last,
            dtype=_payload_dtype(pixels.dtype),
            shape=pixels.shape,
            key_id=key.key_id,
            salt=salt,
            nonce_prefix=nonce_prefix,
            segment_size=segment_size,
            residual_length=residual_length,
            format=format,
        )
    except ValueError as exc:
        if source is None:
            raise
        # The arguments were checked above: what is left is the image (dtype, dimensions, size).
        raise UnsupportedImageError(f"{source}: the container cannot hold this image: {exc}") from None


# --------------------------------------------------------------------------- in memory


def _encrypt_from_parts(
    pixels: np.ndarray | MedicalImage,
    key: Key,
    *,
    pattern: ZigzagPattern | str,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> bytes:
    """Deterministic core of :func:`encrypt_image`: the salt and nonce prefix are given.

    Only for known-answer vectors and reproducible experiments; never pass
    fixed values in production.
    """
    array, channels_last, format_name, head = _in_memory_head(pixels)
    residual_length = _residual_length(head, 0, 0)
    header = _header_for(
        array,
        channels_last,
        format_name,
        key,
        pattern=pattern,
        salt=salt,
        nonce_prefix=nonce_prefix,
        segment_size=segment_size,
        residual_length=residual_length,
    )
    aad = header.encode()
    out = scratch_bytes("sealed", header.container_length, 0)
    out[: len(aad)] = np.frombuffer(aad, dtype=np.uint8)
    aead = AESGCM(derive_file_key(key.secret, salt))
    payload = scratch_bytes("plain", header.payload_length, residual_length)
    try:
        payload[: len(head)] = np.frombuffer(head, dtype=np.uint8)
        payload[len(head) : residual_length] = 0  # empty suffix length
        zigzag_scan(
            as_planes(array, channels_last),
            header.pattern,
            channels_last=channels_last,
            out=scanned_view(payload[residual_length:], header),
        )
        seal_segments(aead, nonce_prefix, aad, payload.data, segment_size, out.data[len(aad) :])
    finally:
        payload.fill(0)  # no plaintext left behind in the reused buffer
    return out.tobytes()


def encrypt_image(
    pixels: np.ndarray | MedicalImage,
    key: Key,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
) -> bytes:
    """Encrypt an image held in memory into a container.

    Parameters
    ----------
    pixels
        A NumPy array with the image plane on its last two axes, or a
        :class:`~deepkedi.imaging.MedicalImage` (its metadata travels encrypted
        with it; its source file does not: use :func:`encrypt_file` for files).
    key
        The master key.
    pattern
        Zigzag scan order of each plane (``"vertical"``, ``"horizontal"``,
        ``"diagonal"``).

    Returns
    -------
    bytes
        The container; :func:`decrypt_image` gives back an equal array (same
        dtype, byte order and shape) or MedicalImage.

    Examples
    --------
    >>> import numpy as np
    >>> from deepkedi.keys import generate_key
    >>> key = generate_key()
    >>> image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    >>> np.array_equal(decrypt_image(encrypt_image(image, key), key), image)
    True
    """
    return _encrypt_from_parts(
        pixels, key, pattern=pattern, salt=os.urandom(SALT_SIZE), nonce_prefix=os.urandom(NONCE_PREFIX_SIZE)
    )


def _check_key(header: ContainerHeader, key: Key) -> None:
    if header.suite is not Suite.HYBRID:
        # The suite byte is public; saying so helps the user and tells an attacker nothing.
        raise ValueError(
            f"this is a '{header.suite.name.lower()}' container; decrypt it with its key image "
            "(deepkedi.cipher.paper.decrypt_file_paper, or `kedi decrypt --key KEY.png`), not a key file"
        )
    # A container for another key fails exactly like a wrong or damaged one.
    if header.key_id != key.key_id or key.suite != "hybrid":
        raise AuthenticationError()


def _refuse_opaque(header: ContainerHeader) -> None:
    """``FormatError`` for an opaque container where an image is asked for (the header is public)."""
    if header.opaque:
        raise FormatError(
            "this is an opaque container: it holds a file's bytes, not an image; restore the file with "
            "decrypt_file or decrypt_stream (`kedi decrypt`)"
        )


def _pixel_dtype(text: object) -> np.dtype:
    """A dtype string of ``meta``: only the numeric kinds an image can have (never ``"|O"`` objects)."""
    if not isinstance(text, str):
        raise ValueError("meta dtype")
    dtype = np.dtype(text)
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise ValueError("meta dtype")
    return dtype


#: (name, value when absent, accepted types) of the fields of ``meta["image"]`` (docs/FORMAT.md 5.1).
_IMAGE_FIELDS: tuple[tuple[str, object, type | tuple[type, ...]], ...] = (
    ("kind", "image", str),
    ("format", "array", str),
    ("photometric", "MONOCHROME2", str),
    ("samples_per_pixel", 1, int),
    ("channels_last", False, bool),
    ("modality", None, (str, type(None))),
    ("bits_stored", None, (int, type(None))),
    ("metadata", {}, (dict, type(None))),
)


def _check_meta(meta: object) -> dict[str, Any]:
    """``meta`` if it has the keys and types docs/FORMAT.md section 5.1 requires; ValueError otherwise."""
    if not isinstance(meta, dict) or meta.get("restore") not in ("none", "splice", "verbatim"):
        raise ValueError("meta")
    info = meta.get("image")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(name, default), kinds) for name, default, kinds in _IMAGE_FIELDS
    ):
        raise ValueError("meta image")
    spacing = info.get("spacing")
    if spacing is not None and not (isinstance(spacing, list) and all(type(v) in (int, float) for v in spacing)):
        raise ValueError("meta spacing")
    if "dtype" in info:
        _pixel_dtype(info["dtype"])
    if meta["restore"] == "splice":
        _pixel_dtype(meta.get("stored_dtype"))
    if meta["restore"] != "none" and not (isinstance(meta.get("sha256"), str) and type(meta.get("size")) is int):
        raise ValueError("meta digest")
    return meta


def _read_meta(residual: memoryview) -> tuple[dict[str, Any], int]:
    """Parse ``u32 length ‖ JSON ‖ u64 prefix length``; return the meta and the prefix offset."""
    try:
        (meta_length,) = _U32.unpack_from(residual, 0)
        meta = _check_meta(loads_bounded(residual[4 : 4 + meta_length]))
        return meta, 4 + meta_length
    except (struct.error, ValueError, TypeError):
        # Only reachable with the right key and a malformed (maliciously made) payload.
        raise AuthenticationError() from None


def _image_from_meta(meta: dict[str, Any], pixels: np.ndarray) -> MedicalImage:
    info = meta["image"]
    try:
        return MedicalImage(
            pixels=pixels,
            format=str(info.get("format", "array")),
            photometric=str(info.get("photometric", "MONOCHROME2")),
            samples_per_pixel=int(info.get("samples_per_pixel", 1)),
            channels_last=bool(info.get("channels_last", False)),
            spacing=tuple(float(v) for v in info["spacing"]) if info.get("spacing") is not None else None,
            modality=info.get("modality"),
            bits_stored=info.get("bits_stored"),
            metadata=info.get("metadata") or {},
        )
    except (TypeError, ValueError):
        # Authenticated, yet describing an image that cannot exist: as malformed meta (docs/FORMAT.md 5.1).
        raise AuthenticationError() from None


def _unscan_pixels(words: np.ndarray, header: ContainerHeader, dtype: np.dtype) -> np.ndarray:
    rows, cols = header.plane_shape
    planes = zigzag_unscan(words, rows, cols, header.pattern, channels_last=header.channels_last)
    return planes.astype(dtype, copy=False).reshape(header.shape)


def _decrypt_in_memory(data: bytes | bytearray | memoryview, key: Key) -> tuple[dict[str, Any], np.ndarray]:
    """The authenticated meta and the pixels of a container held in memory."""
    view = memoryview(data).cast("B")
    header = parse_header(view)
    _check_key(header, key)
    _refuse_opaque(header)
    if len(view) != header.container_length:
        raise AuthenticationError()
    aad = header.encode()
    payload = scratch_bytes("plain", header.payload_length, header.residual_length)
    try:
        open_segments(
            AESGCM(derive_file_key(key.secret, header.salt)),
            header.nonce_prefix,
            aad,
            view[len(aad) :],
            header.segment_size,
            header.payload_length,
            payload.data,
        )
        meta, _ = _read_meta(payload.data[: header.residual_length])
        words = scanned_view(payload[header.residual_length :], header)
        info = meta.get("image", {})
        pixels = _unscan_pixels(words, header, _pixel_dtype(info.get("dtype", header.dtype.str)))
    finally:
        payload.fill(0)
    return meta, pixels


def decrypt_pixels(data: bytes | bytearray | memoryview, key: Key) -> np.ndarray:
    """Decrypt a container held in memory into its pixels (the array given to :func:`encrypt_image`).

    For a container of a file, the file's decoded pixels (without the file around
    them: :func:`decrypt_stream` or :func:`decrypt_file` restore the file).

    Raises
    ------
    FormatError
        ``data`` is not a deepkedi container.
    AuthenticationError
        Wrong key, or the container was modified or truncated.
    """
    return _decrypt_in_memory(data, key)[1]


def decrypt_image(data: bytes | bytearray | memoryview, key: Key) -> MedicalImage:
    """Decrypt a container held in memory into a :class:`~deepkedi.imaging.MedicalImage`.

    Its pixels and what the container says of them (format, photometric
    interpretation, samples, spacing, modality); a container of a plain array
    gives an image of format ``"array"``. Raises as :func:`decrypt_pixels` does.
    """
    meta, pixels = _decrypt_in_memory(data, key)
    return _image_from_meta(meta, pixels)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class _Source:
    """What the restoration section carries for one input file."""

    meta: dict[str, Any]
    prefix: bytes
    suffix: bytes


#: Stands for the SHA-256 in the meta until the digest is known: same length,
#: so the restoration section's layout does not change when it is filled in.
_SHA256_PLACEHOLDER = "0" * 64


def _describe_source(image: MedicalImage) -> _Source:
    """The restoration section of ``image``'s file, with a placeholder for its SHA-256.

    The digest is computed by :func:`_encrypt_file_from_parts` over the very
    bytes it encrypts (prefix, pixel words as read, suffix), never by a
    separate read of the file: a file that changes meanwhile cannot leave a
    container whose recorded digest contradicts its content.
    """
    layout = image.source
    meta: dict[str, Any] = {"image": _image_meta(image, "image")}
    if layout is None:
        raise ValueError("the image has no source file; use encrypt_image for images in memory")
    if layout.restore == "splice":
        prefix, suffix = layout.read_surrounding(image.pixels.nbytes)
        meta.update(restore="splice", stored_dtype=layout.stored_dtype)
    else:
        try:
            prefix, suffix = layout.path.read_bytes(), b""
        except OSError as exc:
            raise UnsupportedImageError(f"{layout.path}: cannot be read ({exc.strerror or exc})") from None
        if len(prefix) != layout.size:
            raise UnsupportedImageError(f"{layout.path}: the file changed while it was being read")
        meta["restore"] = "verbatim"
    meta["size"] = layout.size
    meta["sha256"] = _SHA256_PLACEHOLDER
    return _Source(meta=meta, prefix=prefix, suffix=suffix)


def _file_identity(image: MedicalImage) -> tuple[int, int, int, int] | None:
    """Inode, device, size and modification time of the image's source file, to notice a rewrite."""
    if image.source is None:
        return None
    try:
        info = os.stat(image.source.path)
    except OSError as exc:
        raise UnsupportedImageError(f"{image.source.path}: cannot be read ({exc.strerror or exc})") from None
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns


def _sha256_offset(head: bytes) -> int:
    """Where the SHA-256 placeholder's hex digits start in a restoration head.

    The meta JSON has sorted keys: the top-level ``"sha256"`` comes after
    ``"image"`` (whose metadata could hold anything) and before ``"size"`` and
    ``"stored_dtype"`` (a number and a dtype string), so it is the last match.
    """
    needle = b'"sha256":"' + _SHA256_PLACEHOLDER.encode("ascii") + b'"'
    at = head.rfind(needle)
    if at < 0:
        raise AssertionError("the restoration head has no SHA-256 placeholder")
    return at + len(b'"sha256":"')


def _plane_batches(image: MedicalImage, batch: int, sha256: Any = None) -> Iterator[np.ndarray]:
    """The image's planes, ``batch`` at a time.

    Spliceable files are read with ``readinto`` rather than through the memory
    map, so pages already encrypted do not stay resident: memory stays at one
    batch however large the volume. Those bytes, exactly as read, also feed
    ``sha256`` (a :mod:`hashlib` object) when one is given.
    """
    planes = as_planes(image.pixels, image.channels_last)
    layout = image.source
    if layout is None or layout.restore != "splice":
        for start in range(0, len(planes), batch):
            yield planes[start : start + batch]
        return
    plane_shape = planes.shape[1:]
    plane_bytes = planes[0].nbytes
    # With more than one batch, SHA-256 (the costliest step) runs on a second thread
    # (hashlib releases the GIL) over one buffer while the next is read, scanned and
    # sealed: two buffers take turns, and one is reused only once its hash is done.
    threaded = sha256 is not None and len(planes) > batch
    buffers = [np.empty(min(batch, len(planes)) * plane_bytes, dtype=np.uint8) for _ in range(2 if threaded else 1)]
    pending: list[concurrent.futures.Future[None] | None] = [None] * len(buffers)
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kedi-sha256") if threaded else None
    try:
        with open(layout.path, "rb") as fh:
            fh.seek(layout.pixel_offset)
            for number, start in enumerate(range(0, len(planes), batch)):
                slot = number % len(buffers)
                job = pending[slot]
                if job is not None:
                    job.result()  # this buffer's bytes are hashed: it may be refilled
                count = min(batch, len(planes) - start)
                view = buffers[slot][: count * plane_bytes]
                if fh.readinto(view.data) != len(view):
                    raise UnsupportedImageError(f"{layout.path}: the file changed while it was being read")
                if pool is not None:
                    pending[slot] = pool.submit(sha256.update, view)  # one worker: the order is kept
                elif sha256 is not None:
                    sha256.update(view)
                yield view.view(planes.dtype).reshape((count, *plane_shape))
        for job in pending:
            if job is not None:
                job.result()  # every byte read is hashed before the caller finishes the digest
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _write_planes(
    writer: SegmentWriter,
    image: MedicalImage,
    header: ContainerHeader,
    progress: Callable[[int], None],
    sha256: Any = None,
) -> None:
    n_planes = as_planes(image.pixels, image.channels_last).shape[0]
    plane_bytes = header.pixel_length // n_planes
    batch = max(1, BATCH_BYTES // plane_bytes)
    buffer = np.empty(min(batch, n_planes) * plane_bytes, dtype=np.uint8)
    for chunk in _plane_batches(image, batch, sha256):
        nbytes = len(chunk) * plane_bytes
        out = scanned_view(buffer[:nbytes], header)
        zigzag_scan(chunk, header.pattern, channels_last=header.channels_last, out=out)
        writer.write(buffer.data[:nbytes])
        progress(nbytes)


@dataclass(frozen=True)
class PreparedFile:
    """An image file about to be encrypted: its container header, known before any byte is sealed.

    Made by :func:`prepare_file`; :func:`seal_file` writes the container. The
    DICOM-native writer uses the pair to lay out its output around the header first.
    """

    src: Path
    image: MedicalImage
    header: ContainerHeader
    key: Key
    source: _Source
    head: bytes
    seen: tuple[int, int, int, int] | None


def prepare_file(
    src: str | Path,
    key: Key,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    salt: bytes | None = None,
    nonce_prefix: bytes | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    image: MedicalImage | None = None,
) -> PreparedFile:
    """Read ``src`` (unless ``image`` is it, read already) and fix the container's header.

    Salt and nonce prefix are fresh OS randomness unless given (known-answer vectors only).
    """
    src = Path(src)
    if image is None:
        image = read_image(src)
    seen = _file_identity(image)
    source = _describe_source(image)
    head = _residual_head(source.meta, len(source.prefix))
    residual_length = _residual_length(head, len(source.prefix), len(source.suffix))
    header = _header_for(
        image.pixels,
        image.channels_last,
        image.format,
        key,
        pattern=pattern,
        salt=os.urandom(SALT_SIZE) if salt is None else salt,
        nonce_prefix=os.urandom(NONCE_PREFIX_SIZE) if nonce_prefix is None else nonce_prefix,
        segment_size=segment_size,
        residual_length=residual_length,
        source=src,
    )
    return PreparedFile(src, image, header, key, source, head, seen)


def held_length(prepared: PreparedFile) -> int:
    """Payload bytes at the start whose segments :func:`seal_file` seals last (they hold the SHA-256)."""
    return _sha256_offset(prepared.head) + len(_SHA256_PLACEHOLDER)


def seal_file(prepared: PreparedFile, sink: BinaryIO, *, progress: Progress | None = None) -> None:
    """Write the container of ``prepared`` to ``sink``, in one pass over the input.

    ``sink`` receives the header, then the segments in order, except those covering
    the first :func:`held_length` payload bytes: their room is written as zeros
    first and their ciphertext at the end (``sink.seek`` back), once the SHA-256 of
    the original, computed in the same pass, is known.

    Raises
    ------
    UnsupportedImageError
        The input changed while it was being encrypted (the caller discards ``sink``).
    """
    header, image, source, head, key = prepared.header, prepared.image, prepared.source, prepared.head, prepared.key
    aad = header.encode()
    total, done = header.payload_length, 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    # One pass: the SHA-256 of the original covers exactly the bytes encrypted
    # (prefix, pixel words as read, suffix), so the container always restores a
    # file that matches it. The segments holding the digest are sealed last.
    sha_at = _sha256_offset(head)
    sha256 = hashlib.sha256(source.prefix)
    splice = source.meta["restore"] == "splice"
    sink.write(aad)
    writer = SegmentWriter(
        AESGCM(derive_file_key(key.secret, header.salt)),
        header.nonce_prefix,
        aad,
        header.segment_size,
        header.payload_length,
        sink,
        hold=held_length(prepared),
    )
    for part in (head, source.prefix, _U64.pack(len(source.suffix)), source.suffix):
        writer.write(part)
    advance(header.residual_length)
    _write_planes(writer, image, header, advance, sha256 if splice else None)
    if _file_identity(image) != prepared.seen:
        # The container would restore a mix of two versions: refuse, nothing is written.
        raise UnsupportedImageError(f"{prepared.src}: the file changed while it was being encrypted; try again")
    sha256.update(source.suffix)
    writer.patch(sha_at, sha256.hexdigest().encode("ascii"))
    writer.close()


def _encrypt_file_from_parts(
    src: str | Path,
    dst: str | Path,
    key: Key,
    *,
    pattern: ZigzagPattern | str,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    force: bool = False,
    progress: Progress | None = None,
    image: MedicalImage | None = None,
) -> ContainerHeader:
    """Deterministic core of :func:`encrypt_file` (salt and nonce prefix given)."""
    src, dst = Path(src), Path(dst)
    check_distinct(src, dst)
    prepared = prepare_file(
        src, key, pattern=pattern, salt=salt, nonce_prefix=nonce_prefix, segment_size=segment_size, image=image
    )
    size = len(prepared.header.encode()) + prepared.header.payload_length  # about: the tags are left out
    with atomic_output(dst, force=force, mode=output_mode(src, at_most=0o666), size_hint=size) as fh:
        seal_file(prepared, fh, progress=progress)
    return prepared.header


def encrypt_file(
    src: str | Path,
    dst: str | Path,
    key: Key,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    force: bool = False,
    progress: Progress | None = None,
    image: MedicalImage | None = None,
) -> ContainerHeader:
    """Encrypt the image file ``src`` into the container ``dst``.

    The container restores ``src`` byte for byte (:func:`decrypt_file`).
    Uncompressed files are read slice by slice through memory maps, so memory
    stays bounded for volumes of any size; compressed ones are decoded whole.

    Parameters
    ----------
    src
        A DICOM, NIfTI, FreeSurfer MGH, PNG, TIFF, JPEG or ``.npy`` file.
    dst
        The container to write. Written atomically; an existing file is kept
        unless ``force``. Its permissions are ``src``'s read/write bits,
        narrowed by the umask (:func:`deepkedi.fileio.output_mode`).
    key
        The master key.
    pattern
        Zigzag scan order of each plane.
    progress
        Called with (bytes done, bytes total).
    image
        ``read_image(src)``, when the caller has read it already (the DICOM-native
        writer does, for the cipher image's layout): a compressed file is then
        decoded once, not twice.

    Raises
    ------
    UnsupportedImageError
        ``src`` is not a readable image of a supported format, or it changed
        while it was being encrypted (nothing is written then; a container that
        is written always restores the bytes it read, SHA-256 included).
    OutputExistsError
        ``dst`` exists and ``force`` is false.
    """
    return _encrypt_file_from_parts(
        src,
        dst,
        key,
        pattern=pattern,
        salt=os.urandom(SALT_SIZE),
        nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
        force=force,
        progress=progress,
        image=image,
    )


def encrypt_file_to_bytes(
    src: str | Path,
    key: Key,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    image: MedicalImage | None = None,
) -> bytes:
    """The container :func:`encrypt_file` would write for ``src``, as bytes in memory.

    The same one-pass sealing (:func:`prepare_file`, :func:`seal_file`) into a memory
    buffer instead of a part file: no output file, no ``fsync``, no copy. For callers
    that hold the result (a storage area that writes it where it belongs, a network
    reply); the whole container is in memory, so keep it to files of a few hundred MB.

    Raises
    ------
    UnsupportedImageError
        ``src`` is not a readable image of a supported format, or it changed while it
        was being encrypted.
    """
    prepared = prepare_file(src, key, pattern=pattern, image=image)
    sink = io.BytesIO()
    seal_file(prepared, sink)
    return sink.getvalue()


# --------------------------------------------------------------------------- opaque files

#: Bytes of an opaque file read, hashed and sealed at a time: memory stays at about two segments.
_OPAQUE_CHUNK = 1 << 20


def _opaque_key(key: object) -> None:
    """``ValueError`` unless ``key`` is a hybrid master key: only the hybrid suite seals files as bytes."""
    if not isinstance(key, Key) or key.suite != "hybrid":
        raise ValueError(
            "the paper suite encrypts images only; an opaque container (a file sealed whole) needs a hybrid key file"
        )


def _opaque_head(size: int) -> bytes:
    """The restoration head of an opaque file of ``size`` bytes (the file itself is the prefix that follows)."""
    meta = {
        "restore": "verbatim",
        "image": {"kind": "opaque", "format": OPAQUE_FORMAT},
        "size": size,
        "sha256": _SHA256_PLACEHOLDER,
    }
    return _residual_head(meta, size)


def _seal_opaque_from_parts(
    src: Path,
    sink: BinaryIO,
    key: Key,
    *,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Deterministic core of :func:`seal_opaque` (salt and nonce prefix given; known-answer vectors only)."""
    _opaque_key(key)
    try:
        fh = open_input(src)  # a FIFO or device is refused (UnsupportedImageError), never waited on
    except OSError as exc:
        raise UnsupportedImageError(f"{src}: cannot be read ({exc.strerror or exc})") from None
    with fh:
        before = os.fstat(fh.fileno())
        size = before.st_size
        head = _opaque_head(size)
        try:
            header = ContainerHeader(
                suite=Suite.HYBRID,
                pattern=ZigzagPattern.HORIZONTAL,
                channels_last=False,
                dtype=np.dtype("u1"),
                shape=OPAQUE_SHAPE,
                key_id=key.key_id,
                salt=salt,
                nonce_prefix=nonce_prefix,
                segment_size=segment_size,
                residual_length=_residual_length(head, size, 0),
                format=OPAQUE_FORMAT,
            )
        except ValueError as exc:  # the file is too large for 2**32 segments
            raise UnsupportedImageError(f"{src}: the container cannot hold this file: {exc}") from None
        aad = header.encode()
        sink.write(aad)
        writer = SegmentWriter(
            AESGCM(derive_file_key(key.secret, salt)),
            nonce_prefix,
            aad,
            segment_size,
            header.payload_length,
            sink,
            hold=_sha256_offset(head) + len(_SHA256_PLACEHOLDER),
        )
        writer.write(head)
        # The digest covers exactly the bytes sealed (docs/FORMAT.md 5.1), read once, in chunks.
        sha256 = hashlib.sha256()
        remaining = size
        while remaining:
            chunk = fh.read(min(_OPAQUE_CHUNK, remaining))
            if not chunk:
                break
            sha256.update(chunk)
            writer.write(chunk)
            remaining -= len(chunk)
            if progress is not None:
                progress(size - remaining, size)
        after = os.stat(src)
        if (
            remaining
            or fh.read(1)
            or (after.st_ino, after.st_size, after.st_mtime_ns)
            != (
                before.st_ino,
                before.st_size,
                before.st_mtime_ns,
            )
        ):
            raise UnsupportedImageError(f"{src}: the file changed while it was being encrypted; try again")
    writer.write(_U64.pack(0))  # no suffix
    writer.patch(_sha256_offset(head), sha256.hexdigest().encode("ascii"))
    writer.close()
    if progress is not None and size == 0:
        progress(0, 0)
    return header


def seal_opaque(src: str | Path, sink: BinaryIO, key: Key, *, progress: Progress | None = None) -> ContainerHeader:
    """Write an opaque container of ``src`` to ``sink`` (seekable): any file's bytes, sealed whole.

    No image is read: the file is streamed in 1 MiB pieces, its SHA-256 computed over
    exactly the bytes sealed, and :func:`decrypt_file` / :func:`decrypt_stream` restore
    it byte for byte. The header says only that the container is opaque
    (``format`` ``"opaque"``, no pixel array, docs/FORMAT.md 5.3); the file's size shows
    in the container's length, its name and kind nowhere.

    Raises
    ------
    UnsupportedImageError
        ``src`` cannot be read, is not a regular file, or changed while it was being read.
    """
    return _seal_opaque_from_parts(
        Path(src), sink, key, salt=os.urandom(SALT_SIZE), nonce_prefix=os.urandom(NONCE_PREFIX_SIZE), progress=progress
    )


def _encrypt_opaque_file_from_parts(
    src: str | Path,
    dst: str | Path,
    key: Key,
    *,
    salt: bytes,
    nonce_prefix: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    force: bool = False,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Deterministic core of :func:`encrypt_opaque_file` (salt and nonce prefix given)."""
    src, dst = Path(src), Path(dst)
    check_distinct(src, dst)
    _opaque_key(key)
    with atomic_output(dst, force=force, mode=output_mode(src, at_most=0o666)) as fh:
        return _seal_opaque_from_parts(
            src, fh, key, salt=salt, nonce_prefix=nonce_prefix, segment_size=segment_size, progress=progress
        )


def encrypt_opaque_file(
    src: str | Path,
    dst: str | Path,
    key: Key,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Encrypt any file ``src`` into the opaque container ``dst`` (:func:`seal_opaque`, written atomically).

    For what is not an image deepkedi reads: a DICOM object without pixel data
    (a structured report, a DICOMDIR), a PDF, a text file. :func:`decrypt_file`
    restores it byte for byte. ``dst`` is written as :func:`encrypt_file` writes.

    Raises
    ------
    UnsupportedImageError
        ``src`` cannot be read, is not a regular file, or changed while it was being read.
    OutputExistsError
        ``dst`` exists and ``force`` is false.
    """
    return _encrypt_opaque_file_from_parts(
        src,
        dst,
        key,
        salt=os.urandom(SALT_SIZE),
        nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
        force=force,
        progress=progress,
    )


def encrypt_opaque_to_bytes(src: str | Path, key: Key) -> bytes:
    """The container :func:`encrypt_opaque_file` would write for ``src``, as bytes in memory."""
    sink = io.BytesIO()
    seal_opaque(src, sink, key)
    return sink.getvalue()


#: Buffers waiting to be hashed on the second thread, at most.
_HASH_QUEUE = 2


class _HashingSink:
    """Writes through to a file while hashing what passes, in order.

    :meth:`write_owned` hands the hashing of a buffer nobody will change again to a
    second thread (hashlib releases the GIL), so SHA-256, the costliest step of a
    large restore, runs beside the decryption and the writing; :meth:`write` hashes
    inline once the pending buffers are hashed. :meth:`digest` waits for all of them.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._sha256 = hashlib.sha256()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future[None]] = []
        self.size = 0

    def _drain(self) -> None:
        for job in self._pending:
            job.result()
        self._pending.clear()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._drain()
        self._sha256.update(data)
        self.size += len(memoryview(data).cast("B"))
        return self._fh.write(data)

    def write_owned(self, data: np.ndarray) -> int:
        """Write ``data``, which the caller keeps unchanged, hashing it on the second thread."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kedi-sha256")
        view = data.data.cast("B")
        while len(self._pending) >= _HASH_QUEUE:  # bounded: memory stays a few batches
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._sha256.update, view))
        self.size += len(view)
        return self._fh.write(view)

    def hexdigest(self) -> str:
        self._drain()
        return self._sha256.hexdigest()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def decrypt_file(
    src: str | Path,
    dst: str | Path,
    key: Key,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ContainerHeader:
    """Decrypt the container ``src`` into ``dst``, restoring the original file byte for byte.

    Every byte is authenticated before the output is moved into place, and the
    restored file's SHA-256 is checked against the one recorded at encryption;
    on any failure nothing is written. Containers made in memory
    (:func:`encrypt_image`) are written in the format ``dst``'s suffix names.
    The restored file is private: at most ``0600``, never wider than the
    container, narrowed by the umask.

    Raises
    ------
    FormatError
        ``src`` is not a deepkedi container.
    AuthenticationError
        Wrong key, or the container was modified or truncated (one message for all).
    OutputExistsError
        ``dst`` exists and ``force`` is false.
    """
    src, dst = Path(src), Path(dst)
    check_distinct(src, dst)
    try:
        check_regular_input(src, error=FormatError)  # a FIFO would block the open below
        fh = open(src, "rb")  # noqa: SIM115 - the `with fh:` below closes it; the try covers the open alone
    except OSError as exc:
        raise FormatError(f"{src}: cannot be read ({exc.strerror or exc})") from None
    with fh:
        opened = _open_payload(fh, key, os.fstat(fh.fileno()).st_size)
        if opened.meta["restore"] == "none":
            _decrypt_in_memory_container(opened, dst, force, output_mode(src))
            return opened.header
        size = opened.meta.get("size")  # the original's, recorded and authenticated
        with atomic_output(dst, force=force, mode=output_mode(src), size_hint=size) as out:
            _restore_file(opened, out, progress)
    return opened.header


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: Key, *, progress: Progress | None = None) -> ContainerHeader:
    """Decrypt the container read from ``src`` (a binary file object), writing the original file to ``dst``.

    ``src`` is read once, front to back (a pipe or a socket will do). Every
    segment is authenticated before its plaintext is written, and the restored
    bytes' SHA-256 is checked against the one recorded at encryption once the
    last byte is out; when an exception is raised, what ``dst`` received so far
    is not the original and must be discarded (files: use :func:`decrypt_file`,
    which never leaves a partial output).

    Raises
    ------
    FormatError
        ``src`` is not a deepkedi container, or it holds an image made in memory
        (:func:`encrypt_image`) rather than a file: decrypt that with :func:`decrypt_image`.
    AuthenticationError
        Wrong key, or the container was modified, truncated or extended.
    """
    opened = _open_payload(src, key, None)
    if opened.meta["restore"] == "none":
        raise FormatError("this container holds an image made in memory, not a file: use decrypt_image")
    _restore_file(opened, dst, progress)
    if src.read(1):
        raise AuthenticationError()  # bytes after the end of the container
    return opened.header


@dataclass
class _Opened:
    """A hybrid container whose header is checked and whose payload is being read."""

    header: ContainerHeader
    reader: SegmentReader
    meta: dict[str, Any]
    prefix_length: int


def _open_payload(fh: BinaryIO, key: Key, length: int | None) -> _Opened:
    """Read the header and the restoration meta; ``length`` is the container's size when known."""
    header, aad = read_header_from(fh)
    _check_key(header, key)
    if length is not None and length != header.container_length:
        raise AuthenticationError()
    reader = SegmentReader(
        AESGCM(derive_file_key(key.secret, header.salt)),
        header.nonce_prefix,
        aad,
        header.segment_size,
        header.payload_length,
        fh,
    )
    (meta_length,) = _U32.unpack(reader.read(4))
    if meta_length > min(header.residual_length, DEFAULT_MAX_BYTES):
        raise AuthenticationError()
    meta, _ = _read_meta(memoryview(_U32.pack(meta_length) + reader.read(meta_length)))
    if header.opaque and meta["restore"] != "verbatim":
        raise AuthenticationError()  # an opaque container restores its stored bytes, nothing else
    (prefix_length,) = _U64.unpack(reader.read(8))
    return _Opened(header, reader, meta, prefix_length)


def _restore_file(opened: _Opened, out: BinaryIO, progress: Progress | None) -> None:
    """Write the original file (prefix, pixel words as stored, suffix) and check its SHA-256 and size."""
    header, reader, meta = opened.header, opened.reader, opened.meta
    total = header.payload_length

    def report() -> None:
        if progress is not None:
            progress(total - reader.remaining, total)

    sink = _HashingSink(out)
    try:
        if opened.prefix_length > reader.remaining:
            raise AuthenticationError()
        reader.copy_to(opened.prefix_length, sink)
        (suffix_length,) = _U64.unpack(reader.read(8))
        if suffix_length > reader.remaining:
            raise AuthenticationError()
        suffix = reader.read(suffix_length)
        report()
        splice = meta["restore"] == "splice"
        stored = _pixel_dtype(meta["stored_dtype"]) if splice else None
        _read_planes(reader, header, sink if splice else None, stored, report)
        sink.write(suffix)
        reader.finish()
        if sink.hexdigest() != meta.get("sha256") or sink.size != meta.get("size"):
            raise AuthenticationError()
    finally:
        sink.close()


def _read_planes(
    reader: SegmentReader,
    header: ContainerHeader,
    sink: _HashingSink | None,
    stored: np.dtype | None,
    report: Callable[[], None],
) -> None:
    """Stream the pixel words; un-scan them into ``sink`` as ``stored`` words, or just authenticate."""
    if header.pixel_length == 0:
        return  # an opaque container: no pixel words
    n_planes = math.prod(header.shape[:-3] if header.channels_last else header.shape[:-2])
    plane_bytes = header.pixel_length // n_planes
    batch = max(1, BATCH_BYTES // plane_bytes)
    buffer = np.empty(min(batch, n_planes) * plane_bytes, dtype=np.uint8)
    rows, cols = header.plane_shape
    for start in range(0, n_planes, batch):
        count = min(batch, n_planes - start)
        view = buffer[: count * plane_bytes]
        reader.read_into(view.data)
        if sink is not None and stored is not None:
            planes = zigzag_unscan(
                scanned_view(view, header), rows, cols, header.pattern, channels_last=header.channels_last
            )
            sink.write_owned(np.ascontiguousarray(planes, dtype=stored))
        report()


def _decrypt_in_memory_container(opened: _Opened, dst: Path, force: bool, mode: int) -> None:
    header, reader, meta = opened.header, opened.reader, opened.meta
    if opened.prefix_length != 0:
        raise AuthenticationError()
    (suffix_length,) = _U64.unpack(reader.read(8))
    if suffix_length != 0:
        raise AuthenticationError()
    words = np.empty(header.pixel_length, dtype=np.uint8)
    reader.read_into(words.data)
    reader.finish()
    info = meta.get("image", {})
    pixels = _unscan_pixels(scanned_view(words, header), header, _pixel_dtype(info.get("dtype", header.dtype.str)))
    image = _image_from_meta(meta, pixels)
    with atomic_output_path(dst, force=force, mode=mode) as tmp:
        if dst.suffix.lower() == ".npy" or (info.get("kind") == "ndarray" and not dst.suffix):
            np.save(tmp, pixels)
        else:
            write_image(image, tmp)


# --------------------------------------------------------------------------- cipher image
