"""The encrypted Orthanc storage area: unit checks, then a real Orthanc fed by DCMTK's storescu.

The Orthanc tests start Debian's Orthanc (with its Python and DICOMweb plugins) on
loopback, on free ports, in a temporary folder, and stop it. Without Orthanc they skip,
and fail under CI=true (tests/external_tools.py).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from external_tools import require_tool
from orthanc_server import OrthancServer, make_orthanc, require_orthanc, storescu
from pydicom.uid import generate_uid

from deepkedi import api
from deepkedi.errors import AuthenticationError, KeyRevokedError
from deepkedi.keys.keystore import Keystore, RawKek
from deepkedi.server.orthanc_storage import (
    EncryptedStorage,
    StorageSettings,
    find_study_key,
    orthanc_configuration,
    plugin_script,
    study_label,
)

# ----------------------------------------------------------------------------------- helpers


def dataset_bytes(data: bytes) -> bytes:
    """The data set of a DICOM file, after its File Meta Information (which each receiver rewrites)."""
    assert data[128:132] == b"DICM"
    group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, always first
    assert data[132:136] == b"\x02\x00\x00\x00"
    return data[144 + group_length :]


def sent_dataset(data: bytes) -> bytes:
    """The data set storescu sends for a file: DCMTK drops a trailing (FFFC,FFFC) Data Set Trailing Padding."""
    dataset = dataset_bytes(data)
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=False)
    if (0xFFFC, 0xFFFC) in ds:
        padding = dataset.rindex(b"\xfc\xff\xfc\xff")
        assert len(dataset) - padding == 12 + len(ds[0xFFFC, 0xFFFC].value)
        dataset = dataset[:padding]
    return dataset


def elements(data: bytes) -> pydicom.Dataset:
    """The data set's elements, without the trailing padding DCMTK drops."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if (0xFFFC, 0xFFFC) in ds:
        del ds[0xFFFC, 0xFFFC]
    return ds


def uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def searchable(value: str) -> bool:
    """Values long enough and not bare hex-like digits (which occur by chance in key ids and hashes)."""
    return len(value) >= 4 and not re.fullmatch(r"[0-9a-fA-F.]+", value)


def needles_of(files: dict[str, bytes]) -> set[bytes]:
    """What must not be found at rest: patient names and IDs, UIDs, 64-byte runs of pixel data."""
    needles: set[bytes] = set()
    for data in files.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        for value in (
            str(ds.get("PatientName", "")),
            str(ds.get("PatientID", "")),
            str(ds.StudyInstanceUID),
            str(ds.SOPInstanceUID),
        ):
            if searchable(value) or value.count(".") >= 3:
                needles.add(value.encode())
        pixels = ds.get("PixelData")
        if pixels is not None and len(pixels) >= 128:
            for start in (len(pixels) // 3, len(pixels) // 2):
                run = pixels[start : start + 64]
                if len(set(run)) > 1:
                    needles.add(run)
    return needles


def wado_instance(server: OrthancServer, data: bytes) -> httpx.Response:
    study, series, sop = uids(data)
    return httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        timeout=30,
    )


def multipart_parts(response: httpx.Response) -> list[bytes]:
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.content)
    return [part.get_payload(decode=True) for part in message.iter_parts()]


def instance_id(server: OrthancServer, sop_uid: str) -> str | None:
    found = httpx.post(f"{server.url}/tools/lookup", content=sop_uid, timeout=10).json()
    ids = [item["ID"] for item in found if item["Type"] == "Instance"]
    return ids[0] if ids else None


def corpus() -> dict[str, bytes]:
    """The sample corpus's DICOM files (pydicom's and the synthetic ones), one per SOP Instance UID."""
    from deepkedi.datasets import sample_corpus

    files = {s.name: s.path.read_bytes() for s in sample_corpus() if s.path.suffix.lower() == ".dcm"}
    by_sop: dict[str, tuple[str, bytes]] = {}
    for name, data in files.items():
        if data[128:132] == b"DICM":  # storescu sends files with File Meta Information
            by_sop.setdefault(uids(data)[2], (name, data))
    return dict(by_sop.values())


