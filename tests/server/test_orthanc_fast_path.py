"""What makes the Orthanc storage area's ingest cheap, without weakening it.

Each piece the storage area's ``create`` relies on: the container sealed in memory
(:func:`deepkedi.api.encrypt_bytes`, :func:`deepkedi.cipher.hybrid.encrypt_file_to_bytes`),
one write and one ``fdatasync`` per file (:func:`deepkedi.fileio.write_atomic`), and
audit rows that need not wait for a disk sync but do survive the process being killed
(``Keystore.record_event(durable=False)``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from deepkedi import api, fileio
from deepkedi.cipher import hybrid
from deepkedi.errors import AuthenticationError, OutputError, UnsupportedImageError
from deepkedi.keys import Key, generate_key
from deepkedi.keys.keystore import Keystore, RawKek
from deepkedi.server.orthanc_storage import EncryptedStorage, StorageSettings, _wrap

SRC = Path(__file__).resolve().parents[2] / "src"


def ct_small() -> bytes:
    from deepkedi.datasets import sample_corpus

    return next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("CT_small.dcm"))


@pytest.fixture
def key() -> Key:
    return generate_key(gan=False)


# ------------------------------------------------------------------------------ sealed in memory


@pytest.mark.parametrize("kind", ["dcm", "npy"])
def test_encrypt_bytes_is_the_container_encrypt_file_writes(kind: str, key: Key, tmp_path: Path) -> None:
    data = ct_small() if kind == "dcm" else _wrap(b'{"PatientName": "SECRET^NAME"}')
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sealed = api.encrypt_bytes(data, key, name=f"x.{kind}", tmp_dir=scratch)
    (tmp_path / f"x.{kind}").write_bytes(data)
    api.encrypt_file(tmp_path / f"x.{kind}", tmp_path / "x.kedi", key)
    reference = (tmp_path / "x.kedi").read_bytes()
    assert api.decrypt_bytes(sealed, key) == data  # byte for byte, SHA-256 checked
    mine, theirs = api.read_header(sealed).header, api.read_header(reference).header
    assert (mine.format, mine.shape, mine.dtype, mine.pattern, mine.key_id) == (
        theirs.format,
        theirs.shape,
        theirs.dtype,
        theirs.pattern,
        theirs.key_id,
    )
    assert len(sealed) == len(reference)  # the same layout; only salt, nonces and ciphertext differ
    assert sealed != reference
    assert list(scratch.iterdir()) == []  # the staged plaintext is gone
    assert b"SECRET^NAME" not in sealed and b"CompressedSamples" not in sealed
    with pytest.raises(AuthenticationError):
        api.decrypt_bytes(sealed, generate_key(gan=False))


def test_encrypt_file_to_bytes_writes_no_file(key: Key, tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    source.write_bytes(ct_small())
    sealed = hybrid.encrypt_file_to_bytes(source, key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm"]
    assert api.decrypt_bytes(sealed, key) == source.read_bytes()
    with pytest.raises(UnsupportedImageError):
        bad = tmp_path / "bad.dcm"
        bad.write_bytes(b"not an image")
        hybrid.encrypt_file_to_bytes(bad, key)


# ------------------------------------------------------------------------------ one sync per file


def test_write_atomic_writes_replaces_and_syncs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(fileio.os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    target = tmp_path / "ab" / "attachment"
    target.parent.mkdir()
    fileio.write_atomic(target, b"first")
    fileio.write_atomic(target, memoryview(b"second, longer" * 1000))
    assert target.read_bytes() == b"second, longer" * 1000
    assert len(synced) == 2  # one fdatasync per file written, as Orthanc's own storage does
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["attachment"]  # no part file left

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fileio.os, "fdatasync", failing)
    with pytest.raises(OutputError):
        fileio.write_atomic(target, b"never seen")
    assert target.read_bytes() == b"second, longer" * 1000  # the old content, whole
    assert [p.name for p in target.parent.iterdir()] == ["attachment"]
    with pytest.raises(ValueError):  # a missing folder is the caller's mistake
        fileio.write_atomic(tmp_path / "missing" / "x", b"x")


# ------------------------------------------------------------------------------ relaxed audit rows


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[tuple[Keystore, str, bytes]]:
    kek = os.urandom(32)
    url = f"sqlite:///{tmp_path / 'keystore.db'}"
    Keystore.init(url, kek_source=RawKek(kek), actor="test").close()
    opened = Keystore.open(url, kek_source=RawKek(kek))
    yield opened, url, kek
    opened.close()


def test_relaxed_events_skip_the_sync_and_later_writes_sync_again(keystore: tuple[Keystore, str, bytes]) -> None:
    store, _, _ = keystore
    sent: list[str] = []
    engine = store._engine

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith(("PRAGMA synchronous", "BEGIN")):
            sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        store.record_event("orthanc.store", actor="orthanc", details={"n": 1}, durable=False)
        store.record_event("orthanc.read", actor="orthanc", details={"n": 2})
        store.new_key(label="after", actor="test", gan=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert sent == [
        "PRAGMA synchronous = NORMAL",
        "BEGIN IMMEDIATE",
        "PRAGMA synchronous = FULL",  # the pooled connection is FULL again for every durable write
        "BEGIN IMMEDIATE",
        "PRAGMA synchronous = FULL",
        "BEGIN IMMEDIATE",
    ]
    operations = [entry.operation for entry in store.audit_entries()]
    assert operations[-3:] == ["orthanc.store", "orthanc.read", "new"]
    assert store.verify_audit() == (True, None)


def test_a_relaxed_event_survives_the_process_being_killed(keystore: tuple[Keystore, str, bytes]) -> None:
    store, url, kek = keystore
    store.close()
    script = textwrap.dedent(
        f"""
        import os, signal
        from deepkedi.keys.keystore import Keystore, RawKek
        store = Keystore.open({url!r}, kek_source=RawKek(bytes.fromhex({kek.hex()!r})))
        for n in range(20):
            store.record_event("orthanc.store", actor="orthanc", details={{"n": n}}, durable=False)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == -9, result.stderr
    reopened = Keystore.open(url, kek_source=RawKek(kek))
    try:
        rows = [entry for entry in reopened.audit_entries() if entry.operation == "orthanc.store"]
        assert [row.details["n"] for row in rows] == list(range(20))
        assert reopened.verify_audit() == (True, None)
    finally:
        reopened.close()


