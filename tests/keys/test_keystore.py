"""The keystore over SQLite (the default backend): the shared contract plus what only a file shows."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path
from typing import Callable

import pytest
from _keystore_suite import KeystoreContract

from deepkedi.keys.keystore import Keystore, PassphraseKek, RawKek


@pytest.fixture
def make_url(tmp_path: Path) -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"sqlite:///{tmp_path / f'keystore-{next(counter)}.db'}"


class TestSqliteKeystore(KeystoreContract):
    def assert_shredded(self, url: str, wrapped: bytes) -> None:
        # secure_delete + a truncating WAL checkpoint: the old wrapped secret is gone from every file.
        path = Path(url[len("sqlite:///"):])
        for file in path.parent.glob(path.name + "*"):
            assert wrapped not in file.read_bytes(), file


def test_sqlite_file_mode_and_wal(make_url: Callable[[], str]) -> None:
    url = make_url()
    with Keystore.init(url, kek_source=os.urandom(32), actor="a") as store:
        store.new_key(actor="a", gan=False)
        path = Path(url[len("sqlite:///"):])
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


def test_secrets_hidden_from_repr() -> None:
    assert "hunter2" not in repr(PassphraseKek("hunter2"))
    material = os.urandom(32)
    assert material.hex() not in repr(RawKek(material)) and "material=<hidden>" in repr(RawKek(material))
    with pytest.raises(ValueError):
        RawKek(b"short")
    with pytest.raises(ValueError):
        PassphraseKek("")
    with pytest.raises(ValueError, match="scrypt n"):
        Keystore.init("sqlite:////nonexistent/x.db", kek_source=PassphraseKek("p", scrypt_n=2**10), actor="a")
