"""`kedi send`: a C-STORE SCU forwarding DICOM files and deepkedi containers to another DICOM node.

The library part is :mod:`deepkedi.server.dicom_send`; this module parses options,
resolves the key as `kedi decrypt` and `kedi encrypt` do, shows progress and renders
the results. pynetdicom is imported inside the command (the ``pacs`` extra).
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_AUTH, EXIT_INPUT, EXIT_USAGE, console, err_console, fail, guarded, printable
from deepkedi.errors import require_extra

if TYPE_CHECKING:
    from deepkedi.server.dicom_send import SendReport

__all__ = ["EXIT_NOT_ASSOCIATED", "EXIT_PEER_FAILURE", "send"]

#: The peer answered a failure status for a file, or no answer, or accepted no context that fits it.
EXIT_PEER_FAILURE = 6
#: No association: the peer rejected it (e.g. an AE title it does not know), or is unreachable, or timed out.
EXIT_NOT_ASSOCIATED = 7


def exit_code(report: "SendReport") -> int:
    """0 when every file was accepted; else the first that applies of 7, 6, 3, 4 (docs/DICOM_NODE.md)."""
    from deepkedi.server.dicom_send import Outcome

    for outcome, code in (
        (Outcome.NOT_ASSOCIATED, EXIT_NOT_ASSOCIATED),
        (Outcome.FAILED, EXIT_PEER_FAILURE),
        (Outcome.UNDECRYPTABLE, EXIT_AUTH),
        (Outcome.REFUSED, EXIT_INPUT),
    ):
        if report.count(outcome):
            return code
    return 0


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("sending", total=None)

        def report(done: int, total: int, name: str) -> None:
            # The description is rich markup: a file named "[/]" must show as itself.
            bar.update(task, completed=done, total=total, description=f"sending {escape(printable(Path(name).name))}")

        yield report


@contextlib.contextmanager
def _key_for_send(
    *,
    as_dicom: bool,
    has_container: bool,
    key: Path | None,
    keystore: str | None,
    key_id: str | None,
    passphrase_file: Path | None,
) -> Iterator[tuple[Any, str | None]]:
    """What decrypts (and, with --as-dicom, encrypts), and who asks: the options `kedi decrypt` takes."""
    from deepkedi.cli.crypt import _decryptor, _is_key_image, _master

    if key is not None and (key_id is not None or keystore is not None):
        fail("give either --key KEYFILE or the keystore (--keystore URL / --key-id ID), not both", EXIT_USAGE)
    if as_dicom:
        if key is None and key_id is None:
            fail("--as-dicom encrypts: give --key KEYFILE, or --key-id ID (with --keystore URL)", EXIT_USAGE)
        if key is not None and _is_key_image(key):
            fail("--as-dicom needs a hybrid key file, not a key image", EXIT_USAGE)
        yield _master(key, keystore, key_id, passphrase_file), None
        return
    if key is None and key_id is None and keystore is None and not has_container:
        yield None, None  # plain DICOM only: nothing to decrypt, no keystore opened
        return
    with _decryptor(key, keystore, key_id, passphrase_file) as (decryptor, who):
        yield decryptor, who


@app.command(
    "send",
    examples=(
        "storescp -aet PACS -od . 11113 & sleep 1",
        "kedi send scan.dcm study --to 127.0.0.1:11113 --called-ae PACS",
        "kedi keygen -o site.key",
        "kedi send CT_small.dcm --to 127.0.0.1:11113 --called-ae PACS \\\n  --as-dicom --key site.key",
        "kill $!",
    ),
    epilog="Exit codes: 0 every file accepted (success or a warning status); 2 usage or a missing extra; "
    "7 no association (rejected, unreachable, timed out); 6 the peer refused a file (failure status, no answer, "
    "no presentation context for it); 3 a container the key does not open; 4 an input that is not DICOM or a "
    "container. When several apply, the first in this order: 7, 6, 3, 4.",
)
def send(
    files: Annotated[
        list[Path],
        typer.Argument(help="DICOM files, deepkedi containers (.kedi), or folders of them (walked recursively)."),
    ],
    to: Annotated[str, typer.Option("--to", metavar="HOST:PORT", help="The DICOM node to send to.")],
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our own (calling) AE title.")] = "KEDI",
    called_ae: Annotated[
        str, typer.Option("--called-ae", help="The peer's (called) AE title; DCMTK storescu's default.")
    ] = "ANY-SCP",
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=3600, help="Seconds to wait for each network step (connect, answer)."),
    ] = 30.0,
    as_dicom: Annotated[
        bool,
        typer.Option(
            "--as-dicom",
            help="Send DICOM-native encrypted objects (as kedi encrypt --as-dicom makes them) instead of plain "
            "DICOM: the peer stores only ciphertext. Needs --key or --key-id.",
        ),
    ] = False,
    key: Annotated[Path | None, typer.Option("--key", help="Key file (hybrid) to decrypt containers with.")] = None,
    keystore: Annotated[
        str | None,
        typer.Option(help="Take the key from this keystore (default: KEDI_KEYSTORE or the user's keystore)."),
    ] = None,
    key_id: Annotated[str | None, typer.Option(help="Keystore key id (default: the one each container names).")] = (
        None
    ),
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of a sealed key file, or of the keystore.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one JSON object.")] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No table and no summary line (problems still go to stderr).")
    ] = False,
) -> None:
    """Send DICOM files to another DICOM node by C-STORE; containers are decrypted first.

    A DICOM file goes as it is: its data set's bytes unchanged, in its own transfer
    syntax. A deepkedi container (hybrid) is decrypted with the key (as kedi decrypt
    takes it: --key, or the keystore) and the original DICOM file it restores byte for
    byte is sent. --as-dicom sends DICOM-native encrypted objects instead. One
    association carries every file (more only past 128 presentation contexts). Plain
    DICOM (no TLS): the network must be trusted.
    """
    require_extra("pynetdicom", "pacs", feature="kedi send")
    from deepkedi.server.dicom_node import check_ae_title
    from deepkedi.server.dicom_send import Destination, InputKind, classify, collect_inputs, parse_address, send_files

    try:
        host, port = parse_address(to)
        calling, called = check_ae_title(ae_title), check_ae_title(called_ae)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    inputs = collect_inputs(files)
    if not inputs:
        fail("no files to send (the folders given are empty)", EXIT_INPUT)
    has_container = False
    for path in inputs:
        with contextlib.suppress(Exception):  # an unreadable input is refused, and counted, by the send
            has_container = has_container or classify(path) is InputKind.CONTAINER
    # pynetdicom logs each association and data set at INFO (UIDs, names); its errors say what the results say.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    destination = Destination(host=host, port=port, calling_ae=calling, called_ae=called, timeout=timeout)
    with (
        _key_for_send(
            as_dicom=as_dicom,
            has_container=has_container,
            key=key,
            keystore=keystore,
            key_id=key_id,
            passphrase_file=passphrase_file,
        ) as (decryptor, who),
        _progress(not as_json) as report,
        guarded(),
    ):
        result = send_files(inputs, destination, key=decryptor, actor=who, as_dicom=as_dicom, progress=report)
    code = exit_code(result)
    _problems(result)
    if as_json:
        typer.echo(json.dumps(_record(result, destination, code), sort_keys=True))
    elif not quiet:
        _table(result)
        console.print(_summary(result, destination), markup=False, soft_wrap=True)
    if code:
        raise typer.Exit(code)


def _problems(report: "SendReport") -> None:
    """One line on stderr per file not accepted; a refused association once, with how many files it held back."""
    from deepkedi.server.dicom_send import Outcome

    held_back: dict[str, int] = {}
    for item in report.results:
        if item.accepted:
            continue
        if item.outcome is Outcome.NOT_ASSOCIATED:
            held_back[item.reason or ""] = held_back.get(item.reason or "", 0) + 1
            continue
        status = f" (0x{item.status:04X})" if item.status is not None else ""
        err_console.print(
            f"kedi: {item.outcome.value}: {printable(item.source)}{status}: {printable(item.reason or '')}",
            markup=False,
        )
    for reason, count in held_back.items():
        files = "1 file" if count == 1 else f"{count} files"
        err_console.print(f"kedi: error: {printable(reason)}: {files} not sent", markup=False)


def _record(report: "SendReport", destination: Any, code: int) -> dict[str, Any]:
    from deepkedi.server.dicom_send import Outcome

    return {
        "destination": {
            "host": destination.host,
            "port": destination.port,
            "called_ae": destination.called_ae,
            "calling_ae": destination.calling_ae,
        },
        "associations": report.associations,
        "files": [item.describe() for item in report.results],
        "counts": {outcome.value: report.count(outcome) for outcome in Outcome},
        "exit_code": code,
    }


def _table(report: "SendReport") -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("file", "outcome", "status", "sent as", "reason"):
        table.add_column(column)
    for item in report.results:
        table.add_row(
            escape(printable(item.source)),
            item.outcome.value,
            "" if item.status is None else f"0x{item.status:04X}",
            (item.sent_as or "") + ("" if item.byte_exact or item.status is None else ", re-encoded"),
            escape(printable(item.reason or "")),
        )
    console.print(table)


def _summary(report: "SendReport", destination: Any) -> str:
    from deepkedi.server.dicom_send import Outcome

    accepted = sum(item.accepted for item in report.results)
    others = ", ".join(
        f"{report.count(outcome)} {outcome.value}"
        for outcome in Outcome
        if outcome is not Outcome.ACCEPTED and report.count(outcome)
    )
    return (
        f"sent {accepted} of {len(report.results)} files to {destination.called_ae} at "
        f"{destination.host}:{destination.port} ({report.associations} association"
        f"{'' if report.associations == 1 else 's'}{'; ' + others if others else ''})"
    )
