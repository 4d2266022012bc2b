"""Key files: 0600, never clobbered, versioned, sealed with a passphrase when asked."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from deepkedi.errors import AuthenticationError, KeyFileError, OutputExistsError
from deepkedi.keys import generate_key, key_file_is_sealed, load_key, save_key


def test_round_trip_and_mode(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "k.key"
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    doc = json.loads(path.read_text())
    assert doc["deepkedi_key"] == 1 and doc["key_id"] == key.key_id_hex
    assert doc["provenance"] == key.provenance and "os-csprng" in doc["provenance"]["sources"]


def test_keys_differ_and_repr_hides_secret() -> None:
    a, b = generate_key(), generate_key()
    assert a.secret != b.secret and a.key_id != b.key_id
    assert a.secret.hex() not in repr(a) and "secret" not in repr(a)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    save_key(generate_key(), path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_key(generate_key(), path)
    assert path.read_bytes() == before


def test_sealed_key(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "k.key"
    save_key(key, path, passphrase="correct horse", _scrypt_n=2**10)
    assert key_file_is_sealed(path)
    assert key.secret.hex() not in path.read_text()
    assert load_key(path, passphrase="correct horse") == key
    with pytest.raises(AuthenticationError):
        load_key(path, passphrase="wrong")
    with pytest.raises(KeyFileError):
        load_key(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"deepkedi_key": 2}',
        b'{"deepkedi_key": 1, "key_id": "00", "secret": "AA=="}',
        b'{"deepkedi_key": 1, "key_id": "' + b"0" * 32 + b'", "secret": "!!"}',
        b'{"deepkedi_key": 1, "key_id": "' + b"0" * 32 + b'", "secret": "AAAA"}',
    ],
)
def test_malformed_key_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError):
        load_key(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        load_key(tmp_path / "absent.key")


@pytest.mark.parametrize("content", [b"[" * 100_000 + b"]" * 100_000, b'{"deepkedi_key": ' * 50_000, b" " * (2 << 20)])
def test_hostile_key_files_are_key_file_errors(tmp_path: Path, content: bytes) -> None:
    # Deep nesting made json.loads raise RecursionError; a huge file was read whole.
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match="not a deepkedi key file"):
        load_key(path)
    with pytest.raises(KeyFileError):
        key_file_is_sealed(path)


def _sealed_with(tmp_path: Path, n: int, r: int, p: int) -> Path:
    path = tmp_path / "k.key"
    save_key(generate_key(gan=False), path, passphrase="correct horse", _scrypt_n=2**10)
    doc = json.loads(path.read_text())
    doc["sealed_secret"].update(n=n, r=r, p=p)
    crafted = tmp_path / f"crafted-{n}-{r}-{p}.key"
    crafted.write_text(json.dumps(doc))
    return crafted


@pytest.mark.parametrize(
    "n, r, p",
    [(2**22, 32, 16), (2**18, 8, 1), (2**17, 16, 1), (2**17, 8, 2), (2**9, 8, 1), (3 * 2**10, 8, 1), (2**10, 0, 1)],
)
def test_scrypt_parameters_beyond_the_writers_cost_are_refused_before_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, r: int, p: int
) -> None:
    from deepkedi.keys import keyfile

    path = _sealed_with(tmp_path, n, r, p)

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(keyfile, "Scrypt", no_scrypt)
    with pytest.raises(KeyFileError, match=f"n={n}, r={r}, p={p} refused"):
        load_key(path, passphrase="correct horse")


@pytest.mark.parametrize("n, r, p", [(2**17, 8, 1), (2**15, 32, 1), (2**10, 8, 128)])
def test_scrypt_parameters_within_the_writers_cost_are_run(tmp_path: Path, n: int, r: int, p: int) -> None:
    # At the cap (n·r·p = 2**20), with parameters other than the file's: scrypt runs, the seal fails to open.
    with pytest.raises(AuthenticationError):
        load_key(_sealed_with(tmp_path, n, r, p), passphrase="correct horse")


def test_a_fifo_is_not_a_key_file(fifo: Path) -> None:
    with pytest.raises(KeyFileError, match="FIFO"):
        key_file_is_sealed(fifo)
    with pytest.raises(KeyFileError, match="FIFO"):
        load_key(fifo, passphrase="p")
