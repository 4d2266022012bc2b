"""What every `kedi` command shares: consoles, exit codes, key loading, error mapping.

Exit codes (one table, applied by :func:`exit_code_for` for every command):

====  =====================================================================
code  meaning
====  =====================================================================
0     success
2     usage: bad command-line arguments, an existing output without ``--force``,
      a command that needs an extra this installation lacks (``MissingExtraError``)
3     authentication: wrong key, modified or truncated container, revoked or unknown key
4     bad or unsupported input: unreadable, malformed, too large, not a container
5     output or environment failure: disk full, read-only folder, name too long
====  =====================================================================
"""

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.models import CommandFunctionType

from deepkedi.errors import (
    AuthenticationError,
    DeepKediError,
    FormatError,
    KeyFileError,
    KeyNotFoundError,
    KeyRevokedError,
    KeystoreError,
    MissingExtraError,
    OutputError,
    OutputExistsError,
    UnsupportedImageError,
)
from deepkedi.imaging.limits import DEFAULT_WORKING_MEMORY, decoded_size_limit, format_size, parse_size
from deepkedi.inputs import check_regular_input

if TYPE_CHECKING:
    from deepkedi.cipher.keytypes import Key

__all__ = [
    "EXIT_AUTH",
    "EXIT_INPUT",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "GuardedTyper",
    "MaxDecodedSize",
    "console",
    "err_console",
    "exit_code_for",
    "fail",
    "guarded",
    "load_key_for_cli",
    "max_decoded_size_option",
    "message_for",
    "printable",
    "read_passphrase_file",
    "resolve_passphrase",
]

EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INPUT = 4
EXIT_OUTPUT = 5

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


#: OSError numbers that only writing produces: the output or its filesystem is at fault, not the input.
_OUTPUT_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EFBIG) if code is not None
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an expected failure: the one table every command applies (module docstring).

    Library errors map by type (``deepkedi.errors``). An :class:`OSError` that
    reaches here unwrapped is classified by its number: disk full, quota,
    read-only filesystem or file too large is an output failure (5); anything
    else (missing, unreadable, name too long) concerns an input (4). Outputs
    written through :mod:`deepkedi.fileio` already arrive as :class:`OutputError`.
    A :class:`ValueError` is a bad argument (2); inputs that are malformed raise
    the input errors of :mod:`deepkedi.errors` instead. A missing optional
    dependency (:class:`~deepkedi.errors.MissingExtraError`, naming the extra to
    install) is 2 as well: the command cannot run as asked here, and no input is at fault.
    """
    if isinstance(exc, (AuthenticationError, KeyNotFoundError, KeyRevokedError)):
        return EXIT_AUTH
    if isinstance(exc, OutputError):
        return EXIT_OUTPUT
    if isinstance(exc, (UnsupportedImageError, FormatError, KeyFileError, KeystoreError)):
        return EXIT_INPUT
    if isinstance(exc, OSError):
        return EXIT_OUTPUT if exc.errno in _OUTPUT_ERRNOS else EXIT_INPUT
    if isinstance(exc, (OutputExistsError, MissingExtraError, ValueError)):
        return EXIT_USAGE
    return 1


def printable(text: object) -> str:
    """``text`` with control and other non-printable characters escaped as ``\\n``, ``\\x1b``, ``\\u2028``.

    For every piece of untrusted text (labels, file names, DICOM values, error
    messages) shown to a person: a newline cannot forge a row, an ANSI escape
    cannot drive the terminal.

    Examples
    --------
    >>> printable("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def message_for(exc: BaseException) -> str:
    """One line describing ``exc`` for the user (escaped by :func:`fail`).

    deepkedi's own messages are one line by design, so a newline in one comes
    from untrusted text (a file name, a label) and is kept, to be escaped; of
    other libraries' messages only the first line is shown.
    """
    if isinstance(exc, OSError) and exc.filename is not None and not isinstance(exc, DeepKediError):
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc)
    if not text:
        return type(exc).__name__
    return text if isinstance(exc, DeepKediError) else text.splitlines()[0]


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``; non-printable characters of ``message`` are escaped."""
    err_console.print(f"kedi: error: {printable(message)}", markup=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn expected failures into one line on stderr and the documented exit code."""
    try:
        yield
    except (DeepKediError, ValueError, OSError) as exc:
        fail(message_for(exc), exit_code_for(exc))


