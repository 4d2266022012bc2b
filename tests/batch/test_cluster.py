"""Folder runs on a real Dask cluster: a scheduler and two workers started here as processes, loopback only.

The cluster (``dask scheduler``, ``dask worker --no-nanny``: a killed worker stays dead)
serves the tests of this module (under xdist, each worker that runs one starts its own)
and is stopped, with nothing left running, at the end.
A worker killed with SIGKILL mid-run: the run completes, every file done exactly once.
The whole cluster killed mid-run: one error line, and ``--resume`` finishes the run here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from external_tools import unavailable
from folders import visible_files, wait_until_gone
from typer.testing import CliRunner

if TYPE_CHECKING:
    from distributed import Client

import deepkedi
from deepkedi import api, datasets
from deepkedi.batch import MANIFEST_NAME, Status, run_batch
from deepkedi.cli import app

SRC = str(Path(deepkedi.__file__).resolve().parents[1])
DASK = Path(sys.executable).parent / "dask"
KEY = deepkedi.generate_key()
STARTUP_S = 60.0


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401 - only whether it is there
    except ImportError:
        unavailable("dask distributed is not installed: pip install 'deepkedi[cluster]'")
    if not DASK.exists():
        unavailable(f"the dask command is not at {DASK}: pip install 'deepkedi[cluster]'")


class TLS:
    """A self-signed certificate for 127.0.0.1: the scheduler, the workers and the client present and trust it."""

    def __init__(self, folder: Path) -> None:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.key.chmod(0o600)

    def args(self) -> list[str]:
        """The `dask scheduler` and `dask worker` options."""
        return ["--tls-ca-file", str(self.cert), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]

    def client_settings(self) -> dict[str, str]:
        return {"tls_ca_file": str(self.cert), "tls_client_cert": str(self.cert), "tls_client_key": str(self.key)}

    def environment(self) -> dict[str, str]:
        """The same, as Dask's configuration read from the environment (what `kedi` uses)."""
        return {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.key),
        }


