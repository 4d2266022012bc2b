"""The front door (deepkedi.api, re-exported by deepkedi): every container kind through one call."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import deepkedi
from deepkedi import api
from deepkedi.datasets import sample_corpus
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.keys import KeyImage, generate_key
from deepkedi.keys.keystore import Keystore, PassphraseKek

KEY = generate_key(gan=False)


def _sample(name: str) -> Path:
    return next(s.path for s in sample_corpus() if s.name == name)


CT = _sample("pydicom-CT_small.dcm")
MR = _sample("pydicom-MR_small.dcm")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- the package's names


def test_every_public_name_resolves_and_is_documented() -> None:
    documented = (Path(__file__).parents[1] / "docs" / "API.md").read_text(encoding="utf-8")
    for name in deepkedi.__all__:
        assert getattr(deepkedi, name) is not None
        if name != "__version__":
            assert f"`{name}" in documented or f"{name}`" in documented or f"`{name}(" in documented, name
    assert set(deepkedi.__all__) == {"__version__", *deepkedi._EXPORTS}
    with pytest.raises(AttributeError):
        deepkedi.no_such_name  # noqa: B018


def test_import_deepkedi_loads_neither_the_front_door_nor_its_dependencies() -> None:
    code = (
        "import sys, deepkedi, deepkedi.errors\n"
        "heavy = [m for m in ('deepkedi.api', 'deepkedi.cipher', 'pydicom', 'numpy', 'sqlalchemy')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ----------------------------------------------------------------------------- files


def test_file_round_trip_returns_typed_results(tmp_path: Path) -> None:
    done = deepkedi.encrypt_file(CT, tmp_path / "ct.kedi", KEY, pattern="vertical")
    assert isinstance(done, api.FileResult) and done.output == tmp_path / "ct.kedi"
    assert done.info.kind is api.ContainerKind.CONTAINER and done.info.suite is deepkedi.Suite.HYBRID
    assert done.info.header.pattern is deepkedi.ZigzagPattern.VERTICAL and done.info.key_id == KEY.key_id
    back = deepkedi.decrypt_file(tmp_path / "ct.kedi", tmp_path / "ct.dcm", KEY)
    assert back.verified and back.info == done.info
    assert _sha(tmp_path / "ct.dcm") == _sha(CT)


def test_decrypt_file_opens_every_kind(tmp_path: Path) -> None:
    deepkedi.encrypt_file(CT, tmp_path / "a.kedi", KEY)
    deepkedi.encrypt_file(CT, tmp_path / "b.dcm", KEY, as_dicom=True)
    for name in ("a.kedi", "b.dcm"):
        result = deepkedi.decrypt_file(tmp_path / name, tmp_path / f"{name}.out", KEY)
        assert _sha(tmp_path / f"{name}.out") == _sha(CT)
    assert result.info.kind is api.ContainerKind.DICOM_NATIVE
    with pytest.raises(FormatError, match="not a DICOM-native"):
        deepkedi.decrypt_file(MR, tmp_path / "x.dcm", KEY)  # plain DICOM: nothing to decrypt
    with pytest.raises(AuthenticationError):
        deepkedi.decrypt_file(tmp_path / "b.dcm", tmp_path / "y.dcm", generate_key(gan=False))
    assert not (tmp_path / "y.dcm").exists()


def test_a_dicom_native_decrypt_parses_the_input_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deepkedi.encrypt_file(CT, tmp_path / "native.dcm", KEY, as_dicom=True)
    calls: list[object] = []
    real = pydicom.dcmread

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pydicom, "dcmread", counting)
    monkeypatch.setattr(pydicom.filereader, "dcmread", counting)
    deepkedi.decrypt_file(tmp_path / "native.dcm", tmp_path / "back.dcm", KEY)
    assert calls == [tmp_path / "native.dcm"]
    assert _sha(tmp_path / "back.dcm") == _sha(CT)

    # The command line goes through the same call: one parse there too.
    from typer.testing import CliRunner

    from deepkedi.cli import app

    deepkedi.save_key(KEY, tmp_path / "k.key")
    calls.clear()
    result = CliRunner().invoke(
        app,
        ["decrypt", str(tmp_path / "native.dcm"), "-o", str(tmp_path / "cli.dcm"), "--key", str(tmp_path / "k.key")],
    )
    assert result.exit_code == 0, result.output
    assert calls == [tmp_path / "native.dcm"]


def test_a_dicom_native_encrypt_parses_once_writes_once_and_syncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    parses: list[object] = []
    syncs: list[int] = []
    real_read, real_fsync = pydicom.dcmread, os.fsync

    def counting_read(*args: object, **kwargs: object) -> object:
        parses.append(args[0])
        return real_read(*args, **kwargs)  # type: ignore[arg-type]

    def counting_fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(pydicom, "dcmread", counting_read)
    monkeypatch.setattr(pydicom.filereader, "dcmread", counting_read)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    import tempfile

    def no_scratch(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DICOM-native encryption writes no scratch copy")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", no_scratch)
    deepkedi.encrypt_file(CT, tmp_path / "native.dcm", KEY, as_dicom=True)
    assert len(parses) == 1 and len(syncs) == 1  # one parse, one write (no scratch container), one sync
    monkeypatch.undo()
    deepkedi.decrypt_file(tmp_path / "native.dcm", tmp_path / "back.dcm", KEY)
    assert _sha(tmp_path / "back.dcm") == _sha(CT)


def test_the_key_must_fit_the_suite(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    np.save(tmp_path / "s.npy", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    key_image = KeyImage(rng.integers(0, 256, (16, 16), dtype=np.uint8))
    paper = deepkedi.encrypt_file(tmp_path / "s.npy", tmp_path / "p.kedi", key_image, seed=5)
    assert paper.info.suite is deepkedi.Suite.PAPER and not paper.verified
    assert not deepkedi.decrypt_file(tmp_path / "p.kedi", tmp_path / "p.npy", key_image).verified
    with pytest.raises(ValueError, match="'paper' container"):
        deepkedi.decrypt_file(tmp_path / "p.kedi", tmp_path / "q.npy", KEY)
    deepkedi.encrypt_file(tmp_path / "s.npy", tmp_path / "h.kedi", KEY)
    with pytest.raises(ValueError, match="'hybrid' container"):
        deepkedi.decrypt_file(tmp_path / "h.kedi", tmp_path / "q.npy", key_image)
    with pytest.raises(ValueError, match="as_dicom"):
        deepkedi.encrypt_file(CT, tmp_path / "x.dcm", key_image, as_dicom=True)
    with pytest.raises(ValueError, match="seed"):
        deepkedi.encrypt_file(CT, tmp_path / "x.kedi", KEY, seed=1)
    with pytest.raises(TypeError):
        deepkedi.decrypt_file(tmp_path / "h.kedi", tmp_path / "q.npy", b"\x00" * 32)  # type: ignore[arg-type]


def test_a_keystore_decrypts_what_it_holds_and_audits_who_asked(tmp_path: Path) -> None:
    url, kek = f"sqlite:///{tmp_path / 'ks.db'}", PassphraseKek("a long enough passphrase")
    with Keystore.init(url, kek_source=kek, actor="admin") as store:
        key = store.new_key(actor="admin", gan=False)
    deepkedi.encrypt_file(CT, tmp_path / "ct.kedi", key)
    deepkedi.encrypt_file(CT, tmp_path / "ct.dcm", key, as_dicom=True)
    with Keystore.open(url, kek_source=kek) as store:
        with pytest.raises(ValueError, match="actor"):
            deepkedi.decrypt_file(tmp_path / "ct.kedi", tmp_path / "a.dcm", store)
        deepkedi.decrypt_file(tmp_path / "ct.kedi", tmp_path / "a.dcm", store, actor="dr.a")
        deepkedi.decrypt_file(tmp_path / "ct.dcm", tmp_path / "b.dcm", store, actor="dr.b")
        assert [e.actor for e in store.audit_entries()][-2:] == ["dr.a", "dr.b"]
        store.revoke(key.key_id_hex, actor="admin")
        with pytest.raises(deepkedi.KeyRevokedError):
            deepkedi.decrypt_bytes((tmp_path / "ct.kedi").read_bytes(), store, actor="dr.c")
    assert _sha(tmp_path / "a.dcm") == _sha(tmp_path / "b.dcm") == _sha(CT)


# ----------------------------------------------------------------------------- headers


def test_read_header_takes_paths_bytes_streams_and_datasets(tmp_path: Path) -> None:
    deepkedi.encrypt_file(CT, tmp_path / "c.kedi", KEY)
    deepkedi.encrypt_file(CT, tmp_path / "n.dcm", KEY, as_dicom=True)
    container, native = tmp_path / "c.kedi", tmp_path / "n.dcm"
    infos = [
        deepkedi.read_header(container),
        deepkedi.read_header(str(container)),
        deepkedi.read_header(container.read_bytes()),
        deepkedi.read_header(io.BytesIO(container.read_bytes())),
    ]
    assert len({i.header for i in infos}) == 1 and infos[0].kind is api.ContainerKind.CONTAINER
    natives = [
        deepkedi.read_header(native),
        deepkedi.read_header(native.read_bytes()),
        deepkedi.read_header(io.BytesIO(native.read_bytes())),
        deepkedi.read_header(pydicom.dcmread(native)),
    ]
    assert len({i.header for i in natives}) == 1 and natives[0].kind is api.ContainerKind.DICOM_NATIVE
    record = natives[0].describe()
    assert record["kind"] == "dicom-native" and record["key_id"] == KEY.key_id_hex
    for other in (MR, MR.read_bytes(), b"hello, not a container", io.BytesIO(MR.read_bytes())):
        with pytest.raises(FormatError):
            deepkedi.read_header(other)
    damaged = bytearray(container.read_bytes())
    damaged[12] ^= 0xFF  # inside the header: a modified container, not some other file
    with pytest.raises(AuthenticationError):
        deepkedi.read_header(bytes(damaged))


# ----------------------------------------------------------------------------- bytes and streams


def test_bytes_round_trip_and_refusals() -> None:
    original = CT.read_bytes()
    blob = deepkedi.encrypt_bytes(original, KEY, name="ct.dcm")
    assert deepkedi.decrypt_bytes(blob, KEY) == original
    native = deepkedi.encrypt_bytes(original, KEY, as_dicom=True)
    assert pydicom.dcmread(io.BytesIO(native)).PatientIdentityRemoved == "YES"
    assert deepkedi.decrypt_bytes(native, KEY) == original
    for bad in (blob[:-1], blob + b"\x00", blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]):
        with pytest.raises(AuthenticationError):
            deepkedi.decrypt_bytes(bad, KEY)
    with pytest.raises(AuthenticationError):
        deepkedi.decrypt_bytes(blob, generate_key(gan=False))
    with pytest.raises(UnsupportedImageError):
        deepkedi.encrypt_bytes(b"not an image at all", KEY)


def test_streams_round_trip_and_refuse_truncation_and_trailing_bytes() -> None:
    original = MR.read_bytes()
    sealed, restored = io.BytesIO(), io.BytesIO()
    info = deepkedi.encrypt_stream(io.BytesIO(original), sealed, KEY, name="mr.dcm")
    assert info.kind is api.ContainerKind.CONTAINER
    assert deepkedi.decrypt_stream(io.BytesIO(sealed.getvalue()), restored, KEY) == info
    assert restored.getvalue() == original
    for bad in (sealed.getvalue()[:-1], sealed.getvalue() + b"x"):
        with pytest.raises(AuthenticationError):
            deepkedi.decrypt_stream(io.BytesIO(bad), io.BytesIO(), KEY)
    native, back = io.BytesIO(), io.BytesIO()
    deepkedi.encrypt_stream(io.BytesIO(original), native, KEY, as_dicom=True, name="mr.dcm")
    assert deepkedi.decrypt_stream(io.BytesIO(native.getvalue()), back, KEY).kind is api.ContainerKind.DICOM_NATIVE
    assert back.getvalue() == original


def test_in_memory_image_containers_are_not_files(tmp_path: Path) -> None:
    pixels = np.arange(100, dtype=np.int16).reshape(10, 10)
    blob = deepkedi.encrypt_image(pixels, KEY)
    assert np.array_equal(deepkedi.decrypt_pixels(blob, KEY), pixels)
    image = deepkedi.decrypt_image(blob, KEY)
    assert isinstance(image, deepkedi.MedicalImage) and image.format == "array"
    with pytest.raises(FormatError, match="decrypt_image"):
        deepkedi.decrypt_bytes(blob, KEY)


def test_datasets_round_trip_without_touching_the_input() -> None:
    ds = pydicom.dcmread(CT)
    before = str(ds)
    protected = deepkedi.encrypt_dataset(ds, KEY)
    assert str(ds) == before  # the caller's data set is not changed
    assert protected.PatientIdentityRemoved == "YES" and str(protected.PatientName) != str(ds.PatientName)
    assert protected.SOPClassUID == ds.SOPClassUID and protected.PixelData != ds.PixelData
    again = deepkedi.decrypt_dataset(protected, KEY)
    assert again.PixelData == ds.PixelData and again.PatientName == ds.PatientName
    assert again.SOPInstanceUID == ds.SOPInstanceUID
    with pytest.raises(FormatError):
        deepkedi.decrypt_dataset(ds, KEY)  # not DICOM-native
    tampered = deepkedi.encrypt_dataset(ds, KEY)
    words = bytearray(tampered.PixelData)
    words[10] ^= 1
    tampered.PixelData = bytes(words)
    with pytest.raises(AuthenticationError):
        deepkedi.decrypt_dataset(tampered, KEY)


# ----------------------------------------------------------------------------- folders


def test_trees_report_each_file_and_go_on_after_a_failure(tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "series").mkdir(parents=True)
    shutil.copy(CT, study / "ct.dcm")
    shutil.copy(MR, study / "series" / "mr.dcm")
    (study / "notes.txt").write_text("not an image")
    (study / ".hidden").write_text("left alone")
    seen: list[tuple[int, int, str]] = []
    result = deepkedi.encrypt_tree(
        study, tmp_path / "sealed", KEY, progress=lambda done, total, path: seen.append((done, total, path.name))
    )
    assert sorted(r.source.name for r in result.done) == ["ct.dcm", "mr.dcm"]
    assert [f.source.name for f in result.failed] == ["notes.txt"] and not result.ok
    assert isinstance(result.failed[0].error, UnsupportedImageError)
    assert seen[-1][0] == seen[-1][1] and [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    back = deepkedi.decrypt_tree(tmp_path / "sealed", tmp_path / "restored", KEY)
    assert back.ok and len(back.done) == 2
    assert _sha(tmp_path / "restored" / "series" / "mr.dcm") == _sha(MR)

    native = deepkedi.encrypt_tree(study, tmp_path / "native", KEY, as_dicom=True)
    assert len(native.done) == 2 and [p.name for p, _ in native.skipped] == ["notes.txt"]
    (tmp_path / "native" / "plain.dcm").write_bytes(MR.read_bytes())
    back = deepkedi.decrypt_tree(tmp_path / "native", tmp_path / "native-restored", KEY)
    assert back.ok and len(back.done) == 2 and [p.name for p, _ in back.skipped] == ["plain.dcm"]
    assert _sha(tmp_path / "native-restored" / "ct.dcm") == _sha(CT)


def test_trees_never_replace_a_protected_file(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    np.save(study / "a.npy", np.eye(4, dtype=np.uint8))
    keyfile = tmp_path / "out" / "a.npy.kedi"
    keyfile.parent.mkdir()
    keyfile.write_text("the key")
    with pytest.raises(ValueError, match="the key file"):
        deepkedi.encrypt_tree(study, tmp_path / "out", KEY, force=True, protect={keyfile: "the key file"})
    assert keyfile.read_text() == "the key"
