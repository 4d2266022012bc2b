"""The DICOM network node, driven by DCMTK's own clients (echoscu, storescu, findscu, getscu) and a fuzzing sender.

The node runs in-process on a free loopback port over a real service (``create_app``:
keystore, users, archive, MAC-chained audit trail), as ``kedi serve`` builds it.
Peers are the service's users: MODALITY acts as a technologist, VIEWER and OTHER as
two radiologists (only VIEWER is assigned the studies), NOBODY is not on the list.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from external_tools import require_tool
from log_secrets import ADMIN_PASSWORD, USER_PASSWORD

pytest.importorskip("pynetdicom", reason="the pacs extra (pip install 'deepkedi[pacs]')")

from deepkedi.datasets import sample_corpus, write_samples
from deepkedi.server import accounts
from deepkedi.server.app import create_app
from deepkedi.server.config import ServiceConfig
from deepkedi.server.dicom_node import DicomNode, parse_move_destinations, parse_peers
from deepkedi.server.principal import Role
from deepkedi.server.service import Service

DCMTK = "DCMTK (make setup: Debian's dcmtk package)"
PEERS = {"MODALITY": "tech", "VIEWER": "rad", "OTHER": "rad2", "AUDIT_DESK": "auditor", "OLD_CT": "tech-old"}
#: Fuzzed data sets sent per run (KEDI_DICOM_FUZZ raises it, e.g. to the issue's 500).
FUZZ_CASES = int(os.environ.get("KEDI_DICOM_FUZZ", "100"))


@dataclass
class Node:
    service: Service
    node: DicomNode
    port: int
    home: Path
    #: Where movescu listens for the C-STORE sub-operations of a C-MOVE to VIEWER_STORE.
    store_port: int

    def events(self, operation: str) -> list[dict[str, Any]]:
        return [
            {"actor": e.actor, **dict(e.details)}
            for e in self.service.keystore.audit_entries()
            if e.operation == operation
        ]

    def user_id(self, username: str) -> int:
        with self.service.read_sessions() as db:
            user = accounts.find_user(db, username)
            assert user is not None
            return user.id


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = tmp_path_factory.mktemp("dicom-node") / "home"
    app = create_app(ServiceConfig(home=home, kek_source=os.urandom(32), admin_password=ADMIN_PASSWORD))
    service: Service = app.state.service
    with service.sessions.begin() as db:
        accounts.create_user(db, username="tech", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
        accounts.create_user(db, username="rad", password=USER_PASSWORD, role=Role.RADIOLOGIST)
        accounts.create_user(db, username="rad2", password=USER_PASSWORD, role=Role.RADIOLOGIST)
        accounts.create_user(db, username="auditor", password=USER_PASSWORD, role=Role.AUDITOR)
        accounts.create_user(db, username="tech-old", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
    store_port = free_port()
    dicom = DicomNode(
        service, ae_title="KEDI", peers=PEERS, move_destinations={"VIEWER_STORE": f"127.0.0.1:{store_port}"}
    )
    _, port = dicom.start("127.0.0.1", 0)
    try:
        yield Node(service=service, node=dicom, port=port, home=home, store_port=store_port)
    finally:
        dicom.stop()
        service.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled samples and the corpus's DICOM files, one per SOP Instance UID (by UID)."""
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    paths = sorted(folder.rglob("*.dcm")) + [s.path for s in sample_corpus() if s.path.suffix.lower() == ".dcm"]
    by_sop: dict[str, Path] = {}
    for path in paths:
        by_sop.setdefault(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID), path)
    assert len(by_sop) >= 12
    return by_sop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dcmtk(tool: str, *args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = require_tool(tool, install=DCMTK)
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def data_set(data: bytes) -> bytes:
    """The bytes of a Part 10 file after its File Meta Information: what DIMSE carries."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    stream = io.BytesIO(data)
    read_preamble(stream, False)
    _read_file_meta_info(stream)
    return data[stream.tell() :]


def without_group_lengths(data: bytes) -> pydicom.Dataset:
    """The data set without what DCMTK's storescu leaves out when it sends: group lengths, trailing padding."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for tag in [e.tag for e in ds if e.tag.element == 0 or e.tag == 0xFFFCFFFC]:
        del ds[tag]
    return ds


def store(node: Node, files: list[Path], ae: str = "MODALITY") -> subprocess.CompletedProcess[str]:
    # -xv: JPEG 2000 lossless proposed too (the corpus has two), besides the uncompressed syntaxes.
    return dcmtk("storescu", "-aet", ae, "-aec", "KEDI", "-xv", "127.0.0.1", str(node.port), *map(str, files))


def find_studies(node: Node, ae: str, *keys: str) -> list[pydicom.Dataset]:
    out = node.home.parent / f"find-{ae}-{os.urandom(4).hex()}"
    out.mkdir()
    result = dcmtk(
        "findscu", "-S", "-aet", ae, "-aec", "KEDI", "-X", "-od", str(out),
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientName",
        "-k", "NumberOfStudyRelatedInstances", *keys, "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.iterdir())]


#: getscu's option that makes it propose a transfer syntax first (the node sends each instance as stored).
IMPLICIT = "1.2.840.10008.1.2"
PREFER = {IMPLICIT: "+xi", "1.2.840.10008.1.2.1": "+xe", "1.2.840.10008.1.2.4.90": "+xv"}


def get_study(
    node: Node, ae: str, study_uid: str, out: Path, syntax: str = "1.2.840.10008.1.2.1"
) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    # +B: getscu writes the data set as received, bit for bit.
    return dcmtk(
        "getscu", "-S", "-aet", ae, "-aec", "KEDI", "+B", PREFER[syntax], "-od", str(out),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(node.port),
    )  # fmt: skip


def stored_bytes(node: Node, study_uid: str) -> dict[str, bytes]:
    """What the archive holds for a study, decrypted: SOP Instance UID → the Part 10 file the node stored."""
    archive = node.service.archive
    assert archive is not None
    study = archive.find_study(study_uid)
    assert study is not None
    return {str(i.attributes["SOPInstanceUID"]): archive.read(study, i) for i in archive.instances(study)}


# ----------------------------------------------------------------------------------- tests, in order


def test_peers_are_checked() -> None:
    assert parse_peers({" CT_1 ": "tech"}) == {"CT_1": "tech"}
    for bad in ({}, {"A" * 17: "tech"}, {"A\\B": "tech"}, {"CT": ""}, {"CT": "Not A User"}, ["CT"]):
        with pytest.raises(ValueError):
            parse_peers(bad)


def test_echo_and_an_unknown_ae_title_is_rejected_and_audited(node: Node) -> None:
    assert dcmtk("echoscu", "-aet", "MODALITY", "-aec", "KEDI", "127.0.0.1", str(node.port)).returncode == 0
    refused = dcmtk("echoscu", "-aet", "NOBODY", "-aec", "KEDI", "127.0.0.1", str(node.port))
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr
    wrong_called = dcmtk("echoscu", "-aet", "MODALITY", "-aec", "NOT_KEDI", "127.0.0.1", str(node.port))
    assert wrong_called.returncode != 0
    events = node.events("dicom.associate")
    denied = [e for e in events if e["calling_ae"] == "NOBODY"]
    assert denied and denied[0]["outcome"] == "denied" and denied[0]["address"] == "127.0.0.1"
    assert denied[0]["reason"] == "calling AE title not recognised"
    assert any(e["calling_ae"] == "MODALITY" and e["outcome"] == "ok" and e["actor"] == "tech" for e in events)


def test_storescu_of_the_corpus_then_getscu_gives_back_what_was_sent(node: Node, corpus: dict[str, Path]) -> None:
    result = store(node, list(corpus.values()))
    assert result.returncode == 0, result.stderr
    archive = node.service.archive
    assert archive is not None
    studies = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in corpus.values()}
    stored: dict[str, bytes] = {}
    for study_uid in studies:
        stored.update(stored_bytes(node, study_uid))
    assert sorted(stored) == sorted(corpus), "every instance storescu sent is in the archive"
    ok = [e for e in node.events("dicom.store") if e["outcome"] == "ok"]
    assert len(ok) == len(corpus) and all(e["target"].startswith("ST-") for e in ok)
    identical = 0
    for study_uid in studies:
        out = node.home.parent / "get" / hashlib.sha256(study_uid.encode()).hexdigest()[:12]
        syntaxes = {
            str(pydicom.dcmread(io.BytesIO(d)).file_meta.TransferSyntaxUID)
            for d in stored_bytes(node, study_uid).values()
        }
        assert len(syntaxes) == 1, "DCMTK's getscu proposes one context per SOP class: one syntax per retrieval"
        got = get_study(node, "MODALITY", study_uid, out, syntaxes.pop())
        assert got.returncode == 0, got.stderr
        files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p.read_bytes() for p in out.iterdir()}
        assert sorted(files) == sorted(stored_bytes(node, study_uid))
        for sop, data in files.items():
            # C-GET sends, bit for bit, the data set the node received and stored.
            assert data_set(data) == data_set(stored[sop]), sop
            original = corpus[sop].read_bytes()
            # storescu (DCMTK) drops group lengths and trailing padding when it sends: the rest is the original's.
            assert without_group_lengths(data) == without_group_lengths(original), sop
            assert pydicom.dcmread(io.BytesIO(data)).PixelData == pydicom.dcmread(corpus[sop]).PixelData
            identical += data_set(data) == data_set(original)
    print(f"{len(corpus)} instances stored by storescu and retrieved by getscu; {identical} byte-identical data sets")
    gets = node.events("dicom.get")
    assert len([e for e in gets if e["outcome"] == "ok" and e.get("target")]) == len(studies)


