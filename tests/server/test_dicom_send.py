"""`kedi send`, the C-STORE SCU, against a real DCMTK ``storescp`` and against the deepkedi DICOM node.

``storescp`` runs in bit-preserving mode (``+B``): each file it writes holds, after its own
File Meta Information, exactly the data set bytes it received, so the tests compare those
with the originals' data sets byte for byte. The node is the one of test_dicom_node.py
(its fixture, a real service over a free loopback port).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest

pytest.importorskip("pynetdicom", reason="the pacs extra (pip install 'deepkedi[pacs]')")

from external_tools import require_tool
from test_dicom_node import DCMTK, Node, data_set, free_port, node, stored_bytes  # noqa: F401 - node: a fixture

from deepkedi import api
from deepkedi.datasets import sample_corpus, write_samples
from deepkedi.keys.keyfile import generate_key, save_key
from deepkedi.keys.keystore import Keystore
from deepkedi.server.dicom_send import MAX_CONTEXTS, Destination, Outcome, send_files

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("send-samples")
    write_samples(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(samples: Path) -> dict[str, Path]:
    """The bundled samples and the corpus's DICOM files, one per SOP Instance UID."""
    paths = sorted(samples.rglob("*.dcm")) + [s.path for s in sample_corpus() if s.path.suffix.lower() == ".dcm"]
    by_sop: dict[str, Path] = {}
    for path in paths:
        by_sop.setdefault(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID), path)
    assert len(by_sop) >= 12
    return by_sop


Storescp = Callable[..., tuple[int, Path]]


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[Storescp]:
    """Start DCMTK's storescp (bit-preserving, every syntax it knows) on a free loopback port; stopped after."""
    program = require_tool("storescp", install=DCMTK)
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str, accept: str = "+xa") -> tuple[int, Path]:
        out = tmp_path / f"received-{len(started)}"
        out.mkdir()
        port = free_port()
        command = [program, "-aet", "PEER", "+B", accept, "+uf", *extra, "-od", str(out), str(port)]
        started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port, out
            except OSError:
                time.sleep(0.05)
        raise AssertionError("storescp did not listen")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def received(out: Path) -> dict[str, bytes]:
    """What storescp wrote: SOP Instance UID → the file (its own meta header, then the data set as received)."""
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p.read_bytes() for p in out.iterdir()}


