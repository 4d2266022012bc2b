"""The batch engine: a folder run on every core, recorded in a resumable manifest.

:func:`run_batch` walks the input folder, plans one output per file (the names
:func:`deepkedi.api.encrypt_tree` and :func:`~deepkedi.api.decrypt_tree` use), and
hands the files in chunks to a pool of worker processes (or, with ``jobs=1``, works
in this process; given a ``scheduler``, to the workers of a Dask cluster, which get
the key with each chunk: :mod:`deepkedi.batch.cluster`). Each worker receives, once, the one key it needs (decryption
from a keystore: the keys the files name, resolved and audited here); the
keystore itself never reaches a worker. Only this process writes the manifest, one
transaction per finished chunk. Nothing here prints, reads the environment or exits.

Input and output folders are local paths or fsspec URLs (``file://``, ``s3://`` with
s3fs…; :mod:`deepkedi.locations`). A file read from or written to a URL is handled
whole in memory through :func:`deepkedi.api.encrypt_bytes` / ``decrypt_bytes``; local
to local keeps the streaming file path.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from deepkedi import api
from deepkedi.batch.kinds import OPAQUE, container_output, encrypt_one, encrypt_one_bytes, is_opaque_note, opaque_note
from deepkedi.batch.manifest import MANIFEST_NAME, Entry, Manifest, Status
from deepkedi.cipher.keytypes import Key
from deepkedi.errors import DeepKediError, FormatError, OutputExistsError, UnsupportedImageError
from deepkedi.fileio import atomic_output, make_output_folder, refuse_protected, remove_stale_parts
from deepkedi.locations import filesystem, is_url, protocol, storage_location

if TYPE_CHECKING:
    from distributed import Client

    from deepkedi.keys.keystore import Keystore

__all__ = ["BatchResult", "Mode", "Outcome", "WorkerLostError", "run_batch"]

Mode = Literal["encrypt", "decrypt"]
PathLike = Union[str, "os.PathLike[str]"]
#: Called with (bytes done, bytes total, the file last finished) as the run goes on.
BatchProgress = Callable[[int, int, Path], None]
_HASH_CHUNK = 1 << 20
#: At most this many files per chunk: progress and the manifest move at least this often.
_MAX_CHUNK = 64
_SNIFF_BYTES = 4096
#: Without ``jobs``, no more workers than one per this many files (a small folder runs in this process).
_FILES_PER_DEFAULT_WORKER = 16


class WorkerLostError(DeepKediError):
    """A worker process ended abruptly (killed, out of memory); the manifest keeps what finished."""


@dataclass(frozen=True)
class Outcome:
    """One input's manifest entry, plus what the summary says of its encrypted side (not stored)."""

    entry: Entry
    #: The exception class's name for a failure or refusal (the command line's exit code follows it).
    error_kind: str | None = None
    #: ``(kind, suite, pattern)`` of the encrypted side, e.g. ``("container", "hybrid", "horizontal")``.
    described: tuple[str, str, str] | None = None
    #: Done by an earlier run of the same manifest and verified, not redone (``resume``).
    earlier: bool = False


