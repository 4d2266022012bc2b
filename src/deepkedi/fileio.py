"""Atomic, never-clobbering output files.

DESIGN.md, "Never lose data": outputs are written to a temporary file in the
target folder and renamed into place; an existing output is not replaced unless
asked; a failure leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from deepkedi.errors import OutputError, OutputExistsError

__all__ = ["atomic_output", "atomic_output_path", "check_distinct", "make_output_folder"]


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
#: Characters of the output's name kept in its temporary name (which adds about 20 bytes to it).
_TMP_NAME_CHARS = 64


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


def _commit(tmp: Path, path: Path, force: bool) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
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


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False, mode: int = 0o644) -> Iterator[BinaryIO]:
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
        Permission bits of the new file (``0o600`` for key files), set when the
        temporary file is created, so the content is never readable by others.

    Yields
    ------
    BinaryIO
        The temporary file, open for binary writing.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _writing(path):
        folder = _check_target(path, force)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:_TMP_NAME_CHARS]}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with _writing(path):
            os.fchmod(fd, mode)
        with _writer_body(path), os.fdopen(fd, "wb") as fh:
            yield fh
        with _writing(path):
            _commit(tmp, path, force)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output_path(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_output`, for writers that need a file name.

    Yields a fresh temporary path in the target folder ending with the same
    suffixes as ``path`` (so suffix-driven writers pick the right format).
    """
    path = Path(path)
    with _writing(path):
        folder = _check_target(path, force)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name[:_TMP_NAME_CHARS]}.", suffix=".part", dir=folder))
    tmp = tmp_dir / path.name
    try:
        with _writer_body(path):
            yield tmp
        with _writing(path):
            if not tmp.is_file():
                raise FileNotFoundError(f"nothing was written for {path}")
            _commit(tmp, path, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with contextlib.suppress(OSError):
            tmp_dir.rmdir()
