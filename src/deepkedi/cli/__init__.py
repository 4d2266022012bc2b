"""`kedi`: the deepkedi command line (Typer + rich). One module per command group."""

from __future__ import annotations

import typer

from deepkedi import __version__
from deepkedi.cli._common import GuardedTyper

__all__ = ["app", "main"]

app = GuardedTyper(
    name="kedi",
    help="Deep-KEDI medical image encryption: hybrid AES-256-GCM containers (default) and the paper's scheme.",
    epilog="Exit codes: 0 success; 2 usage; 3 authentication (wrong key, modified or truncated container, "
    "unknown or revoked key); 4 bad or unsupported input; 5 output failure (disk full, read-only, name too long).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kedi {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Deep-KEDI medical image encryption."""


def _register() -> None:
    from deepkedi.cli import crypt, demo, inspect, keygen, keys, metrics, reproduce, speckle, train  # noqa: F401


_register()


def main() -> None:
    """Entry point of the `kedi` script."""
    app()
