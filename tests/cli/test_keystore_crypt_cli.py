"""`kedi encrypt/decrypt` with keys from the keystore: rotation, sharing with a second site, revocation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from deepkedi.datasets import sample_corpus


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_keystore_keys_through_the_whole_life_cycle(tmp_path: Path, kedi) -> None:
    site_a, site_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    pass_a, pass_b, pass_a2 = tmp_path / "pa", tmp_path / "pb", tmp_path / "pa2"
    pass_a.write_text("first site passphrase\n")
    pass_b.write_text("second site passphrase\n")
    pass_a2.write_text("rotated passphrase\n")
    a = ["--keystore", site_a, "--passphrase-file", pass_a]
    for store, secret in ((site_a, pass_a), (site_b, pass_b)):
        result = kedi("keys", "init", "--keystore", store, "--passphrase-file", secret)
        assert result.exit_code == 0, result.stdout + result.stderr
    result = kedi("keys", "new", *a, "--json")
    assert result.exit_code == 0, result.stderr
    key_id = json.loads(result.stdout)["key_id"]

    source = next(s.path for s in sample_corpus() if s.name == "pydicom-CT_small.dcm")
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(64 * 48, dtype=np.uint16).reshape(64, 48))
    container, dicom = tmp_path / "plain.kedi", tmp_path / "ct.enc.dcm"
    assert kedi("encrypt", plain, "-o", container, "--key-id", key_id, *a).exit_code == 0
    result = kedi("encrypt", source, "-o", dicom, "--as-dicom", "--key-id", key_id, *a)
    assert result.exit_code == 0, result.stdout + result.stderr

    # The container names its key: decryption needs only the keystore.
    restored = tmp_path / "r1.npy"
    result = kedi("decrypt", container, "-o", restored, *a)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert _sha(restored) == _sha(plain)

    # Rotation: a new passphrase, the same images still decrypt.
    result = kedi("keys", "rotate", *a, "--new-passphrase-file", pass_a2)
    assert result.exit_code == 0, result.stdout + result.stderr
    a = ["--keystore", site_a, "--passphrase-file", pass_a2]
    restored = tmp_path / "r2.dcm"
    assert kedi("decrypt", dicom, "-o", restored, *a).exit_code == 0
    assert _sha(restored) == _sha(source)
    assert (
        kedi(
            "decrypt", container, "-o", tmp_path / "r3.npy", "--keystore", site_a, "--passphrase-file", pass_a
        ).exit_code
        == 3
    )  # the old passphrase no longer opens the store

    # Sharing: export to site B's recipient key, import there, decrypt there.
    assert kedi("keys", "recipient", "-o", tmp_path / "siteb").exit_code == 0
    bundle = tmp_path / "keys.export"
    result = kedi("keys", "export", key_id, "--to", tmp_path / "siteb.pub", "-o", bundle, *a)
    assert result.exit_code == 0, result.stdout + result.stderr
    b = ["--keystore", site_b, "--passphrase-file", pass_b]
    result = kedi("keys", "import", bundle, "--identity", tmp_path / "siteb.key", *b)
    assert result.exit_code == 0, result.stdout + result.stderr
    restored = tmp_path / "r4.npy"
    assert kedi("decrypt", container, "-o", restored, *b).exit_code == 0
    assert _sha(restored) == _sha(plain)

    # Revocation at site A: refused with exit 3, naming the key, no output.
    assert kedi("keys", "revoke", key_id, "--yes", *a).exit_code == 0
    target = tmp_path / "r5.npy"
    result = kedi("decrypt", container, "-o", target, *a)
    assert result.exit_code == 3
    assert key_id in result.stderr and "revoked" in result.stderr
    assert not target.exists()
    assert kedi("encrypt", plain, "-o", tmp_path / "again.kedi", "--key-id", key_id, *a).exit_code == 3

    # The audit trail recorded all of it and verifies.
    result = kedi("keys", "audit", "--verify", *a)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_key_source_usage_errors(tmp_path: Path, kedi, keyfile: Path) -> None:
    plain = tmp_path / "p.npy"
    np.save(plain, np.zeros((8, 8), np.uint8))
    assert kedi("encrypt", plain, "-o", tmp_path / "p.kedi").exit_code == 2  # no key at all
    assert kedi("encrypt", plain, "-o", tmp_path / "p.kedi", "--key", keyfile, "--key-id", "00" * 16).exit_code == 2
    assert (
        kedi(
            "decrypt", tmp_path / "p.kedi", "-o", tmp_path / "q.npy", "--key", keyfile, "--key-id", "00" * 16
        ).exit_code
        == 2
    )


def test_decrypt_without_a_key_uses_the_default_keystore(tmp_path: Path, kedi) -> None:
    """As --help says: no --key and no --keystore means the user's keystore, and the key the container names."""
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "KEDI_KEYSTORE": "", "KEDI_PASSPHRASE": "default store"}
    plain = tmp_path / "p.npy"
    np.save(plain, np.arange(64, dtype=np.uint16).reshape(8, 8))
    missing = kedi("decrypt", plain, "-o", tmp_path / "never.npy", env=env)
    assert missing.exit_code == 4 and "keystore" in missing.stderr  # none there yet: said so, exit 4
    assert kedi("keys", "init", env=env).exit_code == 0
    created = kedi("keys", "new", "--no-gan", "--json", env=env)
    key_id = json.loads(created.stdout)["key_id"]
    assert kedi("encrypt", plain, "-o", tmp_path / "p.kedi", "--key-id", key_id, env=env).exit_code == 0
    result = kedi("decrypt", tmp_path / "p.kedi", "-o", tmp_path / "q.npy", env=env)
    assert result.exit_code == 0, result.stderr
    assert _sha(tmp_path / "q.npy") == _sha(plain)


def test_decrypt_with_only_a_passphrase_file_uses_KEDI_KEYSTORE(tmp_path: Path, kedi) -> None:
    """`kedi decrypt ks.kedi -o ks.dcm --passphrase-file pw`: no key named, the keystore KEDI_KEYSTORE names."""
    from pydicom.data import get_testdata_file

    env = {"KEDI_KEYSTORE": f"sqlite:///{tmp_path / 'ks.db'}", "KEDI_PASSPHRASE": "", "XDG_DATA_HOME": str(tmp_path)}
    (tmp_path / "pw").write_text("correct horse battery staple\n")
    assert kedi("keys", "init", "--passphrase-file", tmp_path / "pw", env=env).exit_code == 0
    created = kedi("keys", "new", "--no-gan", "--passphrase-file", tmp_path / "pw", env=env)
    key_id = created.stdout.strip()
    plain = Path(str(get_testdata_file("CT_small.dcm")))
    container = tmp_path / "ks.kedi"
    args = ("--passphrase-file", tmp_path / "pw")
    assert kedi("encrypt", plain, "-o", container, "--key-id", key_id, *args, env=env).exit_code == 0
    result = kedi("decrypt", container, "-o", tmp_path / "ks.dcm", *args, env=env)
    assert result.exit_code == 0, result.stderr
    assert _sha(tmp_path / "ks.dcm") == _sha(plain)
    assert key_id in result.stdout  # the summary names the key the container asked for
