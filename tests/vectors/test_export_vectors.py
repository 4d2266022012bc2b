"""Known-answer vectors of the key export envelope (docs/FORMAT.md §10.5)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.keys.keystore import Keystore
from deepkedi.keys.keystore.export import _export_from_parts

CASES = sorted((Path(__file__).parent / "export").glob("*.json"))


def _private(case: dict, field: str = "recipient_private") -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(case[field]))


def test_the_cases_cover_every_outcome() -> None:
    expects = {json.loads(p.read_text())["expect"] for p in CASES}
    assert expects == {"success", "format failure", "authentication failure"}


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_export_vector(case_path: Path, tmp_path: Path) -> None:
    case = json.loads(case_path.read_text())
    blob, recipient = bytes.fromhex(case["export"]), _private(case)
    assert recipient.public_key().public_bytes_raw().hex() == case["recipient_public"]
    with Keystore.init(f"sqlite:///{tmp_path / 'site-b.db'}", kek_source=os.urandom(32), actor="b") as store:
        if case["expect"] == "format failure":
            with pytest.raises(FormatError):
                store.import_(blob, recipient, actor="b")
            return
        if case["expect"] == "authentication failure":
            with pytest.raises(AuthenticationError):
                store.import_(blob, recipient, actor="b")
            assert store.list_keys() == []
            return
        outcome = store.import_(blob, recipient, actor="b")
        entries = json.loads(case["payload"])
        assert outcome == {e["key_id"]: "imported" for e in entries}
        for entry in entries:
            assert store.get_key(entry["key_id"], actor="b").secret == base64.b64decode(entry["secret"])
        assert {i.key_id: i.label for i in store.list_keys()} == {e["key_id"]: e["label"] for e in entries}

    ephemeral, nonce = _private(case, "ephemeral_private"), bytes.fromhex(case["nonce"])
    payload = case["payload"].encode("utf-8")
    assert _export_from_parts(payload, recipient.public_key().public_bytes_raw(), ephemeral, nonce) == blob
    # §10.5, restated: magic ‖ version ‖ E ‖ nonce ‖ AES-256-GCM(HKDF(X25519(e, R), salt = E ‖ R), AAD = header).
    e_raw, r_raw = ephemeral.public_key().public_bytes_raw(), recipient.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(r_raw))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=e_raw + r_raw, info=b"deepkedi/v1 key export").derive(shared)
    header = b"\x89KEDIEXP\x01" + e_raw
    assert blob == header + nonce + AESGCM(key).encrypt(nonce, payload, header)
