"""A whole session — keystore, DICOM-native encryption, inspect, decrypt, errors — never prints a secret.

Key secrets (hex and base64), the passphrase and the patient's identifying attributes must not appear
in any stdout or stderr of the session, nor in `keys show`, `inspect` or error messages.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pydicom

from deepkedi.datasets import sample_corpus
from deepkedi.keys.keystore import Keystore, PassphraseKek


def test_session_outputs_hold_no_secret_and_no_patient_attribute(tmp_path: Path, kedi) -> None:
    passphrase = "correct horse battery staple 7391"
    pw = tmp_path / "pw"
    pw.write_text(passphrase + "\n")
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    s = ["--keystore", url, "--passphrase-file", pw]
    outputs: list[str] = []

    def run(*args: object, code: int = 0) -> None:
        result = kedi(*args)
        outputs.append(result.stdout + result.stderr)
        assert result.exit_code == code, result.stdout + result.stderr

    run("keys", "init", *s)
    result = kedi("keys", "new", *s, "--json")
    outputs.append(result.stdout + result.stderr)
    key_id = json.loads(result.stdout)["key_id"]
    source = next(x.path for x in sample_corpus() if x.name == "pydicom-CT_small.dcm")
    encrypted = tmp_path / "ct.dcm"
    run("encrypt", source, "-o", encrypted, "--as-dicom", "--key-id", key_id, *s)
    run("inspect", encrypted)
    run("inspect", encrypted, "--json")
    run("keys", "show", key_id, "--keystore", url)  # public records need no passphrase
    run("keys", "show", key_id, "--keystore", url, "--json")
    run("keys", "list", "--keystore", url)
    run("keys", "audit", *s)
    run("decrypt", encrypted, "-o", tmp_path / "back.dcm", *s)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    run("decrypt", encrypted, "-o", tmp_path / "x.dcm", "--keystore", url, "--passphrase-file", wrong, code=3)
    data = bytearray(encrypted.read_bytes())
    data[-100] ^= 1
    (tmp_path / "bad.dcm").write_bytes(bytes(data))
    run("decrypt", tmp_path / "bad.dcm", "-o", tmp_path / "y.dcm", *s, code=3)

    with Keystore.open(url, kek_source=PassphraseKek(passphrase)) as store:
        secret = store.get_key(key_id, actor="test").secret
    original = pydicom.dcmread(source)
    forbidden = [
        passphrase,
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        str(original.PatientName),
        str(original.PatientID),
        str(original.get("PatientBirthDate", "")),
        str(original.get("InstitutionName", "")),
    ]
    text = "\n".join(outputs)
    for value in forbidden:
        if value and len(value) >= 4:
            assert value not in text, f"secret or patient value leaked into the output: {value[:4]}…"
    # The encrypted file's clear header holds none of the patient attributes either.
    clear = pydicom.dcmread(encrypted)
    del clear[0x04000500]
    for value in forbidden[4:]:
        if value and len(value) >= 4:
            assert value not in str(clear)