def copies(template: bytes, count: int, *, study_uid: str | None = None) -> list[bytes]:
    """``count`` instances made from ``template`` with fresh SOP Instance UIDs (one new study unless given)."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    out = []
    for number in range(count):
        ds = pydicom.dcmread(io.BytesIO(template))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = number + 1
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def write_files(folder: Path, files: dict[str, bytes] | list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    items = files.items() if isinstance(files, dict) else ((f"{i:04d}.dcm", d) for i, d in enumerate(files))
    paths = []
    for name, data in items:
        path = folder / name.replace("/", "_")
        path.write_bytes(data)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------- without Orthanc


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[EncryptedStorage]:
    kek = os.urandom(32)
    kek_file = tmp_path / "kek.hex"
    kek_file.write_text(kek.hex())
    url = f"sqlite:///{tmp_path / 'keystore.db'}"
    Keystore.init(url, kek_source=RawKek(kek), actor="test").close()
    opened = EncryptedStorage.open(StorageSettings(storage=tmp_path / "objects", keystore_url=url, kek_file=kek_file))
    yield opened
    opened.keystore.close()


def test_every_attachment_kind_is_a_container_and_comes_back(storage: EncryptedStorage) -> None:
    from deepkedi.datasets import sample_corpus

    dicom = next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("CT_small.dcm"))
    summary = b'{"PatientName": "SECRET^NAME", "0010,0020": "ID-4711"}'
    # DicomUntilPixelData: the file up to its Pixel Data element, as Orthanc cuts it.
    prefix = dicom[: dicom.rindex(b"\xe0\x7f\x10\x00")]
    cases = [("a1b2c3d4-dicom", 1, dicom), ("a1b2c3d4-json", 2, summary), ("a1b2c3d4-prefix", 3, prefix)]
    cases.append(("a1b2c3d4-empty", 9999, b""))
    # Plaintext is staged in memory (/dev/shm) where the system has it, never beside the ciphertext.
    shm = Path("/dev/shm")
    assert storage._scratch == (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    for uuid, kind, data in cases:
        storage.create(uuid, kind, data)
        on_disk = storage.path(uuid).read_bytes()
        assert api.read_header(on_disk).key_id  # a deepkedi container: its header parses
        assert b"SECRET^NAME" not in on_disk and b"CompressedSamples" not in on_disk
        assert storage.read(uuid, kind) == data
    study_uid = uids(dicom)[0]
    study_key = find_study_key(storage.keystore, study_uid, actor="test")
    # The DICOM file and its prefix are under the study's key; the JSON names no study: the plugin key.
    assert api.read_header(storage.path("a1b2c3d4-dicom").read_bytes()).key_id.hex() == study_key
    assert api.read_header(storage.path("a1b2c3d4-prefix").read_bytes()).key_id.hex() == study_key
    assert api.read_header(storage.path("a1b2c3d4-json").read_bytes()).key_id.hex() != study_key
    # The keystore knows the study by an HMAC of its UID only.
    labels = [info.label or "" for info in storage.keystore.list_keys()]
    assert study_label(storage.keystore, study_uid, actor="test") in labels
    assert not any(study_uid in label for label in labels)
    storage.remove("a1b2c3d4-dicom", 1)
    assert not storage.path("a1b2c3d4-dicom").exists()
    storage.remove("a1b2c3d4-dicom", 1)  # again: Orthanc may retry a removal
    operations = [entry.operation for entry in storage.keystore.audit_entries()]
    assert operations.count("orthanc.store") == 4 and operations.count("orthanc.read") == 4


def test_tampered_or_revoked_attachments_are_refused(storage: EncryptedStorage) -> None:
    from deepkedi.datasets import sample_corpus

    dicom = next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("MR_small.dcm"))
    storage.create("feedbeef-one", 1, dicom)
    path = storage.path("feedbeef-one")
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[-100] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(AuthenticationError):
        storage.read("feedbeef-one", 1)
    path.write_bytes(original)
    assert storage.read("feedbeef-one", 1) == dicom
    key_id = find_study_key(storage.keystore, uids(dicom)[0], actor="test")
    assert key_id is not None
    storage.keystore.revoke(key_id, actor="test")
    with pytest.raises(KeyRevokedError):
        storage.read("feedbeef-one", 1)
    with pytest.raises(KeyRevokedError):  # a new instance of a revoked study is refused too
        storage.create("feedbeef-two", 1, dicom)
    assert not storage.path("feedbeef-two").exists()
    assert "orthanc.refused" in [entry.operation for entry in storage.keystore.audit_entries()]
    with pytest.raises(Exception, match="uuid"):
        storage.path("../../etc/passwd")


def test_kek_files_are_read_as_kedi_keys_reads_them(tmp_path: Path) -> None:
    import base64

    from deepkedi.keys import generate_key, save_key
    from deepkedi.server.orthanc_storage import kek_material

    material = b"{" + os.urandom(31)  # raw bytes that happen to begin like JSON are still raw
    for name, content in (
        ("raw", material),
        ("hex", material.hex().encode() + b"\n"),
        ("b64", base64.b64encode(material)),
    ):
        (tmp_path / name).write_bytes(content)
        assert kek_material(tmp_path / name) == material
    key = generate_key(gan=False)
    save_key(key, tmp_path / "site.key")
    assert kek_material(tmp_path / "site.key") == key.secret
    (tmp_path / "short").write_bytes(b"0123")
    with pytest.raises(Exception, match="32 bytes"):
        kek_material(tmp_path / "short")


def test_generated_configuration_is_loopback_and_uncached(tmp_path: Path) -> None:
    settings = StorageSettings(storage=tmp_path / "s", keystore_url="sqlite:///k.db", kek_file=tmp_path / "kek")
    config = orthanc_configuration(settings, script=tmp_path / "p.py", index=tmp_path / "i")
    assert config["RemoteAccessAllowed"] is False
    assert config["MaximumStorageCacheSize"] == 0 and config["StoreMD5ForAttachments"] is False
    assert StorageSettings.from_configuration(config) == settings
    shm = StorageSettings(
        storage=tmp_path / "s", keystore_url="sqlite:///k.db", kek_file=tmp_path / "k", scratch=tmp_path
    )
    again = orthanc_configuration(shm, script=tmp_path / "p.py", index=tmp_path / "i")
    assert StorageSettings.from_configuration(again) == shm
    script = plugin_script()
    compile(script, "deepkedi_storage.py", "exec")
    assert "register(orthanc)" in script


# ----------------------------------------------------------------------------------- a real Orthanc


@pytest.fixture(scope="module")
def plain_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """Orthanc as shipped (no deepkedi): what it returns is the reference, byte for byte."""
    require_orthanc()
    server = make_orthanc(tmp_path_factory.mktemp("plain-orthanc"), encrypted=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    require_orthanc()
    require_tool("storescu", install="DCMTK (make setup)")
    server = make_orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_storescu_corpus_ciphertext_at_rest_and_exact_through_rest_and_dicomweb(
    orthanc: OrthancServer, plain_orthanc: OrthancServer, tmp_path: Path
) -> None:
    from deepkedi.datasets import write_samples

    samples = tmp_path / "samples"
    write_samples(samples)
    files = corpus()
    for path in sorted(samples.rglob("*.dcm")):
        data = path.read_bytes()
        files.setdefault(f"samples/{path.relative_to(samples)}", data)
    assert any(b"DEMO^PATIENT" in d for d in files.values()) and len(files) >= 10
    paths = write_files(tmp_path / "push", files)
    start = time.perf_counter()
    result = storescu(orthanc, paths)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"storescu of {len(paths)} files to Orthanc + deepkedi: {elapsed:.2f} s (load {os.getloadavg()})")
    reference = storescu(plain_orthanc, paths)
    assert reference.returncode == 0, reference.stderr[-2000:]

    exact = 0
    for name, data in files.items():
        found = instance_id(orthanc, uids(data)[2])
        assert found is not None, name
        response = httpx.get(f"{orthanc.url}/instances/{found}/file", timeout=30)
        assert response.status_code == 200, name
        # Exactly what Orthanc without the plugin returns for the same push, File Meta Information included.
        plain_id = instance_id(plain_orthanc, uids(data)[2])
        expected = httpx.get(f"{plain_orthanc.url}/instances/{plain_id}/file", timeout=30).content
        assert response.content == expected, name
        # And the original's data set: storescu (DCMTK) re-encodes some files on the way (undefined
        # lengths, trailing padding), so element by element; byte for byte where DCMTK sent it as is.
        sent = sent_dataset(data)
        if dataset_bytes(expected) == sent:
            exact += 1
        assert elements(response.content) == elements(data), name
        wado = wado_instance(orthanc, data)
        assert wado.status_code == 200, (name, wado.text[:300])
        assert multipart_parts(wado) == [response.content], name

    print(f"{exact} of {len(files)} data sets byte for byte as in the original file, the rest re-encoded by DCMTK")
    # Orthanc's web interface: its page, and a preview rendered from a decrypted instance.
    assert httpx.get(f"{orthanc.url}/app/explorer.html", timeout=30).status_code == 200
    preview = httpx.get(f"{orthanc.url}/instances/{found}/preview", timeout=30)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    assert exact >= len(files) // 2
    stored = [p for p in orthanc.storage.rglob("*") if p.is_file()]
    assert len(stored) >= len(files)
    for path in stored:
        assert api.read_header(path.read_bytes()).key_id  # every file is a deepkedi container
    needles = needles_of(files)
    assert b"DEMO^PATIENT" in needles and len(needles) > 20
    hits = [(p.name, n[:24]) for p in stored for n in needles if n in p.read_bytes()]
    assert hits == []
    # Said plainly in docs/ORTHANC.md: Orthanc's own index (SQLite) keeps the main tags in clear.
    index_bytes = b"".join(p.read_bytes() for p in orthanc.index.rglob("*") if p.is_file())
    assert b"DEMO^PATIENT" in index_bytes


def test_rest_upload_of_the_corpus_comes_back_byte_for_byte(tmp_path: Path) -> None:
    """Files uploaded through Orthanc's REST API are stored as sent: each comes back identical, meta and all."""
    require_orthanc()
    server = make_orthanc(tmp_path / "orthanc")
    server.start()
    try:
        files = corpus()
        for name, data in files.items():
            posted = httpx.post(f"{server.url}/instances", content=data, timeout=30)
            assert posted.status_code == 200, (name, posted.text)
            found = posted.json()["ID"]
            assert httpx.get(f"{server.url}/instances/{found}/file", timeout=30).content == data, name
            assert multipart_parts(wado_instance(server, data)) == [data], name
    finally:
        server.stop()


