"""The container header: encode/parse round trip, and every malformation refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepkedi.cipher.format import MAGIC, ContainerHeader, Suite, parse_header
from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.transforms.zigzag import ZigzagPattern

DTYPES = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8", "?"]


def _header(**changes: object) -> ContainerHeader:
    fields: dict[str, object] = {
        "suite": Suite.HYBRID,
        "pattern": ZigzagPattern.DIAGONAL,
        "channels_last": False,
        "dtype": np.dtype("<u2"),
        "shape": (3, 512, 512),
        "key_id": bytes(range(16)),
        "salt": bytes(range(32)),
        "nonce_prefix": bytes(range(7)),
        "segment_size": 1 << 20,
        "residual_length": 1234,
        "format": "dicom",
    }
    fields.update(changes)
    return ContainerHeader(**fields)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(list(ZigzagPattern)),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 2**20), min_size=2, max_size=6),
    channels_last=st.booleans(),
    residual=st.integers(0, 2**40),
    segment=st.integers(1024, 1 << 24),
    name=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,31}", fullmatch=True),
)
def test_round_trip(pattern, dtype, shape, channels_last, residual, segment, name) -> None:
    if channels_last and len(shape) < 3:
        shape = [*shape, 3]
    try:
        header = _header(
            pattern=pattern,
            dtype=np.dtype(dtype),
            shape=tuple(shape),
            channels_last=channels_last,
            residual_length=residual,
            segment_size=segment,
            format=name,
        )
    except ValueError:
        return  # more than 2**32 segments: refused at construction
    data = header.encode()
    assert len(data) == header.encoded_length
    assert data.startswith(MAGIC)
    assert parse_header(data + b"trailing") == header


def test_sizes() -> None:
    header = _header()
    assert header.pixel_length == 3 * 512 * 512 * 2
    assert header.payload_length == header.pixel_length + 1234
    assert header.segment_count == 2
    assert header.container_length == header.encoded_length + header.payload_length + 32


def test_empty_payload_is_one_segment() -> None:
    assert _header(shape=(1, 1), dtype=np.dtype("u1"), residual_length=0).segment_count == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"shape": (5,)},
        {"shape": (0, 4)},
        {"shape": (4, 4), "channels_last": True},
        {"dtype": np.dtype("c8")},
        {"dtype": np.dtype(">u2")},
        {"key_id": b"short"},
        {"nonce_prefix": b"12345678"},
        {"segment_size": 100},
        {"format": "DICOM"},
        {"format": ""},
        {"shape": (2**40, 2**20), "segment_size": 1024},
    ],
)
def test_invalid_headers_are_refused_at_construction(changes: dict) -> None:
    with pytest.raises(ValueError):
        _header(**changes)


def test_not_a_container_vs_damaged_container() -> None:
    data = _header().encode()
    with pytest.raises(FormatError):
        parse_header(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(FormatError):
        parse_header(b"DICM" * 10)
    for n in range(len(MAGIC)):
        with pytest.raises(AuthenticationError):
            parse_header(data[:n])  # truncated inside the magic, including empty


def test_every_single_bit_flip_of_the_header_is_refused_or_changes_it() -> None:
    data = _header().encode()
    header = parse_header(data)
    for index in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            try:
                parsed = parse_header(bytes(damaged))
            except AuthenticationError:
                continue
            # Flips that still parse (salt, key id, sizes...) give another header: the AAD differs.
            assert parsed != header or bytes(damaged) != data
