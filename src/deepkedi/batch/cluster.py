"""Folder runs on a Dask distributed cluster: the engine's chunks, run by the cluster's workers.

:func:`deepkedi.batch.run_batch` comes here when given ``scheduler="tcp://HOST:PORT"``.
This process plans the run and alone writes the manifest, exactly as for the local
pool; the workers of an existing Dask cluster run the chunks. Dask (the ``cluster``
extra) is imported here only, and only for such a run: a local run never imports it.

What reaches the cluster, with each chunk: the run's settings (mode, ``as_dicom``, the
zigzag pattern and, with one master key, that key), the files' paths and, when
decrypting from a keystore, the key each file's header names. The keystore, its KEK
and its database stay in this process. (The settings travel with every chunk rather
than being scattered to the workers once: scattered data dies with the workers that
hold it, and a cluster whose workers all restart would then lose the run.) Workers need
deepkedi installed and the input and output folders at the same paths (a shared
filesystem); they are told absolute paths.

A worker that dies mid-chunk: Dask runs its chunk again on another worker. Outputs
the dead worker had already renamed into place are this run's own, and the retry
*adopts* them rather than refusing them: only an output that did not exist when this
process handed out its chunk, and only once it has been checked to be this very file
under this run's key (decrypted, authenticated, SHA-256 compared; nothing is replaced).
Anything else found in an output's place is refused as in a local run. Part files the
dead worker left are removed at the end of the run by the workers of the same host.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import io
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from deepkedi import api
from deepkedi.batch.engine import Outcome, WorkerLostError, _message, _run_one, _Settings, _sha256, _Task
from deepkedi.batch.manifest import Status
from deepkedi.errors import DeepKediError, require_extra
from deepkedi.fileio import remove_stale_parts
from deepkedi.locations import is_url

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["CONNECT_TIMEOUT_S", "NO_WORKERS_GRACE_S", "SchedulerUnreachableError", "connect", "reach", "run_chunks"]

#: Seconds to reach the scheduler before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Seconds a run waits while the cluster has no worker at all (a nanny restarts a killed worker in a few).
NO_WORKERS_GRACE_S = 60.0
#: Seconds between looks at the cluster while no chunk finishes.
_POLL_S = 1.0
_FEATURE = "running on a Dask cluster (--scheduler)"


class SchedulerUnreachableError(DeepKediError, ValueError):
    """No Dask scheduler answers at the address given (a usage error: a wrong address or port)."""


def _distributed() -> ModuleType:
    return require_extra("distributed", "cluster", feature=_FEATURE)


def reach(address: str) -> None:
    """Check, before anything is written, that the ``cluster`` extra is installed and ``address`` answers.

    Raises
    ------
    MissingExtraError
        Dask's ``distributed`` is not installed.
    ValueError
        ``address`` is not a Dask address (``tcp://HOST:PORT``, ``tls://HOST:PORT``),
        or is ``tls://`` while Dask's configuration holds no TLS settings.
    SchedulerUnreachableError
        Nothing accepts a connection there within :data:`CONNECT_TIMEOUT_S`.
    """
    distributed = _distributed()
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return  # other transports (ucx, inproc) are left to the client
        host, port = parse_host_port(location)
    except ValueError as exc:
        raise ValueError(f"{address!r} is not a Dask scheduler address ({exc}); give tcp://HOST:PORT") from None
    # The client takes its certificates from Dask's configuration (distributed.comm.tls.*), as Dask's own tools do.
    if scheme == "tls" and distributed.Security().get_connection_args("client")["ssl_context"] is None:
        raise ValueError(
            f"{address} is a TLS address and Dask's configuration has no TLS settings: set "
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT and "
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY (or distributed.comm.tls in Dask's YAML configuration)"
        )
    try:
        # A plain connection: refused at once when nothing listens, where Dask's client would retry until
        # its timeout (and then leave a half-made client behind that waits again when collected).
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise SchedulerUnreachableError(f"no Dask scheduler answers at {address} ({reason})") from None
    _identify(address)


def _identify(address: str) -> None:
    """Ask what listens at ``address`` who it is, over Dask's protocol, within :data:`CONNECT_TIMEOUT_S`.

    Dask's client waits without end on a server that accepts the connection and never
    answers (another service on that port); this question is bounded.
    """
    distributed = _distributed()
    from distributed.comm import connect as dask_connect

    async def ask() -> Any:
        args = distributed.Security().get_connection_args("client")
        comm = await dask_connect(address, timeout=CONNECT_TIMEOUT_S, **args)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            await comm.close()

    def bounded() -> Any:  # in a thread of its own: the caller may be inside an event loop already
        return asyncio.run(asyncio.wait_for(ask(), CONNECT_TIMEOUT_S))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            identity = pool.submit(bounded).result()
        except (OSError, TimeoutError, asyncio.TimeoutError):
            raise SchedulerUnreachableError(
                f"no Dask scheduler answers at {address} (something accepts connections there, "
                f"but does not answer as Dask within {CONNECT_TIMEOUT_S:g} s)"
            ) from None
    kind = identity.get("type") if isinstance(identity, dict) else None
    if kind != "Scheduler":
        what = f"a Dask {kind}" if isinstance(kind, str) else "not a Dask scheduler"
        raise SchedulerUnreachableError(f"{address} is {what}, not a scheduler; give the scheduler's address")


@contextlib.contextmanager
def connect(address: str) -> Iterator[Client]:
    """A :class:`distributed.Client` of the scheduler at ``address`` with at least one worker, closed on exit.

    Raises
    ------
    SchedulerUnreachableError, ValueError, MissingExtraError
        As :func:`reach`.
    WorkerLostError
        The cluster has had no worker for :data:`NO_WORKERS_GRACE_S` seconds.
    """
    reach(address)
    distributed = _distributed()
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except OSError:
        raise SchedulerUnreachableError(f"no Dask scheduler answers at {address}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=NO_WORKERS_GRACE_S)
        except distributed.TimeoutError:
            raise WorkerLostError(
                f"the Dask cluster at {address} has no worker (waited {NO_WORKERS_GRACE_S:g} s)"
            ) from None
        yield client
    finally:
        with contextlib.suppress(OSError, distributed.TimeoutError):  # a scheduler already gone
            client.close(timeout=CONNECT_TIMEOUT_S)


def threads(client: Client) -> int:
    """The threads of every worker of the cluster, together."""
    return max(1, sum(client.nthreads().values()))


# ----------------------------------------------------------------------------- worker side


def _on_worker(settings: _Settings, tasks: Sequence[_Task], fresh: Sequence[bool]) -> list[Outcome]:
    """One chunk, on a worker: as in a local pool, but an output of this run found in place is adopted."""
    outcomes = []
    for task, new in zip(tasks, fresh, strict=True):
        outcome = _run_one(settings, task)
        if new and outcome.entry.status == Status.REFUSED:
            outcome = _adopted(settings, task, outcome)
        outcomes.append(outcome)
    return outcomes


class _Digest(io.RawIOBase):
    """A sink that keeps only the SHA-256 of what is written to it."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return len(data)


def _restored_sha256(encrypted: Path, settings: _Settings, task: _Task) -> str:
    """SHA-256 of what ``encrypted`` decrypts to under this run's key (authenticated; nothing written)."""
    key = task.key or settings.key
    assert key is not None
    sink = _Digest()
    with open(encrypted, "rb") as fh:
        api.decrypt_stream(fh, cast(BinaryIO, sink), key)
    return sink.sha256.hexdigest()


def _adopted(settings: _Settings, task: _Task, refused: Outcome) -> Outcome:
    """``refused`` as done when the output in place is exactly what this task makes; else ``refused``.

    Called for outputs that did not exist when the chunk was handed out, so that what is
    found there was written since: by a worker that died after finishing it, whose chunk
    Dask runs again here. The output is kept only if it provably is this input under this
    run's key and options; anything else stays refused and untouched.
    """
    source, output = Path(task.source), Path(task.output)
    entry = refused.entry
    try:
        if settings.mode == "encrypt":
            info = api.read_header(output)
            kind = api.ContainerKind.DICOM_NATIVE if settings.as_dicom else api.ContainerKind.CONTAINER
            if info.kind is not kind or (settings.pattern and info.header.pattern.value != settings.pattern):
                return refused
            if _restored_sha256(output, settings, task) != (entry.sha256 or _sha256(source)):
                return refused
        else:
            info = api.read_header(source)
            if _restored_sha256(source, settings, task) != _sha256(output):
                return refused
        size = output.stat().st_size
    except (DeepKediError, ValueError, OSError) as exc:
        return replace(refused, entry=replace(entry, error=f"{entry.error}; not this run's output ({_message(exc)})"))
    header = info.header
    done = replace(entry, status=Status.DONE, error=None, key_id=header.key_id.hex(), output_size=size)
    return Outcome(done, described=(info.kind.value, header.suite.name.lower(), header.pattern.value))


def _sweep(folders: Sequence[str]) -> int:
    """Remove, in each folder, the part files a dead process of this host left; how many."""
    return sum(len(remove_stale_parts(folder)) for folder in folders)


# ----------------------------------------------------------------------------- this process


def _absolute(task: _Task) -> _Task:
    """Local paths made absolute (a worker's working folder is its own); URLs as they are."""
    source = task.source if is_url(task.source) else os.path.abspath(task.source)
    output = task.output if is_url(task.output) else os.path.abspath(task.output)
    return replace(task, source=source, output=output)


class _Run:
    """One batch's chunks on the cluster, collected as they finish."""

    def __init__(self, client: Client, settings: _Settings) -> None:
        self.distributed = _distributed()
        self.client = client
        self.name = f"kedi-chunk-{uuid.uuid4().hex[:12]}"
        self.count = 0
        self.pending: dict[Future, list[_Task]] = {}
        self.folders: set[str] = set()
        self.workers_seen = set(self._nthreads())
        self.starved_since: float | None = None
        self.settings = settings

    def _lost(self, what: str) -> WorkerLostError:
        return WorkerLostError(
            f"{what}; the manifest keeps what finished: run again with --resume "
            "(with --scheduler once the cluster is back, or without it to finish here)"
        )

    def _nthreads(self) -> dict[str, int]:
        try:
            return dict(self.client.nthreads())
        except OSError:
            raise self._lost("lost the connection to the Dask scheduler") from None

    def submit(self, chunk: list[_Task]) -> None:
        # Whether each output exists now, as the chunk leaves: one that appears later can only be this
        # chunk's own work (a worker that died after writing it), which a retry may adopt.
        # Outputs on URLs are never adopted (the check reads local files): a retry refuses them, and
        # --resume redoes them, since the manifest names them as this run's own.
        fresh = [not is_url(task.output) and not os.path.lexists(task.output) for task in chunk]
        tasks = [_absolute(task) for task in chunk]
        self.folders.update(os.path.dirname(task.output) for task in tasks if not is_url(task.output))
        future = self.client.submit(_on_worker, self.settings, tasks, fresh, key=f"{self.name}-{self.count}")
        self.count += 1
        self.pending[future] = chunk

    def collect(self) -> list[list[Outcome]]:
        """Wait up to :data:`_POLL_S` for chunks; the outcomes of those finished, under their planned names."""
        distributed = self.distributed
        try:
            with self.client.as_current():
                distributed.wait(list(self.pending), timeout=_POLL_S, return_when="FIRST_COMPLETED")
        except distributed.TimeoutError:
            pass
        except distributed.CancelledError:
            pass  # a cancelled chunk: the loop below says why
        except OSError:
            raise self._lost("lost the connection to the Dask scheduler") from None
        finished = []
        for future in [f for f in self.pending if f.done()]:
            if future.cancelled():
                raise self._lost("the Dask scheduler dropped this run's work (scheduler restarted or gone)")
            try:
                outcomes = future.result(timeout=_POLL_S)
            except distributed.TimeoutError:
                continue  # its result was on a worker that died meanwhile: the chunk runs again
            except distributed.KilledWorker:
                raise self._lost("workers died running the same chunk again and again (Dask gave up on it)") from None
            except OSError:
                raise self._lost("lost the connection to the Dask scheduler") from None
            chunk = self.pending.pop(future)
            planned = {task.rel: task.output for task in chunk}
            finished.append([replace(o, entry=replace(o.entry, output=planned[o.entry.rel])) for o in outcomes])
        self._watch()
        return finished

    def _watch(self) -> None:
        """Stop when the scheduler is gone, or when it has had no worker for :data:`NO_WORKERS_GRACE_S`."""
        if self.client.status != "running":
            raise self._lost("lost the connection to the Dask scheduler")
        current = self._nthreads()
        self.workers_seen.update(current)
        if current:
            self.starved_since = None
        elif self.starved_since is None:
            self.starved_since = time.monotonic()
        elif time.monotonic() - self.starved_since > NO_WORKERS_GRACE_S:
            raise self._lost(f"the Dask cluster has had no worker for {NO_WORKERS_GRACE_S:g} s")

    def sweep_if_workers_left(self) -> None:
        """After a worker left mid-run: its part files, removed on every host that still has a worker, and here."""
        # Every file is done by now: a worker or the scheduler lost meanwhile costs only the sweep on its host.
        with contextlib.suppress(OSError, self.distributed.TimeoutError):
            if not self.workers_seen - set(self.client.nthreads()):
                return
            self.client.run(_sweep, sorted(self.folders), on_error="return")
        _sweep(sorted(self.folders))

    def cancel(self) -> None:
        """Drop what is queued (a chunk a worker is running still finishes; its outputs are --resume's)."""
        futures = list(self.pending)
        self.pending.clear()
        with contextlib.suppress(OSError, self.distributed.TimeoutError):
            self.client.cancel(futures)


def run_chunks(
    client: Client, settings: _Settings, chunks: Iterator[list[_Task]], jobs: int
) -> Iterator[list[Outcome]]:
    """Each chunk's outcomes as it finishes on the cluster, with at most ``2 * jobs`` chunks in flight.

    Raises
    ------
    WorkerLostError
        The scheduler went away, the cluster has had no worker for
        :data:`NO_WORKERS_GRACE_S`, or Dask gave up on a chunk whose workers kept dying.
    """
    run = _Run(client, settings)
    try:
        for chunk in chunks:  # memory stays flat on any folder: a few chunks in flight, results taken as they come
            run.submit(chunk)
            while len(run.pending) >= 2 * jobs:
                yield from run.collect()
        while run.pending:
            yield from run.collect()
        run.sweep_if_workers_left()
    finally:
        run.cancel()
