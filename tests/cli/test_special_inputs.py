"""A FIFO or a device in place of any file a command reads: one line and exit code 4, never a hang.

Opening a FIFO for reading blocks until a writer comes, and ``/dev/urandom`` never
ends. Each case runs the real entry point in a subprocess with a timeout, so that a
command that would block fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepkedi.keys import KeyImage, save_key_image

#: Seconds a command may take to refuse its input (it starts Python and imports deepkedi).
TIMEOUT = 20

#: (name, arguments; FIFO stands for the FIFO, other names for the files of `files`).
CASES = [
    ("encrypt-input", ["encrypt", "FIFO", "-o", "OUT/c.kedi", "--key", "site.key"]),
    ("encrypt-key", ["encrypt", "slice.npy", "-o", "OUT/c.kedi", "--key", "FIFO"]),
    (
        "encrypt-passphrase",
        ["encrypt", "slice.npy", "-o", "OUT/c.kedi", "--key", "sealed.key", "--passphrase-file", "FIFO"],
    ),
    ("encrypt-as-dicom", ["encrypt", "FIFO", "-o", "OUT/c.dcm", "--as-dicom", "--key", "site.key"]),
    ("encrypt-paper-input", ["encrypt", "FIFO", "-o", "OUT/c.kedi", "--suite", "paper", "--key", "key.png"]),
    ("encrypt-paper-key", ["encrypt", "slice.npy", "-o", "OUT/c.kedi", "--suite", "paper", "--key", "FIFO"]),
    ("decrypt-input", ["decrypt", "FIFO", "-o", "OUT/r.npy", "--key", "site.key"]),
    ("decrypt-key", ["decrypt", "c.kedi", "-o", "OUT/r.npy", "--key", "FIFO"]),
    (
        "decrypt-passphrase",
        ["decrypt", "sealed.kedi", "-o", "OUT/r.npy", "--key", "sealed.key", "--passphrase-file", "FIFO"],
    ),
    ("decrypt-paper-key", ["decrypt", "paper.kedi", "-o", "OUT/r.npy", "--key", "FIFO"]),
    ("inspect", ["inspect", "FIFO"]),
    ("metrics", ["metrics", "FIFO"]),
    ("metrics-against", ["metrics", "slice.npy", "--against", "FIFO"]),
    ("nist", ["nist", "FIFO"]),
    ("nist-urandom", ["nist", "/dev/urandom"]),
    ("speckle", ["speckle", "FIFO", "-o", "OUT/s.npy"]),
    ("despeckle", ["despeckle", "FIFO", "-o", "OUT/d.npy"]),
    ("keygen-passphrase", ["keygen", "-o", "OUT/k.key", "--passphrase-file", "FIFO"]),
    ("keygen-paper-like", ["keygen", "--suite", "paper", "--like", "FIFO", "-o", "OUT/k.png"]),
    (
        "keygen-paper-weights",
        ["keygen", "--suite", "paper", "--like", "slice.npy", "--weights", "FIFO", "-o", "OUT/k.png"],
    ),
    ("keys-init-passphrase", ["keys", "init", "--keystore", "sqlite:///OUT/ks.db", "--passphrase-file", "FIFO"]),
    ("keys-init-kek", ["keys", "init", "--keystore", "sqlite:///OUT/ks.db", "--kek-file", "FIFO"]),
    ("keys-new-passphrase", ["keys", "new", "--passphrase-file", "FIFO"]),
    ("keys-rotate-new", ["keys", "rotate", "--passphrase-file", "pw", "--new-passphrase-file", "FIFO"]),
    ("keys-rewrap-old", ["keys", "rewrap", "--passphrase-file", "pw", "--old-passphrase-file", "FIFO"]),
    ("keys-export-to", ["keys", "export", "KEYID", "--to", "FIFO", "-o", "OUT/e.kexp", "--passphrase-file", "pw"]),
    ("keys-import-file", ["keys", "import", "FIFO", "--identity", "site-b.key", "--passphrase-file", "pw"]),
    ("keys-import-identity", ["keys", "import", "e.kexp", "--identity", "FIFO", "--passphrase-file", "pw"]),
    ("keystore-is-a-fifo", ["keys", "list", "--keystore", "sqlite:///FIFO"]),
    ("keystore-init-on-a-fifo", ["keys", "init", "--keystore", "sqlite:///FIFO", "--passphrase-file", "pw"]),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every file the cases name, made once through the command line in-process."""
    from typer.testing import CliRunner

    from deepkedi.cli import app

    root = tmp_path_factory.mktemp("special-inputs")
    runner = CliRunner()
    env = {"KEDI_KEYSTORE": f"sqlite:///{root / 'ks.db'}", "KEDI_PASSPHRASE": None, "KEDI_KEK": None}

    def kedi(*args: object) -> str:
        result = runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.stderr)
        return result.stdout

    np.save(root / "slice.npy", np.random.default_rng(0).integers(0, 4096, (64, 64), dtype=np.uint16))
    (root / "pw").write_text("correct horse\n")
    kedi("keygen", "-o", root / "site.key", "--no-gan")
    kedi("keygen", "-o", root / "sealed.key", "--no-gan", "--passphrase-file", root / "pw")
    kedi("encrypt", root / "slice.npy", "-o", root / "c.kedi", "--key", root / "site.key")
    kedi(
        "encrypt",
        root / "slice.npy",
        "-o",
        root / "sealed.kedi",
        "--key",
        root / "sealed.key",
        "--passphrase-file",
        root / "pw",
    )
    pixels = np.random.default_rng(1).integers(0, 65536, (64, 64), dtype=np.uint16)
    save_key_image(KeyImage(pixels, seed=1, created="2026-01-01T00:00:00Z"), root / "key.png")
    kedi("encrypt", root / "slice.npy", "-o", root / "paper.kedi", "--suite", "paper", "--key", root / "key.png")
    kedi("keys", "init", "--passphrase-file", root / "pw")
    key_id = json.loads(kedi("keys", "new", "--no-gan", "--json", "--passphrase-file", root / "pw"))["key_id"]
    (root / "KEYID").write_text(key_id)
    kedi("keys", "recipient", "-o", root / "site-b")
    kedi("keys", "export", key_id, "--to", root / "site-b.pub", "-o", root / "e.kexp", "--passphrase-file", root / "pw")
    return root