def test_a_byte_exact_sender_gets_back_the_original_bytes(node: Node, corpus: dict[str, Path]) -> None:
    """Sent by pynetdicom from the files as they are (no re-encoding), retrieved by getscu: the original bytes.

    Each corpus file is given new UIDs (a study per transfer syntax, so that this test does not depend
    on the one above and getscu can propose the study's syntax first), then sent in its own syntax.
    """
    from pynetdicom import AE

    folder = node.home.parent / "exact"
    folder.mkdir()
    studies: dict[str, str] = {}
    sent: dict[str, bytes] = {}
    contexts: set[tuple[str, str]] = set()
    for index, path in enumerate(corpus.values()):
        ds = pydicom.dcmread(path)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        ds.StudyInstanceUID = studies.setdefault(syntax, pydicom.uid.generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        target = folder / f"{index}.dcm"
        ds.save_as(target, enforce_file_format=True)
        sent[str(ds.SOPInstanceUID)] = target.read_bytes()
        contexts.add((str(ds.SOPClassUID), syntax))
    assert len(studies) >= 3  # explicit and implicit VR little endian, JPEG 2000 lossless
    ae = AE(ae_title="MODALITY")
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="KEDI")
    assert assoc.is_established
    try:
        for path in sorted(folder.iterdir()):
            assert assoc.send_c_store(path).Status == 0x0000, path.name
    finally:
        assoc.release()
    got: dict[str, bytes] = {}
    for syntax, study_uid in studies.items():
        if syntax == IMPLICIT:
            # DCMTK 3.6.7's getscu proposes Explicit VR even with +xi: pynetdicom retrieves these.
            got.update(pynetdicom_get(node, study_uid, contexts))
            continue
        out = node.home.parent / "exact-get" / syntax
        assert get_study(node, "MODALITY", study_uid, out, syntax).returncode == 0
        got.update(
            {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p.read_bytes() for p in out.iterdir()}
        )
    assert sorted(got) == sorted(sent)
    assert [sop for sop in sent if data_set(got[sop]) != data_set(sent[sop])] == []


