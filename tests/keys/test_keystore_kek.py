"""deepkedi.keys.keystore.kek: KEK sources, derivation, check values and data-key wrapping.

The known answers of these are in tests/vectors/test_keystore_vectors.py; here, what binds to what.
"""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deepkedi.errors import AuthenticationError, KeystoreError
from deepkedi.keys.keystore.kek import (
    PassphraseKek,
    RawKek,
    _as_source,
    _check_matches,
    _check_value,
    _derive_kek,
    _new_derivation,
    _unwrap,
    _wrap,
)


def test_secrets_hidden_from_repr() -> None:
    assert "hunter2" not in repr(PassphraseKek("hunter2"))
    material = os.urandom(32)
    assert material.hex() not in repr(RawKek(material)) and "material=<hidden>" in repr(RawKek(material))
    with pytest.raises(ValueError):
        RawKek(b"short")
    with pytest.raises(ValueError):
        PassphraseKek("")


def test_plain_values_become_sources() -> None:
    assert _as_source("a passphrase") == PassphraseKek("a passphrase")
    assert _as_source(bytearray(32)) == RawKek(bytes(32))
    raw = RawKek(bytes(32))
    assert _as_source(raw) is raw
    with pytest.raises(TypeError, match="kek_source"):
        _as_source(32)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [2**14, 2**18, 3 * 2**15])
def test_a_new_version_refuses_scrypt_costs_outside_the_writers_range(n: int) -> None:
    with pytest.raises(ValueError, match="scrypt n"):
        _new_derivation(PassphraseKek("p", scrypt_n=n))


def test_new_derivations_draw_a_fresh_salt() -> None:
    one, two = _new_derivation(RawKek(bytes(32))), _new_derivation(RawKek(bytes(32)))
    assert one["kdf"] == "hkdf-sha256" and one["salt"] != two["salt"]
    assert len(base64.b64decode(one["salt"])) == 16
    params = _new_derivation(PassphraseKek("p", scrypt_n=2**15))
    assert {k: params[k] for k in ("kdf", "n", "r", "p")} == {"kdf": "scrypt", "n": 2**15, "r": 8, "p": 1}
    assert _derive_kek(RawKek(bytes(32)), one) != _derive_kek(RawKek(bytes(32)), two)


def test_a_source_of_the_other_kind_does_not_derive() -> None:
    hkdf = _new_derivation(RawKek(bytes(32)))
    scrypt = _new_derivation(PassphraseKek("p", scrypt_n=2**15))
    with pytest.raises(AuthenticationError, match="key material"):
        _derive_kek(PassphraseKek("p"), hkdf)
    with pytest.raises(AuthenticationError, match="passphrase"):
        _derive_kek(RawKek(bytes(32)), scrypt)
    with pytest.raises(KeystoreError, match="unsupported KEK derivation"):
        _derive_kek(RawKek(bytes(32)), {**hkdf, "kdf": "pbkdf2"})
    with pytest.raises(KeystoreError, match="malformed"):
        _derive_kek(RawKek(bytes(32)), {**hkdf, "salt": "not base64!"})


def test_a_wrapped_key_is_bound_to_its_id_and_kek_version() -> None:
    aead, key_id, secret = AESGCM(os.urandom(32)), os.urandom(16), os.urandom(32)
    wrapped = _wrap(aead, key_id, 3, secret)
    assert len(wrapped) == 12 + 32 + 16 and wrapped != _wrap(aead, key_id, 3, secret)  # a fresh nonce each time
    assert _unwrap(aead, key_id, 3, wrapped) == secret
    for args in (
        (os.urandom(16), 3, wrapped),
        (key_id, 4, wrapped),
        (key_id, 3, wrapped[:-1]),
        (key_id, 3, wrapped[:-1] + bytes([wrapped[-1] ^ 1])),
    ):
        with pytest.raises(InvalidTag):
            _unwrap(aead, *args)
    with pytest.raises(InvalidTag):
        _unwrap(AESGCM(os.urandom(32)), key_id, 3, wrapped)


def test_a_check_value_is_bound_to_its_kek_and_version() -> None:
    kek = os.urandom(32)
    check = _check_value(kek, 2)
    assert _check_matches(kek, 2, check) and _check_matches(kek, 2, memoryview(check))
    assert not _check_matches(os.urandom(32), 2, check)
    assert not _check_matches(kek, 3, check)
    assert not _check_matches(kek, 2, check[:5])
    with pytest.raises(KeystoreError, match="check value of KEK version 2"):
        _check_matches(kek, 2, "text where bytes belong")  # type: ignore[arg-type]