class GuardedTyper(typer.Typer):
    """A Typer app whose every command ends an unexpected ``OSError`` or deepkedi error as :func:`guarded` does.

    Commands guard the calls they expect to fail; this is the net under the rest
    (a path name too long for ``Path.exists``, a file vanishing between checks),
    so that no expected kind of failure ever ends in a traceback.
    """

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        register = super().command(name, **kwargs)

        def decorator(func: CommandFunctionType) -> CommandFunctionType:
            @functools.wraps(func)
            def run(*call_args: Any, **call_kwargs: Any) -> Any:
                try:
                    return func(*call_args, **call_kwargs)
                except (DeepKediError, OSError) as exc:
                    fail(message_for(exc), exit_code_for(exc))

            register(run)
            return func

        return decorator


def refuse_special_file(path: Path) -> None:
    """A FIFO or device where a passphrase, KEK or PEM file belongs: exit code 4, never a hang."""
    if path.exists():
        with guarded():
            check_regular_input(path, error=KeyFileError)


def read_passphrase_file(path: Path) -> str:
    """The passphrase a file holds (its trailing line break dropped); usage error if it cannot be read."""
    refuse_special_file(path)
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, ValueError) as exc:
        fail(f"{path}: cannot read passphrase file ({getattr(exc, 'strerror', None) or exc})", EXIT_USAGE)


def resolve_passphrase(
    passphrase_file: Path | None, *, env: str, prompt: str, missing: str, confirm: bool = False
) -> str:
    """The one credential resolver: ``passphrase_file``, else the environment variable ``env``,
    else a prompt when stdin is a terminal (asked twice with ``confirm``), else a usage error
    saying ``missing``. Every command that needs a passphrase goes through here."""
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    value = os.environ.get(env)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        fail(missing, EXIT_USAGE)
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


def _passphrase(passphrase_file: Path | None, prompt_for: Path) -> str:
    return resolve_passphrase(
        passphrase_file,
        env="KEDI_PASSPHRASE",
        prompt=f"Passphrase for {prompt_for}",
        missing=f"{prompt_for} is sealed with a passphrase; give --passphrase-file FILE or set KEDI_PASSPHRASE",
    )


def load_key_for_cli(path: Path, passphrase_file: Path | None) -> "Key":
    """Load a key file, asking for its passphrase when it is sealed."""
    from deepkedi.keys.keyfile import key_file_is_sealed, load_key

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


def _limit_decoding(memory_factor: float | None) -> Callable[[typer.Context, int | None], int | None]:
    def apply(ctx: typer.Context, value: int | None) -> int | None:
        # The limit holds for the whole command and is undone when its context closes,
        # so no command body has to remember to apply it.
        ctx.with_resource(decoded_size_limit(value, memory_factor=memory_factor))
        return value

    return apply


def max_decoded_size_option(memory_factor: float | None = None) -> Any:
    """``--max-decoded-size SIZE`` (env KEDI_MAX_DECODED) for a command whose working memory
    is ``memory_factor`` times the decoded image: its default limit keeps that within
    ``DEFAULT_WORKING_MEMORY`` (imaging/limits.py); an explicit SIZE applies exactly.

    Returns the ``typer.Option`` to annotate an ``int | None`` parameter with:
    ``Annotated[int | None, max_decoded_size_option(4)]``."""
    default = "Default: 4 GiB, and at most 32 times the file's size past 256 MiB"
    if memory_factor is not None:
        default += (
            f", and at most {format_size(int(DEFAULT_WORKING_MEMORY / memory_factor))} for this command "
            f"(it needs about {memory_factor:g} times the decoded size in memory)"
        )
    return typer.Option(
        "--max-decoded-size",
        metavar="SIZE",
        envvar="KEDI_MAX_DECODED",
        parser=_decoded_size,
        callback=_limit_decoding(memory_factor),
        help=f"Refuse an image that would decode to more than SIZE bytes (512M, 4G, 4GiB). {default}.",
    )


#: ``--max-decoded-size SIZE`` (env KEDI_MAX_DECODED) for every command that decodes
#: images: declaring the parameter applies the limit (imaging/limits.py) to the command.
MaxDecodedSize = Annotated[int | None, max_decoded_size_option()]
