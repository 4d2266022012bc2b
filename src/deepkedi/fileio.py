"""Atomic, never-clobbering, private output files.

DESIGN.md, "Never lose data": outputs are written to a temporary file in the
target folder and renamed into place; an existing output is not replaced unless
asked; a failure leaves no partial output behind.

Permissions: a temporary (part) file is created ``0600`` and stays so while it
is written, whatever it will hold. Only when it is moved into place does it get
its final mode, the ``mode`` asked for (``0600`` unless the caller says
otherwise) narrowed by the process umask: an output is never readable by more
users than the umask allows, and the encrypt and decrypt recipes never make it
wider than their input (:func:`output_mode`).

Part files are named ``.NAME.kedi-HOST-PID-RANDOM.part`` (a folder of that name
for :func:`atomic_output_path`). A failure or an exception (the command line
turns SIGINT, SIGTERM and SIGHUP into one) removes them; a process killed
outright (SIGKILL, power loss) cannot, so the first output this process makes
in a folder sweeps that folder: part files of this host, owned by this user,
whose process is gone, are removed (:func:`remove_stale_parts`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from deepkedi.errors import OutputError, OutputExistsError

__all__ = [
    "atomic_output",
    "atomic_output_path",
    "check_distinct",
    "make_output_folder",
    "output_mode",
    "refuse_protected",
    "remove_stale_parts",
    "scratch_folder",
    "write_atomic",
]

#: Default permission bits of outputs: owner read/write only.
PRIVATE_MODE = 0o600
#: Bytes of the output's name kept in its part-file name (which adds about 40 bytes to it):
#: a name near the filesystem's 255-byte limit must still have a part file.
_NAME_KEEP = 64
_PART_NAME = re.compile(r"^\..*\.kedi-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-z]{8}\.part$")
_swept: set[str] = set()
_swept_lock = threading.Lock()
_umask_lock = threading.Lock()


def _host_tag() -> str:
    """Eight hex digits naming this host: a process id means something only on its own host."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _part_name(path: Path) -> str:
    """``.NAME.kedi-HOST-PID-RANDOM.part``: recognisable, and whose it is.

    Callers take the name *before* creating the file, so that an exception
    (a signal) arriving right after the creation still finds the name to
    remove. The pid and 32 random bits make a clash all but impossible, and
    one only ever with a file that is not ours (``O_EXCL`` refuses it).
    """
    kept = os.fsencode(path.name)[:_NAME_KEEP].decode("utf-8", "ignore") or "output"
    return f".{kept}.kedi-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}.part"


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:  # elsewhere: set and restore (not atomic across threads outside this module)
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def output_mode(src: str | Path, *, at_most: int = PRIVATE_MODE) -> int:
    """Permission bits for an output made from ``src``: never wider than ``src``'s nor ``at_most``.

    Only read and write bits are kept (an output is never executable); the
    umask narrows the result further when the file is moved into place.
    """
    try:
        src_mode = stat.S_IMODE(os.stat(src).st_mode)
    except OSError:
        return at_most & PRIVATE_MODE
    return src_mode & at_most & 0o666


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's) or we cannot tell: keep its files
    return False


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the part files a killed process left in ``folder``; return what was removed.

    Only names made by this module (``.NAME.kedi-HOST-PID-RANDOM.part``), made
    on this host, owned by this user, whose process no longer runs, are
    touched. A pid reused by a newer process keeps its files until it ends.
    """
    removed: list[Path] = []
    host, uid = _host_tag(), os.getuid()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PART_NAME.match(entry.name)
        if match is None or match["host"] != host:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_uid != uid or not _process_gone(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def scratch_folder(parent: str | Path, name: str = "scratch") -> Iterator[Path]:
    """A private (``0700``) folder under ``parent`` for staging, removed with its contents on exit.

    It is named as part files are (``.NAME.kedi-HOST-PID-RANDOM.part``), so that once a
    killed process (``kill -9``) can no longer remove it, :func:`remove_stale_parts` of
    ``parent`` does: what was staged in it does not outlive the process for long.
    """
    parent = Path(parent)
    for _ in range(100):
        folder = parent / _part_name(Path(name))  # named before it exists: see _part_name
        try:
            folder.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue  # not ours
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sweep_once(folder: Path) -> None:
    """Sweep ``folder`` for stale part files the first time this process writes there."""
    key = os.path.realpath(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    remove_stale_parts(folder)


def refuse_protected(outputs: Iterable[str | os.PathLike[str]], protect: Mapping[Any, str] | None) -> None:
    """``ValueError`` before any work when an output would replace a protected file (a key, a keystore).

    ``protect`` maps each file no output may replace to what it is (``"the key file"``);
    an output that does not exist yet, or a protected file that does not, replaces nothing.
    """
    for output in outputs:
        for path, what in (protect or {}).items():
            try:
                same = os.path.samefile(output, path)
            except OSError:
                same = False  # one of them does not exist: nothing to replace
            if same:
                raise ValueError(f"the output {output} is {what} ({path}); choose another output path")


def check_distinct(src: str | Path, dst: str | Path) -> None:
    """Refuse an output that is the input itself (inputs are never modified).

    Raises
    ------
    ValueError
        ``dst`` names the same file as ``src``.
    OutputError
        ``dst`` cannot be looked up (its name is too long, its folder unreadable).
    """
    src, dst = Path(src), Path(dst)
    with _writing(dst):  # e.g. a name too long: the output's failure, not the input's
        dst_exists = dst.exists()
    if dst_exists and src.exists() and os.path.samefile(src, dst):
        raise ValueError(f"the output {dst} is the input file itself; choose another output path")


#: OSError numbers only writing produces: raised by a writer's body, they are about the output.
_WRITE_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EFBIG) if code is not None
)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an OSError of creating, writing or committing ``path`` into :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the output ({exc.strerror or exc})") from exc


@contextlib.contextmanager
def _writer_body(path: Path) -> Iterator[None]:
    """In a writer's body only write errors are the output's: reading an input fails as that input's error.

    An OSError without a number is a short write too: NumPy's ``tofile`` and
    Pillow report a full disk so ("8192 requested and 16 written").
    """
    try:
        yield
    except OSError as exc:
        if exc.errno is not None and exc.errno not in _WRITE_ERRNOS:
            raise
        raise OutputError(f"{path}: cannot write the output ({exc.strerror or exc})") from exc


def make_output_folder(path: str | Path, *, mode: int = 0o777) -> None:
    """Create the output folder ``path`` and its parents, if missing.

    Raises
    ------
    OutputError
        It cannot be created (read-only filesystem, no permission, name too long,
        a file in the way).
    """
    path = Path(path)
    with _writing(path):
        path.mkdir(mode=mode, parents=True, exist_ok=True)


def _check_target(path: Path, force: bool) -> Path:
    if not force and (path.exists() or path.is_symlink()):
        raise OutputExistsError(f"{path} exists; use --force to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"the output folder {folder} does not exist")
    return folder


def _commit(tmp: Path, path: Path, force: bool, mode: int) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        _move_into_place(tmp, path, force)
        # The final mode only now, once the part's name is gone: a part file is 0600
        # for as long as it exists, even if the process is killed right here.
        with contextlib.suppress(OSError):  # a filesystem without modes: the output stays 0600
            os.fchmod(fd, mode & ~_umask() & 0o7777)
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        # link() fails if the name exists: no output appearing meanwhile is clobbered.
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists; use --force to replace it") from None
    except OSError:
        # Filesystems without hard links: a narrower check-then-rename.
        if path.exists():
            raise OutputExistsError(f"{path} exists; use --force to replace it") from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


def _open_private(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)


#: Dirty bytes of an output past which the background flusher writes them to disk.
_FLUSH_BYTES = 64 << 20
#: How often the flusher looks at an output's size, seconds.
_FLUSH_POLL = 0.2


_no_flusher = contextlib.nullcontext


def _flusher_wanted(flush_while_writing: bool, size_hint: int | None) -> bool:
    return flush_while_writing and (size_hint is None or size_hint >= _FLUSH_BYTES)


@contextlib.contextmanager
def _background_flush(fd: int) -> Iterator[None]:
    """Write a growing output to disk while it is being written, so the final sync is short.

    A large output would otherwise reach the disk only at the ``fsync`` before it is
    moved into place: the encryption would stop and wait for the whole file. A thread
    polls the file's size and, every :data:`_FLUSH_BYTES` written, syncs what is there
    (``fdatasync`` releases the GIL and lets the writer go on). Durability is the same:
    the commit still syncs the whole file before the rename. Small outputs never wake it.
    """
    stop = threading.Event()

    def flush() -> None:
        flushed = 0
        while not stop.wait(_FLUSH_POLL):
            try:
                size = os.fstat(fd).st_size
                if size - flushed >= _FLUSH_BYTES:
                    os.fdatasync(fd)
                    flushed = size
            except OSError:
                return  # the writer sees and reports its own errors

    worker = threading.Thread(target=flush, name="kedi-flush", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


@contextlib.contextmanager
def atomic_output(
    path: str | Path,
    *,
    force: bool = False,
    mode: int = PRIVATE_MODE,
    flush_while_writing: bool = True,
    size_hint: int | None = None,
) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success move it to ``path``.

    Parameters
    ----------
    path
        Final output path. Its folder must exist.
    force
        Replace an existing ``path``. Without it an existing output raises
        :class:`OutputExistsError`, checked before any work and again, atomically,
        when the file is moved into place.

    Raises
    ------
    OutputError
        The output cannot be created, written or moved into place (disk full,
        read-only folder, name too long, no permission); nothing is left behind.
    mode
        Permission bits of the output, narrowed by the umask. The temporary file
        is ``0600`` until it is moved into place, so its content is never
        readable by others. ``0o644`` for files meant to be shared (public keys).
    flush_while_writing
        Sync a large output to disk while it is written (a thread per output, see
        :func:`_background_flush`). A writer that knows its output is small (an object
        written from memory in one call) turns it off: the file is synced whole before
        it is moved into place either way.
    size_hint
        The output's expected size, when the writer knows it: below the flusher's
        threshold no flusher thread is started (a folder of small files would
        otherwise start and join one thread per file).

    Yields
    ------
    BinaryIO
        The temporary file, open for binary writing (and seekable).

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _writing(path):
        folder = _check_target(path, force)
        _sweep_once(folder)
    tmp: Path | None = None
    try:
        with _writing(path):
            for _ in range(100):
                tmp = folder / _part_name(path)  # named before it exists: see _part_name
                try:
                    fd = _open_private(tmp)
                    break
                except FileExistsError:
                    tmp = None  # not ours
            else:
                raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))
        with (
            _writer_body(path),
            os.fdopen(fd, "wb") as fh,
            _background_flush(fh.fileno()) if _flusher_wanted(flush_while_writing, size_hint) else _no_flusher(),
        ):
            yield fh
        with _writing(path):
            _commit(tmp, path, force, mode)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview, *, mode: int = PRIVATE_MODE) -> None:
    """Write ``data``, held whole in memory, to ``path`` atomically, replacing any file there.

    A part file beside ``path`` (``0600``), one write, one ``fdatasync``, then renamed
    into place: killed at any moment, the process leaves either the old ``path`` or
    the complete new one, never a half-written file under its name. For many small
    outputs (a storage area's attachments) this is :func:`atomic_output` without its
    background flusher thread, and with ``fdatasync`` (the data and the size, which a
    new file needs to be read back) instead of ``fsync``. Like :func:`atomic_output`
    it does not sync the folder: after a power loss the rename may be lost, never the
    content of a file that is there.

    Raises
    ------
    OutputError
        The file cannot be created, written or moved into place; nothing is left behind.
    """
    path = Path(path)
    with _writing(path):
        folder = _check_target(path, True)
        _sweep_once(folder)
    tmp = folder / _part_name(path)  # named before it exists: see _part_name
    with _writing(path):
        fd = _open_private(tmp)  # O_EXCL: a clash (all but impossible) raises and touches nothing
    try:
        with _writing(path):
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
                os.replace(tmp, path)
                with contextlib.suppress(OSError):  # a filesystem without modes: the file stays 0600
                    os.fchmod(fd, mode & ~_umask() & 0o7777)
            finally:
                os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output_path(path: str | Path, *, force: bool = False, mode: int = PRIVATE_MODE) -> Iterator[Path]:
    """Like :func:`atomic_output`, for writers that need a file name.

    Yields a fresh temporary path in the target folder ending with the same
    suffixes as ``path`` (so suffix-driven writers pick the right format),
    inside a ``0700`` part folder: whatever mode the writer gives the file,
    nobody else can read it before it is moved into place with ``mode``.
    """
    path = Path(path)
    with _writing(path):
        folder = _check_target(path, force)
        _sweep_once(folder)
    tmp_dir: Path | None = None
    try:
        with _writing(path):
            for _ in range(100):
                tmp_dir = folder / _part_name(path)  # named before it exists: see _part_name
                try:
                    tmp_dir.mkdir(mode=0o700)
                    break
                except FileExistsError:
                    tmp_dir = None  # not ours
            else:
                raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))
        tmp = tmp_dir / path.name
        with _writer_body(path):
            yield tmp
        with _writing(path):
            if not tmp.is_file():
                raise FileNotFoundError(f"nothing was written for {path}")
            _commit(tmp, path, force, mode)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
