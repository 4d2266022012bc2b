"""`kedi encrypt` / `kedi decrypt`: byte-exact restoration, exit codes, atomic outputs, folders."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepkedi.datasets import sample_corpus
from deepkedi.errors import AuthenticationError
from deepkedi.transforms.zigzag import ZigzagPattern

CORPUS = sample_corpus()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sample", CORPUS, ids=[s.name for s in CORPUS])
def test_corpus_round_trip_through_cli(sample, tmp_path: Path, kedi, keyfile: Path) -> None:
    for pattern in ZigzagPattern:
        container = tmp_path / f"{pattern.value}.kedi"
        restored = tmp_path / f"{pattern.value}-{sample.path.name}"
        result = kedi("encrypt", sample.path, "-o", container, "--key", keyfile, "--pattern", pattern.value)
        assert result.exit_code == 0, result.stderr
        result = kedi("decrypt", container, "-o", restored, "--key", keyfile)
        assert result.exit_code == 0, result.stderr
        assert _sha(restored) == _sha(sample.path)


@pytest.fixture
def container(tmp_path: Path, kedi, keyfile: Path) -> Path:
    src = tmp_path / "slice.npy"
    np.save(src, np.random.default_rng(0).integers(0, 4096, (3, 40, 50), dtype=np.uint16))
    out = tmp_path / "slice.npy.kedi"
    assert kedi("encrypt", src, "-o", out, "--key", keyfile).exit_code == 0
    return out


def _assert_auth_failure(result, output: Path) -> None:
    assert result.exit_code == 3
    assert result.stderr.strip() == f"kedi: error: {AuthenticationError.MESSAGE}"
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]


def test_any_flipped_bit_truncation_or_wrong_key_exits_3_with_one_message(
    tmp_path: Path, kedi, keyfile: Path, container: Path
) -> None:
    data = container.read_bytes()
    out = tmp_path / "restored.npy"
    rng = np.random.default_rng(1)
    positions = sorted({*range(120), *rng.integers(0, len(data), 40).tolist(), len(data) - 1})
    bad = tmp_path / "bad.kedi"
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(damaged)
        _assert_auth_failure(kedi("decrypt", bad, "-o", out, "--key", keyfile), out)
    for cut in [0, 1, 7, 8, 11, 50, 200, len(data) // 2, len(data) - 17, len(data) - 1]:
        bad.write_bytes(data[:cut])
        _assert_auth_failure(kedi("decrypt", bad, "-o", out, "--key", keyfile), out)
    other = tmp_path / "other.key"
    assert kedi("keygen", "-o", other).exit_code == 0
    _assert_auth_failure(kedi("decrypt", container, "-o", out, "--key", other), out)


@pytest.mark.parametrize(
    "name, content",
    [
        ("garbage.bin", os.urandom(4096)),
        ("garbage.dcm", os.urandom(4096)),
        ("empty.dcm", b""),
        ("empty.png", b""),
        ("picture.dcm", b"\x89PNG\r\n\x1a\n" + os.urandom(200)),
        ("text.nii", b"hello" * 100),
    ],
)
def test_bad_inputs_exit_4_with_one_line(tmp_path: Path, kedi, keyfile: Path, name: str, content: bytes) -> None:
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out.kedi"
    result = kedi("encrypt", src, "-o", out, "--key", keyfile)
    assert result.exit_code == 4
    assert len(result.stderr.strip().splitlines()) == 1 and str(src) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()


def test_png_renamed_dcm_says_what_it_is(tmp_path: Path, kedi, keyfile: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    shutil.copy(tmp_path / "x.png", tmp_path / "x.dcm")
    result = kedi("encrypt", tmp_path / "x.dcm", "-o", tmp_path / "o.kedi", "--key", keyfile)
    assert result.exit_code == 4
    assert "DICOM" in result.stderr and "PNG" in result.stderr


def test_damaged_dicom_header_exits_4(tmp_path: Path, kedi, keyfile: Path) -> None:
    ct = next(s for s in CORPUS if s.name.endswith("CT_small.dcm"))
    data = bytearray(ct.path.read_bytes())
    data[140:400] = os.urandom(260)
    src = tmp_path / "damaged.dcm"
    src.write_bytes(data)
    result = kedi("encrypt", src, "-o", tmp_path / "o.kedi", "--key", keyfile)
    assert result.exit_code == 4, result.stderr
    assert "Traceback" not in result.stderr


def test_not_a_container_exits_4(tmp_path: Path, kedi, keyfile: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("these are not the bytes you are looking for")
    result = kedi("decrypt", src, "-o", tmp_path / "out", "--key", keyfile)
    assert result.exit_code == 4
    assert "not a deepkedi container" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path, kedi, keyfile: Path, container: Path) -> None:
    assert kedi("encrypt").exit_code == 2
    assert kedi("encrypt", container, "--key", keyfile).exit_code == 2  # no -o
    assert kedi("encrypt", container, "-o", tmp_path / "x", "--key", keyfile, "--pattern", "spiral").exit_code == 2
    src = tmp_path / "slice.npy"
    # existing output without --force
    result = kedi("encrypt", src, "-o", container, "--key", keyfile)
    assert result.exit_code == 2 and "--force" in result.stderr
    # the input itself as output
    result = kedi("encrypt", src, "-o", src, "--key", keyfile, "--force")
    assert result.exit_code == 2
    assert np.load(src).shape == (3, 40, 50)


def test_force_replaces(tmp_path: Path, kedi, keyfile: Path, container: Path) -> None:
    src = tmp_path / "slice.npy"
    before = container.read_bytes()
    assert kedi("encrypt", src, "-o", container, "--key", keyfile, "--force").exit_code == 0
    assert container.read_bytes() != before


def test_folder_mode_mirrors_tree_and_seals_what_is_not_an_image(tmp_path: Path, kedi, keyfile: Path) -> None:
    tree = tmp_path / "study"
    (tree / "series1").mkdir(parents=True)
    (tree / "series2").mkdir()
    for sample in CORPUS[:3]:
        shutil.copy(sample.path, tree / "series1" / sample.path.name)
    np.save(tree / "series2" / "a.npy", np.arange(100, dtype=np.int16).reshape(10, 10))
    (tree / "series2" / "readme.txt").write_text("not an image")
    enc = tmp_path / "enc"
    result = kedi("encrypt", tree, "-o", enc, "--key", keyfile)
    assert result.exit_code == 0, result.stderr
    assert "1 sealed opaque" in result.stdout
    assert (enc / "series2" / "a.npy.kedi").exists() and (enc / "series2" / "readme.txt.kedi").exists()
    dec = tmp_path / "dec"
    result = kedi("decrypt", enc, "-o", dec, "--key", keyfile)
    assert result.exit_code == 0, result.stderr
    for original in tree.rglob("*"):
        if original.is_file():
            assert _sha(dec / original.relative_to(tree)) == _sha(original)
    # --only-images leaves what is not an image out, deliberately (exit 0).
    result = kedi("encrypt", tree, "-o", tmp_path / "only", "--key", keyfile, "--only-images")
    assert result.exit_code == 0 and "skipped 1 non-image" in result.stderr
    assert not (tmp_path / "only" / "series2" / "readme.txt.kedi").exists()


def test_sealed_key_without_terminal(tmp_path: Path, kedi, container: Path) -> None:
    (tmp_path / "pass").write_text("s3cret\n")
    sealed = tmp_path / "sealed.key"
    result = kedi("keygen", "-o", sealed, "--passphrase-file", tmp_path / "pass")
    assert result.exit_code == 0, result.stderr
    src = tmp_path / "slice.npy"
    out = tmp_path / "s.kedi"
    assert kedi("encrypt", src, "-o", out, "--key", sealed).exit_code == 2  # no passphrase, no terminal
    assert kedi("encrypt", src, "-o", out, "--key", sealed, env={"KEDI_PASSPHRASE": "s3cret"}).exit_code == 0
    result = kedi("decrypt", out, "-o", tmp_path / "r.npy", "--key", sealed, "--passphrase-file", tmp_path / "pass")
    assert result.exit_code == 0
    result = kedi("decrypt", out, "-o", tmp_path / "r2.npy", "--key", sealed, env={"KEDI_PASSPHRASE": "nope"})
    assert result.exit_code == 3


def test_real_entry_point(tmp_path: Path) -> None:
    kedi = [sys.executable, "-m", "deepkedi.cli"]
    key = tmp_path / "k.key"
    run = subprocess.run([*kedi, "keygen", "-o", str(key), "--json"], capture_output=True, check=False, text=True)
    assert run.returncode == 0, run.stderr
    assert '"key_id"' in run.stdout
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    src = tmp_path / "x.npy"
    np.save(src, np.eye(5, dtype=np.uint8))
    bad = tmp_path / "bad.kedi"
    bad.write_bytes(b"\x89KEDI\r\n\x1a" + b"\x01" * 20)
    run = subprocess.run(
        [*kedi, "decrypt", str(bad), "-o", str(tmp_path / "o"), "--key", str(key)],
        capture_output=True,
        check=False,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_crafted_scrypt_parameters_in_a_key_file_exit_4_before_scrypt(
    tmp_path: Path, kedi, container: Path, monkeypatch
) -> None:
    import json

    from deepkedi.keys import keyfile

    (tmp_path / "pass").write_text("s3cret\n")
    sealed = tmp_path / "sealed.key"
    assert kedi("keygen", "-o", sealed, "--no-gan", "--passphrase-file", tmp_path / "pass").exit_code == 0
    doc = json.loads(sealed.read_text())
    doc["sealed_secret"].update(n=2**22, r=32, p=16)  # 16 GiB of scrypt memory
    sealed.write_text(json.dumps(doc))

    def no_scrypt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("scrypt ran on parameters over the cap")

    monkeypatch.setattr(keyfile, "Scrypt", no_scrypt)
    pw = ["--passphrase-file", tmp_path / "pass"]
    result = kedi("decrypt", container, "-o", tmp_path / "r.npy", "--key", sealed, *pw)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.count("\n") == 1 and "scrypt parameters" in result.stderr
    assert not (tmp_path / "r.npy").exists()


def test_output_never_replaces_the_key_the_keystore_or_the_input(tmp_path: Path, kedi, keyfile: Path) -> None:
    src = tmp_path / "slice.npy"
    np.save(src, np.arange(20, dtype=np.uint8).reshape(4, 5))
    (tmp_path / "pass").write_text("pw\n")
    link = tmp_path / "link.key"
    link.symlink_to(keyfile)
    hard = tmp_path / "hard.npy"
    os.link(src, hard)
    keystore = tmp_path / "ks.db"
    keystore.write_bytes(b"a keystore")
    kept = {p: p.read_bytes() for p in (src, keyfile, keystore, tmp_path / "pass")}
    cases = [
        ("encrypt", src, keyfile, ("--key", keyfile), "the key file"),
        ("encrypt", src, link, ("--key", keyfile), "the key file"),  # through a symbolic link
        ("encrypt", src, keyfile, ("--key", link), "the key file"),
        ("encrypt", src, hard, ("--key", keyfile), "the input"),  # through a hard link
        (
            "encrypt",
            src,
            tmp_path / "pass",
            ("--key", keyfile, "--passphrase-file", tmp_path / "pass"),
            "the passphrase file",
        ),
        ("encrypt", src, keystore, ("--keystore", f"sqlite:///{keystore}", "--key-id", "0" * 32), "the keystore"),
        ("encrypt", src, keystore, ("--keystore", str(keystore), "--key-id", "0" * 32), "the keystore"),
        ("encrypt", src, keyfile, ("--suite", "paper", "--key", keyfile), "the key file"),
        ("decrypt", src, keyfile, ("--key", keyfile), "the key file"),
        ("decrypt", src, keystore, ("--keystore", f"sqlite:///{keystore}", "--key-id", "0" * 32), "the keystore"),
    ]
    for command, input, output, options, what in cases:
        result = kedi(command, input, "-o", output, *options, "--force")
        assert result.exit_code == 2, (command, output, result.stderr)
        assert what in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in kept} == kept
    assert link.resolve() == keyfile.resolve()


def test_folder_output_never_replaces_the_key(tmp_path: Path, kedi, keyfile: Path) -> None:
    tree = tmp_path / "study"
    tree.mkdir()
    np.save(tree / "a.npy", np.eye(4, dtype=np.uint8))
    enc = tmp_path / "enc"
    assert kedi("encrypt", tree, "-o", enc, "--key", keyfile).exit_code == 0
    # a container named like the key, in the folder the key sits in: decrypting would replace the key
    shutil.copy(enc / "a.npy.kedi", tmp_path / "site.key.kedi")
    before = keyfile.read_bytes()
    result = kedi("decrypt", tmp_path, "-o", tmp_path, "--key", keyfile, "--force")
    assert result.exit_code == 2 and "the key file" in result.stderr
    assert keyfile.read_bytes() == before


# ------------------------------------------------------------------------------- summary lines


def test_success_prints_one_summary_line_with_the_containers_key_id(tmp_path: Path, kedi, keyfile: Path) -> None:
    import json

    # A long path: the line must not wrap at the console's 80 columns (scripts read it).
    folder = tmp_path / ("a-rather-long-folder-name-" * 3)
    folder.mkdir()
    src = folder / "slice.npy"
    np.save(src, np.arange(40 * 50, dtype=np.uint16).reshape(40, 50))
    out = folder / "slice.kedi"
    result = kedi("encrypt", src, "-o", out, "--key", keyfile, "--pattern", "diagonal")
    assert result.exit_code == 0 and result.stderr == ""
    key_id = json.loads(kedi("inspect", out, "--json").stdout)["key_id"]
    assert result.stdout == f"encrypted {src} to {out} (hybrid suite, diagonal zigzag, key {key_id})\n"
    back = folder / "back.npy"
    result = kedi("decrypt", out, "-o", back, "--key", keyfile)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == f"decrypted {out} to {back} (hybrid suite, diagonal zigzag, key {key_id})\n"


def test_a_folder_run_says_how_many_files(tmp_path: Path, kedi, keyfile: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    for index in range(3):
        np.save(study / f"s{index}.npy", np.full((8, 8), index, dtype=np.uint16))
    result = kedi("encrypt", study, "-o", tmp_path / "enc", "--key", keyfile)
    assert result.exit_code == 0, result.stderr
    line, *rest = result.stdout.splitlines()
    assert not rest and line.startswith(f"encrypted 3 of 3 files from {study} to {tmp_path / 'enc'} (hybrid suite,")
    result = kedi("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key", keyfile)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"decrypted 3 of 3 files from {tmp_path / 'enc'} to {tmp_path / 'dec'} (")


def test_quiet_prints_nothing_but_keeps_errors(tmp_path: Path, kedi, keyfile: Path) -> None:
    src = tmp_path / "slice.npy"
    np.save(src, np.arange(64, dtype=np.uint16).reshape(8, 8))
    result = kedi("encrypt", src, "-o", tmp_path / "s.kedi", "--key", keyfile, "-q")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    result = kedi("decrypt", tmp_path / "s.kedi", "-o", tmp_path / "s.npy", "--key", keyfile, "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    result = kedi("decrypt", tmp_path / "s.kedi", "-o", tmp_path / "s.npy", "--key", keyfile, "-q")
    assert result.exit_code == 2 and "s.npy" in result.stderr  # exists: still said, on stderr
