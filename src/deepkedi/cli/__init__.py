"""`kedi`: the deepkedi command line (Typer + rich). One module per command group."""

import signal
from types import FrameType

import typer

from deepkedi._version import __version__
from deepkedi.cli._common import GuardedTyper, examples_epilog

__all__ = ["app", "main"]

app = GuardedTyper(
    name="kedi",
    help="Deep-KEDI medical image encryption: hybrid AES-256-GCM containers (default) and the paper's scheme.",
    epilog=examples_epilog(
        "kedi samples tour && cd tour        # the files every example uses",
        "kedi keygen -o site.key",
        "kedi encrypt CT_small.dcm -o ct.kedi --key site.key",
        "kedi decrypt ct.kedi -o ct-restored.dcm --key site.key",
        note="Documents (docs/*.md, installed with the package): kedi docs. "
        "Exit codes: 0 success; 2 usage or a missing extra; 3 authentication (wrong key, modified or truncated "
        "container, unknown or revoked key); 4 bad or unsupported input; 5 output failure (disk full, read-only, "
        "name too long).",
    ),
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
    from deepkedi.cli import (  # noqa: F401
        crypt,
        demo,
        dicom_node,
        docs,
        inspect,
        keygen,
        keys,
        metrics,
        orthanc,
        reproduce,
        samples,
        send,
        serve,
        speckle,
        train,
    )


_register()


#: Signals that end `kedi` through the normal unwinding path, so that every
#: ``with`` block runs its cleanup (part files removed, keystore sessions rolled back).
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop(signum: int, frame: FrameType | None) -> None:
    # Further signals are ignored from now on so that they cannot interrupt the cleanup
    # (a second Ctrl-C would otherwise leave a part file behind); SIGKILL still ends it.
    for other in _STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise SystemExit(128 + signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def install_signal_handlers() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into ``SystemExit(128 + signal)``.

    Only the command line does this (libraries leave the process's signals
    alone). A signal that the parent process ignores (``nohup``) stays ignored.
    """
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop)


def main() -> None:
    """Entry point of the `kedi` script."""
    install_signal_handlers()
    app()