@pytest.mark.parametrize("args", [args for _, args in CASES], ids=[name for name, _ in CASES])
def test_special_file_input_exits_4_at_once(files: Path, tmp_path: Path, args: list[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "out").mkdir()
    key_id = (files / "KEYID").read_text()

    def resolve(arg: str) -> str:
        arg = arg.replace("sqlite:///FIFO", f"sqlite:///{fifo}").replace("sqlite:///OUT/", f"sqlite:///{tmp_path}/out/")
        if arg == "FIFO":
            return str(fifo)
        if arg == "KEYID":
            return key_id
        if arg.startswith("OUT/"):
            return str(tmp_path / "out" / arg[4:])
        return str(files / arg) if (files / arg).exists() else arg

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEDI_")}
    env["KEDI_KEYSTORE"] = f"sqlite:///{files / 'ks.db'}"
    command = [sys.executable, "-m", "deepkedi.cli", *map(resolve, args)]
    try:
        run = subprocess.run(
            command, capture_output=True, check=False, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`kedi {' '.join(args)}` still running after {TIMEOUT} s: it blocked on the FIFO")
    errors = [line for line in run.stderr.splitlines() if not line.startswith("warning:")]
    assert run.returncode == 4, run.stderr
    assert len(errors) == 1 and errors[0].startswith("kedi: error: "), run.stderr
    assert "not a regular file" in errors[0] or "no keystore" in errors[0], errors[0]
    assert "Traceback" not in run.stderr
    assert list((tmp_path / "out").iterdir()) == []  # nothing written
