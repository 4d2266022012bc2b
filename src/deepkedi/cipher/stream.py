"""Segmented AEAD: AES-256-GCM over fixed-size segments (the STREAM construction).

The payload is cut into segments of ``segment_size`` plaintext bytes (the last
may be shorter; an empty payload is one empty segment). Segment ``i`` of ``n``
is sealed with AES-256-GCM under the nonce::

    nonce_prefix (7 bytes) ‖ i as u32 big-endian ‖ 0x01 if i == n - 1 else 0x00

and the container header as associated data. Reordering changes the counter,
truncation or appending changes which segment carries the final flag, and the
header is bound to every segment, so each is detected by a failing tag
(Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its
Nonce-Reuse Misuse-Resistance", CRYPTO 2015, doi:10.1007/978-3-662-47989-6_24).
Memory stays bounded by one segment whatever the payload size.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deepkedi.errors import AuthenticationError

__all__ = ["ByteSink", "SegmentReader", "SegmentWriter", "open_segments", "seal_segments", "segment_nonce"]

TAG_SIZE = 16


class ByteSink(Protocol):
    """Where :meth:`SegmentReader.copy_to` writes: a binary file, or a wrapper of one that hashes."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


def segment_nonce(nonce_prefix: bytes, counter: int, last: bool) -> bytes:
    """The 12-byte GCM nonce of segment ``counter``."""
    return nonce_prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _segment_count(payload_length: int, segment_size: int) -> int:
    return max(1, -(-payload_length // segment_size))


def seal_segments(
    aead: AESGCM,
    nonce_prefix: bytes,
    aad: bytes,
    plaintext: memoryview,
    segment_size: int,
    out: memoryview,
) -> None:
    """Encrypt a whole in-memory payload into ``out`` (``len(plaintext) + 16·n`` bytes)."""
    length = len(plaintext)
    n = _segment_count(length, segment_size)
    step = segment_size + TAG_SIZE
    for i in range(n):
        chunk = plaintext[i * segment_size : (i + 1) * segment_size]
        start = i * step
        aead.encrypt_into(
            segment_nonce(nonce_prefix, i, i == n - 1), chunk, aad, out[start : start + len(chunk) + TAG_SIZE]
        )


def open_segments(
    aead: AESGCM,
    nonce_prefix: bytes,
    aad: bytes,
    ciphertext: memoryview,
    segment_size: int,
    payload_length: int,
    out: memoryview,
) -> None:
    """Decrypt a whole in-memory payload into ``out``; raise :class:`AuthenticationError` on any failure."""
    n = _segment_count(payload_length, segment_size)
    if len(ciphertext) != payload_length + TAG_SIZE * n or len(out) != payload_length:
        raise AuthenticationError()
    step = segment_size + TAG_SIZE
    for i in range(n):
        plain_len = min(segment_size, payload_length - i * segment_size)
        start = i * step
        try:
            aead.decrypt_into(
                segment_nonce(nonce_prefix, i, i == n - 1),
                ciphertext[start : start + plain_len + TAG_SIZE],
                aad,
                out[i * segment_size : i * segment_size + plain_len],
            )
        except InvalidTag:
            raise AuthenticationError() from None


class _Segments:
    """What a writer and a reader of one segmented payload share."""

    def __init__(self, aead: AESGCM, nonce_prefix: bytes, aad: bytes, segment_size: int, payload_length: int) -> None:
        self._aead = aead
        self._prefix = nonce_prefix
        self._aad = aad
        self._size = segment_size
        self._total = payload_length
        self._n = _segment_count(payload_length, segment_size)
        self._counter = 0


class SegmentWriter(_Segments):
    """Encrypt a payload of known length written in pieces; ciphertext goes to ``sink``.

    Parameters
    ----------
    aead, nonce_prefix, aad, segment_size
        As in :func:`seal_segments`.
    payload_length
        Exact number of bytes that will be written; :meth:`close` checks it.
    sink
        Binary file receiving ``ciphertext ‖ tag`` per segment.
    hold
        Keep the segments covering the first ``hold`` payload bytes unsealed
        until :meth:`close`, so that :meth:`patch` can still change those bytes
        (a digest of the rest of the payload, computed while it streams). Their
        room in ``sink`` is reserved with zeros and filled at :meth:`close`,
        which needs a seekable ``sink``. Held segments stay in memory.
    """

    def __init__(
        self,
        aead: AESGCM,
        nonce_prefix: bytes,
        aad: bytes,
        segment_size: int,
        payload_length: int,
        sink: BinaryIO,
        *,
        hold: int = 0,
    ) -> None:
        super().__init__(aead, nonce_prefix, aad, segment_size, payload_length)
        if not 0 <= hold <= payload_length:
            raise ValueError(f"hold must be between 0 and the payload length, not {hold}")
        self._sink = sink
        # Never larger than the payload: a small file does not pay for a whole segment of fresh memory.
        self._buf = bytearray(min(segment_size, payload_length))
        self._fill = 0
        self._written = 0
        self._hold_segments = -(-hold // segment_size)
        #: (sink offset, plaintext) of each held segment, in counter order.
        self._held: list[tuple[int, bytearray]] = []

    def _seal(self, chunk: memoryview | bytearray) -> None:
        if self._counter < self._hold_segments:
            self._held.append((self._sink.tell(), bytearray(chunk)))
            self._sink.write(bytes(len(chunk) + TAG_SIZE))
            self._counter += 1
            return
        self._sink.write(self._seal_one(self._counter, chunk))
        self._counter += 1

    def _seal_one(self, counter: int, chunk: memoryview | bytearray) -> bytes:
        last = counter == self._n - 1
        return self._aead.encrypt(segment_nonce(self._prefix, counter, last), chunk, self._aad)

    def patch(self, offset: int, data: bytes) -> None:
        """Replace payload bytes ``offset``…``offset + len(data)`` inside the held range.

        Only bytes already written and still held (``hold`` at construction) can
        be patched; call it before :meth:`close`.
        """
        end = offset + len(data)
        if offset < 0 or end > min(self._written, self._hold_segments * self._size):
            raise ValueError("only payload bytes already written and held can be patched")
        for i in range(offset // self._size, -(-end // self._size)):
            seg_start = i * self._size
            lo, hi = max(offset, seg_start), min(end, seg_start + self._size)
            target = self._held[i][1] if i < len(self._held) else self._buf
            target[lo - seg_start : hi - seg_start] = data[lo - offset : hi - offset]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the payload."""
        view = memoryview(data).cast("B")
        if self._written + len(view) > self._total:
            raise ValueError("more payload written than announced")
        self._written += len(view)
        pos = 0
        while pos < len(view):
            if self._fill == 0 and len(view) - pos >= self._size and self._counter < self._n - 1:
                # A whole segment straight from the caller's buffer: no copy.
                self._seal(view[pos : pos + self._size])
                pos += self._size
                continue
            take = min(self._size - self._fill, len(view) - pos)
            self._buf[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self._size and self._counter < self._n - 1:
                self._seal(self._buf)
                self._fill = 0

    def close(self) -> None:
        """Seal the final segment; the payload must be complete."""
        if self._written != self._total:
            raise ValueError(f"payload has {self._written} bytes, {self._total} announced")
        self._seal(memoryview(self._buf)[: self._fill])
        if self._counter != self._n:
            raise AssertionError("segment count mismatch")
        if self._held:
            end = self._sink.tell()
            for counter, (offset, chunk) in enumerate(self._held):
                self._sink.seek(offset)
                self._sink.write(self._seal_one(counter, chunk))
                chunk[:] = bytes(len(chunk))  # no plaintext left behind in memory
            self._held.clear()
            self._sink.seek(end)


class SegmentReader(_Segments):
    """Decrypt a payload segment by segment from ``source`` and hand it out in pieces.

    Every byte returned has been authenticated (its segment's tag checked). Any
    failure, including a short source, raises :class:`AuthenticationError`.
    """

    def __init__(
        self,
        aead: AESGCM,
        nonce_prefix: bytes,
        aad: bytes,
        segment_size: int,
        payload_length: int,
        source: BinaryIO,
    ) -> None:
        super().__init__(aead, nonce_prefix, aad, segment_size, payload_length)
        self._source = source
        self._plain = memoryview(b"")
        self._pos = 0
        self._consumed = 0

    @property
    def remaining(self) -> int:
        """Payload bytes not yet handed out."""
        return self._total - self._consumed

    def _next_segment(self) -> None:
        if self._counter >= self._n:
            raise AuthenticationError()
        i = self._counter
        plain_len = min(self._size, self._total - i * self._size)
        sealed = self._source.read(plain_len + TAG_SIZE)
        if len(sealed) != plain_len + TAG_SIZE:
            raise AuthenticationError()
        try:
            plain = self._aead.decrypt(segment_nonce(self._prefix, i, i == self._n - 1), sealed, self._aad)
        except InvalidTag:
            raise AuthenticationError() from None
        self._plain = memoryview(plain)
        self._pos = 0
        self._counter += 1

    def read_into(self, out: memoryview) -> None:
        """Fill ``out`` (bytes) with the next ``len(out)`` payload bytes."""
        out = out.cast("B") if out.format != "B" else out
        need = len(out)
        if need > self.remaining:
            raise AuthenticationError()
        pos = 0
        while pos < need:
            if self._pos == len(self._plain):
                self._next_segment()
            take = min(need - pos, len(self._plain) - self._pos)
            out[pos : pos + take] = self._plain[self._pos : self._pos + take]
            self._pos += take
            pos += take
        self._consumed += need

    def read(self, n: int) -> bytes:
        """The next ``n`` payload bytes."""
        buf = bytearray(n)
        self.read_into(memoryview(buf))
        return bytes(buf)

    def copy_to(self, n: int, sink: ByteSink, *, chunk: int = 1 << 20) -> None:
        """Write the next ``n`` payload bytes to ``sink`` without holding them all."""
        buf = bytearray(min(chunk, max(n, 1)))
        left = n
        while left:
            take = min(left, len(buf))
            view = memoryview(buf)[:take]
            self.read_into(view)
            sink.write(view)
            left -= take

    def finish(self) -> None:
        """Check the whole payload, final segment included, has been read and authenticated."""
        if self._consumed != self._total:
            raise AuthenticationError()
        if self._counter < self._n:
            # Only an empty final segment can remain (an empty payload).
            self._next_segment()
        if self._counter != self._n or self._pos != len(self._plain):
            raise AuthenticationError()
