"""Where the archive's encrypted objects live: a local folder, or any fsspec filesystem by URL.

:class:`ObjectStore` is the one way the service reads and writes its storage
(``kedi serve --storage``, docs/SERVICE.md, "Object storage"). Objects are named by
the archive (32 lowercase hexadecimal digits, random) and stored under a two-digit
fan-out: ``ROOT/ab/abcdef…``. Every name is checked against that grammar before a
path is built, so no name from outside the archive reaches the backend.

What a write guarantees depends on the backend:

* **A local folder** (a plain path or a ``file://`` URL): the object is written to a
  part file beside its final name (``0600``), synced to disk, then moved into place
  (:func:`deepkedi.fileio.atomic_output`); folders are ``0700``. A process killed
  mid-write leaves a part file, never a partial object, and the next start removes it.
* **Object stores** (``s3://`` with s3fs, ``gs://`` with gcsfs, ``az://`` with adlfs,
  ``memory://``): the object is written whole in one call; an object store makes a
  single PUT (and a completed multipart upload) appear atomically or not at all.
* **Other fsspec filesystems** (``sftp://``, ``smb://``…) write in place: a crash can
  leave a partial object under its random name. The archive writes an object before
  the index row that names it, so such a leftover is never served.

Only plain ciphertext ever reaches the store: the plaintext is staged elsewhere
(:class:`deepkedi.server.archive.Archive`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepkedi.errors import OutputError
from deepkedi.fileio import atomic_output, remove_stale_parts
from deepkedi.locations import filesystem as _filesystem
from deepkedi.locations import protocol as _protocol
from deepkedi.locations import storage_location

__all__ = ["ObjectStore", "object_key", "object_path", "storage_location"]

#: Object names: 32 lowercase hexadecimal digits, nothing else (no separator, no dot).
_OBJECT_NAME = re.compile(r"^[0-9a-f]{32}$")
#: Objects from this size on are synced while they are written (one write call of many megabytes).
_FLUSH_WHILE_WRITING = 256 << 20


def object_key(object_name: str) -> str:
    """The object's place relative to the store's root: ``ab/abcdef…`` (two-digit fan-out).

    Raises
    ------
    ValueError
        ``object_name`` is not 32 lowercase hexadecimal digits (a path separator,
        ``..``, anything else): no name from outside the archive builds a path.
    """
    if not isinstance(object_name, str) or not _OBJECT_NAME.fullmatch(object_name):
        raise ValueError("not an archive object name")
    return f"{object_name[:2]}/{object_name}"


def object_path(storage: Path, object_name: str) -> Path:
    """Where an object lives under the local folder ``storage``: ``storage/ab/abcdef…``.

    Raises
    ------
    ValueError
        As :func:`object_key`.
    """
    path = storage / object_key(object_name)
    # Belt and braces: the name grammar already forbids leaving the folder.
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(storage)]) != os.path.abspath(storage):
        raise ValueError("not an archive object name")
    return path


class ObjectStore:
    """The archive's objects, by name, on a local folder or an fsspec filesystem.

    Parameters
    ----------
    location
        A local folder (path or ``file://`` URL), created ``0700`` if missing, or an
        fsspec URL (``s3://bucket/prefix``, ``memory://name``…), whose root is made
        if the backend has folders. See :func:`storage_location` for what is refused.
    """

    def __init__(self, location: str | Path) -> None:
        where = storage_location(location)
        self.local: Path | None = where if isinstance(where, Path) else None
        self.protocol = "file" if self.local is not None else _protocol(str(where))
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fs: Any = None
            self._root = str(self.local)
            return
        self._fs, root = _filesystem(str(where))
        self._root = root.rstrip("/")
        try:
            self._fs.makedirs(self._root or "/", exist_ok=True)
        except Exception as exc:  # noqa: BLE001 - backends raise their own errors; the message stays one line
            raise OutputError(f"the {self.protocol} storage cannot be opened ({type(exc).__name__})") from None

    def __repr__(self) -> str:
        # Never the URL: it may carry credentials.
        return f"ObjectStore(protocol={self.protocol!r})"

    def _remote(self, object_name: str) -> str:
        return f"{self._root}/{object_key(object_name)}"

    def path(self, object_name: str) -> Path:
        """The object's file, for a local store only (:class:`TypeError` otherwise)."""
        if self.local is None:
            raise TypeError(f"a {self.protocol} store has no local files")
        return object_path(self.local, object_name)

    def put(self, object_name: str, data: bytes) -> None:
        """Write a new object, as atomically as the backend allows (see the module's notes).

        Raises
        ------
        OutputError
            It cannot be written (disk full, no permission, the backend refused it);
            nothing is left under the object's name on a local folder or an object store.
        """
        if self.local is not None:
            path = self.path(object_name)
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot write the object ({exc.strerror or exc})") from exc
            # Part file 0600, fsync, moved into place; never clobbers. Written in one call from
            # memory: no thread to sync it while it grows.
            with atomic_output(path, flush_while_writing=len(data) >= _FLUSH_WHILE_WRITING) as fh:
                fh.write(data)
            return
        target = self._remote(object_name)
        try:
            try:
                self._fs.pipe_file(target, data)
            except FileNotFoundError:  # a filesystem with real folders: make the fan-out folder, once
                self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self._fs.pipe_file(target, data)
        except OSError as exc:
            raise OutputError(f"cannot write the object ({type(exc).__name__})") from exc

    def get(self, object_name: str) -> bytes:
        """The object's bytes; :class:`FileNotFoundError` if there is none."""
        if self.local is not None:
            return self.path(object_name).read_bytes()
        data = self._fs.cat_file(self._remote(object_name))
        return bytes(data)

    def exists(self, object_name: str) -> bool:
        if self.local is not None:
            return self.path(object_name).is_file()
        return bool(self._fs.isfile(self._remote(object_name)))

    def delete(self, object_name: str) -> None:
        """Remove the object if it is there (a missing one is not an error)."""
        if self.local is not None:
            self.path(object_name).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._remote(object_name))

    def names(self) -> Iterator[str]:
        """The names of the objects stored (in no particular order); anything else under the root is skipped."""
        if self.local is not None:
            for fan_out in sorted(self.local.iterdir()):
                if fan_out.is_dir() and not fan_out.is_symlink():
                    for entry in sorted(fan_out.iterdir()):
                        if _OBJECT_NAME.fullmatch(entry.name) and entry.name[:2] == fan_out.name and entry.is_file():
                            yield entry.name
            return
        root = self._root.strip("/")
        for found in self._fs.find(self._root or "/"):
            relative = str(found).strip("/")
            if root:
                if not relative.startswith(root + "/"):
                    continue
                relative = relative[len(root) + 1 :]
            parts = relative.split("/")
            if len(parts) == 2 and _OBJECT_NAME.fullmatch(parts[1]) and parts[0] == parts[1][:2]:
                yield parts[1]

    def sweep(self) -> list[str]:
        """Remove what a killed writer left (part files of a local folder); what was removed, as names.

        Object stores need nothing: a write there is one call, whole or absent.
        """
        if self.local is None:
            return []
        removed: list[str] = []
        for fan_out in self.local.iterdir():
            if fan_out.is_dir() and not fan_out.is_symlink():
                removed.extend(p.name for p in remove_stale_parts(fan_out))
        return removed
