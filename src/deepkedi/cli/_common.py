"""What every `kedi` command shares: consoles, exit codes, key loading, error mapping."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, NoReturn

import typer
from rich.console import Console

from deepkedi.errors import (
    AuthenticationError,
    DeepKediError,
    FormatError,
    KeyFileError,
    KeyNotFoundError,
    KeyRevokedError,
    KeystoreError,
    OutputError,
    OutputExistsError,
    UnsupportedImageError,
)
from deepkedi.inputs import check_regular_input
from deepkedi.keys import Key, key_file_is_sealed, load_key

__all__ = [
    "EXIT_AUTH",
    "EXIT_INPUT",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "console",
    "err_console",
    "exit_code_for",
    "fail",
    "guarded",
    "load_key_for_cli",
]

EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INPUT = 4
EXIT_OUTPUT = 5

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code_for(exc: BaseException) -> int:
    """DESIGN.md's exit codes: 3 wrong key/tampered/truncated, 4 bad input, 2 usage."""
    if isinstance(exc, (AuthenticationError, KeyNotFoundError, KeyRevokedError)):
        return EXIT_AUTH
    if isinstance(exc, OutputError):
        return EXIT_OUTPUT
    input_errors = (
        UnsupportedImageError, FormatError, KeyFileError, KeystoreError, FileNotFoundError, IsADirectoryError
    )
    if isinstance(exc, input_errors):
        return EXIT_INPUT
    if isinstance(exc, (OutputExistsError, ValueError)):
        return EXIT_USAGE
    return 1


def message_for(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and not isinstance(exc, DeepKediError):
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    err_console.print(f"kedi: error: {message}", markup=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn expected failures into one line on stderr and the documented exit code."""
    try:
        yield
    except (DeepKediError, ValueError, OSError) as exc:
        fail(message_for(exc), exit_code_for(exc))


def _refuse_special_file(path: Path) -> None:
    """A FIFO or device where a passphrase, KEK or PEM file belongs: exit code 4, never a hang."""
    if path.exists():
        with guarded():
            check_regular_input(path, error=KeyFileError)


def _passphrase(passphrase_file: Path | None, prompt_for: Path) -> str:
    if passphrase_file is not None:
        _refuse_special_file(passphrase_file)
        try:
            return passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            fail(f"{passphrase_file}: cannot read passphrase file ({exc.strerror})", EXIT_USAGE)
    env = os.environ.get("KEDI_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        fail(
            f"{prompt_for} is sealed with a passphrase; give --passphrase-file FILE or set KEDI_PASSPHRASE",
            EXIT_USAGE,
        )
    return typer.prompt(f"Passphrase for {prompt_for}", hide_input=True)


def load_key_for_cli(path: Path, passphrase_file: Path | None) -> Key:
    """Load a key file, asking for its passphrase when it is sealed."""
    with guarded():
        sealed = key_file_is_sealed(path)
    with guarded():
        if sealed:
            return load_key(path, passphrase=_passphrase(passphrase_file, path))
        return load_key(path)