@dataclass(frozen=True)
class BatchResult:
    """What a batch did to each input of the folder, in path order."""

    outcomes: tuple[Outcome, ...]
    manifest: Path
    jobs: int

    def _with(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.entry.status == status]

    @property
    def done(self) -> list[Outcome]:
        return self._with(Status.DONE)

    @property
    def skipped(self) -> list[Outcome]:
        return self._with(Status.SKIPPED)

    @property
    def refused(self) -> list[Outcome]:
        return self._with(Status.REFUSED)

    @property
    def failed(self) -> list[Outcome]:
        return self._with(Status.FAILED)

    @property
    def opaque(self) -> list[Outcome]:
        """Files sealed whole, or restored from such containers.

        When encrypting, these are the files that are not images deepkedi reads; the
        entry's ``error`` says why.
        """
        return [
            o
            for o in self.outcomes
            if o.entry.status == Status.DONE
            and (is_opaque_note(o.entry.error) or (o.described is not None and o.described[0] == OPAQUE))
        ]

    @property
    def earlier(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.earlier]

    @property
    def ok(self) -> bool:
        """Every file done or deliberately skipped."""
        return all(o.entry.status in (Status.DONE, Status.SKIPPED) for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        """JSON-safe counts and every file that was not done, with its reason."""
        return {
            "ok": self.ok,
            "manifest": str(self.manifest),
            "jobs": self.jobs,
            "files": len(self.outcomes),
            "done": len(self.done),
            "done_earlier": len(self.earlier),
            "opaque": len(self.opaque),
            "skipped": len(self.skipped),
            "refused": len(self.refused),
            "failed": len(self.failed),
            "not_done": [
                {"path": o.entry.rel, "status": o.entry.status, "reason": o.entry.error}
                for o in self.outcomes
                if o.entry.status != Status.DONE
            ],
        }


@dataclass(frozen=True)
class _Settings:
    """What every worker needs for the whole run (sent once, when the worker starts)."""

    mode: Mode
    key: Key | None
    as_dicom: bool
    pattern: str | None
    #: Skip what is not an image instead of sealing it opaque.
    only_images: bool = False


@dataclass(frozen=True)
class _Task:
    rel: str
    source: str
    output: str
    size: int
    #: The output may be replaced: ``force``, or the output of an unfinished entry of this manifest.
    replace: bool
    #: Decryption from a keystore: the key this file's header names (resolved by the parent).
    key: Key | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- worker side

#: A worker process's settings for the whole run, set once by the pool's initializer.
_worker_state: dict[str, _Settings] = {}


def _init_worker(settings: _Settings) -> None:
    # Ctrl-C reaches the whole process group: the parent alone answers it (it stops handing out
    # chunks; a worker finishes the chunk it holds), so workers print no tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_state["settings"] = settings


def _worker_chunk(tasks: list[_Task]) -> list[Outcome]:
    return _run_chunk(_worker_state["settings"], tasks)


def _run_chunk(settings: _Settings, tasks: Sequence[_Task]) -> list[Outcome]:
    return [_run_one(settings, task) for task in tasks]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_dicom(path: Path) -> bool:
    from deepkedi.imaging.sniff import sniff_dicom

    try:
        with open(path, "rb") as fh:
            return sniff_dicom(fh.read(_SNIFF_BYTES))
    except OSError:
        return False


def _message(exc: BaseException) -> str:
    """One line for the manifest: deepkedi's own message, or a system error's file and reason."""
    if isinstance(exc, OSError) and exc.filename is not None and not isinstance(exc, DeepKediError):
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, DeepKediError) else text.splitlines()[0]


def _run_one(settings: _Settings, task: _Task) -> Outcome:
    if is_url(task.source) or is_url(task.output):
        return _run_one_in_memory(settings, task)
    source, output = Path(task.source), Path(task.output)
    entry = Entry(rel=task.rel, size=task.size, output=task.output, status=Status.PENDING)
    try:
        entry = replace(entry, sha256=_sha256(source))
        if settings.mode == "encrypt":
            assert settings.key is not None
            make_output_folder(output.parent)
            one = encrypt_one(
                source,
                output,
                settings.key,
                as_dicom=settings.as_dicom,
                is_dicom=settings.as_dicom and _is_dicom(source),
                pattern=settings.pattern,
                force=task.replace,
                only_images=settings.only_images,
            )
            if one.result is None:
                return Outcome(replace(entry, status=Status.SKIPPED, error=one.why))
            result, output = one.result, one.result.output  # with as_dicom, maybe NAME.kedi beside
            # A file sealed whole: the entry says so, and why it is not an image.
            entry = replace(entry, output=str(output), error=opaque_note(one.why) if one.opaque else None)
        else:
            key = task.key or settings.key
            assert key is not None
            if not task.rel.endswith(api.CONTAINER_SUFFIX) and not _is_dicom(source):
                reason = f"neither a {api.CONTAINER_SUFFIX} container nor a DICOM-native file"
                return Outcome(replace(entry, status=Status.SKIPPED, error=reason))
            make_output_folder(output.parent)
            try:
                result = api.decrypt_file(source, output, key, force=task.replace)
            except FormatError:
                if task.rel.endswith(api.CONTAINER_SUFFIX):
                    raise
                return Outcome(replace(entry, status=Status.SKIPPED, error="a DICOM file that is not DICOM-native"))
    except OutputExistsError as exc:
        return Outcome(replace(entry, status=Status.REFUSED, error=_message(exc)), type(exc).__name__)
    except (DeepKediError, ValueError, OSError) as exc:
        return Outcome(replace(entry, status=Status.FAILED, error=_message(exc)), type(exc).__name__)
    header = result.info.header
    done = replace(
        entry,
        status=Status.DONE,
        key_id=header.key_id.hex(),
        output_size=output.stat().st_size,
    )
    kind = OPAQUE if result.info.opaque else result.info.kind.value
    return Outcome(
        done, described=(kind, header.suite.name.lower(), "" if result.info.opaque else header.pattern.value)
    )