def test_revoking_a_study_key_makes_orthanc_refuse_it(orthanc: OrthancServer, tmp_path: Path) -> None:
    from deepkedi.datasets import sample_corpus

    template = next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("MR_small.dcm"))
    doomed, kept = copies(template, 3), copies(template, 1)
    result = storescu(orthanc, write_files(tmp_path / "push", doomed + kept))
    assert result.returncode == 0, result.stderr[-2000:]
    # A viewer opens the first instance: Orthanc keeps the parsed file in its own memory cache.
    opened = instance_id(orthanc, uids(doomed[0])[2])
    routes = ("/file", "/tags", "/preview", "/frames/0/raw", "/content/0010-0010")
    assert all(httpx.get(f"{orthanc.url}/instances/{opened}{r}", timeout=30).status_code == 200 for r in routes)
    with orthanc.keystore() as keystore:
        key_id = find_study_key(keystore, uids(doomed[0])[0], actor="test")
        assert key_id is not None
        assert key_id != find_study_key(keystore, uids(kept[0])[0], actor="test")
        keystore.revoke(key_id, actor="test")
    for data in doomed:
        found = instance_id(orthanc, uids(data)[2])
        response = httpx.get(f"{orthanc.url}/instances/{found}/file", timeout=30)
        # The plugin's read raises: Orthanc answers 500 "Error encountered within the plugin engine".
        assert response.status_code == 500 and b"plugin" in response.content, response.status_code
        assert dataset_bytes(data)[-64:] not in response.content
        wado = wado_instance(orthanc, data)
        assert wado.status_code == 500
        assert dataset_bytes(data)[-64:] not in wado.content
        if found != opened:  # never opened: nothing of it in Orthanc's memory
            preview = httpx.get(f"{orthanc.url}/instances/{found}/preview", timeout=30)
            assert preview.status_code >= 400 and not preview.content.startswith(b"\x89PNG")
    # Another study is untouched.
    found = instance_id(orthanc, uids(kept[0])[2])
    kept_back = httpx.get(f"{orthanc.url}/instances/{found}/file", timeout=30)
    assert kept_back.status_code == 200 and elements(kept_back.content) == elements(kept[0])
    # A new instance of the revoked study is refused: nothing stored under the revoked key.
    (late,) = copies(template, 1, study_uid=uids(doomed[0])[0])
    storescu(orthanc, write_files(tmp_path / "late", [late]))
    assert instance_id(orthanc, uids(late)[2]) is None
    with orthanc.keystore() as keystore:
        refusals = [e for e in keystore.audit_entries() if e.operation == "orthanc.refused"]
    assert len(refusals) >= len(doomed)
    # Orthanc 1.10's cache of parsed files (128 MB, not configurable) may still answer frames and
    # previews of the instance opened before the revocation (docs/ORTHANC.md); a restart empties it.
    cached = [r for r in routes if httpx.get(f"{orthanc.url}/instances/{opened}{r}", timeout=30).status_code == 200]
    print(f"served from Orthanc's memory after revocation, before a restart: {cached}")
    orthanc.stop()
    orthanc.start()
    for data in doomed:
        found = instance_id(orthanc, uids(data)[2])
        for route in routes:
            response = httpx.get(f"{orthanc.url}/instances/{found}{route}", timeout=30)
            assert response.status_code >= 400, (route, response.status_code)
            assert not response.content.startswith(b"\x89PNG") and dataset_bytes(data)[-64:] not in response.content
    # Deleting the revoked study in Orthanc still works (removing files needs no key).
    doomed_study = httpx.get(f"{orthanc.url}/instances/{instance_id(orthanc, uids(doomed[0])[2])}/study", timeout=30)
    files_before = sum(1 for p in orthanc.storage.rglob("*") if p.is_file())
    deleted = httpx.delete(f"{orthanc.url}/studies/{doomed_study.json()['ID']}", timeout=30)
    assert deleted.status_code == 200
    assert instance_id(orthanc, uids(doomed[0])[2]) is None
    assert sum(1 for p in orthanc.storage.rglob("*") if p.is_file()) < files_before


