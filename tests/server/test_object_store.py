"""The archive's object storage by URL (`kedi serve --storage`): a local folder, file:// and memory://.

The round trip goes through the real routes (STOW-RS, WADO-RS, the viewer's cipher
image, revocation) with the objects on each backend, and reads the backend's own
bytes to check that nothing readable is at rest there. Each memory:// test has its
own root, removed afterwards: fsspec's memory filesystem is one per process.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from archive_app import ADMIN, RAD_A, TECH_A, ArchiveApp, build, close, multipart, split_multipart
from fastapi.testclient import TestClient

from deepkedi import api
from deepkedi.datasets import write_samples
from deepkedi.errors import OutputError
from deepkedi.fileio import remove_stale_parts
from deepkedi.server import viewer
from deepkedi.server.objects import ObjectStore, object_key, storage_location

fsspec = pytest.importorskip("fsspec")

SRC = str(Path(__file__).resolve().parents[2] / "src")
OBJECT = "0123456789abcdef0123456789abcdef"
BAD_NAMES = ("../../etc/passwd", "..", "/etc/passwd", "01/" + OBJECT, OBJECT.upper(), OBJECT + "\x00", "", "a" * 33)


@dataclass
class Backend:
    """Where a test's objects go, and every byte the backend holds under that place."""

    kind: str
    url: str
    folder: Path | None = None

    def raw(self) -> dict[str, bytes]:
        """Every file under the storage root (object or not), by its path relative to the root."""
        if self.folder is not None:
            return {str(p.relative_to(self.folder)): p.read_bytes() for p in self.folder.rglob("*") if p.is_file()}
        fs, root = fsspec.url_to_fs(self.url)
        if not fs.exists(root):
            return {}
        return {str(p)[len(root) + 1 :]: bytes(fs.cat_file(p)) for p in fs.find(root)}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.dcm"))}


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        folder = tmp_path / "object-store"
        yield Backend("file", folder.as_uri(), folder)
        return
    root = f"/kedi-test-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    try:
        yield Backend("memory", f"memory:/{root}/objects")
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)
        assert not fs.exists(root)


def _uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _instance_url(data: bytes) -> str:
    study, series, sop = _uids(data)
    return f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"