def _read_bytes(where: str) -> bytes:
    if not is_url(where):
        return Path(where).read_bytes()
    fs, path = filesystem(where)
    return bytes(fs.cat_file(path))


def _write_bytes(where: str, data: bytes, replace: bool) -> None:
    """``data`` to ``where``: a local file through a part file and rename; a URL in one put."""
    if not is_url(where):
        make_output_folder(Path(where).parent)
        with atomic_output(where, force=replace, flush_while_writing=False) as fh:
            fh.write(data)
        return
    fs, path = filesystem(where)
    if not replace and fs.exists(path):
        raise OutputExistsError(f"{where} exists; use --force to replace it")
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, data)


def _run_one_in_memory(settings: _Settings, task: _Task) -> Outcome:
    """One file whose input or output is a URL: read whole, encrypted or decrypted in memory, written whole."""
    from deepkedi.imaging.sniff import sniff_dicom

    entry = Entry(rel=task.rel, size=task.size, output=task.output, status=Status.PENDING)
    target = task.output
    try:
        data = _read_bytes(task.source)
        entry = replace(entry, sha256=hashlib.sha256(data).hexdigest())
        if settings.mode == "encrypt":
            assert settings.key is not None
            as_dicom = settings.as_dicom
            sealed, why, beside = encrypt_one_bytes(
                data,
                settings.key,
                name=task.rel.rsplit("/", 1)[-1],
                as_dicom=as_dicom,
                is_dicom=as_dicom and sniff_dicom(data[:_SNIFF_BYTES]),
                pattern=settings.pattern,
                only_images=settings.only_images,
            )
            if sealed is None:
                return Outcome(replace(entry, status=Status.SKIPPED, error=why))
            result, info = sealed, api.read_header(sealed)
            target = container_output(task.output, as_dicom) if beside else task.output
            entry = replace(entry, output=target, error=opaque_note(why) if info.opaque else None)
        else:
            key = task.key or settings.key
            assert key is not None
            if not task.rel.endswith(api.CONTAINER_SUFFIX) and not sniff_dicom(data[:_SNIFF_BYTES]):
                reason = f"neither a {api.CONTAINER_SUFFIX} container nor a DICOM-native file"
                return Outcome(replace(entry, status=Status.SKIPPED, error=reason))
            try:
                info = api.read_header(data)
                result = api.decrypt_bytes(data, key)
            except FormatError:
                if task.rel.endswith(api.CONTAINER_SUFFIX):
                    raise
                return Outcome(replace(entry, status=Status.SKIPPED, error="a DICOM file that is not DICOM-native"))
        _write_bytes(target, result, task.replace)
    except OutputExistsError as exc:
        return Outcome(replace(entry, status=Status.REFUSED, error=_message(exc)), type(exc).__name__)
    except (DeepKediError, ValueError, OSError) as exc:
        return Outcome(replace(entry, status=Status.FAILED, error=_message(exc)), type(exc).__name__)
    done = replace(entry, status=Status.DONE, key_id=info.header.key_id.hex(), output_size=len(result))
    kind = OPAQUE if info.opaque else info.kind.value
    return Outcome(
        done, described=(kind, info.header.suite.name.lower(), "" if info.opaque else info.header.pattern.value)
    )


