"""Folder runs on fsspec URLs: ``memory://`` in one process, ``file://`` through the pool and the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import pytest
from folders import visible_files
from typer.testing import CliRunner

import deepkedi
from deepkedi import datasets
from deepkedi.batch import Status, run_batch
from deepkedi.cli import app

KEY = deepkedi.generate_key()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    datasets.write_samples(folder)
    for extra in folder.iterdir():
        if extra.is_file() and extra.suffix != ".dcm":
            extra.unlink()
    return folder


@pytest.fixture
def memory() -> fsspec.AbstractFileSystem:
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/kedi-test"):
        fs.rm("/kedi-test", recursive=True)


def test_memory_urls_round_trip_and_resume(study: Path, memory, tmp_path: Path) -> None:
    originals = visible_files(study)
    for rel, data in originals.items():
        memory.pipe_file(f"/kedi-test/in/{rel}", data)
    memory.pipe_file("/kedi-test/in/.hidden", b"never an input")
    book = tmp_path / "enc.sqlite"
    sealed = run_batch("memory://kedi-test/in", "memory://kedi-test/enc", KEY, mode="encrypt", jobs=1, manifest=book)
    assert sealed.ok and len(sealed.done) == len(originals)
    written = {p.removeprefix("/kedi-test/enc/"): memory.cat_file(p) for p in memory.find("/kedi-test/enc")}
    assert sorted(written) == sorted(f"{rel}.kedi" for rel in originals)
    # Nothing of a slice's pixels appears in its container.
    for rel, data in originals.items():
        assert data[-4096:] not in written[f"{rel}.kedi"]
    assert {o.entry.sha256 for o in sealed.done} == {hashlib.sha256(d).hexdigest() for d in originals.values()}
    # Resume reads the outputs' sizes and headers back through fsspec: nothing redone.
    again = run_batch(
        "memory://kedi-test/in", "memory://kedi-test/enc", KEY, mode="encrypt", jobs=1, manifest=book, resume=True
    )
    assert again.ok and len(again.earlier) == len(originals)
    # Without resume or force an output that exists is refused, never replaced.
    refused = run_batch("memory://kedi-test/in", "memory://kedi-test/enc", KEY, mode="encrypt", jobs=1, manifest=book)
    assert len(refused.refused) == len(originals)
    assert {p.removeprefix("/kedi-test/enc/"): memory.cat_file(p) for p in memory.find("/kedi-test/enc")} == written
    # Back to a local folder.
    back = run_batch("memory://kedi-test/enc", tmp_path / "back", KEY, mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "back") == originals
    assert [o.entry.status for o in back.outcomes] == [Status.DONE] * len(originals)


def test_memory_urls_are_refused_with_workers_and_an_output_url_needs_a_manifest(study: Path, memory) -> None:
    memory.pipe_file("/kedi-test/in/a.dcm", (study / "CT_small.dcm").read_bytes())
    with pytest.raises(ValueError, match="one process"):
        run_batch("memory://kedi-test/in", "memory://kedi-test/out", KEY, mode="encrypt", jobs=2)
    with pytest.raises(ValueError, match="manifest"):
        run_batch(study, "memory://kedi-test/out", KEY, mode="encrypt", jobs=1)


def _kedi(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_file_urls_through_the_pool_and_the_command_line(study: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "site.key"
    assert _kedi("keygen", "-o", keyfile)[0] == 0
    source, sealed = study.as_uri(), (tmp_path / "enc").as_uri()
    code, stdout, stderr = _kedi("encrypt", source, "-o", sealed, "--key", keyfile, "--jobs", "2", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["ok"] and summary["done"] == len(visible_files(study)) and summary["jobs"] == 2
    assert (tmp_path / "enc" / ".kedi-manifest.sqlite").is_file()  # a file:// output is a local folder
    code, _, stderr = _kedi("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key", keyfile)
    assert code == 0, stderr
    assert visible_files(tmp_path / "dec") == visible_files(study)
    # A missing folder, an unknown protocol: one line each, no traceback.
    code, _, stderr = _kedi("encrypt", (tmp_path / "nowhere").as_uri(), "-o", tmp_path / "x", "--key", keyfile)
    assert code == 4 and "no such folder" in stderr and "Traceback" not in stderr
    code, _, stderr = _kedi("encrypt", "nosuchfs://bucket/study", "-o", tmp_path / "y", "--key", keyfile)
    assert code == 2 and "unknown storage protocol 'nosuchfs'" in stderr and "bucket" not in stderr
