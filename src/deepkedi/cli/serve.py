"""`kedi serve`: the clinical service (docs/SERVICE.md, "Running the service").

FastAPI and uvicorn are imported inside the command, so that `kedi --help` stays fast.
"""

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_OUTPUT, EXIT_USAGE, console, err_console, fail, guarded, read_passphrase_file
from deepkedi.cli.keys import KekFileOpt, PassphraseFileOpt, _kek_source
from deepkedi.errors import require_extra

__all__ = ["default_service_home", "serve", "storage_location"]

#: Signals after which the service shuts down cleanly and `kedi serve` exits 0: a requested stop is a success.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: Options `kedi serve` and `kedi dicom-node` share: the same service folder, database and first admin.
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database", help="SQLAlchemy URL of the service's database; default: SQLite under --home."),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        metavar="DIR|URL",
        help="Where the encrypted objects live: a folder, or an fsspec URL (s3://bucket/prefix with s3fs); "
        "default: HOME/objects.",
    ),
]
AdminPasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--admin-password-file",
        help="First run: the admin's password (else KEDI_ADMIN_PASSWORD, else one is generated and printed once).",
    ),
]


def default_service_home() -> Path:
    """``$XDG_DATA_HOME/deepkedi/service`` (``~/.local/share`` when XDG_DATA_HOME is unset): beside the keystore's."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "deepkedi" / "service"


def storage_location(storage: str | None) -> Path | str | None:
    """--storage as the service takes it: a local folder (made absolute) or a checked fsspec URL.

    An unknown protocol, or one whose package is not installed, is one line and exit code 2,
    before anything is created.
    """
    if storage is None:
        return None
    from deepkedi.server.objects import storage_location as parse

    try:
        where = parse(storage)
    except ValueError as exc:
        fail(f"--storage: {exc}", EXIT_USAGE)
    if isinstance(where, str) and where.lower().startswith("memory://"):
        err_console.print(
            "kedi: warning: --storage memory:// keeps the objects in this process only: they are lost when it stops",
            markup=False,
        )
    return where


def _admin_password(path: Path | None) -> str | None:
    """The first admin's password: --admin-password-file, else KEDI_ADMIN_PASSWORD, else None (one is generated)."""
    if path is not None:
        return read_passphrase_file(path)
    return os.environ.get("KEDI_ADMIN_PASSWORD") or None


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts: a taken port is one line and exit code 5."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}: {exc.strerror}", EXIT_USAGE)
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_OUTPUT)
    sock.set_inheritable(True)
    return sock


def _is_loopback(sock: socket.socket) -> bool:
    import ipaddress

    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command(
    "serve",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi serve --home service --passphrase-file pw --init-only",
        "KEDI_ADMIN_PASSWORD='a long admin passphrase' \\\n  kedi serve --home site2 --passphrase-file pw --init-only",
    ),
    epilog="Without --init-only the service runs until it is stopped (Ctrl-C or SIGTERM: a clean stop, exit code 0). "
    "Then: curl http://127.0.0.1:8042/healthz. On a machine with several cores: --workers N (one process per core).",
)
def serve(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The service's folder (database, objects); default: the user's data folder."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8042,
    database: DatabaseOpt = None,
    storage: StorageOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    admin_password_file: AdminPasswordFileOpt = None,
    init_only: Annotated[
        bool, typer.Option("--init-only", help="Create or open the service's database and first admin, then exit.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes sharing the port (one core each; the database holds what they share).",
        ),
    ] = 1,
    break_glass_minutes: Annotated[
        int,
        typer.Option(
            "--break-glass-minutes",
            min=1,
            max=7 * 24 * 60,
            help="How long a radiologist's break-glass grant opens a study (docs/SERVICE.md).",
        ),
    ] = 60,
    dicom_port: Annotated[
        int | None,
        typer.Option(
            "--dicom-port",
            min=0,
            max=65535,
            help="Also run the DICOM node (kedi dicom-node) in this process, on this port (0: any free port).",
        ),
    ] = None,
    dicom_peers: Annotated[
        Path | None, typer.Option("--dicom-peers", help="With --dicom-port: the node's peers file (as --peers).")
    ] = None,
    dicom_ae_title: Annotated[str, typer.Option("--dicom-ae-title", help="With --dicom-port: its AE title.")] = "KEDI",
    dicom_move_destinations: Annotated[
        Path | None,
        typer.Option("--dicom-move-destinations", help="With --dicom-port: its C-MOVE destinations file."),
    ] = None,
) -> None:
    """Run the clinical service: encrypted archive, users and roles, audit, DICOMweb (docs/SERVICE.md).

    The keystore that holds the studies' keys lives in the service's database and is unlocked
    with the passphrase (--passphrase-file, KEDI_PASSPHRASE, a prompt) or KEK (--kek-file,
    KEDI_KEK), which is never stored. On the first run the user 'admin' is created and, unless
    its password was given, a generated password is printed once. Plain HTTP: put a TLS
    reverse proxy in front of it (docs/SERVICE.md); session cookies are marked Secure.
    """
    require_extra("fastapi", "server", feature="kedi serve")
    require_extra("uvicorn", "server", feature="kedi serve")
    require_extra("argon2", "server", feature="kedi serve")
    if dicom_port is not None:
        require_extra("pynetdicom", "pacs", feature="kedi serve --dicom-port")
        if dicom_peers is None:
            fail("--dicom-port needs --dicom-peers (the AE titles that may associate, and as whom)", EXIT_USAGE)
        if workers > 1:
            fail("--dicom-port runs in a single process: give --workers 1, or run kedi dicom-node beside", EXIT_USAGE)
    from deepkedi.server.config import ServiceConfig

    folder = (home or default_service_home()).expanduser()
    admin_password = _admin_password(admin_password_file)
    config = ServiceConfig(
        home=folder.resolve(),
        kek_source=_kek_source(passphrase_file, kek_file),
        database_url=database,
        storage=storage_location(storage),
        admin_password=admin_password,
        break_glass_seconds=break_glass_minutes * 60,
    )
    sock = None if init_only else _listen(host, port)
    if sock is not None and not _is_loopback(sock):
        err_console.print(
            f"kedi: warning: listening on {host} over plain HTTP: put a TLS reverse proxy in front (docs/SERVICE.md)",
            markup=False,
        )
    try:
        with guarded():
            from deepkedi.server.app import create_app, take_initial_admin_password

            service_app = create_app(config)
        try:
            generated = take_initial_admin_password(service_app)
            if generated is not None:
                console.print(
                    f"First run: the administrator is 'admin', password: {generated}\n"
                    "It is shown this once and stored only as a hash; sign in and keep it somewhere safe.",
                    markup=False,
                    soft_wrap=True,
                )
            console.print(f"Service folder: {config.home}", markup=False, soft_wrap=True)
            if sock is None:
                return
            if workers == 1:
                node = None
                if dicom_port is not None:
                    from deepkedi.cli.dicom_node import start_beside

                    assert dicom_peers is not None
                    node = start_beside(
                        service_app.state.service,
                        ae_title=dicom_ae_title,
                        host=host,
                        port=dicom_port,
                        peers=dicom_peers,
                        move_destinations=dicom_move_destinations,
                    )
                try:
                    _run(service_app, sock)
                finally:
                    if node is not None:
                        node.stop()
                return
        finally:
            service_app.state.service.close()
        _run_workers(config, sock, workers)
    finally:
        if sock is not None:
            sock.close()


