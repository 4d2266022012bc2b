"""Folder runs through the batch engine: pool and serial agree, the manifest records, a killed run resumes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from folders import visible_files, wait_until_gone
from typer.testing import CliRunner

import deepkedi
from deepkedi import datasets
from deepkedi.batch import MANIFEST_NAME, ManifestMismatchError, Status, run_batch
from deepkedi.cli import app

SRC = str(Path(deepkedi.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC}
KEY = deepkedi.generate_key()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six CT slices, a 512x512 CT, CT_small and MR_small in a nested folder."""
    folder = tmp_path_factory.mktemp("samples")
    datasets.write_samples(folder)
    for extra in folder.iterdir():
        if extra.is_file() and extra.suffix != ".dcm":
            extra.unlink()
    return folder


def _rows(manifest: Path) -> list[tuple[str, str, str | None, str | None, int | None, int]]:
    with sqlite3.connect(manifest) as db:
        return db.execute("SELECT rel, status, sha256, key_id, output_size, size FROM entry ORDER BY rel").fetchall()


def test_pool_and_serial_restore_the_same_bytes_and_record_every_file(study: Path, tmp_path: Path) -> None:
    originals = visible_files(study)
    restored = {}
    for jobs in (1, 2):
        result = run_batch(study, tmp_path / f"enc{jobs}", KEY, mode="encrypt", jobs=jobs)
        assert result.ok and len(result.done) == len(originals) and result.jobs == jobs
        back = run_batch(tmp_path / f"enc{jobs}", tmp_path / f"dec{jobs}", KEY, mode="decrypt", jobs=jobs)
        assert back.ok and len(back.done) == len(originals)
        restored[jobs] = visible_files(tmp_path / f"dec{jobs}")
    assert restored[1] == restored[2] == originals
    assert (tmp_path / "enc2" / MANIFEST_NAME).stat().st_mode & 0o077 == 0  # names and hashes stay private
    rows = _rows(tmp_path / "enc2" / MANIFEST_NAME)
    assert [r[0] for r in rows] == sorted(originals)
    for rel, status, sha256, key_id, output_size, size in rows:
        assert status == Status.DONE
        assert sha256 == hashlib.sha256(originals[rel]).hexdigest() and size == len(originals[rel])
        assert key_id == KEY.key_id_hex
        assert output_size == (tmp_path / "enc2" / (rel + ".kedi")).stat().st_size


