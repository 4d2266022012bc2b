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
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
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
    "KediCommand",
    "KediGroup",
    "MaxDecodedSize",
    "console",
    "err_console",
    "examples_epilog",
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


# --------------------------------------------------------------------------- help screens
#
# Typer 0.29 labels every parameter with its Python type (``--force <bool>``,
# ``--output <path>``) and writes a required argument as ``{input}`` in the
# usage line. `kedi` reads like the rest of the command-line ecosystem instead
# (click, git, pip): a flag has no placeholder, a value has an upper-case one
# (``--output PATH``, ``--suite [hybrid|paper]``) and arguments are written
# ``INPUT``. The two parameter classes below carry that style; KediCommand and
# KediGroup give it to every parameter of every command, so no option declares
# it. tests/cli/test_help.py renders every screen and holds it.

#: Upper-case placeholders for Typer's type names, as click writes them.
_VALUE_METAVARS = {"path": "PATH", "str": "TEXT", "int": "INTEGER", "float": "FLOAT", "int range": "INTEGER RANGE"}


class _KediOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # `--force`, not `--force <bool>`
        if self.metavar is not None:
            return str(self.metavar)
        label = str(self.display_type(ctx)).removeprefix("<").removesuffix(">")
        if self.type_descriptor.is_choice:
            return f"[{label}]"
        if label.startswith("list[") and label.endswith("]"):
            label = label[len("list[") : -1]  # a repeatable option: each use takes one value
        return _VALUE_METAVARS.get(label, label.upper())


class _KediArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return str(self.metavar) if self.metavar is not None else str(self.name).upper()

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name (INPUT) and the help say what it is

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else f"{name}..."

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self._usage_display_name()]


_KEDI_PARAMETERS: dict[type, type] = {TyperOption: _KediOption, TyperArgument: _KediArgument}


def _in_kedi_style(params: list[Any]) -> None:
    """Give Typer's own parameters the help style above (they carry no state of their own to convert)."""
    for param in params:
        styled = _KEDI_PARAMETERS.get(type(param))
        if styled is not None:
            param.__class__ = styled


def _reflow(help_text: str | None) -> str | None:
    """Join the hard-wrapped lines of each paragraph: the console wraps them at its own width.

    A paragraph that starts with ``\\b`` keeps its lines (click's convention for verbatim blocks).
    """
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


class _KediStyle:
    """Help in the ecosystem's style (see above), paragraphs reflowed: shared by commands and groups."""

    help: str | None
    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflow(self.help)
        _in_kedi_style(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]  # the click class after this mixin has it
        if option is not None:
            _in_kedi_style([option])
        return option


class KediCommand(_KediStyle, TyperCommand):
    """A `kedi` command: help in the ecosystem's style (see above), paragraphs reflowed."""


class KediGroup(_KediStyle, TyperGroup):
    """A `kedi` command group, in the same style as :class:`KediCommand`."""


def _literal(line: str) -> str:
    """``line`` as rich markup that shows it as written (a trailing backslash included)."""
    body, continued = (line[:-1], "\\") if line.endswith("\\") else (line, "")
    return escape(body) + continued


def examples_epilog(*commands: str, note: str | None = None) -> str:
    """The "Examples" section that ends a help screen: one literal command line each.

    The commands run as written in a folder made by ``kedi samples DIR``
    (CT_small.dcm, MR_small.dcm, scan.dcm, study/, keystream.bin, pixels.npy); keys
    are made in the example itself. A long command is continued on the next line after
    a backslash, as in a shell, so that no line wraps in an 80-column terminal.
    ``note`` (one paragraph) goes before them.
    """
    lines = [escape(note), ""] if note else []
    # A command continued with a backslash keeps its continuation lines, indented under it.
    rows = [f"  {_literal(line)}" for command in commands for line in command.split("\n")]
    # The blank first line keeps the rows' indent: the help renderer dedents what follows it.
    return "\n".join(["", *lines, "Examples:", *rows])


class GuardedTyper(typer.Typer):
    """A Typer app whose every command ends an unexpected ``OSError`` or deepkedi error as :func:`guarded` does.

    Commands guard the calls they expect to fail; this is the net under the rest
    (a path name too long for ``Path.exists``, a file vanishing between checks),
    so that no expected kind of failure ever ends in a traceback. Its commands and
    groups are :class:`KediCommand` and :class:`KediGroup`; ``examples=`` of
    :meth:`command` ends the command's help with :func:`examples_epilog`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", KediGroup)
        super().__init__(*args, **kwargs)

    def command(
        self, name: str | None = None, *, examples: tuple[str, ...] = (), **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", KediCommand)
        if examples:
            kwargs["epilog"] = examples_epilog(*examples, note=kwargs.get("epilog"))
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
