"""deepkedi.keys.keystore.export: the key export format and recipient keys, without a keystore.

Round trips through two keystores are in _keystore_suite.py; known answers in
tests/vectors/test_export_vectors.py.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.keys import generate_key
from deepkedi.keys.keystore.export import (
    EXPORT_MAGIC,
    EXPORT_VERSION,
    _export_from_parts,
    _export_payload,
    _open_export,
    _parse_export_payload,
    _recipient_fingerprint,
    _recipient_private,
    _recipient_raw,
    _seal_export,
    recipient_keypair,
    recipient_public_key,
    recipient_public_key_from_pem,
)


def test_export_seam_is_deterministic() -> None:
    private = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    recipient = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    recipient_raw = recipient.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    one = _export_from_parts(b"[]", recipient_raw, private, bytes(12))
    assert one == _export_from_parts(b"[]", recipient_raw, private, bytes(12))
    assert len(one) == 8 + 1 + 32 + 12 + 2 + 16
    assert _open_export(one, recipient) == b"[]"


def test_a_sealed_export_is_fresh_each_time() -> None:
    private_pem, public_pem = recipient_keypair()
    recipient_raw = _recipient_raw(public_pem)
    one, two = _seal_export(b"[]", recipient_raw), _seal_export(b"[]", recipient_raw)
    assert one[:9] == two[:9] == EXPORT_MAGIC + bytes([EXPORT_VERSION])
    assert one[9:41] != two[9:41]  # a new ephemeral key per export
    assert _open_export(one, _recipient_private(private_pem)) == _open_export(two, _recipient_private(private_pem))
    with pytest.raises(AuthenticationError):
        _open_export(one, X25519PrivateKey.generate())


def test_the_payload_round_trips() -> None:
    keys = [(generate_key(gan=False), "study 7"), (generate_key(gan=False), None)]
    payload = _export_payload(keys)
    assert _parse_export_payload(payload) == keys
    for key, _label in keys:
        assert key.secret not in payload and key.secret.hex().encode() not in payload  # base64 inside


def test_deeply_nested_key_export_is_a_format_error() -> None:
    # An export is authenticated first; what it holds is then parsed, bounded like every other JSON.
    for payload in (b"[" * 100_000 + b"]" * 100_000, b'[{"key_id": ' * 40_000):
        with pytest.raises(FormatError, match="malformed"):
            _parse_export_payload(payload)


def test_recipient_keys_from_pem() -> None:
    private_pem, public_pem = recipient_keypair()
    assert recipient_public_key(private_pem) == public_pem
    recipient_raw = _recipient_raw(public_pem)
    assert len(recipient_raw) == 32 and _recipient_raw(recipient_public_key_from_pem(public_pem)) == recipient_raw
    assert _recipient_fingerprint(recipient_raw) == hashlib.sha256(recipient_raw).hexdigest()[:32]
    private = _recipient_private(private_pem)
    assert _recipient_private(private) is private
    with pytest.raises(ValueError, match="public key"):
        _recipient_raw(private_pem)
    with pytest.raises(ValueError, match="private key"):
        _recipient_private(public_pem)
