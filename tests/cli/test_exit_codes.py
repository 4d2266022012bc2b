"""The exit-code table through the command line: 0 ok, 2 usage, 3 authentication, 4 input, 5 output.

Every failure is one line on stderr, ``kedi: error: ...``, and no traceback (the
runner re-raises anything uncaught). Untrusted text in what is printed has its
control characters escaped.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepkedi.cli._common import EXIT_AUTH, EXIT_INPUT, EXIT_OUTPUT, EXIT_USAGE, exit_code_for, printable
from deepkedi.errors import (
    AuthenticationError,
    FormatError,
    InputTooLargeError,
    KeyFileError,
    KeyNotFoundError,
    KeyRevokedError,
    KeystoreError,
    OutputError,
    OutputExistsError,
    UnsupportedImageError,
)

LONG = "n" * 300  # longer than any file name a Linux filesystem takes (255 bytes)


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kedi: error: "), result.stderr
    return lines[0]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "slice.npy"
    np.save(path, np.random.default_rng(0).integers(0, 4096, (32, 40), dtype=np.uint16))
    return path


@pytest.fixture
def container(tmp_path: Path, kedi, keyfile: Path, image: Path) -> Path:
    path = tmp_path / "slice.kedi"
    assert kedi("encrypt", image, "-o", path, "--key", keyfile).exit_code == 0
    return path


# ------------------------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    "exc, code",
    [
        (AuthenticationError(), 3),
        (KeyNotFoundError("key 00 is not in the keystore"), 3),
        (KeyRevokedError("00" * 16, None), 3),
        (UnsupportedImageError("x"), 4),
        (InputTooLargeError("x"), 4),
        (FormatError("x"), 4),
        (KeyFileError("x"), 4),
        (KeystoreError("x"), 4),
        (FileNotFoundError(2, "No such file or directory", "in.npy"), 4),
        (OSError(36, "File name too long", "in.npy"), 4),
        (OutputError("x"), 5),
        (OSError(28, "No space left on device"), 5),
        (OSError(30, "Read-only file system"), 5),
        (OSError(27, "File too large"), 5),
        (OutputExistsError("x"), 2),
        (ValueError("x"), 2),
    ],
)
def test_one_table_maps_every_error(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code
    assert (EXIT_USAGE, EXIT_AUTH, EXIT_INPUT, EXIT_OUTPUT) == (2, 3, 4, 5)


def test_help_lists_the_codes(kedi) -> None:
    result = kedi("--help")
    assert result.exit_code == 0
    assert "Exit codes: 0 success; 2 usage or a missing extra; 3 authentication" in " ".join(result.stdout.split())


# ---------------------------------------------------------------------------------------------- 0, 2


def test_0_success(tmp_path: Path, kedi, keyfile: Path, image: Path, container: Path) -> None:
    result = kedi("decrypt", container, "-o", tmp_path / "back.npy", "--key", keyfile)
    assert result.exit_code == 0 and result.stderr == ""
    assert (tmp_path / "back.npy").read_bytes() == image.read_bytes()


def test_2_usage(tmp_path: Path, kedi, keyfile: Path, image: Path, container: Path) -> None:
    assert kedi("encrypt", image, "--key", keyfile).exit_code == 2  # no -o
    assert kedi("encrypt", image, "-o", tmp_path / "x.kedi", "--key", keyfile, "--no-such-option").exit_code == 2
    _one_error_line(kedi("encrypt", image, "-o", container, "--key", keyfile), 2)  # exists, no --force


# ------------------------------------------------------------------------------------------------- 3


def test_3_wrong_key(tmp_path: Path, kedi, container: Path) -> None:
    other = tmp_path / "other.key"
    assert kedi("keygen", "-o", other, "--no-gan").exit_code == 0
    line = _one_error_line(kedi("decrypt", container, "-o", tmp_path / "out.npy", "--key", other), 3)
    assert "decryption failed" in line and not (tmp_path / "out.npy").exists()


def test_3_unknown_key_id_is_the_same_code_in_every_command(tmp_path: Path, kedi, image: Path) -> None:
    # It was 3 when decrypting and 2 in `kedi keys`: one table now.
    kek = tmp_path / "kek"
    kek.write_text(os.urandom(32).hex())
    env = {"KEDI_KEYSTORE": f"sqlite:///{tmp_path / 'ks.db'}", "KEDI_PASSPHRASE": None, "KEDI_KEK": kek.read_text()}
    assert kedi("keys", "init", "--kek-file", kek, env=env).exit_code == 0
    unknown = "ab" * 16
    _one_error_line(kedi("keys", "show", unknown, env=env), 3)
    _one_error_line(kedi("keys", "revoke", unknown, "--yes", env=env), 3)
    _one_error_line(kedi("encrypt", image, "-o", tmp_path / "c.kedi", "--key-id", unknown, env=env), 3)


# ------------------------------------------------------------------------------------------------- 4


def test_4_corrupt_sqlite_keystore(tmp_path: Path, kedi) -> None:
    store = tmp_path / "ks.db"
    store.write_bytes(np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    for url in (f"sqlite:///{store}", str(store)):
        line = _one_error_line(kedi("keys", "list", "--keystore", url), 4)
        assert "not a database" in line


def test_4_malformed_keystore_field(tmp_path: Path, kedi) -> None:
    kek = tmp_path / "kek"
    kek.write_text(os.urandom(32).hex())
    url = f"sqlite:///{tmp_path / 'ks.db'}"
    assert kedi("keys", "init", "--keystore", url, "--kek-file", kek).exit_code == 0
    with sqlite3.connect(tmp_path / "ks.db") as conn:
        conn.execute("UPDATE kek_versions SET kdf = ?", ("[" * 100_000 + "]" * 100_000,))
    line = _one_error_line(kedi("keys", "new", "--keystore", url, "--kek-file", kek, "--no-gan"), 4)
    assert "damaged" in line


@pytest.mark.parametrize(
    "pixels, what",
    [
        (np.zeros((4, 4), np.longdouble), "float128"),
        (np.zeros((1,) * 15 + (4, 4), np.uint8), "dimensions"),
    ],
    ids=["float128", "17 dimensions"],
)
def test_4_images_the_container_cannot_hold(tmp_path: Path, kedi, keyfile: Path, pixels, what: str) -> None:
    if pixels.dtype.kind == "f" and pixels.dtype.itemsize <= 8:
        pytest.fail("this platform's long double is a double; the float128 case needs x86-64 or aarch64")
    src = tmp_path / "odd.npy"
    np.save(src, pixels)
    line = _one_error_line(kedi("encrypt", src, "-o", tmp_path / "odd.kedi", "--key", keyfile), 4)
    assert "odd.npy" in line and what in line
    assert not (tmp_path / "odd.kedi").exists()


def test_4_deeply_nested_key_file(tmp_path: Path, kedi, image: Path) -> None:
    key = tmp_path / "nested.key"
    key.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    line = _one_error_line(kedi("encrypt", image, "-o", tmp_path / "c.kedi", "--key", key), 4)
    assert "nested.key" in line and "nested" in line


def test_4_input_name_too_long(tmp_path: Path, kedi, keyfile: Path) -> None:
    missing = tmp_path / f"{LONG}.npy"
    for args in (
        ("encrypt", missing, "-o", tmp_path / "c.kedi", "--key", keyfile),
        ("decrypt", missing, "-o", tmp_path / "p.npy", "--key", keyfile),
        ("inspect", missing),
        ("metrics", missing),
    ):
        line = _one_error_line(kedi(*args), 4)
        assert "too long" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.key"]


# ------------------------------------------------------------------------------------------------- 5


def test_5_output_name_too_long(tmp_path: Path, kedi, keyfile: Path, image: Path, container: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (
        ("encrypt", image, "-o", tmp_path / f"{LONG}.kedi", "--key", keyfile),
        ("decrypt", container, "-o", tmp_path / f"{LONG}.npy", "--key", keyfile),
        ("inspect", container, "--cipher-image", tmp_path / f"{LONG}.npy"),
        ("keygen", "-o", tmp_path / f"{LONG}.key", "--no-gan"),
    ):
        line = _one_error_line(kedi(*args), 5)
        assert "cannot write the output" in line and "too long" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_long_but_valid_output_name_works(tmp_path: Path, kedi, keyfile: Path, image: Path) -> None:
    # The temporary file beside the output once took the whole name plus ~20 bytes: 250 bytes failed.
    out = tmp_path / ("x" * 245 + ".kedi")
    assert kedi("encrypt", image, "-o", out, "--key", keyfile).exit_code == 0 and out.is_file()


def _file_size_limit() -> None:
    # A file size limit fails write() with EFBIG, as a full disk fails it with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_5_disk_full(tmp_path: Path, keyfile: Path) -> None:
    src = tmp_path / "big.npy"
    np.save(src, np.random.default_rng(2).integers(0, 65536, (256, 512), dtype=np.uint16))  # 256 KiB
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for args in (
        ("encrypt", src, "-o", tmp_path / "big.kedi", "--key", keyfile),
        ("speckle", src, "-o", tmp_path / "noisy.npy"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "deepkedi.cli", *map(str, args)],
            preexec_fn=_file_size_limit,
            capture_output=True,
            check=False,
            text=True,
            env=env,
        )
        assert done.returncode == 5, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot write the output" in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy", "site.key"]


# ------------------------------------------------------------------------------------- untrusted text


def test_printable_escapes_control_characters() -> None:
    assert printable("plain name.dcm") == "plain name.dcm"
    assert printable("a\nb\r\tc\x1b[31md\x00\u2028\u200b") == "a\\nb\\r\\tc\\x1b[31md\\x00\\u2028\\u200b"
    assert printable("é ü 中") == "é ü 中"


def test_labels_cannot_forge_rows_or_drive_the_terminal(tmp_path: Path, kedi) -> None:
    kek = tmp_path / "kek"
    kek.write_text(os.urandom(32).hex())
    env = {"KEDI_KEYSTORE": f"sqlite:///{tmp_path / 'ks.db'}", "KEDI_PASSPHRASE": None, "KEDI_KEK": None}
    assert kedi("keys", "init", "--kek-file", kek, env=env).exit_code == 0
    forged = "x\n" + "f" * 32 + "  2026-01-01T00:00:00Z  active  kek v1  \x1b[31mforged"
    made = kedi("keys", "new", "--label", forged, "--no-gan", "--kek-file", kek, env=env)
    assert made.exit_code == 0, made.stderr
    key_id = made.stdout.strip()
    listed = kedi("keys", "list", env=env)
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(key_id)
    assert "\x1b" not in listed.stdout and "x\\n" + "f" * 32 in lines[0] and "\\x1b[31mforged" in lines[0]
    for command in (("keys", "show", key_id), ("keys", "audit")):
        shown = kedi(*command, env=env)
        assert shown.exit_code == 0 and "\x1b" not in shown.stdout
        assert not any(line.startswith("f" * 32) for line in shown.stdout.splitlines())


def test_file_names_in_messages_are_escaped(tmp_path: Path, kedi, keyfile: Path) -> None:
    odd = tmp_path / "a\nkedi: error: forged\x1b[2J.npy"
    line = _one_error_line(kedi("encrypt", odd, "-o", tmp_path / "c.kedi", "--key", keyfile), 4)
    assert "a\\nkedi: error: forged\\x1b[2J.npy" in line


def test_inspect_escapes_file_names_and_values(tmp_path: Path, kedi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short path: the table would truncate a long one
    odd = "[bold]scan\x1b[31m\n.npy"
    np.save(odd, np.zeros((4, 4), np.uint8))
    result = kedi("inspect", odd)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "[bold]scan\\x1b[31m\\n.npy" in result.stdout
