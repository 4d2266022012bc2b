"""Known-answer vectors of sealed key files (docs/FORMAT.md §6).

The success case is checked by the implementation and by §6's formula restated with
pyca/cryptography; the refused cases must fail with :class:`KeyFileError` before
scrypt runs (their parameters would ask for up to 16 GiB).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from deepkedi.errors import KeyFileError
from deepkedi.keys import keyfile, load_key

CASES = sorted((Path(__file__).parent / "keyfile").glob("*.json"))


def test_the_cases_cover_every_outcome() -> None:
    expects = [json.loads(p.read_text(encoding="utf-8"))["expect"] for p in CASES]
    assert set(expects) == {"success", "parameters refused"} and expects.count("parameters refused") >= 2


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
def test_keyfile_vector(case_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = json.loads(case_path.read_text(encoding="utf-8"))
    path = tmp_path / "vector.key"
    path.write_text(json.dumps(case["key"]), encoding="utf-8")
    seal = case["key"]["sealed_secret"]
    if case["expect"] == "success":
        key = load_key(path, passphrase=case["passphrase"])
        assert key.secret.hex() == case["secret"] and key.key_id.hex() == case["key"]["key_id"]
        kek = Scrypt(salt=base64.b64decode(seal["salt"]), length=32, n=seal["n"], r=seal["r"], p=seal["p"]).derive(
            case["passphrase"].encode("utf-8")
        )
        assert kek.hex() == case["kek"]
        aad = b"deepkedi/v1 key file seal|" + key.key_id
        assert AESGCM(kek).decrypt(base64.b64decode(seal["nonce"]), base64.b64decode(seal["ciphertext"]), aad) == (
            key.secret
        )
        return
    assert case["expect"] == "parameters refused"
    assert seal["n"] * seal["r"] * seal["p"] > 2**20

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(keyfile, "Scrypt", no_scrypt)
    with pytest.raises(KeyFileError, match="scrypt parameters") as caught:
        load_key(path, passphrase=case["passphrase"])
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