def test_orthanc_does_not_start_with_a_wrong_kek(tmp_path: Path) -> None:
    """No silent fallback to plain storage: a KEK that does not open the keystore stops Orthanc."""
    require_orthanc()
    server = make_orthanc(tmp_path / "orthanc")
    (server.home / "kek.hex").write_text(os.urandom(32).hex())
    with pytest.raises(RuntimeError, match="Orthanc exited"):
        server.start()
    assert not any(p.is_file() for p in server.storage.rglob("*"))


def test_kill_9_during_a_push_loses_nothing_acknowledged(tmp_path: Path) -> None:
    require_orthanc()
    program = require_tool("storescu", install="DCMTK (make setup)")
    from deepkedi.datasets import sample_corpus

    template = next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("MR_small.dcm"))
    files = copies(template, 200)
    paths = write_files(tmp_path / "push", files)
    by_path = {str(p): d for p, d in zip(paths, files, strict=True)}
    server = make_orthanc(tmp_path / "orthanc")
    server.start()
    try:
        sender = subprocess.Popen(
            [program, "-v", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), *map(str, paths)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            count = httpx.get(f"{server.url}/statistics", timeout=5).json()["CountInstances"]
            if count >= 40:
                break
            time.sleep(0.05)
        server.kill()
        output, _ = sender.communicate(timeout=60)
        acknowledged = acknowledged_files(output)
        assert 40 <= len(acknowledged) < len(files), output[-2000:]
        server.start()
        for path in acknowledged:
            found = instance_id(server, uids(by_path[path])[2])
            assert found is not None, path
            response = httpx.get(f"{server.url}/instances/{found}/file", timeout=30)
            assert response.status_code == 200
            assert dataset_bytes(response.content) == sent_dataset(by_path[path])
        # Nothing half-written under a final name: every stored file is a whole container.
        for path in server.storage.rglob("*"):
            if path.is_file() and not path.name.endswith(".part"):
                data = path.read_bytes()
                assert api.read_header(data).header.container_length == len(data), path.name
        print(f"kill -9 after {len(acknowledged)} acknowledged instances of {len(files)}: all retrievable")
    finally:
        server.stop()


def acknowledged_files(output: str) -> list[str]:
    """The files storescu (-v) saw a success response for, in order."""
    acknowledged, current = [], None
    for line in output.splitlines():
        sending = re.search(r"Sending file: (.+)$", line)
        if sending:
            current = sending.group(1).strip()
        elif "Received Store Response (Success)" in line and current is not None:
            acknowledged.append(current)
            current = None
    return acknowledged


# ----------------------------------------------------------------------------------- kedi orthanc


def test_kedi_orthanc_config_and_study_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kedi orthanc config` writes what Orthanc loads; `kedi orthanc study-key` finds the key to revoke."""
    import base64
    import json

    from typer.testing import CliRunner

    from deepkedi.cli import app
    from deepkedi.datasets import sample_corpus

    monkeypatch.setenv("KEDI_KEYSTORE", f"sqlite:///{tmp_path / 'keystore.db'}")
    for name in ("KEDI_KEK", "KEDI_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    kek_file = tmp_path / "kek.b64"
    kek_file.write_bytes(base64.b64encode(os.urandom(32)))  # as `kedi keys --kek-file` reads it: base64 too
    runner = CliRunner()

    def kedi(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    assert kedi("keys", "init", "--kek-file", str(kek_file))[0] == 0
    home = tmp_path / "home"
    code, output = kedi("orthanc", "config", "-o", str(home), "--kek-file", str(kek_file), "--http-port", "18042")
    assert code == 0, output
    config = json.loads((home / "orthanc.json").read_text())
    assert config["HttpPort"] == 18042 and config["RemoteAccessAllowed"] is False
    assert config["PythonScript"] == str(home / "deepkedi_storage.py")
    assert (home / "orthanc.json").stat().st_mode & 0o077 == 0
    assert kedi("orthanc", "config", "-o", str(home), "--kek-file", str(kek_file))[0] == 2  # exists: --force to replace
    dicom = next(s.path.read_bytes() for s in sample_corpus() if s.name.endswith("CT_small.dcm"))
    study_uid = uids(dicom)[0]
    # Before Orthanc ever ran with this keystore: no such study (exit code 4).
    assert kedi("orthanc", "study-key", study_uid, "--kek-file", str(kek_file))[0] == 4
    # What the plugin does inside Orthanc, from the written configuration.
    storage = EncryptedStorage.open(StorageSettings.from_configuration(config))
    storage.create("0a1b2c3d-cli", 1, dicom)
    code, output = kedi("orthanc", "study-key", study_uid, "--kek-file", str(kek_file), "--json")
    assert code == 0, output
    found = json.loads(output)
    assert found["state"] == "active"
    assert found["key_id"] == api.read_header(storage.path("0a1b2c3d-cli").read_bytes()).key_id.hex()
    assert kedi("keys", "revoke", found["key_id"], "--yes", "--kek-file", str(kek_file))[0] == 0
    with pytest.raises(KeyRevokedError):
        storage.read("0a1b2c3d-cli", 1)
    storage.keystore.close()
