"""`kedi keys`: a full session through the CLI, and no secret in any of its output."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import pytest
import typer

from deepkedi.cli.keys import default_keystore_url, key_from_keystore, resolve_keystore_url
from deepkedi.keys.keystore import Keystore, RawKek


def _forms(secret: bytes) -> list[str]:
    """The ways a secret could leak into text."""
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def test_full_session_leaks_nothing(tmp_path: Path, kedi, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'site-a.db'}"
    url_b = f"sqlite:///{tmp_path / 'site-b.db'}"
    passphrase, new_passphrase = "correct horse battery staple", "tr0ub4dor & 3"
    (tmp_path / "pw").write_text(passphrase + "\n")
    (tmp_path / "pw2").write_text(new_passphrase + "\n")
    kek_b = os.urandom(32)
    (tmp_path / "kek-b").write_text(kek_b.hex() + "\n")
    env = {"KEDI_KEYSTORE": url, "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    pw, pw2 = ["--passphrase-file", tmp_path / "pw"], ["--passphrase-file", tmp_path / "pw2"]
    outputs: list[str] = []

    def run(*args: object, code: int = 0, env_extra: dict | None = None):
        result = kedi(*args, env={**env, **(env_extra or {})})
        outputs.append(result.stdout + result.stderr)
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    run("keys", "init", *pw)
    run("keys", "init", *pw, code=4)  # exists
    a = json.loads(run("keys", "new", "--label", "study 7", "--no-gan", "--json", *pw).stdout)["key_id"]
    b = run("keys", "new", "--no-gan", *pw).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", a) and re.fullmatch(r"[0-9a-f]{32}", b)
    listed = json.loads(run("keys", "list", "--json").stdout)
    assert {k["key_id"] for k in listed} == {a, b} and all("secret" not in k for k in listed)
    assert a in run("keys", "list").stdout
    shown = json.loads(run("keys", "show", a, "--json").stdout)
    assert shown["label"] == "study 7" and shown["state"] == "active" and shown["kek_version"] == 1
    assert "study 7" in run("keys", "show", a).stdout
    run("keys", "show", "00" * 16, code=3)  # unknown key id: as for decrypt (exit-code table)
    run("keys", "show", "xyz", code=2)
    run("keys", "new", code=2)  # no passphrase, stdin not a terminal
    assert "KEDI_PASSPHRASE" in outputs[-1]
    run("keys", "new", "--passphrase-file", tmp_path / "pw2", code=3)  # wrong passphrase
    run("keys", "new", "--no-gan", env_extra={"KEDI_PASSPHRASE": passphrase})

    assert json.loads(run("keys", "rotate", *pw, "--new-passphrase-file", tmp_path / "pw2", "--json").stdout) == {
        "kek_version": 2
    }
    run("keys", "new", *pw, code=3)  # the old passphrase no longer opens it
    assert json.loads(run("keys", "rewrap", *pw2, "--json").stdout)["rewrapped"] == 0

    run("keys", "recipient", "-o", tmp_path / "site-b")
    assert stat.S_IMODE((tmp_path / "site-b.key").stat().st_mode) == 0o600
    run("keys", "recipient", "-o", tmp_path / "site-b", code=2)  # never clobbered
    run("keys", "export", a, b, "--to", tmp_path / "site-b.pub", "-o", tmp_path / "a.kx", *pw2)
    assert stat.S_IMODE((tmp_path / "a.kx").stat().st_mode) == 0o600
    env_b = {"KEDI_KEYSTORE": url_b}
    run("keys", "init", "--kek-file", tmp_path / "kek-b", env_extra=env_b)
    imported = json.loads(
        run(
            "keys",
            "import",
            tmp_path / "a.kx",
            "--identity",
            tmp_path / "site-b.key",
            "--kek-file",
            tmp_path / "kek-b",
            "--json",
            env_extra=env_b,
        ).stdout
    )
    assert imported == {a: "imported", b: "imported"}
    run(
        "keys",
        "import",
        tmp_path / "a.kx",
        "--identity",
        tmp_path / "site-b.pub",
        "--kek-file",
        tmp_path / "kek-b",
        env_extra=env_b,
        code=2,
    )  # a public key is no identity
    run("keys", "list", env_extra={"KEDI_KEK": kek_b.hex(), "KEDI_KEYSTORE": url_b})

    run("keys", "revoke", b, *pw2, code=2)  # needs --yes
    revoked = json.loads(run("keys", "revoke", b, "--yes", "--json", *pw2).stdout)
    assert revoked["state"] == "revoked" and revoked["revoked_at"]
    run("keys", "export", b, "--to", tmp_path / "site-b.pub", "-o", tmp_path / "b.kx", *pw2, code=3)

    audit = json.loads(run("keys", "audit", "--verify", "--json", *pw2).stdout)
    assert audit["verified"] is True and audit["first_bad_seq"] is None
    ops = [e["operation"] for e in audit["entries"]]
    assert ops[0] == "init" and ops.count("new") == 3 and "rotate" in ops and ops[-1] == "revoke"
    assert "audit trail verified" in run("keys", "audit", "--verify", *pw2).stdout
    assert "revoke" in run("keys", "audit").stdout  # listing needs no passphrase

    # What crypt.py calls.
    monkeypatch.setenv("KEDI_KEYSTORE", url)
    monkeypatch.delenv("KEDI_PASSPHRASE", raising=False)
    monkeypatch.delenv("KEDI_KEK", raising=False)
    key_a = key_from_keystore(None, a, tmp_path / "pw2", file_sha256="cd" * 32)
    assert key_a.key_id_hex == a
    for key_id, passfile, code in ((b, "pw2", 3), ("ee" * 16, "pw2", 3), (a, "pw", 3)):
        with pytest.raises(typer.Exit) as excinfo:
            key_from_keystore(url, key_id, tmp_path / passfile)
        assert excinfo.value.exit_code == code

    # Tamper with the audit trail: --verify fails with exit 3 and names the row.
    import sqlite3

    with sqlite3.connect(tmp_path / "site-a.db") as conn:
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    result = run("keys", "audit", "--verify", *pw2, code=3)
    assert "sequence 2" in result.stderr

    # Nothing secret anywhere in what the session printed.
    with Keystore.open(url, kek_source=new_passphrase) as store:
        secret_a = store.get_key(a, actor="test").secret
    with Keystore.open(url_b, kek_source=RawKek(kek_b)) as store:
        secret_b = store.get_key(b, actor="test").secret
    private_pem = (tmp_path / "site-b.key").read_text()
    pem_body = "".join(line for line in private_pem.splitlines() if not line.startswith("-----"))
    text = "\n".join(outputs)
    assert secret_a == key_a.secret
    for secret in (secret_a, secret_b, kek_b):
        for form in _forms(secret):
            assert form not in text
    for needle in (passphrase, new_passphrase, pem_body, pem_body[:24], "horse", "tr0ub4dor"):
        assert needle not in text


def test_url_resolution(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KEDI_KEYSTORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_keystore_url() == f"sqlite:///{tmp_path / 'xdg' / 'deepkedi' / 'keystore.db'}"
    assert resolve_keystore_url(None) == default_keystore_url()
    monkeypatch.setenv("KEDI_KEYSTORE", "sqlite:////elsewhere/ks.db")
    assert resolve_keystore_url(None) == "sqlite:////elsewhere/ks.db"
    assert resolve_keystore_url("postgresql+psycopg://u@/db") == "postgresql+psycopg://u@/db"
    assert resolve_keystore_url(str(tmp_path / "k.db")) == f"sqlite:///{tmp_path / 'k.db'}"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEDI_KEYSTORE")
    assert default_keystore_url() == f"sqlite:///{tmp_path / 'home' / '.local' / 'share' / 'deepkedi' / 'keystore.db'}"


def test_default_location_is_created(tmp_path: Path, kedi) -> None:
    env = {
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        "KEDI_KEYSTORE": None,
        "KEDI_PASSPHRASE": None,
        "KEDI_KEK": "ab" * 32,
    }
    result = kedi("keys", "init", env=env)
    assert result.exit_code == 0, result.stderr
    db = tmp_path / "xdg" / "deepkedi" / "keystore.db"
    assert db.is_file() and stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    # --keystore beats KEDI_KEYSTORE
    other = tmp_path / "other.db"
    result = kedi("keys", "init", "--keystore", f"sqlite:///{other}", env={**env, "KEDI_KEYSTORE": "sqlite:///x"})
    assert result.exit_code == 0 and other.is_file()
    result = kedi("keys", "list", "--keystore", f"sqlite:///{tmp_path / 'missing.db'}", env=env)
    assert result.exit_code == 4 and "kedi keys init" in result.stderr


def test_rewrap_after_interrupted_batched_rotation(tmp_path: Path, kedi, monkeypatch) -> None:
    import deepkedi.keys.keystore.store as ks

    url = f"sqlite:///{tmp_path / 'ks.db'}"
    old, new = os.urandom(32), os.urandom(32)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(base64.b64encode(new))
    with Keystore.init(url, kek_source=old, actor="a") as store:
        keys = store.new_keys(10, actor="a")
        original, calls = ks._wrap, [0]

        def failing(*args):
            calls[0] += 1
            if calls[0] > 4:
                raise RuntimeError("power cut")
            return original(*args)

        monkeypatch.setattr(ks, "_wrap", failing)
        with pytest.raises(RuntimeError):
            store.rotate(new, actor="a", batch_size=2)
        monkeypatch.setattr(ks, "_wrap", original)
    env = {"KEDI_KEYSTORE": url, "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    result = kedi("keys", "rewrap", "--kek-file", tmp_path / "new", env=env)
    assert result.exit_code == 3 and "KEK version 1" in result.stderr
    result = kedi(
        "keys", "rewrap", "--kek-file", tmp_path / "new", "--old-kek-file", tmp_path / "old", "--json", env=env
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"rewrapped": 6, "kek_version": 2}
    with Keystore.open(url, kek_source=new) as store:
        assert all(store.get_key(k.key_id, actor="a") == k for k in keys)


def test_kek_file_may_be_a_key_file(tmp_path: Path, kedi, keyfile: Path) -> None:
    from deepkedi.keys import load_key

    url = f"sqlite:///{tmp_path / 'ks.db'}"
    env = {"KEDI_KEYSTORE": url, "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    assert kedi("keys", "init", "--kek-file", keyfile, env=env).exit_code == 0
    with Keystore.open(url, kek_source=RawKek(load_key(keyfile).secret)) as store:
        assert store.kek_version == 1
    (tmp_path / "bad").write_text("not 32 bytes")
    result = kedi("keys", "new", "--kek-file", tmp_path / "bad", env=env)
    assert result.exit_code == 2 and "32 bytes" in result.stderr


def test_raw_kek_material_that_begins_like_json_is_raw(tmp_path: Path, kedi) -> None:
    # 32 random bytes begin with "{" once in 256 files (and with whitespace then "{" a little more often).
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    env = {"KEDI_KEYSTORE": url, "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    material = b" {" + os.urandom(30)
    (tmp_path / "kek").write_bytes(material)
    assert kedi("keys", "init", "--kek-file", tmp_path / "kek", env=env).exit_code == 0
    with Keystore.open(url, kek_source=RawKek(material)) as store:
        assert store.kek_version == 1


def test_crafted_scrypt_parameters_exit_4_before_scrypt(tmp_path: Path, kedi, monkeypatch) -> None:
    import sqlite3

    import deepkedi.keys.keystore.kek as kek_module

    db = tmp_path / "ks.db"
    env = {"KEDI_KEYSTORE": f"sqlite:///{db}", "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    (tmp_path / "pw").write_text("correct horse\n")
    assert kedi("keys", "init", "--passphrase-file", tmp_path / "pw", env=env).exit_code == 0
    with sqlite3.connect(db) as conn:
        kdf = json.loads(conn.execute("SELECT kdf FROM kek_versions").fetchone()[0])
        conn.execute("UPDATE kek_versions SET kdf = ?", (json.dumps({**kdf, "n": 2**22, "r": 32, "p": 16}),))
    conn.close()

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(kek_module, "Scrypt", no_scrypt)
    result = kedi("keys", "new", "--no-gan", "--passphrase-file", tmp_path / "pw", env=env)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.count("\n") == 1 and "scrypt parameters" in result.stderr