# ----------------------------------------------------------------------------- parent side


def _location(where: PathLike) -> Path | str:
    """A local folder (a path, or a ``file://`` URL) or an fsspec URL, as given otherwise."""
    return storage_location(where) if isinstance(where, str) and is_url(where) else Path(where)


def _walk(src: Path | str) -> list[tuple[str, str, int]]:
    """``(relative POSIX path, where, size)`` of every visible regular file under ``src``, sorted.

    Names starting with a dot are skipped (the manifest and part files among them).
    """
    found = []
    if isinstance(src, Path):
        if not src.is_dir():
            raise UnsupportedImageError(f"{src}: no such folder")
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src)
            if not any(part.startswith(".") for part in rel.parts):
                found.append((rel.as_posix(), str(path), path.stat().st_size))
        return found
    fs, root = filesystem(src)
    root = root.rstrip("/")
    if not fs.isdir(root):
        raise UnsupportedImageError(f"no such folder at the {protocol(src)}:// input")
    for path, info in sorted(fs.find(root, detail=True).items()):
        rel = path[len(root) :].lstrip("/")
        if info.get("type", "file") == "file" and rel and not any(part.startswith(".") for part in rel.split("/")):
            found.append((rel, fs.unstrip_protocol(path), int(info["size"])))
    return found


def _output_for(mode: Mode, rel: str, dst: Path | str, as_dicom: bool) -> str:
    folder, _, name = rel.rpartition("/")
    if mode == "encrypt" and not as_dicom:
        name += api.CONTAINER_SUFFIX
    elif mode == "decrypt" and name.endswith(api.CONTAINER_SUFFIX):
        name = name[: -len(api.CONTAINER_SUFFIX)]
    out_rel = f"{folder}/{name}" if folder else name
    return str(dst / out_rel) if isinstance(dst, Path) else f"{dst.rstrip('/')}/{out_rel}"


def _size(where: str) -> int:
    if not is_url(where):
        return os.stat(where).st_size
    fs, path = filesystem(where)
    return int(fs.size(path))


def _header_of(where: str) -> api.ContainerInfo:
    if not is_url(where):
        return api.read_header(where)
    fs, path = filesystem(where)
    with fs.open(path, "rb") as fh:
        return api.read_header(fh)


def _is_dicom_at(where: str) -> bool:
    if not is_url(where):
        return _is_dicom(Path(where))
    from deepkedi.imaging.sniff import sniff_dicom

    fs, path = filesystem(where)
    try:
        with fs.open(path, "rb") as fh:
            return sniff_dicom(fh.read(_SNIFF_BYTES))
    except OSError:
        return False


def _verifies(mode: Mode, entry: Entry, source: str, size: int) -> bool:
    """Whether an entry done earlier still stands: same input size, output of the recorded size and key id."""
    try:
        if size != entry.size or _size(entry.output) != entry.output_size:
            return False
        encrypted = entry.output if mode == "encrypt" else source
        return _header_of(encrypted).header.key_id.hex() == entry.key_id
    except (DeepKediError, OSError, ValueError):
        return False


def _chunked(tasks: Sequence[_Task], size: int) -> Iterator[list[_Task]]:
    for start in range(0, len(tasks), size):
        yield list(tasks[start : start + size])


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers start from a clean interpreter (never a fork of a process holding keys and open databases)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the engine (and so the cipher) once; each worker forks from it ready to work.
    context.set_forkserver_preload([__name__])
    return context