def _run_workers(config: object, sock: socket.socket, workers: int) -> None:
    """``workers`` server processes on one listening socket; SIGINT or SIGTERM stops them all cleanly (exit 0).

    Each worker is forked after the first run's setup is done and every database connection of
    this process is closed, then opens the service itself (``create_app``: its own connections,
    keystore and frame cache) and serves on the inherited socket; the kernel hands each new
    connection to one of them. This process only waits: a stop signal is passed on to every
    worker, and a worker that ends on its own stops the others (exit code 5).
    """
    children: list[int] = []
    stopping: list[int] = []
    failed = False

    def stop_all(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop_all) for signum in _STOP_SIGNALS}
    try:
        console.print(
            f"Serving on {_url(sock)} with {workers} workers (stop with Ctrl-C or SIGTERM)",
            markup=False,
            soft_wrap=True,
        )
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:  # a worker: never returns
                _worker(config, sock)
            children.append(pid)
        while children:
            pid, status = os.waitpid(-1, 0)
            if pid in children:
                children.remove(pid)
                if not stopping and not failed:
                    failed = True  # a worker that ends unasked takes the service down: a supervisor restarts it
                    code = os.waitstatus_to_exitcode(status)
                    err_console.print(f"kedi: error: a worker ended (exit code {code}); stopping", markup=False)
                    stop_all(signal.SIGTERM, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed:
        raise typer.Exit(EXIT_OUTPUT)
    console.print("Stopped.", markup=False)


def _worker(config: object, sock: socket.socket) -> NoReturn:
    """One forked worker of :func:`_run_workers`: open the service, serve until told to stop, exit."""
    code = 0
    try:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        from deepkedi.server.app import create_app

        service_app = create_app(config)  # type: ignore[arg-type]
        try:
            _run(service_app, sock, announce=False)
        finally:
            service_app.state.service.close()
    except BaseException as exc:  # noqa: BLE001 - a forked worker must exit here, whatever happened; its parent decides
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else EXIT_OUTPUT
        if code:
            err_console.print(f"kedi: error: a worker stopped: {type(exc).__name__}: {exc}", markup=False)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(service_app: object, sock: socket.socket, *, announce: bool = True) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly and return (exit code 0).

    `kedi`'s own handlers (cli/__init__.py) turn those signals into SystemExit(130/143),
    and uvicorn re-raises the signal it caught once it has shut down. So that the two do not
    fight, while serving both signals only note that a stop was asked for: uvicorn installs
    its handlers over these, shuts down gracefully, restores these and re-raises the signal,
    which lands here harmlessly; then the command returns normally.
    """
    import uvicorn

    from deepkedi.server.logs import protect_access_log

    stops: list[int] = []

    def note_stop(signum: int, _frame: FrameType | None) -> None:
        stops.append(signum)
        server.should_exit = True  # a stop asked for before uvicorn took the signals over still stops it

    config = uvicorn.Config(
        service_app,  # type: ignore[arg-type]
        log_level="info",
        lifespan="off",
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    protect_access_log()  # the access log names the path only, UIDs masked, never the query
    previous = {signum: signal.signal(signum, note_stop) for signum in _STOP_SIGNALS}
    try:
        if announce:
            console.print(f"Serving on {_url(sock)} (stop with Ctrl-C or SIGTERM)", markup=False, soft_wrap=True)
        server.run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not server.started and not stops:
        err_console.print("kedi: error: the service did not start (see the log above)", markup=False)
        raise typer.Exit(EXIT_OUTPUT)
    if announce:
        console.print("Stopped.", markup=False)
