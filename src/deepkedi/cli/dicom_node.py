"""`kedi dicom-node`: the DICOM network node over the service's archive (docs/DICOM_NODE.md).

pynetdicom is imported inside the command, so that `kedi --help` stays fast.
"""

import json
import logging
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_INPUT,
    EXIT_OUTPUT,
    console,
    err_console,
    fail,
    guarded,
    refuse_special_file,
)
from deepkedi.cli.keys import KekFileOpt, PassphraseFileOpt, _kek_source
from deepkedi.cli.serve import (
    AdminPasswordFileOpt,
    DatabaseOpt,
    StorageOpt,
    _admin_password,
    default_service_home,
    storage_location,
)
from deepkedi.errors import require_extra

__all__ = ["dicom_node", "quiet_pydicom", "start_beside"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Largest peers file read (an allow-list of AE titles, not a data set).
_PEERS_FILE_LIMIT = 1 << 20


def _read_json(path: Path, what: str) -> Any:
    """The JSON value in ``path`` (at most 1 MiB); one line and exit 4 if it cannot be read."""
    refuse_special_file(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(_PEERS_FILE_LIMIT + 1)
    except OSError as exc:
        fail(f"cannot read the {what} file {path}: {exc.strerror}", EXIT_INPUT)
    if len(raw) > _PEERS_FILE_LIMIT:
        fail(f"the {what} file {path} is larger than 1 MiB", EXIT_INPUT)
    try:
        return json.loads(raw)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        fail(f"the {what} file {path} is not JSON: {exc}", EXIT_INPUT)


def _read_peers(path: Path) -> dict[str, str]:
    """The allow-list in ``path`` (JSON: calling AE title → user name), checked; one line and exit 4 if not."""
    from deepkedi.server.dicom_node import parse_peers

    try:
        return parse_peers(_read_json(path, "peers"))
    except ValueError as exc:
        fail(f"the peers file {path}: {exc}", EXIT_INPUT)


def _read_move_destinations(path: Path | None) -> dict[str, str]:
    """The C-MOVE destinations in ``path`` (JSON: AE title → "host:port"), checked; none without a file."""
    from deepkedi.server.dicom_node import parse_move_destinations

    if path is None:
        return {}
    value = _read_json(path, "move destinations")
    try:
        parse_move_destinations(value)
    except ValueError as exc:
        fail(f"the move destinations file {path}: {exc}", EXIT_INPUT)
    return dict(value)


@app.command(
    "dicom-node",
    examples=(
        "echo 'correct horse battery staple' > pw",
        'echo \'{"CT_SCANNER_1": "tech-ct", "VIEWER_1": "dr-house"}\' > peers.json',
        "kedi dicom-node --home service --passphrase-file pw \\\n  --peers peers.json --init-only",
    ),
    epilog="Without --init-only the node runs until it is stopped (Ctrl-C or SIGTERM: a clean stop, exit code 0), "
    "on port 11112 unless --port says otherwise. Then: echoscu -aet CT_SCANNER_1 -aec KEDI 127.0.0.1 11112",
)
def dicom_node(
    peers: Annotated[
        Path,
        typer.Option(
            "--peers",
            help='JSON allow-list of the peers: {"CALLING_AE_TITLE": "service user", ...}; the user\'s role '
            "says what the peer may do.",
        ),
    ],
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The service's folder, as for kedi serve; default: the user's data folder."),
    ] = None,
    move_destinations: Annotated[
        Path | None,
        typer.Option(
            "--move-destinations",
            help='JSON table of the AE titles a C-MOVE may send to: {"AE_TITLE": "host:port", ...}; none by default.',
        ),
    ] = None,
    ae_title: Annotated[str, typer.Option("--ae-title", help="The node's own AE title.")] = "KEDI",
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = 11112,
    database: DatabaseOpt = None,
    storage: StorageOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    admin_password_file: AdminPasswordFileOpt = None,
    init_only: Annotated[
        bool,
        typer.Option("--init-only", help="Open (or create) the service, check the peers against its users, then exit."),
    ] = False,
) -> None:
    """Run the DICOM node: C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE over kedi serve's archive (docs/DICOM_NODE.md).

    It opens the same service folder, database and keystore as kedi serve (the same
    passphrase or KEK), so that what a modality stores is in the archive kedi serve shows,
    under the same keys, policy and audit trail. Only the AE titles in --peers may
    associate; each acts as the service user it is mapped to. Plain DICOM (no TLS): keep
    it on the hospital's network, or behind a TLS tunnel.
    """
    require_extra("pynetdicom", "pacs", feature="kedi dicom-node")
    require_extra("argon2", "server", feature="kedi dicom-node")
    from deepkedi.server.config import ServiceConfig
    from deepkedi.server.dicom_node import DicomNode, check_ae_title

    try:
        title = check_ae_title(ae_title)
    except ValueError as exc:
        fail(str(exc), EXIT_INPUT)
    allowed = _read_peers(peers)
    destinations = _read_move_destinations(move_destinations)
    folder = (home or default_service_home()).expanduser()
    config = ServiceConfig(
        home=folder.resolve(),
        kek_source=_kek_source(passphrase_file, kek_file),
        database_url=database,
        storage=storage_location(storage),
        admin_password=_admin_password(admin_password_file),
    )
    quiet_pydicom()
    with guarded():
        from deepkedi.server.app import create_app, take_initial_admin_password

        service_app = create_app(config)
    service = service_app.state.service
    try:
        generated = take_initial_admin_password(service_app)
        if generated is not None:
            console.print(
                f"First run: the administrator is 'admin', password: {generated}\n"
                "It is shown this once and stored only as a hash; sign in and keep it somewhere safe.",
                markup=False,
                soft_wrap=True,
            )
        _warn_about_unusable_peers(service, allowed)
        console.print(f"Service folder: {config.home}", markup=False, soft_wrap=True)
        if init_only:
            return
        node = DicomNode(service, ae_title=title, peers=allowed, move_destinations=destinations)
        _run(node, host, port)
    finally:
        service.close()


def quiet_pydicom() -> None:
    """Silence pydicom's warnings about the malformed values of received data sets.

    pydicom warns about (and logs) each one, quoting the value: a patient's name among
    them. The node answers such data sets with a failure status and audits them instead.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def start_beside(
    service: Any, *, ae_title: str, host: str, port: int, peers: Path, move_destinations: Path | None
) -> Any:
    """The node started in this process over ``service`` (``kedi serve --dicom-port``); the caller stops it."""
    from deepkedi.server.dicom_node import DicomNode, check_ae_title

    try:
        title = check_ae_title(ae_title)
    except ValueError as exc:
        fail(str(exc), EXIT_INPUT)
    allowed = _read_peers(peers)
    destinations = _read_move_destinations(move_destinations)
    quiet_pydicom()
    _warn_about_unusable_peers(service, allowed)
    node = DicomNode(service, ae_title=title, peers=allowed, move_destinations=destinations)
    try:
        bound_host, bound_port = node.start(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_OUTPUT)
    console.print(f"DICOM node {node.ae_title} listening on {bound_host}:{bound_port}", markup=False, soft_wrap=True)
    return node


def _warn_about_unusable_peers(service: Any, peers: dict[str, str]) -> None:
    """One line per peer whose user is unknown or disabled (it may associate, and only echo)."""
    from deepkedi.server import accounts

    with service.read_sessions() as db:
        for title, username in sorted(peers.items()):
            user = accounts.find_user(db, username)
            if user is None or user.disabled:
                state = "no user of the service" if user is None else "a disabled user"
                err_console.print(
                    f"kedi: warning: the peer {title} acts as {username}, {state}: it may only echo",
                    markup=False,
                )


def _run(node: Any, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then stop the node and return (exit code 0)."""
    stop = threading.Event()

    def note_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, note_stop) for signum in _STOP_SIGNALS}
    try:
        try:
            bound_host, bound_port = node.start(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_OUTPUT)
        if not _is_loopback(bound_host):
            err_console.print(
                f"kedi: warning: listening on {bound_host} with plain DICOM (no TLS): images and names cross "
                "the network in clear",
                markup=False,
            )
        console.print(
            f"DICOM node {node.ae_title} listening on {bound_host}:{bound_port} (stop with Ctrl-C or SIGTERM)",
            markup=False,
            soft_wrap=True,
        )
        try:
            while not stop.wait(0.5):
                pass
        finally:
            node.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    console.print("Stopped.", markup=False)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