# ------------------------------------------------------------------------------ the storage area


def test_a_stored_attachment_costs_one_file_sync_and_a_relaxed_audit_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = os.urandom(32)
    kek_file = tmp_path / "kek.hex"
    kek_file.write_text(kek.hex())
    url = f"sqlite:///{tmp_path / 'keystore.db'}"
    Keystore.init(url, kek_source=RawKek(kek), actor="test").close()
    storage = EncryptedStorage.open(StorageSettings(storage=tmp_path / "objects", keystore_url=url, kek_file=kek_file))
    try:
        dicom = ct_small()
        prefix = dicom[: dicom.rindex(b"\xe0\x7f\x10\x00")]
        storage.create("0a1b2c3d-first", 1, dicom)  # the study's first: its key is created (durably)
        synced: list[int] = []
        real = os.fdatasync
        monkeypatch.setattr(fileio.os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
        relaxed: list[bool] = []
        record = storage.keystore.record_event

        def spy(*args: object, durable: bool = True, **kwargs: object) -> None:
            relaxed.append(not durable)
            record(*args, durable=durable, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(storage.keystore, "record_event", spy)
        storage.create("0a1b2c3d-dicom", 1, dicom)
        storage.create("0a1b2c3d-prefix", 3, prefix)
        assert len(synced) == 2  # one per file, like plain Orthanc
        assert relaxed == [True, True]  # the store rows wait for no sync of their own
        assert storage.read("0a1b2c3d-dicom", 1) == dicom and storage.read("0a1b2c3d-prefix", 3) == prefix
        assert relaxed[2:] == [False, False]  # reads are audited durably
        assert not list(storage.settings.storage.rglob("*.part"))
    finally:
        storage.keystore.close()


def test_the_pixel_less_copy_reuses_its_dicom_files_key_in_the_same_thread(tmp_path: Path) -> None:
    import threading

    kek = os.urandom(32)
    kek_file = tmp_path / "kek.hex"
    kek_file.write_text(kek.hex())
    url = f"sqlite:///{tmp_path / 'keystore.db'}"
    Keystore.init(url, kek_source=RawKek(kek), actor="test").close()
    storage = EncryptedStorage.open(StorageSettings(storage=tmp_path / "objects", keystore_url=url, kek_file=kek_file))
    looked_up: list[bytes] = []
    key_for = storage._key_for

    def spy(data: bytes) -> tuple[Key, bool]:
        looked_up.append(data)
        return key_for(data)

    storage._key_for = spy  # type: ignore[method-assign]
    try:
        dicom = ct_small()
        prefix = dicom[: dicom.rindex(b"\xe0\x7f\x10\x00")]
        storage.create("1a2b3c4d-dicom", 1, dicom)
        storage.create("1a2b3c4d-prefix", 3, prefix)
        assert looked_up == [dicom]  # the copy, right after its file in the same thread: no second lookup
        storage.create("1a2b3c4d-again", 3, prefix)  # not right after a DICOM file: looked up
        assert looked_up == [dicom, prefix]
        storage.create("1a2b3c4d-other", 1, dicom)
        worker = threading.Thread(target=storage.create, args=("1a2b3c4d-thread", 3, prefix))
        worker.start()
        worker.join()
        assert looked_up == [dicom, prefix, dicom, prefix]  # another thread's copy: looked up too
        storage.create("1a2b3c4d-junk", 3, b"DICM but not this file's prefix")  # after the file, not its prefix
        assert len(looked_up) == 5
        for uuid, data in (("1a2b3c4d-prefix", prefix), ("1a2b3c4d-thread", prefix)):
            assert storage.read(uuid, 3) == data
        headers = {api.read_header(storage.path(u).read_bytes()).key_id for u in ("1a2b3c4d-dicom", "1a2b3c4d-prefix")}
        assert len(headers) == 1  # the same study key
    finally:
        storage.keystore.close()


def test_relaxed_events_on_postgresql_turn_synchronous_commit_off_for_their_transaction_only(
    make_url: Callable[[], str],
) -> None:
    url = make_url()
    with Keystore.init(url, kek_source=os.urandom(32), actor="test") as store:
        seen: list[str] = []

        def capture(conn: sa.Connection, *args: object) -> None:
            if conn.in_transaction():
                seen.append(str(conn.exec_driver_sql("SHOW synchronous_commit").scalar()))

        sa.event.listen(store._engine, "commit", capture)
        try:
            store.record_event("orthanc.store", actor="orthanc", details={"n": 1}, durable=False)
            store.record_event("orthanc.read", actor="orthanc", details={"n": 2})
        finally:
            sa.event.remove(store._engine, "commit", capture)
        assert seen == ["off", "on"]  # SET LOCAL: the next transaction on that connection is durable again
        assert [e.operation for e in store.audit_entries()][-2:] == ["orthanc.store", "orthanc.read"]
        assert store.verify_audit() == (True, None)
