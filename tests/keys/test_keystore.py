"""The Keystore (deepkedi.keys.keystore.store) over SQLite, the default backend: the shared contract plus what
only a file shows."""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from _keystore_suite import KeystoreContract
from deepkedi.errors import KeystoreError
from deepkedi.keys.keystore import Keystore, PassphraseKek


@pytest.fixture
def make_url(tmp_path: Path) -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"sqlite:///{tmp_path / f'keystore-{next(counter)}.db'}"


class TestSqliteKeystore(KeystoreContract):
    def assert_shredded(self, url: str, wrapped: bytes) -> None:
        # secure_delete + a truncating WAL checkpoint: the old wrapped secret is gone from every file.
        path = Path(url[len("sqlite:///") :])
        for file in path.parent.glob(path.name + "*"):
            assert wrapped not in file.read_bytes(), file


def test_sqlite_file_mode_and_wal(make_url: Callable[[], str]) -> None:
    url = make_url()
    with Keystore.init(url, kek_source=os.urandom(32), actor="a") as store:
        store.new_key(actor="a", gan=False)
        path = Path(url[len("sqlite:///") :])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_sqlite_missing_folder_and_memory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Keystore.init(f"sqlite:///{tmp_path / 'nope' / 'ks.db'}", kek_source=os.urandom(32), actor="a")
    with pytest.raises(ValueError, match="in-memory"):
        Keystore.init("sqlite://", kek_source=os.urandom(32), actor="a")


def test_new_key_mixes_zz_gan_material_when_available(make_url: Callable[[], str]) -> None:
    from deepkedi.keygen import torch_available

    with Keystore.init(make_url(), kek_source=os.urandom(32), actor="a") as store:
        key = store.new_key(actor="a")
        expected = ["os-csprng", "zz-gan"] if torch_available() else ["os-csprng"]
        assert key.provenance["sources"] == expected
        assert store.key_info(key.key_id).provenance["sources"] == expected


def test_init_checks_the_scrypt_cost_before_the_path() -> None:
    with pytest.raises(ValueError, match="scrypt n"):
        Keystore.init("sqlite:////nonexistent/x.db", kek_source=PassphraseKek("p", scrypt_n=2**10), actor="a")


def test_a_file_that_is_not_a_database_is_a_keystore_error(tmp_path: Path) -> None:
    path = tmp_path / "ks.db"
    path.write_bytes(os.urandom(8192))
    for kek_source in (None, os.urandom(32)):
        with pytest.raises(KeystoreError, match="not a database"):
            Keystore.open(f"sqlite:///{path}", kek_source=kek_source)


@pytest.mark.parametrize(
    "table, column, value",
    [
        ("kek_versions", "kdf", "[" * 100_000 + "]" * 100_000),
        ("kek_versions", "kdf", "not json"),
        ("kek_versions", "kdf", "[1, 2]"),
        ("keystore_meta", "current_kek_version", "one"),
        ("kek_versions", "check_value", "revoked"),  # text where bytes belong: a TypeError before
    ],
)
def test_malformed_keystore_fields_are_keystore_errors(
    make_url: Callable[[], str], table: str, column: str, value: str
) -> None:
    url = make_url()
    kek = os.urandom(32)
    Keystore.init(url, kek_source=kek, actor="a").close()
    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        if table == "kek_versions":
            conn.execute(f"UPDATE kek_versions SET {column} = ?", (value,))
        else:
            conn.execute("UPDATE keystore_meta SET value = ? WHERE name = ?", (value, column))
    with pytest.raises(KeystoreError, match=r"damaged|malformed"):
        Keystore.open(url, kek_source=kek)


def test_deeply_nested_stored_fields_do_not_break_listing(make_url: Callable[[], str]) -> None:
    url = make_url()
    with Keystore.init(url, kek_source=os.urandom(32), actor="a") as store:
        key = store.new_key(actor="a", gan=False)
    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        conn.execute("UPDATE data_keys SET provenance = ?", ("[" * 100_000 + "]" * 100_000,))
        conn.execute("UPDATE audit SET details = ?", ('{"a":' * 100_000 + "1" + "}" * 100_000,))
    with Keystore.open(url) as store:
        assert store.key_info(key.key_id_hex).provenance == {}
        assert all(entry.details == {"unreadable": True} for entry in store.audit_entries())


def _with_scrypt_params(url: str, **params: int) -> None:
    """Rewrite KEK version 1's scrypt parameters in place, as an attacker with write access could."""
    import json
    import sqlite3

    path = url[len("sqlite:///") :]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        kdf = json.loads(conn.execute("SELECT kdf FROM kek_versions WHERE version = 1").fetchone()[0])
        conn.execute("UPDATE kek_versions SET kdf = ? WHERE version = 1", (json.dumps({**kdf, **params}),))


def test_scrypt_parameters_over_the_cap_are_refused_before_scrypt(
    make_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepkedi.keys.keystore.kek as kek_module
    from deepkedi.errors import KeystoreError

    url = make_url()
    Keystore.init(url, kek_source=PassphraseKek("correct horse", scrypt_n=2**15), actor="a").close()
    _with_scrypt_params(url, n=2**22, r=32, p=16)  # 16 GiB of scrypt memory

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(kek_module, "Scrypt", no_scrypt)
    with pytest.raises(KeystoreError, match="n=4194304, r=32, p=16 are refused"):
        Keystore.open(url, kek_source="correct horse")
    _with_scrypt_params(url, n=2**18, r=8, p=1)  # twice the writers' largest n
    with pytest.raises(KeystoreError, match="refused"):
        Keystore.open(url, kek_source="correct horse")


def test_a_fifo_is_no_keystore(fifo: Path) -> None:
    from deepkedi.errors import KeystoreError

    with pytest.raises(KeystoreError, match="FIFO"):
        Keystore.init(f"sqlite:///{fifo}", kek_source=os.urandom(32), actor="a")
    with pytest.raises(KeystoreError, match="no keystore"):
        Keystore.open(f"sqlite:///{fifo}", kek_source=os.urandom(32))
