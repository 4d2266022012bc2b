"""Known-answer vectors of the keystore's cryptography (docs/FORMAT.md §10.2-10.4).

Each case is checked twice: by the implementation, and by the section's formula
restated here with pyca/cryptography, so that the vectors pin the document as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import deepkedi.keys.keystore.kek as kek_module
from deepkedi.errors import KeystoreError
from deepkedi.keys.keystore import PassphraseKek, RawKek
from deepkedi.keys.keystore.audit import _audit_key, _audit_row_bytes, _head_bytes
from deepkedi.keys.keystore.kek import _check_matches, _derive_kek, _unwrap

HERE = Path(__file__).parent / "keystore"


def _case(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


def test_kek_from_key_material_and_its_check_value() -> None:
    case = _case("kek-hkdf")
    kek, salt = bytes.fromhex(case["kek"]), base64.b64decode(case["params"]["salt"])
    assert _derive_kek(RawKek(bytes.fromhex(case["material"])), case["params"]) == kek
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"deepkedi/v1 keystore kek")
    assert hkdf.derive(bytes.fromhex(case["material"])) == kek
    check = bytes.fromhex(case["check_value"])
    assert len(check) == 12 + 30 + 16 and _check_matches(kek, case["version"], check)
    assert not _check_matches(kek, case["version"] + 1, check)  # bound to its version
    aad = b"deepkedi/v1 keystore kek check|" + case["version"].to_bytes(4, "big")
    assert AESGCM(kek).decrypt(check[:12], check[12:], aad) == b"deepkedi/v1 keystore kek check"


def test_kek_from_a_passphrase() -> None:
    case = _case("kek-scrypt")
    params = case["params"]
    assert _derive_kek(PassphraseKek(case["passphrase"]), params).hex() == case["kek"]
    scrypt = Scrypt(salt=base64.b64decode(params["salt"]), length=32, n=params["n"], r=params["r"], p=params["p"])
    assert scrypt.derive(case["passphrase"].encode("utf-8")).hex() == case["kek"]


def test_wrapped_data_key() -> None:
    case = _case("wrap")
    kek, key_id, wrapped = (bytes.fromhex(case[f]) for f in ("kek", "key_id", "wrapped"))
    version, secret = case["kek_version"], bytes.fromhex(case["secret"])
    assert _unwrap(AESGCM(kek), key_id, version, wrapped) == secret
    aad = b"deepkedi/v1 keystore data key|" + key_id + version.to_bytes(4, "big")
    nonce = bytes.fromhex(case["nonce"])
    assert wrapped == nonce + AESGCM(kek).encrypt(nonce, secret, aad)
    other_id = bytes([key_id[0] ^ 1]) + key_id[1:]
    for args in ((other_id, version), (key_id, version + 1)):  # moved to another row or version: refused
        with pytest.raises(InvalidTag):
            _unwrap(AESGCM(kek), *args, wrapped)


def test_audit_chain_and_head() -> None:
    case = _case("audit-chain")
    secret = bytes.fromhex(case["audit_secret"])
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"deepkedi/v1 keystore audit key").derive(secret)
    assert _audit_key(secret) == key and key.hex() == case["audit_key"]
    previous = bytes(32)
    for row, row_bytes, mac in zip(case["rows"], case["row_bytes"], case["macs"], strict=True):
        fields = [row[f] for f in ("seq", "time", "actor", "operation", "key_id", "file_sha256", "details")]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert _audit_row_bytes(*fields) == canonical == row_bytes.encode("utf-8")
        previous = hmac.new(key, previous + canonical, hashlib.sha256).digest()
        assert previous.hex() == mac
    head = case["head"]
    head_bytes = (
        b"deepkedi/v1 keystore audit head|"
        + json.dumps([head["count"], head["last_seq"], head["last_mac"]], separators=(",", ":")).encode()
    )
    assert _head_bytes(head["count"], head["last_seq"], bytes.fromhex(head["last_mac"])) == head_bytes
    assert hmac.new(key, head_bytes, hashlib.sha256).hexdigest() == head["mac"]


def test_kek_scrypt_parameters_over_the_cap_are_refused_before_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    case = _case("kek-scrypt-over-cap")
    assert case["expect"] == "parameters refused"
    params = case["params"]
    assert params["n"] * params["r"] * params["p"] > 2**20

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(kek_module, "Scrypt", no_scrypt)
    with pytest.raises(KeystoreError, match="scrypt parameters") as caught:
        _derive_kek(PassphraseKek(case["passphrase"]), params)
    assert "\n" not in str(caught.value)
    # The writers' own cost class is still read (kek-scrypt: n = 2**15; the default n = 2**17 at the cap).
    monkeypatch.undo()
    assert _derive_kek(PassphraseKek(case["passphrase"]), {**params, "n": 2**15, "r": 8, "p": 1})
