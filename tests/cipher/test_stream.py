"""Segmented AES-GCM: writer and reader agree with the one-shot functions; misuse is detected."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from deepkedi.cipher.stream import SegmentReader, SegmentWriter, open_segments, seal_segments, segment_nonce
from deepkedi.errors import AuthenticationError

KEY = AESGCM(bytes(range(32)))
PREFIX = b"\x01" * 7
AAD = b"header"


def _sealed(payload: bytes, size: int) -> bytes:
    n = max(1, -(-len(payload) // size))
    out = bytearray(len(payload) + 16 * n)
    seal_segments(KEY, PREFIX, AAD, memoryview(payload), size, memoryview(out))
    return bytes(out)


def test_nonce_layout() -> None:
    assert segment_nonce(PREFIX, 258, True) == PREFIX + b"\x00\x00\x01\x02\x01"
    assert segment_nonce(PREFIX, 0, False) == PREFIX + b"\x00" * 5


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=5000), size=st.sampled_from([16, 100, 1024]), pieces=st.lists(st.integers(1, 700)))
def test_writer_reader_and_one_shot_agree(payload: bytes, size: int, pieces: list[int]) -> None:
    sink = io.BytesIO()
    writer = SegmentWriter(KEY, PREFIX, AAD, size, len(payload), sink)
    pos = 0
    for piece in pieces:
        writer.write(payload[pos : pos + piece])
        pos = min(pos + piece, len(payload))
    writer.write(payload[pos:])
    writer.close()
    assert sink.getvalue() == _sealed(payload, size)

    reader = SegmentReader(KEY, PREFIX, AAD, size, len(payload), io.BytesIO(sink.getvalue()))
    got = bytearray()
    for piece in pieces:
        take = min(piece, reader.remaining)
        got += reader.read(take)
    got += reader.read(reader.remaining)
    reader.finish()
    assert bytes(got) == payload

    out = bytearray(len(payload))
    open_segments(KEY, PREFIX, AAD, memoryview(sink.getvalue()), size, len(payload), memoryview(out))
    assert bytes(out) == payload


def test_reordered_segments_fail() -> None:
    payload = os.urandom(64)
    sealed = _sealed(payload, 16)
    step = 32
    swapped = sealed[step : 2 * step] + sealed[:step] + sealed[2 * step :]
    with pytest.raises(AuthenticationError):
        open_segments(KEY, PREFIX, AAD, memoryview(swapped), 16, 64, memoryview(bytearray(64)))


def test_dropping_final_segments_fails_even_with_consistent_length() -> None:
    # Claim a payload of 32 bytes where 64 were sealed: the segment that now ends
    # the stream was sealed without the final flag.
    sealed = _sealed(os.urandom(64), 16)
    with pytest.raises(AuthenticationError):
        open_segments(KEY, PREFIX, AAD, memoryview(sealed[: 2 * 32]), 16, 32, memoryview(bytearray(32)))


def test_other_aad_fails() -> None:
    sealed = _sealed(b"x" * 10, 16)
    with pytest.raises(AuthenticationError):
        open_segments(KEY, PREFIX, b"other", memoryview(sealed), 16, 10, memoryview(bytearray(10)))


def test_writer_checks_announced_length() -> None:
    writer = SegmentWriter(KEY, PREFIX, AAD, 16, 10, io.BytesIO())
    writer.write(b"12345")
    with pytest.raises(ValueError):
        writer.close()
    with pytest.raises(ValueError):
        writer.write(b"123456")


def test_reader_on_short_source_fails() -> None:
    sealed = _sealed(os.urandom(40), 16)
    reader = SegmentReader(KEY, PREFIX, AAD, 16, 40, io.BytesIO(sealed[:-1]))
    with pytest.raises(AuthenticationError):
        reader.read(40)


def test_empty_payload_round_trip() -> None:
    sink = io.BytesIO()
    writer = SegmentWriter(KEY, PREFIX, AAD, 16, 0, sink)
    writer.close()
    assert len(sink.getvalue()) == 16
    reader = SegmentReader(KEY, PREFIX, AAD, 16, 0, io.BytesIO(sink.getvalue()))
    reader.finish()


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=3000),
    size=st.integers(1, 700),
    data=st.data(),
)
def test_held_segments_are_patched_then_sealed_in_place(payload: bytes, size: int, data: st.DataObject) -> None:
    hold = data.draw(st.integers(1, len(payload)))
    at = data.draw(st.integers(0, hold - 1))
    patch = data.draw(st.binary(min_size=1, max_size=hold - at))
    sink = io.BytesIO()
    sink.write(b"H")  # the writer starts at the sink's current offset
    writer = SegmentWriter(KEY, PREFIX, AAD, size, len(payload), sink, hold=hold)
    cut = data.draw(st.integers(0, len(payload)))
    writer.write(payload[:cut])
    writer.write(payload[cut:])
    writer.patch(at, patch)
    writer.close()
    expected = payload[:at] + patch + payload[at + len(patch) :]
    assert sink.getvalue() == b"H" + _sealed(expected, size)


def test_patch_outside_the_held_range_is_refused() -> None:
    writer = SegmentWriter(KEY, PREFIX, AAD, 4, 12, io.BytesIO(), hold=3)
    writer.write(b"abcdefgh")
    with pytest.raises(ValueError, match="held"):
        writer.patch(4, b"x")  # segment 1 is not held
    with pytest.raises(ValueError, match="held"):
        writer.patch(0, b"\x00" * 9)  # past what was written
