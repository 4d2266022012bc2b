"""The keystore's contract, run against every backend (SQLite in test_keystore.py, PostgreSQL in
test_keystore_postgres.py). A backend module subclasses :class:`KeystoreContract` and provides a
``make_url`` fixture: a callable returning the URL of a fresh, empty database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import deepkedi.keys.keystore.store as store_module
from deepkedi.errors import AuthenticationError, FormatError, KeyNotFoundError, KeyRevokedError, KeystoreError
from deepkedi.keys import Key, generate_key
from deepkedi.keys.keystore import EXPORT_MAGIC, Keystore, PassphraseKek, RawKek, recipient_keypair
from deepkedi.keys.keystore.kek import _check_matches, _derive_kek, _unwrap

MakeUrl = Callable[[], str]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def raw(url: str, sql: str, **params: object) -> list:
    """Raw SQL behind the keystore's back, as an attacker with database access would."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def every_key_unwraps(url: str, sources: dict[int, bytes]) -> dict[str, int]:
    """Unwrap every active key with the KEK of the version it names; return {key_id: version}."""
    keks = {}
    for version, kdf, check in raw(url, "SELECT version, kdf, check_value FROM kek_versions"):
        if version in sources:
            kek = _derive_kek(RawKek(sources[version]), json.loads(kdf))
            assert _check_matches(kek, version, bytes(check))
            keks[version] = AESGCM(kek)
    found = {}
    for key_id, version, wrapped in raw(
        url, "SELECT key_id, kek_version, wrapped FROM data_keys WHERE state = 'active'"
    ):
        secret = _unwrap(keks[version], bytes.fromhex(key_id), version, bytes(wrapped))
        assert len(secret) == 32
        found[key_id] = version
    return found


_CHILD_NEW_KEYS = """
import sys
sys.path.insert(0, {src!r})
from deepkedi.keys.keystore import Keystore
import os, pathlib, time
url, kek, n, who, gate = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
with Keystore.open(url, kek_source=kek) as store:
    # Start together, so that the writers really contend for the database.
    pathlib.Path(gate + "." + who).touch()
    while not os.path.exists(gate):
        time.sleep(0.005)
    for i in range(n):
        key = store.new_key(label=f"{{who}}-{{i}}", actor=who, gan=False)
        print(key.key_id_hex, flush=True)
"""

_CHILD_SLOW_ROTATE = """
import pathlib, sys, time
sys.path.insert(0, {src!r})
import deepkedi.keys.keystore.store as ks
url, marker, batch = sys.argv[1], sys.argv[4], int(sys.argv[5])
old, new = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
original = ks._wrap
def slow(*args):
    # Slow each re-wrap down so the parent can kill us in the middle of the rotation.
    pathlib.Path(marker).touch()
    time.sleep(0.002)
    return original(*args)
ks._wrap = slow
store = ks.Keystore.open(url, kek_source=old)
store.rotate(new, actor="child", batch_size=batch or None)
"""


