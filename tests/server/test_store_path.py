"""The archive's store path, made fast without changing what it writes or what it guarantees.

An instance stored by the archive is a container of the same structure as ``kedi encrypt``
writes for the same file (same header but for the random salt and nonce prefix, same length)
and ``kedi decrypt`` (a subprocess) restores it byte for byte with the study's key; the
plaintext staged on the way leaves nothing behind; the DICOM node accepts large PDUs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from log_secrets import ADMIN_PASSWORD, USER_PASSWORD

import deepkedi
from deepkedi import api
from deepkedi.datasets import write_samples
from deepkedi.server import accounts
from deepkedi.server.app import create_app
from deepkedi.server.archive import parse_instance
from deepkedi.server.config import ServiceConfig
from deepkedi.server.principal import Role
from deepkedi.server.service import AuditEvent

SRC = Path(__file__).resolve().parents[2] / "src"


def _kedi(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_stored_object_is_what_kedi_encrypt_writes(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    write_samples(samples)
    original = samples / "CT_small.dcm"
    data = original.read_bytes()
    app = create_app(ServiceConfig(home=tmp_path / "home", kek_source=os.urandom(32), admin_password=ADMIN_PASSWORD))
    service = app.state.service
    try:
        with service.sessions.begin() as db:
            tech = accounts.create_user(db, username="tech", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
        principal = tech.principal("127.0.0.1")
        archive = service.archive
        parsed = parse_instance(data)
        outcome = archive.store(parsed, principal)
        assert outcome.stored and not outcome.already_stored
        # Stored again, byte for byte: acknowledged, nothing written; other bytes under the same UID: refused.
        assert archive.store(parse_instance(data), principal).already_stored
        changed = parse_instance(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
        refused = archive.store(dataclasses.replace(changed, sop_uid=parsed.sop_uid), principal)
        assert not refused.stored and refused.failure_reason == 0x0111

        study = archive.find_study(parsed.study_uid)
        assert study is not None
        (instance,) = archive.instances(study)
        stored = archive.objects.get(instance.object_name)
        assert len(list(archive.objects.names())) == 1  # the refused one left no object
        key = service.keystore.get_key(study.key_id, actor="test")

        # The same container as `kedi encrypt` of the same file, but for the random salt and nonce prefix.
        reference = tmp_path / "reference.kedi"
        api.encrypt_file(original, reference, key)
        ours, theirs = api.read_header(stored).header, api.read_header(reference).header
        assert dataclasses.replace(ours, salt=theirs.salt, nonce_prefix=theirs.nonce_prefix) == theirs
        assert ours.salt != theirs.salt
        assert len(stored) == reference.stat().st_size

        # `kedi decrypt` (its own process) restores the original byte for byte with the study's key.
        key_file = tmp_path / "study.key"
        deepkedi.save_key(key, key_file)
        container = tmp_path / "object.kedi"
        container.write_bytes(stored)
        restored = tmp_path / "restored.dcm"
        result = _kedi("decrypt", str(container), "-o", str(restored), "--key", str(key_file))
        assert result.returncode == 0, result.stderr
        assert restored.read_bytes() == data
    finally:
        service.close()


def test_encrypt_bytes_stages_nothing_that_stays(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    write_samples(samples)
    data = (samples / "MR_small.dcm").read_bytes()
    key = deepkedi.generate_key(gan=False)
    staging = tmp_path / "staging"
    staging.mkdir()
    blob = api.encrypt_bytes(data, key, name="mr.dcm", tmp_dir=staging)
    assert api.decrypt_bytes(blob, key) == data
    assert list(staging.iterdir()) == []
    with pytest.raises(deepkedi.DeepKediError):
        api.encrypt_bytes(b"DICM" * 64, key, tmp_dir=staging)
    assert list(staging.iterdir()) == []


def test_node_accepts_large_pdus(tmp_path: Path) -> None:
    pytest.importorskip("pynetdicom", reason="the pacs extra (pip install 'deepkedi[pacs]')")
    from pynetdicom import AE

    from deepkedi.server.dicom_node import MAXIMUM_PDU_SIZE, DicomNode

    app = create_app(ServiceConfig(home=tmp_path / "home", kek_source=os.urandom(32), admin_password=ADMIN_PASSWORD))
    service = app.state.service
    with service.sessions.begin() as db:
        accounts.create_user(db, username="tech", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
    node = DicomNode(service, ae_title="KEDI", peers={"MODALITY": "tech"})
    _, port = node.start("127.0.0.1", 0)
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="KEDI")
        assert assoc.is_established
        try:
            # A 512 x 512 CT slice fits in one PDU instead of 33 (pynetdicom's default is 16 KiB).
            assert assoc.acceptor.maximum_length == MAXIMUM_PDU_SIZE >= 512 * 512 * 2
            assert assoc.send_c_echo().Status == 0
        finally:
            assoc.release()
    finally:
        node.stop()
        service.close()


def test_index_rows_and_audit_event_commit_together(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    write_samples(samples)
    data = (samples / "CT_small.dcm").read_bytes()
    app = create_app(ServiceConfig(home=tmp_path / "home", kek_source=os.urandom(32), admin_password=ADMIN_PASSWORD))
    service = app.state.service
    try:
        with service.sessions.begin() as db:
            tech = accounts.create_user(db, username="tech", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
        principal = tech.principal("127.0.0.1")
        archive, keystore = service.archive, service.keystore
        parsed = parse_instance(data)

        def ours() -> list[Any]:
            return [e for e in keystore.audit_entries() if e.operation == "test.store"]

        def event(outcome: Any) -> AuditEvent:
            return service.audit_event(principal, "test.store", outcome="ok", target=outcome.study_pseudonym)

        def broken(outcome: Any) -> AuditEvent:
            raise RuntimeError("no audit")

        # The audit event cannot be made: nothing is stored (no object, no row, no event).
        with pytest.raises(RuntimeError):
            archive.store(parsed, principal, audit=broken)
        assert archive.find_study(parsed.study_uid) is None
        assert list(archive.objects.names()) == []
        assert ours() == []

        # A transaction of the keystore that fails leaves neither the rows written in it nor its event.
        with pytest.raises(RuntimeError), keystore.recording_events() as (_, record):
            record("test.store", actor="tech", details={"outcome": "ok"})
            raise RuntimeError("rolled back")
        assert ours() == []

        outcome = archive.store(parsed, principal, audit=event)
        assert outcome.stored
        (written,) = ours()
        assert written.details["target"] == outcome.study_pseudonym and written.actor == "tech"
        # A duplicate is not audited by the archive (its caller does): no second event.
        assert archive.store(parse_instance(data), principal, audit=event).already_stored
        assert len(ours()) == 1
        assert keystore.verify_audit() == (True, None)
    finally:
        service.close()
