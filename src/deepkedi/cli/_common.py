"""What every `kedi` command shares: consoles, exit codes, key loading, error mapping."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Iterator, NoReturn, Optional

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
from deepkedi.imaging.limits import decoded_size_limit, parse_size
from deepkedi.keys import Key, key_file_is_sealed, load_key

__all__ = [
    "EXIT_AUTH",
    "EXIT_INPUT",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "MaxDecodedSize",
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


def _passphrase(passphrase_file: Path | None, prompt_for: Path) -> str:
    if passphrase_file is not None:
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


# --------------------------------------------------------------------------- decoded-size limit


def _decoded_size(value: str | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _limit_decoding(ctx: typer.Context, value: int | None) -> int | None:
    # The limit holds for the whole command and is undone when its context closes,
    # so no command body has to remember to apply it.
    ctx.with_resource(decoded_size_limit(value))
    return value


#: ``--max-decoded-size SIZE`` (env KEDI_MAX_DECODED) for every command that decodes
#: images: declaring the parameter applies the limit (imaging/limits.py) to the command.
MaxDecodedSize = Annotated[
    Optional[int],
    typer.Option(
        "--max-decoded-size",
        metavar="SIZE",
        envvar="KEDI_MAX_DECODED",
        parser=_decoded_size,
        callback=_limit_decoding,
        help=(
            "Refuse an image that would decode to more than SIZE bytes (512M, 4G, 4GiB). "
            "Default: 4 GiB, and at most 32 times the file's size past 256 MiB."
        ),
    ),
]