class Cluster:
    """A Dask scheduler and its workers, each its own process (and process group) on 127.0.0.1."""

    def __init__(self, folder: Path, tls: TLS | None = None) -> None:
        self.folder = folder
        self.env = {**os.environ, "PYTHONPATH": SRC}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.address = ""
        self.tls = tls
        self.tls_args = [] if tls is None else tls.args()
        (folder / "scratch").mkdir()
        self.scheduler = self._spawn(
            "scheduler",
            [
                *("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"),
                *("--scheduler-file", str(folder / "scheduler.json")),
                *(["--protocol", "tls", *self.tls_args] if tls else []),
            ],
        )
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and not self.address:
            with contextlib.suppress(OSError, ValueError):
                self.address = json.loads((folder / "scheduler.json").read_text())["address"]
            if self.scheduler.poll() is not None:
                break
            time.sleep(0.05)
        if not self.address:
            self.stop()
            pytest.fail(f"dask scheduler did not start: {(folder / 'scheduler.log').read_text()[-2000:]}")

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [str(DASK), *args],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.folder,
                start_new_session=True,  # each its own group: killed alone, and checked gone at the end
            )

    def client(self) -> Client:
        from distributed import Client, Security

        security = None if self.tls is None else Security(**self.tls.client_settings(), require_encryption=True)
        return Client(self.address, timeout=STARTUP_S, set_as_default=False, security=security)

    def ensure_workers(self, count: int) -> None:
        """Start workers until ``count`` are alive, and wait until the scheduler knows them."""
        self.workers = [w for w in self.workers if w.poll() is None]
        while len(self.workers) < count:
            self.started += 1
            self.workers.append(
                self._spawn(
                    f"worker-{self.started}",
                    [
                        *("worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-nanny"),
                        *("--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(self.folder / "scratch")),
                        # Each worker imports deepkedi as it starts, not with its first chunk.
                        *("--preload", "deepkedi.batch.cluster"),
                        *self.tls_args,
                    ],
                )
            )
        with self.client() as client:
            client.wait_for_workers(count, timeout=STARTUP_S)
            deadline = time.monotonic() + STARTUP_S
            while len(client.nthreads()) > count and time.monotonic() < deadline:
                time.sleep(0.05)  # a killed worker the scheduler has not yet removed

    def pids(self) -> dict[str, int]:
        """Each worker's address and process id, from the workers themselves."""
        with self.client() as client:
            return client.run(os.getpid)

    def events(self, worker: str) -> list[dict[str, object]]:
        """What the scheduler recorded about the worker at address ``worker``."""
        with self.client() as client:
            return [msg for _, msg in client.get_events(worker) if isinstance(msg, dict)]

    def stop(self) -> None:
        """Workers first (a scheduler gone first leaves them waiting for it), then the scheduler; SIGKILL if slow."""
        for group in (self.workers, [self.scheduler]):
            for process in group:
                if process.poll() is None:
                    process.terminate()
            for process in group:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for process in [*self.workers, self.scheduler]:
            wait_until_gone(process.pid)


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_dask()
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.ensure_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(module_cluster: Cluster) -> Cluster:
    """The module's cluster with two live workers (a test before may have killed one)."""
    module_cluster.ensure_workers(2)
    return module_cluster


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    datasets.write_samples(folder)
    return folder


def _series(samples: Path, folder: Path, copies: int) -> Path:
    """``copies`` series folders of the six sample slices (256x256 CT)."""
    for n in range(copies):
        shutil.copytree(samples / "study", folder / f"series-{n:02d}")
    return folder


def _statuses(manifest: Path) -> list[str]:
    with sqlite3.connect(manifest) as db:
        return [row[0] for row in db.execute("SELECT status FROM entry ORDER BY rel")]


def _done_so_far(manifest: Path) -> int:
    try:
        with sqlite3.connect(manifest, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM entry WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet, or the schema is being written


def _kedi_command(*args: object) -> list[str]:
    """`kedi ARGS` as a separate process (this checkout's deepkedi)."""
    return [sys.executable, "-m", "deepkedi.cli", *map(str, args)]


def _lines(stderr: str) -> list[str]:
    """What a command said on stderr, line by line (the progress bar, once gone, leaves an empty line)."""
    return [line for line in stderr.splitlines() if line.strip()]


def _kedi(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _one_output_per_input(out: Path, inputs: dict[str, bytes]) -> None:
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [w for w in written if not w.startswith(MANIFEST_NAME)] == sorted(f"{rel}.kedi" for rel in inputs)
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*.part"))


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "site.key"
    assert _kedi("keygen", "--no-gan", "-o", path)[0] == 0
    return path


# ----------------------------------------------------------------------------- through the cluster


def test_encrypt_through_the_cluster_then_decrypt_here(
    cluster: Cluster, samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    study = _series(samples, tmp_path / "study", 8)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(samples / name, study / name)
    originals = visible_files(study)
    assert len(originals) == 50
    out = tmp_path / "enc"
    code, stdout, stderr = _kedi(
        "encrypt", study, "-o", out, "--key", keyfile, "--scheduler", cluster.address, "--json"
    )
    summary = json.loads(stdout)
    assert code == 0 and summary["done"] == 50 and summary["jobs"] == 2, (stdout, stderr)
    assert _statuses(out / MANIFEST_NAME) == [Status.DONE] * 50
    _one_output_per_input(out, originals)
    back = run_batch(out, tmp_path / "dec", deepkedi.load_key(keyfile), mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "dec") == originals


def test_decrypt_through_the_cluster_with_a_key_and_from_a_keystore(
    cluster: Cluster, samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    from deepkedi.keys.keystore import Keystore

    study = _series(samples, tmp_path / "study", 2)
    key = deepkedi.load_key(keyfile)
    assert run_batch(study, tmp_path / "enc", key, mode="encrypt", jobs=1).ok
    code, stdout, stderr = _kedi(
        "decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key", keyfile, "--scheduler", cluster.address, "-q"
    )
    assert code == 0 and stdout == "" and stderr.strip() == ""  # (a newline: the progress bar, gone)
    assert visible_files(tmp_path / "dec") == visible_files(study)
    # From a keystore: the workers receive each file's key from this process, never the keystore.
    with Keystore.init(f"sqlite:///{tmp_path / 'keys.db'}", kek_source=os.urandom(32), actor="tester") as store:
        stored = store.new_key(actor="tester", gan=False)
        assert run_batch(study, tmp_path / "enc2", stored, mode="encrypt", jobs=1).ok
        back = run_batch(
            tmp_path / "enc2", tmp_path / "dec2", store, mode="decrypt", actor="tester", scheduler=cluster.address
        )
    assert back.ok and len(back.done) == 12 and visible_files(tmp_path / "dec2") == visible_files(study)


def test_a_worker_killed_mid_run_leaves_every_file_done_exactly_once(
    cluster: Cluster, samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    study = _series(samples, tmp_path / "study", 24)  # 144 files, 8 chunks of 18
    originals = visible_files(study)
    out = tmp_path / "enc"
    pids = cluster.pids()
    victim = cluster.workers[0]
    address = next(a for a, pid in pids.items() if pid == victim.pid)
    run = subprocess.Popen(
        _kedi_command("encrypt", study, "-o", out, "--key", keyfile, "--scheduler", cluster.address, "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        done = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None and not done:
            done = _done_so_far(out / MANIFEST_NAME)  # the first chunk back: both workers hold chunks now
            time.sleep(0.01)
        assert run.poll() is None, "the run ended before a worker could be killed"
        victim.kill()  # SIGKILL: its chunk is lost mid-way, some of its outputs already in place
        victim.wait()  # reaped: its part files are now stale (a nanny reaps it so in production)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert 0 < done < 144
    assert run.returncode == 0, stderr
    assert stderr.strip() == ""  # Dask's warnings about the lost worker stay off kedi's stderr
    summary = json.loads(stdout)
    assert summary["done"] == 144 and summary["refused"] == summary["failed"] == 0
    # The victim was running this run's chunks when it died: Dask ran them again elsewhere.
    removed = [e for e in cluster.events(address) if e.get("action") == "remove-worker"]
    assert removed and any(str(key).startswith("kedi-chunk-") for key in removed[0]["processing-tasks"])
    # Every file done exactly once: one manifest row each, one output each, no part file, byte-exact.
    assert _statuses(out / MANIFEST_NAME) == [Status.DONE] * 144
    _one_output_per_input(out, originals)
    back = run_batch(out, tmp_path / "dec", deepkedi.load_key(keyfile), mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "dec") == originals


def test_the_whole_cluster_gone_stops_the_run_and_resume_finishes_it_here(
    samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    _require_dask()
    study = _series(samples, tmp_path / "study", 24)
    originals = visible_files(study)
    out = tmp_path / "enc"
    (tmp_path / "cluster").mkdir()
    own = Cluster(tmp_path / "cluster")
    try:
        own.ensure_workers(1)
        run = subprocess.Popen(
            _kedi_command("encrypt", study, "-o", out, "--key", keyfile, "--scheduler", own.address),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
        )
        done = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None and not done:
            done = _done_so_far(out / MANIFEST_NAME)
            time.sleep(0.01)
        assert run.poll() is None, "the run ended before the cluster could be killed"
        for process in [own.scheduler, *own.workers]:
            process.kill()
            process.wait()
        started = time.monotonic()
        _, stderr = run.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        own.stop()
    assert run.returncode == 1 and took < 15, (run.returncode, took, stderr)
    lines = _lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("kedi: error: ") and "--resume" in lines[0], stderr
    statuses = _statuses(out / MANIFEST_NAME)
    assert 0 < statuses.count(Status.DONE) < 144 and set(statuses) == {Status.DONE, Status.PENDING}
    # --resume here, without the cluster: what finished is kept, the rest (outputs in place included) redone.
    code, stdout, stderr = _kedi("encrypt", study, "-o", out, "--key", keyfile, "--resume", "--json", "--jobs", "1")
    summary = json.loads(stdout)
    assert code == 0 and summary["done"] == 144 and summary["done_earlier"] >= done, (stdout, stderr)
    assert _statuses(out / MANIFEST_NAME) == [Status.DONE] * 144
    _one_output_per_input(out, originals)
    back = run_batch(out, tmp_path / "dec", deepkedi.load_key(keyfile), mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "dec") == originals


def test_a_cluster_without_workers_stops_the_run_after_the_grace_period(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker when the run starts, or none left mid-run: WorkerLostError once the grace period is over."""
    _require_dask()
    import threading

    from deepkedi.batch import WorkerLostError, cluster

    monkeypatch.setattr(cluster, "NO_WORKERS_GRACE_S", 1.0)
    study = _series(samples, tmp_path / "study", 24)
    (tmp_path / "cluster").mkdir()
    own = Cluster(tmp_path / "cluster")
    try:
        started = time.monotonic()
        with pytest.raises(WorkerLostError, match="has no worker"):
            run_batch(study, tmp_path / "early", KEY, mode="encrypt", scheduler=own.address)
        assert time.monotonic() - started < 10 and not (tmp_path / "early" / MANIFEST_NAME).exists()
        own.ensure_workers(1)
        failure: list[BaseException] = []

        def encrypt() -> None:
            try:
                run_batch(study, tmp_path / "enc", KEY, mode="encrypt", scheduler=own.address, chunk_size=6)
            except BaseException as exc:  # noqa: BLE001 - what the run raised, for the test to look at
                failure.append(exc)

        run = threading.Thread(target=encrypt)
        run.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.is_alive() and not _done_so_far(tmp_path / "enc" / MANIFEST_NAME):
            time.sleep(0.01)
        assert run.is_alive(), "the run ended before its worker could be killed"
        own.workers[0].kill()
        own.workers[0].wait()
        run.join(timeout=60)
    finally:
        own.stop()
    assert not run.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], WorkerLostError), failure
    assert "no worker" in str(failure[0]) and "--resume" in str(failure[0])
    statuses = _statuses(tmp_path / "enc" / MANIFEST_NAME)
    assert 0 < statuses.count(Status.DONE) < 144 and set(statuses) == {Status.DONE, Status.PENDING}


def test_a_tls_scheduler_with_dask_tls_settings_from_the_environment(
    samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    """tls:// works with the certificates in Dask's configuration; without them, one line before anything is written."""
    _require_dask()
    (tmp_path / "cluster").mkdir()
    tls = TLS(tmp_path / "cluster")
    own = Cluster(tmp_path / "cluster", tls=tls)
    try:
        assert own.address.startswith("tls://127.0.0.1:")
        own.ensure_workers(1)
        command = _kedi_command("encrypt", samples / "study", "-o", tmp_path / "enc", "--key", keyfile)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")} | {"PYTHONPATH": SRC}
        bare = subprocess.run(
            [*command, "--scheduler", own.address], capture_output=True, text=True, env=env, check=False
        )
        assert bare.returncode == 2 and not (tmp_path / "enc").exists()
        assert len(_lines(bare.stderr)) == 1 and "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in bare.stderr
        done = subprocess.run(
            [*command, "--scheduler", own.address, "--json"],
            capture_output=True,
            text=True,
            env=env | tls.environment(),
            check=False,
        )
    finally:
        own.stop()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] == 6
    back = run_batch(tmp_path / "enc", tmp_path / "dec", deepkedi.load_key(keyfile), mode="decrypt", jobs=1)
    assert back.ok and visible_files(tmp_path / "dec") == visible_files(samples / "study")


# ----------------------------------------------------------------------------- failing early, and clearly


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_scheduler_is_one_line_at_once_and_writes_nothing(
    samples: Path, tmp_path: Path, keyfile: Path
) -> None:
    _require_dask()
    out = tmp_path / "enc"
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    code, stdout, stderr = _kedi("encrypt", samples / "study", "-o", out, "--key", keyfile, "--scheduler", address)
    assert time.monotonic() - started < 5
    assert code == 2 and stdout == "" and not out.exists()
    # One line and nothing else: the failure comes before the progress bar starts.
    assert stderr.splitlines() == [f"kedi: error: no Dask scheduler answers at {address} (connection refused)"]
    code, _, stderr = _kedi("encrypt", samples / "study", "-o", out, "--key", keyfile, "--scheduler", "nonsense")
    assert code == 2 and "not a Dask scheduler address" in stderr and len(stderr.splitlines()) == 1
    # One file is not a folder run.
    code, _, stderr = _kedi(
        "encrypt", samples / "CT_small.dcm", "-o", tmp_path / "x.kedi", "--key", keyfile, "--scheduler", "tcp://h:1"
    )
    assert code == 2 and "--scheduler belongs to folder runs" in stderr


def test_a_worker_address_or_a_silent_listener_is_refused_in_one_line(
    cluster: Cluster, samples: Path, tmp_path: Path, keyfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What answers is asked who it is: a worker is not a scheduler, and a server that never answers is given up."""
    import socket

    from deepkedi.batch import cluster as on_cluster

    out = tmp_path / "enc"
    worker = next(iter(cluster.pids()))
    code, _, stderr = _kedi("encrypt", samples / "study", "-o", out, "--key", keyfile, "--scheduler", worker)
    assert code == 2 and not out.exists()
    assert stderr.splitlines() == [
        f"kedi: error: {worker} is a Dask Worker, not a scheduler; give the scheduler's address"
    ]
    monkeypatch.setattr(on_cluster, "CONNECT_TIMEOUT_S", 0.5)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        code, _, stderr = _kedi("encrypt", samples / "study", "-o", out, "--key", keyfile, "--scheduler", address)
    assert code == 2 and not out.exists() and time.monotonic() - started < 5
    said = f"no Dask scheduler answers at {address} (something accepts connections there, but does not answer as Dask"
    assert stderr.splitlines() == [f"kedi: error: {said} within 0.5 s)"]


def test_without_the_cluster_extra_scheduler_names_it(
    samples: Path, tmp_path: Path, keyfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    out = tmp_path / "enc"
    code, _, stderr = _kedi("encrypt", samples / "study", "-o", out, "--key", keyfile, "--scheduler", "tcp://h:1")
    assert code == 2 and not out.exists()
    assert stderr.splitlines() == [
        "kedi: error: running on a Dask cluster (--scheduler) needs distributed: pip install 'deepkedi[cluster]'"
    ]


def test_a_local_run_imports_no_dask(samples: Path, tmp_path: Path) -> None:
    probe = (
        "import sys, deepkedi\n"
        "from deepkedi.batch import run_batch\n"
        "import deepkedi.batch.cluster  # the workers' side of a cluster run: no Dask either\n"
        f"assert run_batch({str(samples / 'study')!r}, {str(tmp_path / 'enc')!r}, deepkedi.generate_key(gan=False),"
        " mode='encrypt', jobs=1).ok\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- a retried chunk's outputs


def _task(source: Path, output: Path, **changes: object):
    from deepkedi.batch.engine import _Task

    return _Task(source.name, str(source), str(output), source.stat().st_size, False, **changes)  # type: ignore[arg-type]


def test_a_retried_chunk_adopts_only_this_runs_own_outputs(samples: Path, tmp_path: Path) -> None:
    """What a retry finds in an output's place is kept only when it is this file under this run's key.

    The retry never replaces anything: an output that existed before the chunk left is
    refused (as in a local run), and so is one that is not exactly this input's encryption.
    """
    from deepkedi.batch.cluster import _on_worker
    from deepkedi.batch.engine import _Settings

    source = samples / "CT_small.dcm"
    settings = _Settings("encrypt", KEY, False, "horizontal")
    ours = tmp_path / "ours.kedi"
    api.encrypt_file(source, ours, KEY, pattern="horizontal")  # what the dead worker had renamed into place
    before = ours.read_bytes()
    [adopted] = _on_worker(settings, [_task(source, ours)], [True])
    assert adopted.entry.status == Status.DONE and adopted.entry.key_id == KEY.key_id_hex
    assert adopted.entry.output_size == len(before) and ours.read_bytes() == before
    assert adopted.described == ("container", "hybrid", "horizontal")
    # The same file, present before the chunk left: refused, as a local run refuses it.
    [kept] = _on_worker(settings, [_task(source, ours)], [False])
    assert kept.entry.status == Status.REFUSED and ours.read_bytes() == before
    # Another input's container, another key's, another pattern's, or not a container: refused, untouched.
    others = {
        "input": (samples / "MR_small.dcm", KEY, "horizontal"),
        "key": (source, deepkedi.generate_key(gan=False), "horizontal"),
        "pattern": (source, KEY, "vertical"),
    }
    for name, (made_from, key, pattern) in others.items():
        foreign = tmp_path / f"{name}.kedi"
        api.encrypt_file(made_from, foreign, key, pattern=pattern)
        content = foreign.read_bytes()
        [outcome] = _on_worker(settings, [_task(source, foreign)], [True])
        assert outcome.entry.status == Status.REFUSED, name
        assert foreign.read_bytes() == content
    junk = tmp_path / "junk.kedi"
    junk.write_bytes(b"not a container")
    [outcome] = _on_worker(settings, [_task(source, junk)], [True])
    assert outcome.entry.status == Status.REFUSED and junk.read_bytes() == b"not a container"
    # Decryption: a restored file in place is adopted only when it is byte for byte this container's plaintext.
    unsealing = _Settings("decrypt", KEY, False, None)
    restored = tmp_path / "CT_small.dcm"
    shutil.copy(source, restored)
    [adopted] = _on_worker(unsealing, [_task(ours, restored)], [True])
    assert adopted.entry.status == Status.DONE and restored.read_bytes() == source.read_bytes()
    changed = source.read_bytes()[:-1] + bytes([source.read_bytes()[-1] ^ 1])
    restored.write_bytes(changed)
    [outcome] = _on_worker(unsealing, [_task(ours, restored)], [True])
    assert outcome.entry.status == Status.REFUSED and restored.read_bytes() == changed