class KeystoreContract:
    """Every backend must pass these."""

    # -------------------------------------------------------------------------------- lifecycle

    def test_init_open_and_wrong_passphrase(self, make_url: MakeUrl) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=PassphraseKek("correct horse", scrypt_n=2**15), actor="alice") as store:
            key = store.new_key(actor="alice", gan=False)
            assert store.kek_version == 1
        with pytest.raises(KeystoreError, match="already exists"):
            Keystore.init(url, kek_source="x", actor="alice")
        with pytest.raises(AuthenticationError) as excinfo:
            Keystore.open(url, kek_source="wrong horse")
        assert "horse" not in str(excinfo.value)
        with pytest.raises(AuthenticationError):
            Keystore.open(url, kek_source=os.urandom(32))  # key material for a passphrase store
        with Keystore.open(url, kek_source="correct horse") as store:
            assert store.get_key(key.key_id_hex, actor="bob") == key
        with Keystore.open(url) as locked:
            assert [i.key_id for i in locked.list_keys()] == [key.key_id_hex]
            with pytest.raises(ValueError, match="without its passphrase"):
                locked.get_key(key.key_id_hex, actor="bob")

    def test_open_without_keystore(self, make_url: MakeUrl) -> None:
        with pytest.raises(KeystoreError, match="no keystore"):
            Keystore.open(make_url(), kek_source=os.urandom(32))

    def test_new_get_list_and_audit(self, make_url: MakeUrl) -> None:
        kek = os.urandom(32)
        with Keystore.init(make_url(), kek_source=kek, actor="alice") as store:
            a = store.new_key(label="study 7", provenance={"site": "ward 3"}, actor="alice", gan=False)
            b = store.new_key(actor="bob", gan=False)
            mine = generate_key(gan=False)
            store.add_key(mine, label="from a key file", actor="carol")
            assert a.suite == "hybrid" and a.provenance["site"] == "ward 3"
            sha = "ab" * 32
            assert store.get_key(a.key_id_hex, actor="dave", file_sha256=sha) == a
            assert store.get_key(b.key_id, actor="dave") == b
            assert store.get_key(mine.key_id_hex, actor="dave") == mine
            infos = {i.key_id: i for i in store.list_keys()}
            assert set(infos) == {a.key_id_hex, b.key_id_hex, mine.key_id_hex}
            assert infos[a.key_id_hex].label == "study 7" and infos[a.key_id_hex].state == "active"
            assert a.secret.hex() not in repr(infos) + repr(store) + repr(a)
            with pytest.raises(KeyNotFoundError):
                store.get_key("00" * 16, actor="dave")
            with pytest.raises(ValueError):
                store.get_key("not hex", actor="dave")
            with pytest.raises(ValueError):
                store.get_key(a.key_id_hex, actor="")
            with pytest.raises(KeystoreError):
                store.add_key(mine, actor="carol")
            entries = store.audit_entries()
            assert [e.operation for e in entries] == ["init", "new", "new", "add", "get", "get", "get", "get"]
            assert entries[4].file_sha256 == sha and entries[4].actor == "dave"
            assert entries[-1].details == {"refused": "unknown key"}
            assert store.verify_audit() == (True, None)
            dump = json.dumps([e.to_dict() for e in entries])
            for key in (a, b, mine):
                assert key.secret.hex() not in dump

    def test_bulk_new_keys(self, make_url: MakeUrl) -> None:
        with Keystore.init(make_url(), kek_source=os.urandom(32), actor="a") as store:
            keys = store.new_keys(50, label="batch", actor="a")
            assert len({k.key_id for k in keys}) == 50
            assert store.get_key(keys[17].key_id, actor="a") == keys[17]
            assert store.verify_audit() == (True, None)

    # -------------------------------------------------------------------------------- tampering

    def test_modified_or_moved_entry_fails(self, make_url: MakeUrl) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=os.urandom(32), actor="a") as store:
            a, b = store.new_key(actor="a", gan=False), store.new_key(actor="a", gan=False)
            ((wrapped_a,),) = raw(url, "SELECT wrapped FROM data_keys WHERE key_id = :k", k=a.key_id_hex)
            # Moving a's wrapped secret onto b must not hand out a's secret as b: the AAD binds the id.
            raw(url, "UPDATE data_keys SET wrapped = :w WHERE key_id = :k", w=bytes(wrapped_a), k=b.key_id_hex)
            with pytest.raises(AuthenticationError):
                store.get_key(b.key_id, actor="a")
            flipped = bytearray(wrapped_a)
            flipped[20] ^= 1
            raw(url, "UPDATE data_keys SET wrapped = :w WHERE key_id = :k", w=bytes(flipped), k=a.key_id_hex)
            with pytest.raises(AuthenticationError):
                store.get_key(a.key_id, actor="a")

    @pytest.mark.parametrize("attack", ["edit", "delete", "reorder", "truncate", "head"])
    def test_audit_tampering_is_detected(self, make_url: MakeUrl, attack: str) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=os.urandom(32), actor="alice") as store:
            key = store.new_key(actor="alice", gan=False)
            for _ in range(4):
                store.get_key(key.key_id, actor="alice")
            assert store.verify_audit() == (True, None)  # seq 1..6
            if attack == "edit":
                raw(url, "UPDATE audit SET actor = 'mallory' WHERE seq = 3")
                expected = 3
            elif attack == "delete":
                raw(url, "DELETE FROM audit WHERE seq = 4")
                expected = 4
            elif attack == "reorder":
                # Swap the contents of rows 3 and 4 (their own MACs travel with them).
                rows = {r[0]: r for r in raw(url, "SELECT seq, time, mac FROM audit WHERE seq IN (3, 4)")}
                for here, there in ((3, 4), (4, 3)):
                    raw(
                        url,
                        "UPDATE audit SET time = :t, mac = :m WHERE seq = :s",
                        t=rows[there][1],
                        m=bytes(rows[there][2]),
                        s=here,
                    )
                expected = 3
            elif attack == "truncate":
                raw(url, "DELETE FROM audit WHERE seq >= 5")
                expected = 5
            else:
                ((value,),) = raw(url, "SELECT value FROM keystore_meta WHERE name = 'audit_head'")
                head = json.loads(value)
                head["count"] -= 1
                raw(url, "UPDATE keystore_meta SET value = :v WHERE name = 'audit_head'", v=json.dumps(head))
                expected = 7
            assert store.verify_audit() == (False, expected)
            if attack == "truncate":
                # A later append must not paper over the cut: it chains from the MAC'd head.
                store.get_key(key.key_id, actor="alice")
                assert store.verify_audit() == (False, 5)

    # ---------------------------------------------------------------------------- service events

    def test_service_events_join_the_chain(self, make_url: MakeUrl) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=os.urandom(32), actor="svc") as store:
            key = store.new_key(actor="svc", gan=False)
            store.record_event("session.login", actor="alice", details={"outcome": "ok", "address": "10.0.0.7"})
            store.record_event("study.view", actor="alice", key_id=key.key_id, details={"outcome": "ok"})
            entries = store.audit_entries()
            assert [(e.seq, e.actor, e.operation) for e in entries[-2:]] == [
                (3, "alice", "session.login"),
                (4, "alice", "study.view"),
            ]
            assert entries[-1].key_id == key.key_id_hex and entries[-2].details["address"] == "10.0.0.7"
            assert store.verify_audit() == (True, None)
            # An edited service event breaks the chain like any other row, and names the row.
            raw(url, "UPDATE audit SET details = :d WHERE seq = 3", d=json.dumps({"outcome": "failed"}))
            assert store.verify_audit() == (False, 3)

    def test_concurrent_service_events_are_each_written_once_in_a_valid_chain(self, make_url: MakeUrl) -> None:
        url = make_url()
        threads, per_thread = 8, 25
        with Keystore.init(url, kek_source=os.urandom(32), actor="svc") as store:
            seen: list[tuple[str, int]] = []

            def record(actor: str) -> None:
                for n in range(per_thread):
                    store.record_event("study.view", actor=actor, details={"n": n})
                    # Written when record_event returns, whoever wrote it.
                    mine = [e for e in store.audit_entries() if e.actor == actor]
                    assert [e.details["n"] for e in mine] == list(range(n + 1))
                    seen.append((actor, n))

            workers = [threading.Thread(target=record, args=(f"user-{t}",)) for t in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=120)
            assert len(seen) == threads * per_thread
            entries = store.audit_entries()
            assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
            views = [(e.actor, e.details["n"]) for e in entries if e.operation == "study.view"]
            assert sorted(views) == sorted(seen)
            assert store.verify_audit() == (True, None)

    def test_events_queued_while_one_is_written_share_the_next_transaction(
        self, make_url: MakeUrl, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=os.urandom(32), actor="svc") as store:
            transactions: list[int] = []
            release = threading.Event()
            write = store._write

            @contextlib.contextmanager
            def slow_write():  # type: ignore[no-untyped-def]
                transactions.append(len(transactions))
                if len(transactions) == 1:
                    assert release.wait(timeout=60)  # the first writer is slow: the others queue meanwhile
                with write() as opened:
                    yield opened

            monkeypatch.setattr(store, "_write", slow_write)
            workers = [
                threading.Thread(target=store.record_event, args=("study.view",), kwargs={"actor": f"user-{n}"})
                for n in range(8)
            ]
            workers[0].start()
            deadline = time.monotonic() + 60
            while not transactions and time.monotonic() < deadline:
                time.sleep(0.001)
            for worker in workers[1:]:
                worker.start()
            while len(store._events) < 7 and time.monotonic() < deadline:
                time.sleep(0.001)
            release.set()
            for worker in workers:
                worker.join(timeout=60)
            assert len(transactions) == 2  # one for the first event, one for the seven queued behind it
            actors = [e.actor for e in store.audit_entries() if e.operation == "study.view"]
            assert actors[0] == "user-0" and sorted(actors) == [f"user-{n}" for n in range(8)]
            assert store.verify_audit() == (True, None)

            # A failed transaction reaches every caller whose event it held (the writer with its own
            # error, the others with KeystoreError), and leaves the queue usable.
            def broken(*_args: object) -> None:
                raise RuntimeError("disk full")

            transactions.clear()
            release.clear()
            monkeypatch.setattr(store, "_append_rows", broken)  # the batch's write fails
            failures: list[BaseException] = []

            def failing(n: int) -> None:
                try:
                    store.record_event("study.view", actor=f"late-{n}")
                except (RuntimeError, KeystoreError) as exc:
                    failures.append(exc)

            workers = [threading.Thread(target=failing, args=(n,)) for n in range(4)]
            workers[0].start()
            while not transactions and time.monotonic() < deadline + 60:
                time.sleep(0.001)
            for worker in workers[1:]:
                worker.start()
            while len(store._events) < 3 and time.monotonic() < deadline + 60:
                time.sleep(0.001)
            release.set()
            for worker in workers:
                worker.join(timeout=60)
            kinds = sorted(type(e).__name__ for e in failures)
            assert kinds == ["KeystoreError", "KeystoreError", "RuntimeError", "RuntimeError"]
            monkeypatch.undo()
            store.record_event("study.view", actor="alice", details={"after": True})
            assert store.audit_entries()[-1].details == {"after": True}
            assert [e.actor for e in store.audit_entries()].count("late-0") == 0
            assert store.verify_audit() == (True, None)

    def test_service_events_cannot_pass_for_key_operations(self, make_url: MakeUrl) -> None:
        url = make_url()
        kek = os.urandom(32)
        with Keystore.init(url, kek_source=kek, actor="svc") as store:
            for operation in ("revoke", "get", "init", "export", "", " login", "x" * 33, "a\nb"):
                with pytest.raises(ValueError):
                    store.record_event(operation, actor="alice")
            with pytest.raises(ValueError, match="JSON"):
                store.record_event("study.view", actor="alice", details={"when": object()})
            with pytest.raises(ValueError, match="JSON"):
                store.record_event("study.view", actor="alice", details={"x": float("nan")})
            with pytest.raises(ValueError, match="actor"):
                store.record_event("study.view", actor=" ")
            assert [e.operation for e in store.audit_entries()] == ["init"]  # nothing was written
        with Keystore.open(url) as locked, pytest.raises(ValueError, match="passphrase or KEK"):
            locked.record_event("study.view", actor="alice")

    # ---------------------------------------------------------------------------- rotate/rewrap

    def test_rotate_keeps_keys_and_changes_kek(self, make_url: MakeUrl) -> None:
        url = make_url()
        old = PassphraseKek("old passphrase", scrypt_n=2**15)
        with Keystore.init(url, kek_source=old, actor="a") as store:
            keys = store.new_keys(20, actor="a")
            store.revoke(keys[0].key_id, actor="a")
            assert store.rotate(PassphraseKek("new passphrase", scrypt_n=2**15), actor="a") == 2
            assert store.kek_version == 2
            assert all(store.get_key(k.key_id, actor="a") == k for k in keys[1:])
            assert store.rotate(os.urandom(32), actor="a") == 3  # passphrase → key material
        with pytest.raises(AuthenticationError):
            Keystore.open(url, kek_source="old passphrase")
        versions = {v for (v,) in raw(url, "SELECT kek_version FROM data_keys WHERE state = 'active'")}
        assert versions == {3}
        with Keystore.open(url) as locked:
            assert locked.stragglers() == {}
            rotations = [e.details for e in locked.audit_entries() if e.operation == "rotate"]
            assert [(r["from_kek_version"], r["to_kek_version"], r["rewrapped"]) for r in rotations] == [
                (1, 2, 19),
                (2, 3, 19),
            ]

    def test_batched_rotation_interrupted_then_rewrapped(self, make_url: MakeUrl, monkeypatch) -> None:
        url = make_url()
        old, new = os.urandom(32), os.urandom(32)
        with Keystore.init(url, kek_source=old, actor="a") as store:
            keys = store.new_keys(30, actor="a")
            calls = {"n": 0}
            original = store_module._wrap

            def failing(*args):
                calls["n"] += 1
                if calls["n"] > 12:
                    raise RuntimeError("power cut")
                return original(*args)

            monkeypatch.setattr(store_module, "_wrap", failing)
            with pytest.raises(RuntimeError):
                store.rotate(new, actor="a", batch_size=5)
            monkeypatch.setattr(store_module, "_wrap", original)
            assert store.stragglers() == {1: 20}  # two batches of 5 committed, the third rolled back
            assert sorted(every_key_unwraps(url, {1: old, 2: new}).values()).count(2) == 10
            straggler = next(k for k in keys if every_key_unwraps(url, {1: old, 2: new})[k.key_id_hex] == 1)
            with pytest.raises(KeystoreError, match="rewrap"):
                store.get_key(straggler.key_id, actor="a")
        with pytest.raises(AuthenticationError):
            Keystore.open(url, kek_source=old)
        with Keystore.open(url, kek_source=new) as store:
            with pytest.raises(AuthenticationError):
                store.rewrap([os.urandom(32), "a passphrase"], actor="a")
            assert store.rewrap([os.urandom(32), old], actor="a") == 20
            assert store.rewrap([], actor="a") == 0
            assert all(store.get_key(k.key_id, actor="a") == k for k in keys)
            assert store.verify_audit() == (True, None)

    def test_rotation_by_another_handle_is_noticed(self, make_url: MakeUrl) -> None:
        url, kek = make_url(), os.urandom(32)
        with Keystore.init(url, kek_source=kek, actor="a") as first, Keystore.open(url, kek_source=kek) as second:
            key = first.new_key(actor="a", gan=False)
            second.rotate(os.urandom(32), actor="b")
            with pytest.raises(KeystoreError, match="open the keystore again"):
                first.get_key(key.key_id, actor="a")

    # ---------------------------------------------------------------------------------- revoke

    def test_revoke_shreds(self, make_url: MakeUrl) -> None:
        url = make_url()
        with Keystore.init(url, kek_source=os.urandom(32), actor="a") as store:
            key, other = store.new_key(actor="a", gan=False), store.new_key(actor="a", gan=False)
            ((wrapped,),) = raw(url, "SELECT wrapped FROM data_keys WHERE key_id = :k", k=key.key_id_hex)
            info = store.revoke(key.key_id_hex, actor="a")
            assert info.state == "revoked" and info.revoked_at
            with pytest.raises(KeyRevokedError) as excinfo:
                store.get_key(key.key_id, actor="a")
            assert excinfo.value.key_id == key.key_id_hex and info.revoked_at in str(excinfo.value)
            assert raw(url, "SELECT wrapped FROM data_keys WHERE key_id = :k", k=key.key_id_hex) == [(b"",)]
            assert store.revoke(key.key_id, actor="a").revoked_at == info.revoked_at  # idempotent
            with pytest.raises(KeyNotFoundError):
                store.revoke("11" * 16, actor="a")
            assert store.get_key(other.key_id, actor="a") == other
            ops = [e.operation for e in store.audit_entries()]
            assert ops.count("revoke") == 1 and store.verify_audit() == (True, None)
            assert store.rotate(os.urandom(32), actor="a") == 2  # revoked entries are skipped
        self.assert_shredded(url, bytes(wrapped))

    def assert_shredded(self, url: str, wrapped: bytes) -> None:
        """Backends that can check their files on disk override this."""

    # ---------------------------------------------------------------------------- export/import

    def test_export_import(self, make_url: MakeUrl) -> None:
        private_pem, public_pem = recipient_keypair()
        other_private, other_public = recipient_keypair()
        with (
            Keystore.init(make_url(), kek_source=os.urandom(32), actor="a") as here,
            Keystore.init(make_url(), kek_source=os.urandom(32), actor="b") as there,
        ):
            keys = [here.new_key(label=f"k{i}", actor="a", gan=False) for i in range(3)]
            blob = here.export([k.key_id_hex for k in keys[:2]], public_pem, actor="a")
            for key in keys:
                assert key.secret not in blob and key.secret.hex().encode() not in blob
            assert blob.startswith(EXPORT_MAGIC) and blob[8] == 1
            assert there.import_(blob, private_pem, actor="b") == {k.key_id_hex: "imported" for k in keys[:2]}
            assert there.import_(blob, private_pem, actor="b") == {k.key_id_hex: "present" for k in keys[:2]}
            assert there.get_key(keys[0].key_id, actor="b") == keys[0]
            assert there.key_info(keys[1].key_id).label == "k1"
            with pytest.raises(AuthenticationError):
                there.import_(blob, other_private, actor="b")
            tampered = bytearray(blob)
            tampered[-20] ^= 1
            with pytest.raises(AuthenticationError):
                there.import_(bytes(tampered), private_pem, actor="b")
            with pytest.raises(FormatError):
                there.import_(b"PK\x03\x04 not an export", private_pem, actor="b")
            with pytest.raises(FormatError):
                there.import_(blob[:8] + b"\x02" + blob[9:], private_pem, actor="b")
            # A revoked key is never brought back by an import.
            there.revoke(keys[0].key_id, actor="b")
            assert there.import_(blob, private_pem, actor="b")[keys[0].key_id_hex] == "revoked"
            with pytest.raises(KeyRevokedError):
                there.get_key(keys[0].key_id, actor="b")
            # Same id, different secret: refuse, import nothing.
            clash = Key(key_id=keys[2].key_id, secret=os.urandom(32), created=keys[2].created)
            there.add_key(clash, actor="b")
            blob2 = here.export([keys[2].key_id_hex], other_public, actor="a")
            with pytest.raises(KeystoreError, match="different secret"):
                there.import_(blob2, other_private, actor="b")
            here.revoke(keys[2].key_id, actor="a")
            with pytest.raises(KeyRevokedError):
                here.export([keys[2].key_id_hex], public_pem, actor="a")
            with pytest.raises(KeyNotFoundError):
                here.export(["22" * 16], public_pem, actor="a")
            with pytest.raises(ValueError):
                here.export([keys[1].key_id_hex], private_pem, actor="a")
            assert here.verify_audit() == (True, None) and there.verify_audit() == (True, None)

    # --------------------------------------------------------------------------- concurrency

    def test_concurrent_processes_lose_no_key(self, make_url: MakeUrl, tmp_path: Path) -> None:
        url, kek = make_url(), os.urandom(32)
        Keystore.init(url, kek_source=kek, actor="parent").close()
        script = _CHILD_NEW_KEYS.format(src=SRC)
        gate = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, url, kek.hex(), "25", f"p{i}", str(gate)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("go.p*"))) < 4:
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
            time.sleep(0.01)
        gate.touch()
        made = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            made += out.split()
        assert len(made) == 100 == len(set(made))
        with Keystore.open(url, kek_source=kek) as store:
            assert {i.key_id for i in store.list_keys()} == set(made)
            for key_id in made:
                assert store.get_key(key_id, actor="parent").key_id_hex == key_id
            assert store.verify_audit() == (True, None)
            assert [e.seq for e in store.audit_entries()] == list(range(1, 1 + 1 + 100 + 100))

    @pytest.mark.parametrize("batch", [0, 50], ids=["one-transaction", "batched"])
    def test_sigkill_during_rotate(self, make_url: MakeUrl, tmp_path: Path, batch: int) -> None:
        url, old, new = make_url(), os.urandom(32), os.urandom(32)
        with Keystore.init(url, kek_source=old, actor="a") as store:
            keys = store.new_keys(1000, actor="a")
        marker = tmp_path / "rewrapping"
        script = _CHILD_SLOW_ROTATE.format(src=SRC)
        proc = subprocess.Popen(
            [sys.executable, "-c", script, url, old.hex(), new.hex(), str(marker), str(batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.4)  # well into the ~2 s of slowed re-wrapping
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        found = every_key_unwraps(url, {1: old, 2: new})
        assert set(found) == {k.key_id_hex for k in keys}
        if batch == 0:
            # One transaction: nothing of the rotation survived; the old KEK still opens everything.
            assert set(found.values()) == {1}
            with Keystore.open(url, kek_source=old) as store:
                assert store.rotate(new, actor="a") == 2
        else:
            assert set(found.values()) == {1, 2}  # some batches committed, some not
            with Keystore.open(url, kek_source=new) as store:
                assert store.rewrap([old], actor="a") == list(found.values()).count(1)
        with Keystore.open(url, kek_source=new) as store:
            assert store.stragglers() == {}
            assert all(store.get_key(k.key_id, actor="a") == k for k in keys[::50])
            assert store.verify_audit() == (True, None)