def kedi_send(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    for name in ("KEDI_PASSPHRASE", "KEDI_KEYSTORE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "deepkedi.cli", "send", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def destination(port: int, *, called: str = "PEER", calling: str = "KEDI") -> Destination:
    return Destination(host="127.0.0.1", port=port, calling_ae=calling, called_ae=called, timeout=20)


# ----------------------------------------------------------------------------------- tests


def test_the_corpus_arrives_byte_for_byte_on_one_association(
    storescp: Storescp, samples: Path, corpus: dict[str, Path]
) -> None:
    """`kedi send` of files and a folder (walked recursively): every data set storescp received is the original's."""
    port, out = storescp()
    study = samples / "study"
    files = [p for p in corpus.values() if study not in p.parents]
    done = kedi_send(*map(str, files), str(study), "--to", f"127.0.0.1:{port}", "--called-ae", "PEER", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["associations"] == 1 and report["exit_code"] == 0
    assert len(report["files"]) == len(corpus)
    assert all(f["outcome"] == "accepted" and f["byte_exact"] and f["sent_as"] == "as-is" for f in report["files"])
    syntaxes = {f["transfer_syntax"] for f in report["files"]}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"} <= syntaxes
    got = received(out)
    assert sorted(got) == sorted(corpus)
    assert [sop for sop, path in corpus.items() if data_set(got[sop]) != data_set(path.read_bytes())] == []


def test_containers_are_decrypted_and_arrive_as_the_original_data_sets(
    storescp: Storescp, corpus: dict[str, Path], tmp_path: Path
) -> None:
    key, other = generate_key(gan=False), generate_key(gan=False)
    containers = {}
    for index, (sop, path) in enumerate(corpus.items()):
        containers[sop] = tmp_path / f"{index}.kedi"
        api.encrypt_file(path, containers[sop], key)
    wrong = tmp_path / "wrong.kedi"
    api.encrypt_file(next(iter(corpus.values())), wrong, other)
    port, out = storescp()
    report = send_files([*containers.values(), wrong], destination(port), key=key)
    *sent, refused = report.results
    assert [(r.outcome, r.sent_as, r.byte_exact) for r in sent] == [(Outcome.ACCEPTED, "decrypted", True)] * len(sent)
    assert refused.outcome is Outcome.UNDECRYPTABLE and not report.ok  # counted, the others still sent
    got = received(out)
    assert sorted(got) == sorted(corpus)
    assert [sop for sop, path in corpus.items() if data_set(got[sop]) != data_set(path.read_bytes())] == []
    # From the keystore: the key each container names, every access audited under the actor's name.
    with Keystore.init(f"sqlite:///{tmp_path / 'keys.db'}", kek_source=os.urandom(32), actor="alice") as store:
        stored_key = store.new_key(actor="alice", gan=False)
        sop, path = next(iter(corpus.items()))
        api.encrypt_file(path, tmp_path / "from-keystore.kedi", stored_key)
        port, out = storescp()
        report = send_files([tmp_path / "from-keystore.kedi"], destination(port), key=store, actor="bob")
        assert report.ok and data_set(received(out)[sop]) == data_set(path.read_bytes())
        assert [(e.operation, e.actor) for e in store.audit_entries()][-1] == ("get", "bob")


def test_as_dicom_sends_only_ciphertext_that_decrypts_to_the_original(
    storescp: Storescp, samples: Path, tmp_path: Path
) -> None:
    key = generate_key(gan=False)
    save_key(key, tmp_path / "site.key")
    originals = [samples / "scan.dcm", samples / "CT_small.dcm", samples / "MR_small.dcm"]
    container = tmp_path / "mr.kedi"
    api.encrypt_file(samples / "MR_small.dcm", container, key)
    port, out = storescp()
    done = kedi_send(
        *map(str, originals[:2]), str(container), "--to", f"127.0.0.1:{port}", "--called-ae", "PEER",
        "--as-dicom", "--key", str(tmp_path / "site.key"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [f["sent_as"] for f in json.loads(done.stdout)["files"]] == ["dicom-native"] * 3
    needles = set()
    for path in originals:
        ds = pydicom.dcmread(path)
        needles |= {str(ds.PatientName).encode(), str(ds.PatientID).encode(), str(ds.SOPInstanceUID).encode()}
        pixels = ds.PixelData
        for start in range(0, len(pixels) - 64, max(64, len(pixels) // 16)):
            if len(set(pixels[start : start + 64])) > 4:
                needles.add(pixels[start : start + 64])
    assert b"DEMO^PATIENT" in needles
    files = sorted(out.iterdir())
    assert len(files) == 3
    assert [(p.name, n[:16]) for p in files for n in needles if n in p.read_bytes()] == []
    restored = sorted(api.decrypt_bytes(p.read_bytes(), key) for p in files)
    assert restored == sorted(p.read_bytes() for p in originals)


def test_sent_to_the_deepkedi_node_and_stored_byte_for_byte(
    node: Node,  # noqa: F811 - the fixture imported above
    corpus: dict[str, Path],
    tmp_path: Path,
) -> None:
    key = generate_key(gan=False)
    ct = next(p for p in corpus.values() if p.name == "scan.dcm")
    container = tmp_path / "scan.kedi"
    api.encrypt_file(ct, container, key)
    plain = [p for p in corpus.values() if p != ct]
    report = send_files([*plain, container], destination(node.port, called="KEDI", calling="MODALITY"), key=key)
    assert report.ok, [(r.source, r.outcome, r.reason) for r in report.results if not r.accepted]
    assert report.associations == 1
    stored: dict[str, bytes] = {}
    for study_uid in {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in corpus.values()}:
        stored.update(stored_bytes(node, study_uid))
    assert sorted(stored) == sorted(corpus)
    assert [sop for sop, path in corpus.items() if data_set(stored[sop]) != data_set(path.read_bytes())] == []


def test_a_file_that_is_not_dicom_is_refused_and_counted_the_others_sent(
    storescp: Storescp, samples: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image\n")
    port, out = storescp()
    done = kedi_send(str(junk), str(samples / "CT_small.dcm"), "--to", f"127.0.0.1:{port}", "--called-ae", "PEER")
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [f"kedi: refused: {junk}: not a DICOM file or a deepkedi container"]
    assert "sent 1 of 2 files to PEER" in done.stdout and "1 refused" in done.stdout
    assert len(list(out.iterdir())) == 1


def test_a_peer_refusing_the_files_syntax_gets_uncompressed_data_re_encoded_and_compressed_not_at_all(
    storescp: Storescp, corpus: dict[str, Path]
) -> None:
    """storescp +xi accepts implicit VR only: explicit VR goes converted (not byte for byte), JPEG 2000 not at all."""
    from deepkedi.cli.send import EXIT_PEER_FAILURE, exit_code

    explicit = next(p for p in corpus.values() if p.name == "CT_small.dcm")
    jpeg2k = next(p for p in corpus.values() if p.name == "examples_jpeg2k.dcm")
    port, out = storescp(accept="+xi")
    report = send_files([explicit, jpeg2k], destination(port))
    converted, refused = report.results
    assert (converted.outcome, converted.byte_exact, converted.transfer_syntax) == (
        Outcome.ACCEPTED, False, "1.2.840.10008.1.2",
    )  # fmt: skip
    assert refused.outcome is Outcome.FAILED and "no presentation context" in (refused.reason or "")
    assert exit_code(report) == EXIT_PEER_FAILURE
    (got,) = received(out).values()
    assert data_set(got) != data_set(explicit.read_bytes())
    original, arrived = pydicom.dcmread(explicit), pydicom.dcmread(io.BytesIO(got))
    assert arrived.PixelData == original.PixelData and arrived.PatientName == original.PatientName


def test_a_rejected_association_is_one_line_and_exit_code_7(
    node: Node,  # noqa: F811 - the fixture imported above
    samples: Path,
) -> None:
    files = [str(samples / "CT_small.dcm"), str(samples / "MR_small.dcm")]
    done = kedi_send(*files, "--to", f"127.0.0.1:{node.port}", "--called-ae", "KEDI", "--ae-title", "NOBODY")
    assert done.returncode == 7, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "association rejected" in lines[0] and "2 files not sent" in lines[0], lines
    assert "Traceback" not in done.stderr
    unreachable = kedi_send(files[0], "--to", f"127.0.0.1:{free_port()}", "--timeout", "5", "-q")
    assert unreachable.returncode == 7 and len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr


def test_more_contexts_than_one_association_holds_go_on_several(storescp: Storescp, samples: Path) -> None:
    """65 SOP classes, each proposed in explicit and implicit VR: 130 contexts, past the 128 of one association."""
    from pynetdicom import AllStoragePresentationContexts

    sop_classes = [str(c.abstract_syntax) for c in AllStoragePresentationContexts][:65]
    folder = samples.parent / "many-classes"
    folder.mkdir()
    ds = pydicom.dcmread(samples / "MR_small.dcm")
    for index, sop_class in enumerate(sop_classes):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"{index:03}.dcm", enforce_file_format=True)
    port, out = storescp("-pm")
    report = send_files(sorted(folder.iterdir()), destination(port))
    assert 2 * len(sop_classes) > MAX_CONTEXTS
    assert report.ok and report.associations == 2
    assert len(list(out.iterdir())) == len(sop_classes)


def test_as_dicom_needs_a_hybrid_key() -> None:
    with pytest.raises(ValueError):
        send_files([], destination(1), as_dicom=True)


def test_without_the_pacs_extra_one_line_and_exit_code_2(monkeypatch: pytest.MonkeyPatch, samples: Path) -> None:
    from typer.testing import CliRunner

    from deepkedi.cli import app

    monkeypatch.setitem(sys.modules, "pynetdicom", None)  # import pynetdicom raises ImportError
    result = CliRunner().invoke(app, ["send", str(samples / "CT_small.dcm"), "--to", "127.0.0.1:104"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "kedi: error: kedi send needs pynetdicom: pip install 'deepkedi[pacs]'"
    ]