def _needles(data: bytes) -> set[bytes]:
    """What must not be readable at rest: the patient's name and ID, and 64-byte runs of the pixels."""
    ds = pydicom.dcmread(io.BytesIO(data))
    found = {str(ds.PatientName).encode(), str(ds.PatientID).encode()} - {b""}
    pixels = ds.PixelData
    for start in (len(pixels) // 3, len(pixels) // 2):
        run = pixels[start : start + 64]
        if len(set(run)) > 4:
            found.add(run)
    return found


@pytest.fixture
def archive(tmp_path: Path, backend: Backend) -> Iterator[ArchiveApp]:
    holder = build(tmp_path / "home", storage=backend.url)
    holder.app.include_router(viewer.router)
    try:
        yield holder
    finally:
        close(holder)


def test_round_trip_revocation_and_nothing_readable_at_rest(
    archive: ArchiveApp, backend: Backend, samples: dict[str, bytes], tmp_path: Path
) -> None:
    """Store, retrieve byte for byte, draw the cipher image, revoke (410): the objects live on the backend only."""
    uploads = [samples["CT_small.dcm"], samples["MR_small.dcm"], samples["scan.dcm"]]
    archive.act_as(TECH_A)
    with TestClient(archive.app) as client:
        body, content_type = multipart(uploads)
        stored = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
        assert stored.status_code == 200, stored.text
        assert len(stored.json()["00081199"]["Value"]) == len(uploads)
        for data in uploads:
            assert split_multipart(client.get(_instance_url(data))) == [data]

        # The backend holds exactly the indexed objects, fanned out, each a container: no plaintext.
        raw = backend.raw()
        names = set(archive.service.archive.objects.names())
        assert len(names) == len(uploads) and sorted(raw) == sorted(object_key(n) for n in names)
        needles = set().union(*(_needles(d) for d in uploads))
        assert b"DEMO^PATIENT" in needles and len(needles) > len(uploads)
        assert [(key, n[:16]) for key, blob in raw.items() for n in needles if n in blob] == []
        assert all(api.read_header(blob).authenticated for blob in raw.values())  # hybrid containers
        if backend.folder is not None:  # a file:// URL is today's local layout: 0700 folders, 0600 objects
            assert stat.S_IMODE(backend.folder.stat().st_mode) == 0o700
            assert {stat.S_IMODE(p.stat().st_mode) for p in backend.folder.rglob("*")} == {0o700, 0o600}
        # Nothing went to the default folder, nor (memory://) anywhere on disk but the database.
        assert not (archive.home / "objects").exists()
        elsewhere = [
            p
            for p in tmp_path.rglob("*")
            if p.is_file()
            and not p.name.startswith("service.db")
            and not (backend.folder is not None and backend.folder in p.parents)
        ]
        assert elsewhere == []

        # The viewer's cipher image is read from the backend (nothing decrypted), before and after revocation.
        ct = uploads[0]
        study = archive.service.archive.find_study(_uids(ct)[0])
        assert study is not None
        cipher = client.get(f"/api/studies/{study.pseudonym}/ciphertext/1")
        assert cipher.status_code == 200 and cipher.content.startswith(b"\x89PNG")

        archive.act_as(ADMIN)
        assert client.post(f"/api/studies/{study.pseudonym}/assign", json={"user_id": RAD_A.user_id}).status_code == 200
        assert client.post(f"/api/studies/{study.pseudonym}/revoke").status_code == 200
        for who in (TECH_A, RAD_A):
            archive.act_as(who)
            assert client.get(_instance_url(ct)).status_code == 410
            assert client.get(_instance_url(ct) + "/frames/1/rendered").status_code == 410
        assert client.get(f"/api/studies/{study.pseudonym}/ciphertext/1").status_code == 200
    # Crypto-shredding keeps the ciphertext: the objects are still there, byte for byte.
    assert backend.raw() == raw


def test_the_store_refuses_names_outside_its_grammar_and_lists_only_objects(backend: Backend) -> None:
    store = ObjectStore(backend.url)
    assert store.protocol == backend.kind and backend.url not in repr(store)
    for bad in BAD_NAMES:
        for call in (lambda n: store.put(n, b"x"), store.get, store.exists, store.delete):
            with pytest.raises(ValueError, match="not an archive object name"):
                call(bad)
    assert backend.raw() == {}
    with pytest.raises(FileNotFoundError):
        store.get(OBJECT)
    store.delete(OBJECT)  # a missing object is not an error
    store.put(OBJECT, b"ciphertext")
    assert store.exists(OBJECT) and store.get(OBJECT) == b"ciphertext"
    assert backend.raw() == {f"01/{OBJECT}": b"ciphertext"}
    # What is not an object in its own fan-out folder is never listed.
    other = "ab" + OBJECT[2:]
    stray = {f"cd/{other}": b"wrong fan-out", "01/notes.txt": b"not an object", f"{other}": b"top level"}
    if backend.folder is not None:
        for key, data in stray.items():
            (backend.folder / key).parent.mkdir(exist_ok=True)
            (backend.folder / key).write_bytes(data)
    else:
        fs, root = fsspec.url_to_fs(backend.url)
        for key, data in stray.items():
            fs.pipe_file(f"{root}/{key}", data)
    assert list(store.names()) == [OBJECT]
    store.delete(OBJECT)
    assert not store.exists(OBJECT) and list(store.names()) == []


def test_a_local_store_sweeps_what_a_killed_writer_left(tmp_path: Path) -> None:
    """The start-up sweep: a part file of a dead process goes, a whole object and a live writer's part stay."""
    store = ObjectStore(tmp_path / "objects")
    store.put(OBJECT, b"whole")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from deepkedi.fileio import _host_tag

    fan_out = tmp_path / "objects" / "01"
    stale = fan_out / f".{OBJECT}.kedi-{_host_tag()}-{dead.pid}-0a1b2c3d.part"
    live = fan_out / f".{OBJECT}.kedi-{_host_tag()}-{os.getpid()}-0a1b2c3d.part"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    assert store.sweep() == [stale.name]
    assert sorted(p.name for p in fan_out.iterdir()) == sorted([OBJECT, live.name])
    assert remove_stale_parts(fan_out) == []


def test_locations_and_refusals() -> None:
    assert storage_location("relative/objects") == Path("relative/objects").resolve()
    assert storage_location("file:///srv/kedi/objects") == Path("/srv/kedi/objects")
    assert storage_location("memory://kedi/objects") == "memory://kedi/objects"
    with pytest.raises(ValueError, match=r"^unknown storage protocol 'nosuch'"):
        storage_location("nosuch://user:secret@host/objects")
    missing = _missing_backend()
    with pytest.raises(ValueError, match=rf"^storage protocol '{missing}' is not available"):
        storage_location(f"{missing}://bucket/objects")


def _missing_backend() -> str:
    """A protocol fsspec knows whose package is not installed here (s3 without s3fs, as a rule)."""
    import importlib.util

    from fsspec.registry import known_implementations

    for protocol, module in (("s3", "s3fs"), ("gcs", "gcsfs"), ("abfs", "adlfs"), ("oci", "ocifs")):
        if protocol in known_implementations and importlib.util.find_spec(module) is None:
            return protocol
    pytest.fail("every object-store package is installed: no protocol left to test the refusal with")


def test_serve_refuses_an_unknown_or_missing_backend_in_one_line_and_opens_a_file_url(tmp_path: Path) -> None:
    """`kedi serve --init-only --storage URL` (and kedi dicom-node): a bad URL is one line, exit 2, nothing
    created; a file:// URL is opened as the local folder it names."""
    kek = tmp_path / "kek"
    kek.write_bytes(os.urandom(32))
    env = {**os.environ, "PYTHONPATH": SRC, "KEDI_ADMIN_PASSWORD": "a long admin passphrase for tests"}
    env.pop("KEDI_PASSPHRASE", None)
    env.pop("KEDI_KEK", None)

    def serve(home: Path, storage: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deepkedi.cli", "serve", "--home", str(home), "--kek-file", str(kek),
             "--storage", storage, "--init-only"],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
        )  # fmt: skip

    missing = _missing_backend()
    for url, says in (
        ("nosuch://user:secret@host/objects", "unknown storage protocol 'nosuch'"),
        (f"{missing}://bucket/objects", f"storage protocol '{missing}' is not available"),
    ):
        refused = serve(tmp_path / "refused", url)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and says in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and "secret" not in refused.stderr
        assert not (tmp_path / "refused").exists()
    # kedi dicom-node takes the same option the same way.
    (tmp_path / "peers.json").write_text('{"MODALITY": "admin"}')
    node = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "dicom-node", "--home", str(tmp_path / "refused"), "--kek-file",
         str(kek), "--peers", str(tmp_path / "peers.json"), "--storage", "nosuch://host/objects", "--init-only"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert node.returncode == 2 and node.stderr.count("\n") == 1, node.stderr
    assert "unknown storage protocol 'nosuch'" in node.stderr and not (tmp_path / "refused").exists()
    folder = tmp_path / "by-url"
    opened = serve(tmp_path / "home", folder.as_uri())
    assert opened.returncode == 0, opened.stderr
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not (tmp_path / "home" / "objects").exists()


def test_a_failed_write_stores_nothing_and_answers_a_failure(
    archive: ArchiveApp, backend: Backend, samples: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend refusing the object: STOW-RS says failure for that instance, no row, no object, key shredded."""

    def refuse(self: ObjectStore, name: str, data: bytes) -> None:
        raise OutputError("cannot write the object (PermissionError)")

    monkeypatch.setattr(ObjectStore, "put", refuse)
    archive.act_as(TECH_A)
    with TestClient(archive.app) as client:
        body, content_type = multipart([samples["CT_small.dcm"]])
        response = client.post("/dicomweb/studies", content=body, headers={"content-type": content_type})
        assert response.status_code == 409, response.text
        assert client.get("/dicomweb/studies").json() == []
    assert backend.raw() == {}
    assert [k.state for k in archive.service.keystore.list_keys() if (k.label or "").startswith("study ")] == [
        "revoked"
    ]
