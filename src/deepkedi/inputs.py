"""Input files: only regular files are read.

Opening a FIFO for reading blocks until some other process opens it for writing,
and a character device such as ``/dev/urandom`` or ``/dev/zero`` never ends; a
command given either would hang or exhaust memory. Every path a command reads
(images, containers, key files and key images, passphrase and KEK files, key
exports, bit files) is checked here first, and refused with the caller's input
error, which names the file (DESIGN.md, "Fail clearly": exit code 4).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from deepkedi.errors import DeepKediError, UnsupportedImageError

__all__ = ["check_regular_input", "file_sha256", "open_input"]

_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a FIFO (named pipe)"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


def _refusal(path: str | Path, mode: int, error: type[DeepKediError]) -> DeepKediError:
    what = next((kind for test, kind in _KINDS if test(mode)), "is a special file")
    hint = "" if stat.S_ISDIR(mode) else "; copy the stream into a file first"
    return error(f"{path}: {what}, not a regular file{hint}")


def check_regular_input(path: str | Path, *, error: type[DeepKediError] = UnsupportedImageError) -> Path:
    """Refuse ``path`` unless it is a regular file (symbolic links followed), without opening it.

    Parameters
    ----------
    path
        The input.
    error
        The exception to raise, the caller's kind of input error (``KeyFileError`` for a
        key file, ``FormatError`` for a container, ...).

    Returns
    -------
    Path
        ``path``, as a :class:`~pathlib.Path`.

    Raises
    ------
    error
        ``path`` is a FIFO, a device, a socket or a directory.
    FileNotFoundError
        Nothing is at ``path`` (as :func:`open` would raise).
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refusal(path, mode, error)
    return Path(path)


def open_input(path: str | Path, *, error: type[DeepKediError] = UnsupportedImageError) -> BinaryIO:
    """Open a regular file for binary reading; never blocks on a FIFO.

    :func:`check_regular_input` first, then the file is opened non-blocking and checked
    again on the open descriptor, so that a FIFO put in its place meanwhile is refused
    rather than waited on.

    Raises
    ------
    error
        ``path`` is not a regular file.
    OSError
        It cannot be opened (missing, no permission).
    """
    check_regular_input(path, error=error)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refusal(path, mode, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
