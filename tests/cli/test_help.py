"""Every help screen reads like the rest of the ecosystem and ends with examples that run as written.

Each `kedi ... --help` is rendered as a user sees it (80 columns): flags carry no
``<bool>`` placeholder, the usage line names arguments ``INPUT``, not ``{input}``,
and an "Examples" section shows the command itself at work, without a wrapped
line. Then every screen's examples run, as one shell script per screen, in a
folder of the sample files they name (`kedi samples DIR`: CT_small.dcm,
MR_small.dcm, scan.dcm, study/, keystream.bin, pixels.npy) with a keystore of
their own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from deepkedi.cli import app


def _screens() -> list[tuple[str, ...]]:
    """The command path of every help screen: the root, each group and each command."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


SCREENS = _screens()


def _help(path: tuple[str, ...], columns: int = 80) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _examples(text: str) -> list[str]:
    """The example lines of a rendered help screen, as written (continuations kept)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line.rstrip())
    return rows


def test_there_is_a_screen_per_command() -> None:
    assert {("encrypt",), ("decrypt",), ("keys",), ("keys", "new")} <= set(SCREENS)


@pytest.mark.parametrize("path", SCREENS, ids=lambda path: " ".join(("kedi", *path)))
def test_help_reads_like_the_ecosystem(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "<bool>" not in text
    # Typer's type placeholders (<path>, <int>, <hybrid|paper>) give way to PATH, INTEGER, [hybrid|paper].
    assert not re.search(r"<[a-z|\[\] ]+>", text), text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    arguments = re.sub(r"\[OPTIONS\]|COMMAND \[ARGS\]\.\.\.", "", usage.split(" ".join(("kedi", *path)), 1)[1])
    assert arguments.strip() == arguments.strip().upper(), usage  # INPUT, KEY_ID, KEY_IDS...
    examples = _examples(text)
    command = " ".join(("kedi", *path))
    assert any(line.strip().startswith(command) for line in examples), (command, examples)
    # No example wraps at 80 columns: a wrapped line would lose the indent (and break on copy and paste).
    assert all(line.startswith("   ") for line in examples), examples


def test_flags_show_no_placeholder_and_values_show_one() -> None:
    text = " ".join(_help(("encrypt",), columns=200).split())
    assert "--force Replace existing outputs." in text
    assert "--output -o PATH" in text and "--suite [hybrid|paper]" in text
    assert "Usage: kedi encrypt [OPTIONS] INPUT" in text


def test_a_missing_argument_is_named_as_in_the_usage_line() -> None:
    result = CliRunner().invoke(app, ["encrypt"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "Missing argument 'INPUT'" in result.output


def test_help_paragraphs_wrap_at_the_terminal_width_not_the_source_width() -> None:
    # keygen's docstring is hard-wrapped at 88 columns; at 120 no line may break before the edge.
    text = _help(("keygen",), columns=120)
    assert "mixes a ZZ-GAN key image with 32 bytes of OS randomness" in text


# ---------------------------------------------------------------------------------- examples run


def _make_samples(folder: Path) -> None:
    """The files the examples name, as `kedi samples DIR` writes them."""
    result = CliRunner().invoke(app, ["samples", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples") / "files"
    _make_samples(folder)
    return folder


def _run_examples(path: tuple[str, ...], samples: Path, tmp_path: Path) -> None:
    """The screen's examples as one bash script (`set -e`) in a copy of the samples, with a keystore of their own."""
    work = tmp_path / "work"
    shutil.copytree(samples, work)
    script = "\n".join(line.strip() for line in _examples(_help(path)))
    env = {
        **os.environ,
        "KEDI_KEYSTORE": f"sqlite:///{tmp_path / 'keystore.db'}",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PY": sys.executable,
    }
    for name in ("KEDI_PASSPHRASE", "KEDI_KEK", "KEDI_MAX_DECODED"):
        env.pop(name, None)
    # `kedi` is this interpreter's deepkedi, whatever is on PATH; the function reaches $(...) too.
    prelude = 'set -euo pipefail\nkedi() { "$PY" -m deepkedi.cli "$@"; }\n'
    done = subprocess.run(
        ["bash", "-c", prelude + script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, f"{script}\n--- exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow  # some sixty `kedi` processes, a training run and a report among them: about 3 minutes
@pytest.mark.parametrize("path", SCREENS, ids=lambda path: " ".join(("kedi", *path)))
def test_examples_run_as_written(path: tuple[str, ...], samples: Path, tmp_path: Path) -> None:
    _run_examples(path, samples, tmp_path)