def pynetdicom_get(node: Node, study_uid: str, contexts: set[tuple[str, str]]) -> dict[str, bytes]:
    """A study's instances by C-GET from pynetdicom, which proposes exactly the storage contexts given."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.encoded_dataset(include_meta=True)
        return 0x0000

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    roles = [build_role(sop_class, scp_role=True) for sop_class in sorted({c for c, _ in contexts})]
    assoc = ae.associate(
        "127.0.0.1", node.port, ae_title="KEDI", ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    try:
        statuses = [
            int(status.Status) for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
        ]
    finally:
        assoc.release()
    assert statuses[-1] == 0x0000, [hex(s) for s in statuses]
    return received


def test_findscu_and_getscu_follow_the_access_policy(node: Node, corpus: dict[str, Path]) -> None:
    ct_path = next(p for p in corpus.values() if p.name == "CT_small.dcm")
    assert store(node, [ct_path]).returncode == 0  # stored already by the test above: an identical duplicate
    ct = pydicom.dcmread(ct_path, stop_before_pixels=True)
    study_uid = str(ct.StudyInstanceUID)
    key = ("-k", f"StudyInstanceUID={study_uid}")
    # Not yet assigned: the viewer's radiologist does not see it; the modality (its uploader) does.
    assert find_studies(node, "VIEWER", *key) == []
    assert [str(a.StudyInstanceUID) for a in find_studies(node, "MODALITY", *key)] == [study_uid]
    archive = node.service.archive
    assert archive is not None
    study = archive.find_study(study_uid)
    assert study is not None
    archive.assign(study, user_id=node.user_id("rad"), group=None)
    found = find_studies(node, "VIEWER")
    assert [str(a.StudyInstanceUID) for a in found] == [study_uid]
    assert str(found[0].PatientName) == str(ct.PatientName) and int(found[0].NumberOfStudyRelatedInstances) == 1
    assert find_studies(node, "VIEWER", "-k", "PatientName=NOT*SOMEONE") == []
    assert find_studies(node, "OTHER") == []
    # Retrieval: the assigned radiologist gets the instance; the other gets nothing, as if it did not exist.
    out = node.home.parent / "policy-get"
    assert get_study(node, "VIEWER", study_uid, out / "viewer").returncode == 0
    assert len(list((out / "viewer").iterdir())) == 1
    get_study(node, "OTHER", study_uid, out / "other")
    assert list((out / "other").iterdir()) == []
    # A role without images may echo but not query or store.
    assert find_studies(node, "AUDIT_DESK") == []
    refused = [e for e in node.events("dicom.find") if e["calling_ae"] == "AUDIT_DESK"]
    assert refused and refused[-1]["outcome"] == "denied"
    get_study(node, "AUDIT_DESK", study_uid, out / "auditor")
    assert list((out / "auditor").iterdir()) == []
    refused = [e for e in node.events("dicom.get") if e["calling_ae"] == "AUDIT_DESK"]
    assert refused and refused[-1]["outcome"] == "denied" and refused[-1]["status"] == "0x0124"
    # Series and image levels.
    series = dcmtk(
        "findscu", "-S", "-aet", "VIEWER", "-aec", "KEDI", "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={study_uid}", "-k", "SeriesInstanceUID", "-k", "Modality",
        "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert series.returncode == 0 and str(ct.SeriesInstanceUID) in series.stderr
    image = dcmtk(
        "findscu", "-S", "-aet", "VIEWER", "-aec", "KEDI", "-k", "QueryRetrieveLevel=IMAGE",
        "-k", f"StudyInstanceUID={study_uid}", "-k", f"SeriesInstanceUID={ct.SeriesInstanceUID}",
        "-k", "SOPInstanceUID", "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert image.returncode == 0 and str(ct.SOPInstanceUID) in image.stderr
    # A radiologist may not store.
    assert store(node, [corpus[str(ct.SOPInstanceUID)]], ae="VIEWER").returncode != 0
    denied = [e for e in node.events("dicom.store") if e["outcome"] == "denied" and e["calling_ae"] == "VIEWER"]
    assert denied and denied[-1]["status"] == "0x0124"


def test_movescu_moves_a_study_to_a_configured_destination_only(node: Node, corpus: dict[str, Path]) -> None:
    assert parse_move_destinations({"X": "[::1]:104"}) == {"X": ("::1", 104)}
    for bad in ({"X": "host"}, {"X": "host:0"}, {"X": 104}, ["X"]):
        with pytest.raises(ValueError):
            parse_move_destinations(bad)
    ct_path = next(p for p in corpus.values() if p.name == "CT_small.dcm")
    assert store(node, [ct_path]).returncode == 0  # stored already by the test above: an identical duplicate
    ct = pydicom.dcmread(ct_path, stop_before_pixels=True)
    study_uid = str(ct.StudyInstanceUID)

    def move(destination: str, out: Path) -> subprocess.CompletedProcess[str]:
        out.mkdir(parents=True)
        return dcmtk(
            "movescu", "-S", "-aet", "MODALITY", "-aec", "KEDI", "-aem", destination,
            "+P", str(node.store_port), "+B", "-od", str(out),
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(node.port),
            cwd=out,  # movescu 3.6.7 writes into the working folder with +B, whatever -od says
        )  # fmt: skip

    out = node.home.parent / "moved"
    moved = move("VIEWER_STORE", out)
    assert moved.returncode == 0, moved.stderr
    files = list(out.iterdir())
    assert len(files) == 1, (moved.stderr, node.events("dicom.move"))
    assert data_set(files[0].read_bytes()) == data_set(stored_bytes(node, study_uid)[str(ct.SOPInstanceUID)])
    events = [e for e in node.events("dicom.move") if e["outcome"] == "ok"]
    assert events and events[-1]["destination"] == "VIEWER_STORE" and events[-1]["instances"] == 1
    # A destination not in the table: nothing sent, refused (0xA801) and audited.
    nowhere = node.home.parent / "moved-nowhere"
    move("NOWHERE", nowhere)
    assert list(nowhere.iterdir()) == []
    refused = [e for e in node.events("dicom.move") if e["outcome"] == "failed"]
    assert refused and refused[-1]["status"] == "0xA801" and refused[-1]["destination"] == "NOWHERE"


def test_a_revoked_study_is_gone_and_a_disabled_users_peer_may_not_store(node: Node, corpus: dict[str, Path]) -> None:
    from pynetdicom import AE

    ds = pydicom.dcmread(next(p for p in corpus.values() if p.name == "MR_small.dcm"))
    ds.StudyInstanceUID = study_uid = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    path = node.home.parent / "to-revoke.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store(node, [path]).returncode == 0
    key = ("-k", f"StudyInstanceUID={study_uid}")
    assert len(find_studies(node, "MODALITY", *key)) == 1
    archive = node.service.archive
    assert archive is not None
    study = archive.find_study(study_uid)
    assert study is not None
    archive.revoke(study, actor="test")
    # Crypto-shredded: not found, nothing retrieved, nothing more stored into it.
    assert find_studies(node, "MODALITY", *key) == []
    out = node.home.parent / "revoked-get"
    get_study(node, "MODALITY", study_uid, out)
    assert list(out.iterdir()) == []
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="KEDI")
    try:
        assert assoc.send_c_store(ds).Status == 0xA700
    finally:
        assoc.release()
    # A peer whose user was disabled: it may associate (audited as denied) and echo, but not store.
    with node.service.sessions.begin() as db:
        user = accounts.find_user(db, "tech-old")
        assert user is not None
        accounts.disable_user(db, user)
    assert dcmtk("echoscu", "-aet", "OLD_CT", "-aec", "KEDI", "127.0.0.1", str(node.port)).returncode == 0
    assert store(node, [path], ae="OLD_CT").returncode != 0
    denied = [e for e in node.events("dicom.store") if e["calling_ae"] == "OLD_CT"]
    assert denied and denied[-1]["outcome"] == "denied" and denied[-1]["status"] == "0x0124"
    associations = [e for e in node.events("dicom.associate") if e["calling_ae"] == "OLD_CT"]
    assert associations and all(e["outcome"] == "denied" for e in associations)


def test_two_modalities_storing_one_new_study_at_once_make_one_study(node: Node, corpus: dict[str, Path]) -> None:
    """Two associations at once into one new study: every instance stored, under one study and one key."""
    from concurrent.futures import ThreadPoolExecutor

    study_uid = pydicom.uid.generate_uid()
    folder = node.home.parent / "parallel"
    folder.mkdir()
    slices = sorted(p for p in corpus.values() if p.parent.name == "study")
    assert len(slices) == 6
    paths = []
    for index, path in enumerate(slices * 2):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        paths.append(folder / f"{index:02d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda half: store(node, half), (paths[0::2], paths[1::2])))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert len(stored_bytes(node, study_uid)) == 12
    archive = node.service.archive
    assert archive is not None
    # One key per study in force: no second key was made (and left behind) for the study both started.
    active = [
        k for k in node.service.keystore.list_keys() if (k.label or "").startswith("study ") and k.state == "active"
    ]
    assert len(active) == len([s for s in archive.all_studies() if not s.revoked])


def _fuzzed(seed: int, original: bytes) -> bytes:
    """A malformed or truncated data set after a valid File Meta Information header."""
    body_at = len(original) - len(data_set(original))
    meta, body = original[:body_at], bytearray(original[body_at:])
    rng = random.Random(seed)
    kind = seed % 4
    if kind == 0:  # truncated anywhere
        body = body[: rng.randrange(0, len(body) - 1)]
    elif kind == 1:  # random bytes
        body = bytearray(rng.randbytes(rng.randrange(0, 2048)))
    elif kind == 2:  # the header's bytes scrambled, then truncated in the pixels
        for _ in range(rng.randrange(1, 40)):
            body[rng.randrange(0, 1024)] = rng.randrange(256)
        body = body[: len(body) - rng.randrange(1, 4096)]
    else:  # an element's length made huge, or odd
        at = rng.randrange(0, 1024)
        body[at : at + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x01\x00\x00\x00", b"\xfe\xff\xff\xff"])
        body = body[: len(body) - rng.randrange(1, 4096)]
    return meta + bytes(body)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about each malformed value it reads
def test_fuzzed_sender_gets_failures_nothing_is_stored_and_the_node_keeps_serving(
    node: Node, corpus: dict[str, Path]
) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ct = pydicom.dcmread(next(p for p in corpus.values() if p.name == "CT_small.dcm"))
    objects = node.home / "objects"
    before = sorted(p for p in objects.rglob("*") if p.is_file())
    folder = node.home.parent / "fuzz"
    folder.mkdir()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, ct.file_meta.TransferSyntaxUID)
    statuses: list[int] = []
    assoc = ae.associate("127.0.0.1", node.port, ae_title="KEDI")
    try:
        for seed in range(FUZZ_CASES):
            ds = ct.copy()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            path = folder / f"{seed}.dcm"
            path.write_bytes(_fuzzed(seed, buffer.getvalue()))
            if not assoc.is_established:
                assoc = ae.associate("127.0.0.1", node.port, ae_title="KEDI")
            status = assoc.send_c_store(path)
            statuses.append(int(status.Status) if "Status" in status else -1)
    finally:
        if assoc.is_established:
            assoc.release()
    succeeded = statuses.count(0x0000)
    assert -1 not in statuses, "every C-STORE got an answer"
    assert succeeded == 0, f"{succeeded} malformed data sets were acknowledged as stored"
    assert all(s in (0xA700, 0xA900) or 0xC000 <= s <= 0xCFFF for s in statuses), sorted(set(statuses))
    assert sorted(p for p in objects.rglob("*") if p.is_file()) == before, "nothing written"
    assert dcmtk("echoscu", "-aet", "MODALITY", "-aec", "KEDI", "127.0.0.1", str(node.port)).returncode == 0
    failed = [e for e in node.events("dicom.store") if e["outcome"] == "failed"]
    assert len(failed) >= FUZZ_CASES
    print(f"{FUZZ_CASES} fuzzed data sets: statuses {sorted({hex(s) for s in statuses})}")


def test_the_audit_trail_verifies_and_nothing_is_readable_at_rest(node: Node, corpus: dict[str, Path]) -> None:
    assert store(node, list(corpus.values())).returncode == 0  # stored by the test above: identical duplicates
    assert node.service.keystore.verify_audit() == (True, None)
    needles: set[bytes] = set()
    for path in corpus.values():
        ds = pydicom.dcmread(path)
        for value in (str(ds.get("PatientName", "")), str(ds.get("PatientID", "")), str(ds.StudyInstanceUID)):
            if len(value) >= 6:
                needles.add(value.encode())
        pixels = ds.PixelData
        run = pixels[len(pixels) // 2 : len(pixels) // 2 + 64]
        if len(run) == 64 and len(set(run)) > 4:
            needles.add(run)
    assert b"DEMO^PATIENT" in needles
    node.service.engine.dispose()
    files = [p for p in node.home.rglob("*") if p.is_file()]
    assert len(files) > len(corpus)
    assert [(p.name, n[:20]) for p in files for n in needles if n in p.read_bytes()] == []


# ----------------------------------------------------------------------------------- the command


def test_kedi_dicom_node_stores_into_the_service_and_stops_cleanly_on_sigterm(
    tmp_path: Path, corpus: dict[str, Path]
) -> None:
    """`kedi dicom-node` as a process: the same home and KEK as `kedi serve`; SIGTERM is a clean stop (exit 0)."""
    import re
    import signal
    import sys
    import time

    home, kek = tmp_path / "service", os.urandom(32)
    (tmp_path / "kek").write_bytes(kek)
    (tmp_path / "peers.json").write_text('{"MODALITY": "tech"}')
    app = create_app(ServiceConfig(home=home, kek_source=kek, admin_password=ADMIN_PASSWORD))
    service: Service = app.state.service
    with service.sessions.begin() as db:
        accounts.create_user(db, username="tech", password=USER_PASSWORD, role=Role.TECHNOLOGIST)
    service.close()
    command = [
        sys.executable, "-m", "deepkedi.cli", "dicom-node", "--home", str(home), "--kek-file", str(tmp_path / "kek"),
        "--peers", str(tmp_path / "peers.json"), "--port", "0",
    ]  # fmt: skip
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        assert port is not None, process.stderr.read() if process.stderr else ""
        assert dcmtk("echoscu", "-aet", "MODALITY", "-aec", "KEDI", "127.0.0.1", str(port)).returncode == 0
        assert dcmtk("echoscu", "-aet", "NOBODY", "-aec", "KEDI", "127.0.0.1", str(port)).returncode != 0
        ct = next(p for p in corpus.values() if p.name == "CT_small.dcm")
        sent = dcmtk("storescu", "-aet", "MODALITY", "-aec", "KEDI", "127.0.0.1", str(port), str(ct))
        assert sent.returncode == 0, sent.stderr
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err
    # What the node stored is in the service's archive, under its keystore, and audited there.
    app = create_app(ServiceConfig(home=home, kek_source=kek))
    service = app.state.service
    try:
        archive = service.archive
        study = archive.find_study(str(pydicom.dcmread(ct, stop_before_pixels=True).StudyInstanceUID))
        assert study is not None and len(archive.instances(study)) == 1
        operations = [(e.operation, e.details.get("outcome")) for e in service.keystore.audit_entries()]
        assert ("dicom.store", "ok") in operations and ("dicom.associate", "denied") in operations
        assert service.keystore.verify_audit() == (True, None)
    finally:
        service.close()


def test_kedi_serve_with_dicom_port_runs_the_node_in_the_same_process(tmp_path: Path) -> None:
    """`kedi serve --dicom-port 0 --dicom-peers F`: HTTP and DICOM from one process; SIGTERM stops both, exit 0."""
    import re
    import signal
    import sys
    import time
    import urllib.request

    (tmp_path / "kek").write_bytes(os.urandom(32))
    (tmp_path / "peers.json").write_text('{"MODALITY": "admin"}')
    command = [
        sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(tmp_path / "service"),
        "--kek-file", str(tmp_path / "kek"), "--port", "0", "--dicom-port", "0",
        "--dicom-peers", str(tmp_path / "peers.json"),
    ]  # fmt: skip
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src, "PYTHONUNBUFFERED": "1", "KEDI_ADMIN_PASSWORD": ADMIN_PASSWORD}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        dicom, url = None, None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if found := re.search(r"DICOM node KEDI listening on 127\.0\.0\.1:(\d+)", line):
                dicom = int(found.group(1))
            if found := re.search(r"Serving on (http://127\.0\.0\.1:\d+)", line):
                url = found.group(1)
        assert dicom is not None and url is not None, process.stderr.read() if process.stderr else ""
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            assert response.status == 200
        assert dcmtk("echoscu", "-aet", "MODALITY", "-aec", "KEDI", "127.0.0.1", str(dicom)).returncode == 0
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err