def run_batch(
    src: PathLike,
    dst: PathLike,
    key: Key | Keystore,
    *,
    mode: Mode,
    actor: str | None = None,
    as_dicom: bool = False,
    pattern: str | None = None,
    only_images: bool = False,
    force: bool = False,
    resume: bool = False,
    jobs: int | None = None,
    manifest: PathLike | None = None,
    progress: BatchProgress | None = None,
    protect: Mapping[PathLike, str] | None = None,
    chunk_size: int | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Encrypt (``mode="encrypt"``) or decrypt every visible file under ``src`` into the mirrored tree ``dst``.

    Parameters
    ----------
    src, dst
        Local folders, or fsspec URLs (``file://``, ``s3://``…; docs/SCALE.md): a file
        read from or written to a URL is handled whole in memory. An output URL needs
        ``manifest``; ``memory://`` runs in this process only.
    key
        A :class:`~deepkedi.cipher.keytypes.Key`; for decryption also an open keystore,
        from which the key each file's header names is taken once per key id (audited
        under ``actor``) and handed to the workers with the files it opens.
    as_dicom
        Encryption: DICOM-native outputs under the same names; a file that is not a DICOM
        image is sealed opaque beside them, as ``NAME.kedi`` (skipped with ``only_images``).
    only_images
        Encryption: skip (with the reason) what is not an image deepkedi reads, instead of
        sealing its bytes whole into an opaque ``.kedi`` container (the default: every
        file of a study is protected; decryption restores it byte for byte).
    force
        Replace outputs that exist. Without it an existing output is *refused*
        (recorded, the run goes on), except the output of an entry this manifest
        left unfinished, which this run itself was writing.
    resume
        Keep the entries an earlier run of this manifest finished, when they verify
        (same input size; output present with the recorded size and the recorded key
        id in its header); everything else is done again.
    jobs
        Worker processes (default: ``os.cpu_count()``, but no more than one per 16
        files, so a small folder runs in this process); ``1`` works in this process.
        Never more workers than files.
    manifest
        The SQLite manifest (default ``dst/.kedi-manifest.sqlite``).
    progress
        Called with (bytes done, bytes total, the file last finished).
    protect
        Files no output may replace (a key file, a keystore) and what they are:
        ``ValueError`` before any file is touched.
    scheduler
        The address of a Dask scheduler (``tcp://HOST:PORT``): the chunks run on
        that cluster's workers instead of a local pool (the ``cluster`` extra;
        :mod:`deepkedi.batch.cluster`, docs/SCALE.md). ``jobs`` then defaults to the
        cluster's threads; twice ``jobs`` chunks are kept on the cluster at once.

    Raises
    ------
    ManifestMismatchError
        ``manifest`` records another run (another mode, input folder, key or options).
    ValueError
        An output would replace a protected file; ``jobs`` is below 1; ``scheduler``
        is not an address or answers nothing (:class:`~deepkedi.batch.cluster.SchedulerUnreachableError`).
    WorkerLostError
        A local worker process died, or the cluster went away.
    """
    if mode not in ("encrypt", "decrypt"):
        raise ValueError(f"mode must be 'encrypt' or 'decrypt', not {mode!r}")
    if as_dicom and mode == "decrypt":
        raise ValueError("as_dicom belongs to encryption (decryption recognises DICOM-native files itself)")
    if only_images and mode == "decrypt":
        raise ValueError("only_images belongs to encryption (decryption restores every container it finds)")
    workers = (os.cpu_count() or 1) if jobs is None else jobs
    if workers < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if mode == "encrypt" and not isinstance(key, Key):
        raise TypeError(f"encryption needs a Key, not {type(key).__name__}")
    src_at, dst_at = _location(src), _location(dst)
    if any(isinstance(where, str) and protocol(where) == "memory" for where in (src_at, dst_at)):
        if scheduler is not None or (workers > 1 and jobs is not None):
            raise ValueError("a memory:// folder lives in one process; run it with jobs=1 and no scheduler")
        workers = 1
    if scheduler is not None:  # before walking and writing anything: a missing extra, a wrong address
        from deepkedi.batch import cluster

        cluster.reach(scheduler)
    planned = [(rel, where, size, _output_for(mode, rel, dst_at, as_dicom)) for rel, where, size in _walk(src_at)]
    refuse_protected([out for *_, out in planned if not is_url(out)], protect)  # protected files are local
    if isinstance(dst_at, Path):
        make_output_folder(dst_at)
        manifest_path = Path(manifest) if manifest is not None else dst_at / MANIFEST_NAME
    elif manifest is None:
        raise ValueError("an output URL needs a local manifest: give manifest=PATH (--manifest)")
    else:
        manifest_path = Path(manifest)
    with _cluster_client(scheduler) as client, Manifest(manifest_path) as book:
        source = str(src_at.resolve()) if isinstance(src_at, Path) else src_at
        run = {"mode": mode, "source": source, "as_dicom": str(as_dicom), "pattern": str(pattern)}
        if isinstance(key, Key):
            run["key_id"] = key.key_id_hex
        book.bind(run)
        earlier = book.entries()
        outcomes: dict[str, Outcome] = {}
        tasks: list[_Task] = []
        kept_done: set[str] = set()
        for name, where, size, output in planned:
            before = earlier.get(name)
            if resume and before is not None and before.status == Status.DONE and _verifies(mode, before, where, size):
                outcomes[name] = Outcome(before, earlier=True)
                continue
            # An output the manifest's own unfinished (or no longer verifying) entry names is this
            # manifest's own work: resume replaces it.
            ours = (
                before is not None
                and before.status in (Status.PENDING, Status.DONE)
                and before.output in (output, container_output(output, as_dicom))
            )
            if not resume and ours and before is not None and before.status == Status.DONE:
                kept_done.add(name)  # a refusal below must not erase what an earlier run finished
            tasks.append(_Task(name, where, output, size, force or (resume and ours)))
        if resume:  # part files a killed run left, wherever it was writing
            for folder in sorted({Path(output).parent for *_, output in planned if not is_url(output)}):
                if folder.is_dir():
                    remove_stale_parts(folder)
        book.record(Entry(t.rel, t.size, t.output, Status.PENDING) for t in tasks if t.rel not in kept_done)
        if mode == "decrypt" and not isinstance(key, Key):
            tasks = _with_keystore_keys(tasks, key, actor, outcomes, book)
        settings = _Settings(mode, key if isinstance(key, Key) else None, as_dicom, pattern, only_images)
        if client is not None and jobs is None:  # a cluster: as many jobs as its workers have threads
            workers = cluster.threads(client)
        # A worker starts in about half a second: by default each gets at least _FILES_PER_DEFAULT_WORKER files.
        cap = len(tasks) if jobs is not None else math.ceil(len(tasks) / _FILES_PER_DEFAULT_WORKER)
        workers = max(1, min(workers, cap))
        total = sum(t.size for t in tasks)
        done_bytes = 0
        if progress is not None and tasks:
            progress(0, total, Path(tasks[0].rel))
        per_chunk = chunk_size or max(1, min(_MAX_CHUNK, math.ceil(len(tasks) / (workers * 4))))
        for finished in _execute(settings, tasks, workers, per_chunk, client):
            book.record(o.entry for o in finished if o.entry.status != Status.REFUSED or o.entry.rel not in kept_done)
            for outcome in finished:
                outcomes[outcome.entry.rel] = outcome
            done_bytes += sum(o.entry.size for o in finished)
            if progress is not None and finished:
                progress(done_bytes, total, Path(finished[-1].entry.rel))
    ordered = tuple(outcomes[name] for name, *_ in planned)
    return BatchResult(ordered, manifest_path, workers)


def _with_keystore_keys(
    tasks: list[_Task], store: Keystore, actor: str | None, outcomes: dict[str, Outcome], book: Manifest
) -> list[_Task]:
    """Each file to decrypt with the key its header names, taken from the keystore once per key id."""
    if not actor:
        raise ValueError("decrypting with a keystore needs actor=NAME: the keystore audits who asks")
    keys: dict[bytes, Key] = {}
    ready: list[_Task] = []
    settled: list[Entry] = []
    for task in tasks:
        source = task.source
        if not task.rel.endswith(api.CONTAINER_SUFFIX) and not _is_dicom_at(source):
            ready.append(task)  # the worker records it as skipped
            continue
        try:
            key_id = _header_of(source).key_id
            if key_id not in keys:
                found = store.get_key(key_id, actor=actor)
                if not isinstance(found, Key):
                    raise ValueError(f"{source}: the keystore's key {key_id.hex()} is not a hybrid key")
                keys[key_id] = found
        except FormatError as exc:
            status = Status.FAILED if task.rel.endswith(api.CONTAINER_SUFFIX) else Status.SKIPPED
            reason = str(exc) if status == Status.FAILED else "a DICOM file that is not DICOM-native"
            entry = Entry(task.rel, task.size, task.output, status, error=reason)
            outcomes[task.rel] = Outcome(entry, type(exc).__name__ if status == Status.FAILED else None)
            settled.append(entry)
            continue
        except (DeepKediError, ValueError, OSError) as exc:
            entry = Entry(task.rel, task.size, task.output, Status.FAILED, error=_message(exc))
            outcomes[task.rel] = Outcome(entry, type(exc).__name__)
            settled.append(entry)
            continue
        ready.append(replace(task, key=keys[key_id]))
    book.record(settled)
    return ready


@contextlib.contextmanager
def _cluster_client(scheduler: str | None) -> Iterator[Client | None]:
    """A client of the Dask cluster at ``scheduler`` for the run, or ``None`` (no Dask import) without one."""
    if scheduler is None:
        yield None
        return
    from deepkedi.batch import cluster

    with cluster.connect(scheduler) as client:
        yield client


def _execute(
    settings: _Settings, tasks: list[_Task], workers: int, per_chunk: int, client: Client | None = None
) -> Iterator[list[Outcome]]:
    """Each chunk's outcomes as it finishes: in this process (one job), across a process pool, or on a cluster."""
    chunks = _chunked(tasks, per_chunk)
    if client is not None:
        from deepkedi.batch import cluster

        yield from cluster.run_chunks(client, settings, chunks, workers)
        return
    if workers == 1:
        for chunk in chunks:
            yield _run_chunk(settings, chunk)
        return
    try:
        yield from _pooled(settings, chunks, workers)
    except BrokenProcessPool:
        raise WorkerLostError(
            "a worker process ended abruptly (killed, or out of memory; a script that runs a pool needs "
            "an `if __name__ == '__main__':` guard); the manifest keeps what finished: run again with --resume"
        ) from None


def _pooled(settings: _Settings, chunks: Iterator[list[_Task]], workers: int) -> Iterator[list[Outcome]]:
    """``workers`` processes at work: this one and a pool of ``workers - 1``.

    A pool worker is ready only a few tenths of a second after it is asked for; this
    process does not wait for it. It keeps the pool fed (at most two chunks per worker
    in flight, so memory stays flat on any folder) and works on the next chunk itself
    whenever the pool is full, recording what the pool finished in between.
    """
    helpers = workers - 1
    pool = ProcessPoolExecutor(
        max_workers=helpers, mp_context=_pool_context(), initializer=_init_worker, initargs=(settings,)
    )
    try:
        pending: set[Future[list[Outcome]]] = set()
        for chunk in chunks:
            if len(pending) < 2 * helpers:
                pending.add(pool.submit(_worker_chunk, chunk))
                continue
            yield _run_chunk(settings, chunk)
            finished = {future for future in pending if future.done()}
            pending -= finished
            for future in finished:
                yield future.result()
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:  # on an interrupt, what no worker has started is dropped: --resume does it
        pool.shutdown(wait=True, cancel_futures=True)