def test_as_dicom_folder_seals_what_is_not_dicom_beside_and_decrypts_back(study: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(study, mixed)
    (mixed / "notes.txt").write_text("not an image")
    result = run_batch(mixed, tmp_path / "native", KEY, mode="encrypt", as_dicom=True, jobs=2)
    assert result.ok and not result.skipped
    assert [o.entry.rel for o in result.opaque] == ["notes.txt"]
    assert (tmp_path / "native" / "notes.txt.kedi").is_file() and not (tmp_path / "native" / "notes.txt").exists()
    back = run_batch(tmp_path / "native", tmp_path / "back", KEY, mode="decrypt", jobs=2)
    assert back.ok and visible_files(tmp_path / "back") == visible_files(mixed)
    # Images only: what is not DICOM is skipped, as it was before opaque containers.
    only = run_batch(mixed, tmp_path / "only", KEY, mode="encrypt", as_dicom=True, only_images=True, jobs=1)
    assert only.ok and [(o.entry.rel, o.entry.status) for o in only.skipped] == [("notes.txt", Status.SKIPPED)]
    back = run_batch(tmp_path / "only", tmp_path / "only-back", KEY, mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "only-back") == visible_files(study)


def test_a_second_run_refuses_then_resume_keeps_what_verifies(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "enc"
    assert run_batch(study, out, KEY, mode="encrypt", jobs=1).ok
    before = visible_files(out)
    again = run_batch(study, out, KEY, mode="encrypt", jobs=1)
    assert not again.ok and len(again.refused) == len(before)
    # The refusal did not erase what the first run finished: resume keeps every file, rewrites none.
    resumed = run_batch(study, out, KEY, mode="encrypt", jobs=1, resume=True)
    assert resumed.ok and len(resumed.earlier) == len(before) and visible_files(out) == before
    # An output that no longer verifies (truncated) is redone, under the same name.
    victim = out / "study" / "slice-03.dcm.kedi"
    victim.write_bytes(victim.read_bytes()[:100])
    redone = run_batch(study, out, KEY, mode="encrypt", jobs=1, resume=True)
    assert redone.ok and [o.entry.rel for o in redone.outcomes if not o.earlier] == ["study/slice-03.dcm"]
    assert sorted(visible_files(out)) == sorted(before)
    assert run_batch(out, tmp_path / "dec", KEY, mode="decrypt", jobs=1).ok
    assert visible_files(tmp_path / "dec") == visible_files(study)
    # Another key is another run: its manifest is refused rather than mixed.
    with pytest.raises(ManifestMismatchError):
        run_batch(study, out, deepkedi.generate_key(), mode="encrypt", jobs=1, resume=True)


def test_decrypting_from_a_keystore_hands_workers_keys_not_the_keystore(study: Path, tmp_path: Path) -> None:
    from deepkedi.keys.keystore import Keystore

    with Keystore.init(f"sqlite:///{tmp_path / 'keys.db'}", kek_source=os.urandom(32), actor="tester") as store:
        key = store.new_key(actor="tester", gan=False)
        assert run_batch(study, tmp_path / "enc", key, mode="encrypt", jobs=2).ok
        back = run_batch(tmp_path / "enc", tmp_path / "dec", store, mode="decrypt", actor="tester", jobs=2)
    assert back.ok and visible_files(tmp_path / "dec") == visible_files(study)


# ----------------------------------------------------------------------------- the command line


def _kedi(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_summary_and_exit_codes(study: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "site.key"
    assert _kedi("keygen", "-o", keyfile)[0] == 0
    out = tmp_path / "enc"
    code, stdout, _ = _kedi("encrypt", study, "-o", out, "--key", keyfile, "--jobs", "2", "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["ok"] and summary["done"] == len(visible_files(study)) and summary["not_done"] == []
    # Again without --resume: every output exists; refused, exit 2, nothing rewritten.
    code, stdout, stderr = _kedi("encrypt", study, "-o", out, "--key", keyfile, "--json")
    summary = json.loads(stdout)
    assert code == 2 and summary["refused"] == len(visible_files(study)) and "--resume" in stderr
    assert {item["status"] for item in summary["not_done"]} == {"refused"}
    code, stdout, _ = _kedi("encrypt", study, "-o", out, "--key", keyfile, "--resume", "--json")
    assert code == 0 and json.loads(stdout)["done_earlier"] == len(visible_files(study))
    # A wrong key: authentication fails for every file, exit 3.
    other = tmp_path / "other.key"
    assert _kedi("keygen", "-o", other)[0] == 0
    code, stdout, _ = _kedi("decrypt", out, "-o", tmp_path / "bad", "--key", other, "--jobs", "2", "--json")
    assert code == 3 and json.loads(stdout)["failed"] == len(visible_files(study))
    # The summary line, and a manifest given elsewhere.
    code, stdout, _ = _kedi(
        "decrypt", out, "-o", tmp_path / "dec", "--key", keyfile, "--manifest", tmp_path / "run.sqlite"
    )
    assert code == 0 and stdout.startswith(
        f"decrypted {len(visible_files(study))} of {len(visible_files(study))} files from"
    )
    assert (tmp_path / "run.sqlite").is_file() and not (tmp_path / "dec" / MANIFEST_NAME).exists()
    # Batch options on a single file are a usage error.
    assert _kedi("encrypt", study / "CT_small.dcm", "-o", tmp_path / "x.kedi", "--key", keyfile, "--resume")[0] == 2


def _start_pooled_run(study: Path, tmp_path: Path) -> tuple[Path, Path, Path, list[str], subprocess.Popen]:
    """144 files in 24 series folders, a key, and `kedi encrypt --jobs 2` of them started in a group of its own.

    Returns the input folder, the key file, the output folder, the command (to resume
    with) and the running process.
    """
    big = tmp_path / "big"
    for n in range(24):
        shutil.copytree(study / "study", big / f"series-{n:02d}")
    keyfile = tmp_path / "site.key"
    assert _kedi("keygen", "-o", keyfile)[0] == 0
    out = tmp_path / "enc"
    command = [sys.executable, "-m", "deepkedi.cli", "encrypt", str(big), "-o", str(out), "--key", str(keyfile)]
    run = subprocess.Popen(
        [*command, "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,  # the CLI, its pool and the pool's server: one group, killed together
    )
    return big, keyfile, out, command, run


def test_kill_minus_9_mid_run_then_resume_finishes_every_file_once(study: Path, tmp_path: Path) -> None:
    slices = sorted((study / "study").iterdir())
    big, keyfile, out, command, run = _start_pooled_run(study, tmp_path)
    manifest = out / MANIFEST_NAME
    done = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and run.poll() is None:  # the seeded point: the first finished chunk
            if manifest.exists():
                try:
                    with sqlite3.connect(manifest, timeout=1) as db:
                        done = db.execute("SELECT COUNT(*) FROM entry WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0  # the schema is being created
                if done:
                    break
            time.sleep(0.01)
        assert run.poll() is None, "the run ended before it could be killed"
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
    assert 0 < done < 144
    wait_until_gone(run.pid)
    again = subprocess.run(
        [*command, "--jobs", "2", "--resume", "--json"], capture_output=True, text=True, env=ENV, check=False
    )
    summary = json.loads(again.stdout)
    assert again.returncode == 0, again.stderr
    assert summary["done"] == 144 and 0 < summary["done_earlier"] < 144
    assert [r[1] for r in _rows(manifest)] == ["done"] * 144
    # Exactly one output per input, no part files, and every output decrypts to its input.
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    written = [w for w in written if not w.startswith(".kedi-manifest")]
    expected = sorted(f"series-{n:02d}/{s.name}.kedi" for n in range(24) for s in slices)
    assert [w for w in written if "/" in w] == expected
    assert not list(out.rglob("*.part"))
    assert _kedi("decrypt", out, "-o", tmp_path / "dec", "--key", keyfile, "--jobs", "2", "-q")[0] == 0
    assert visible_files(tmp_path / "dec") == visible_files(big)


def test_ctrl_c_stops_a_pooled_run_quietly_and_resume_finishes_it(study: Path, tmp_path: Path) -> None:
    _big, _keyfile, out, command, run = _start_pooled_run(study, tmp_path)
    manifest = out / MANIFEST_NAME
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and run.poll() is None and not manifest.exists():
            time.sleep(0.01)
        assert run.poll() is None, "the run ended before it could be interrupted"
        os.killpg(run.pid, signal.SIGINT)  # what a terminal sends the whole foreground group
        _, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    wait_until_gone(run.pid)
    again = subprocess.run([*command, "--resume", "--json"], capture_output=True, text=True, env=ENV, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["done"] == 144 and not list(out.rglob("*.part"))
