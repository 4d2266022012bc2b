"""The front door: encrypt and decrypt files, folders, bytes, streams and pydicom data sets.

Everything the ``kedi`` command line does to images goes through these functions,
and so do the service, the DICOM node and the batch engine: one library API, safe
defaults, few arguments. The key decides the suite:

- a :class:`~deepkedi.cipher.keytypes.Key` (``generate_key``, ``load_key``, a
  keystore) gives the ``hybrid`` suite: AES-256-GCM, lossless, authenticated;
- a :class:`~deepkedi.cipher.keytypes.KeyImage` gives the ``paper`` suite: Deep-KEDI
  as published, insecure and lossy, for research only.

Decryption takes a key, a key image or an open
:class:`~deepkedi.keys.keystore.Keystore` (then ``actor`` names who asks, and the
keystore audits every key it hands out), and recognises the kind of its input by
itself: a ``.kedi`` container of either suite, or a DICOM-native file (a valid,
de-identified DICOM file carrying its original, ``as_dicom=True``). A DICOM-native
file is parsed once.

Every function raises the errors of :mod:`deepkedi.errors` (``FormatError`` for
something that is not a container, ``AuthenticationError`` for a wrong key or a
modified container, ``UnsupportedImageError`` for an input that is not an image
deepkedi reads, ``OutputExistsError`` for an output that exists) and
``ValueError`` for arguments that do not fit together (a key image for a hybrid
container). See docs/API.md.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Union, cast

from deepkedi.cipher import hybrid
from deepkedi.cipher.format import MAGIC, ContainerHeader, Suite, parse_header, read_header_from
from deepkedi.cipher.keytypes import Key, KeyImage
from deepkedi.cipher.layout import cipher_image
from deepkedi.errors import DeepKediError, FormatError
from deepkedi.fileio import make_output_folder, refuse_protected, scratch_folder
from deepkedi.inputs import open_input
from deepkedi.transforms.zigzag import ZigzagPattern

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deepkedi.cipher.dicom_native import DeidentificationSummary, DicomNative
    from deepkedi.keys.keystore import Keystore

__all__ = [
    "CONTAINER_SUFFIX",
    "ContainerInfo",
    "ContainerKind",
    "FileFailure",
    "FileResult",
    "TreeProgress",
    "TreeResult",
    "cipher_image",
    "decrypt_bytes",
    "decrypt_dataset",
    "decrypt_file",
    "decrypt_image",
    "decrypt_pixels",
    "decrypt_stream",
    "decrypt_tree",
    "deidentification_summary",
    "encrypt_bytes",
    "encrypt_dataset",
    "encrypt_file",
    "encrypt_image",
    "encrypt_stream",
    "encrypt_tree",
    "read_header",
]

#: The suffix ``encrypt_tree`` appends to each container's name and ``decrypt_tree`` removes.
CONTAINER_SUFFIX = ".kedi"
#: Bytes read to recognise a DICOM file (the preamble and ``DICM``, or a bare data set's first elements).
_SNIFF_BYTES = 4096
_COPY_CHUNK = 1 << 20

#: Called with (bytes done, bytes total) as one file is processed.
Progress = Callable[[int, int], None]
#: Called with (bytes done, bytes total, the file being processed) across a folder.
TreeProgress = Callable[[int, int, Path], None]
#: What decrypts: a hybrid key, a paper key image, or an open keystore (with ``actor``).
Decryptor = Union[Key, KeyImage, "Keystore"]
PathLike = Union[str, "os.PathLike[str]"]
Data = bytes | bytearray | memoryview

encrypt_image = hybrid.encrypt_image
decrypt_image = hybrid.decrypt_image
decrypt_pixels = hybrid.decrypt_pixels


class ContainerKind(str, enum.Enum):
    """What holds an encrypted image."""

    #: A deepkedi container file (``.kedi``) of either suite.
    CONTAINER = "container"
    #: A valid, de-identified DICOM file whose Encrypted Attributes Sequence carries the container.
    DICOM_NATIVE = "dicom-native"


@dataclass(frozen=True)
class ContainerInfo:
    """The public header of an encrypted object (no key needed): its kind and its container header."""

    kind: ContainerKind
    header: ContainerHeader

    @property
    def suite(self) -> Suite:
        return self.header.suite

    @property
    def key_id(self) -> bytes:
        """The id of the key (hybrid) or the fingerprint of the key image (paper) that opens it."""
        return self.header.key_id

    @property
    def authenticated(self) -> bool:
        """Whether decryption detects changes (hybrid: yes; paper: no)."""
        return self.header.authenticated

    @property
    def opaque(self) -> bool:
        """Whether the container holds a whole file as bytes rather than an image (``encrypt_file(opaque=True)``)."""
        return self.header.opaque

    def describe(self) -> dict[str, Any]:
        """The header as JSON-safe values (what ``kedi inspect --json`` prints; secrets never appear)."""
        header = self.header
        record: dict[str, Any] = {
            "kind": self.kind.value,
            "version": 1,
            "suite": header.suite.name.lower(),
            "key_id": header.key_id.hex(),
            "pattern": header.pattern.value,
            "format": header.format,
            "shape": list(header.shape),
            "dtype": header.dtype.str,
            "channels_last": header.channels_last,
            "segment_size": header.segment_size,
            "segments": header.segment_count,
            "payload_bytes": header.payload_length,
            "pixel_bytes": header.pixel_length,
            "restoration_bytes": header.residual_length,
            "container_bytes": header.container_length,
            "authenticated": header.authenticated,
            "opaque": header.opaque,
        }
        if header.opaque:
            record["note"] = (
                "opaque: a whole file sealed as bytes (it is not an image deepkedi reads); no pixel array and "
                "no cipher image; the file's name and kind are not in the header, its size is about payload_bytes"
            )
        elif self.kind is ContainerKind.DICOM_NATIVE:
            record["note"] = (
                "de-identified DICOM file; the container of the original file lies in Encrypted Attributes "
                "Sequence (0400,0500) less its pixel ciphertext, which is the file's Pixel Data"
            )
        elif header.suite is Suite.PAPER:
            record["note"] = (
                "unauthenticated: suite 'paper' is Deep-KEDI as published (research only, not secure); "
                "changes to this container go undetected and decryption is lossy"
            )
        return record


@dataclass(frozen=True)
class FileResult:
    """One file encrypted or decrypted: where from, where to, and the header of the encrypted side."""

    source: Path
    output: Path
    info: ContainerInfo

    @property
    def verified(self) -> bool:
        """Whether the output is known to be exact (hybrid: authenticated and SHA-256 checked)."""
        return self.info.authenticated


@dataclass(frozen=True)
class FileFailure:
    """A file of a folder run that failed, and the error (a deepkedi error, ``OSError`` or ``ValueError``)."""

    source: Path
    output: Path
    error: Exception


@dataclass(frozen=True)
class TreeResult:
    """What a folder run did to each file."""

    done: tuple[FileResult, ...] = ()
    failed: tuple[FileFailure, ...] = ()
    #: Files left alone on purpose, each with the reason.
    skipped: tuple[tuple[Path, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


# ----------------------------------------------------------------------------- recognising


@dataclass(frozen=True)
class _Opened:
    """An encrypted file recognised, with what was parsed to recognise it (parsed once)."""

    info: ContainerInfo
    native: DicomNative | None = field(default=None, repr=False)


def _open(path: Path) -> _Opened:
    """Recognise a container or a DICOM-native file; a DICOM file is parsed once and kept parsed."""
    with open_input(path, error=FormatError) as fh:
        try:
            header, _ = read_header_from(fh)
            return _Opened(ContainerInfo(ContainerKind.CONTAINER, header))
        except FormatError:
            pass
        fh.seek(0)
        head = fh.read(_SNIFF_BYTES)
    if not _sniff_dicom(head):
        raise FormatError(f"{path}: not a deepkedi container or DICOM-native file")
    from deepkedi.cipher.dicom_native import open_dicom_native

    native = open_dicom_native(path)
    return _Opened(ContainerInfo(ContainerKind.DICOM_NATIVE, native.header), native)


def _sniff_dicom(head: bytes) -> bool:
    from deepkedi.imaging.sniff import sniff_dicom

    return sniff_dicom(head)


def read_header(source: PathLike | Data | BinaryIO | Dataset) -> ContainerInfo:
    """The public header of a container or DICOM-native object (no key needed).

    ``source`` is a path, the object's bytes, a binary file object (read from its
    current position) or a pydicom :class:`~pydicom.dataset.Dataset`.

    Raises
    ------
    FormatError
        ``source`` is neither a deepkedi container nor a DICOM-native file.
    AuthenticationError
        It is one, but its header is damaged.
    """
    if isinstance(source, (str, os.PathLike)):
        return _open(Path(source)).info
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = memoryview(source).cast("B")
        if not _looks_like_dicom(data):
            return ContainerInfo(ContainerKind.CONTAINER, parse_header(data))
        from deepkedi.cipher.dicom_native import open_dicom_native

        return ContainerInfo(ContainerKind.DICOM_NATIVE, open_dicom_native(bytes(data)).header)
    if _is_dataset(source):
        from deepkedi.cipher.dicom_native import open_dicom_native

        return ContainerInfo(ContainerKind.DICOM_NATIVE, open_dicom_native(cast("Dataset", source)).header)
    stream = cast(BinaryIO, source)
    head = stream.read(_SNIFF_BYTES)
    if _looks_like_dicom(memoryview(head)):
        return read_header(head + stream.read())
    return ContainerInfo(ContainerKind.CONTAINER, read_header_from(_prefixed(head, stream))[0])


def _looks_like_dicom(data: memoryview) -> bool:
    """A DICOM file rather than a container (whose first bytes are the magic, or close to it)."""
    try:
        parse_header(data[: len(MAGIC)])
    except FormatError:
        return _sniff_dicom(bytes(data[:_SNIFF_BYTES]))
    except DeepKediError:
        pass
    return False


def _is_dataset(value: object) -> bool:
    """Whether ``value`` is a pydicom Dataset (without importing pydicom: one exists only if it was)."""
    module = sys.modules.get("pydicom.dataset")
    return module is not None and isinstance(value, module.Dataset)


class _Prefixed:
    """``head`` followed by the rest of ``stream``: a stream whose start was peeked at, read again from it.

    ``read(n)`` returns ``n`` bytes unless the stream ends first, as the segment
    reader expects of a file.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            rest = bytes(self._head) + self._stream.read()
            self._head = memoryview(b"")
            return rest
        parts = []
        while size > 0:
            if self._head:
                chunk = bytes(self._head[:size])
                self._head = self._head[len(chunk) :]
            else:
                chunk = self._stream.read(size)
            if not chunk:
                break
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)


def _prefixed(head: bytes, stream: BinaryIO) -> BinaryIO:
    return cast(BinaryIO, _Prefixed(head, stream))


# ----------------------------------------------------------------------------- keys


def _key_for(info: ContainerInfo, key: Decryptor, actor: str | None, where: str) -> Key | KeyImage:
    """The key that opens ``info``: ``key`` itself, or the one the keystore holds under its key id."""
    if isinstance(key, (Key, KeyImage)):
        chosen: Key | KeyImage = key
    elif hasattr(key, "get_key"):
        if not actor:
            raise ValueError("decrypting with a keystore needs actor=NAME: the keystore audits who asks")
        chosen = key.get_key(info.key_id, actor=actor)
    else:
        raise TypeError(f"expected a Key, a KeyImage or a Keystore, not {type(key).__name__}")
    if info.suite is Suite.PAPER and not isinstance(chosen, KeyImage):
        raise ValueError(f"{where} is a 'paper' container; it needs its key image (KeyImage), not a key file")
    if info.suite is Suite.HYBRID and not isinstance(chosen, Key):
        kind = "DICOM-native file" if info.kind is ContainerKind.DICOM_NATIVE else "'hybrid' container"
        raise ValueError(f"{where} is a {kind}; it needs its key file, not a key image")
    return chosen


# ----------------------------------------------------------------------------- files


def encrypt_file(
    src: PathLike,
    dst: PathLike,
    key: Key | KeyImage,
    *,
    as_dicom: bool = False,
    pattern: ZigzagPattern | str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    seed: int | None = None,
    uid_secret: bytes | None = None,
    opaque: bool = False,
) -> FileResult:
    """Encrypt the image file ``src`` into ``dst`` (or, ``opaque``, any file).

    Parameters
    ----------
    src
        A DICOM, NIfTI, FreeSurfer MGH, PNG, TIFF, JPEG or ``.npy`` file.
    dst
        The output, written atomically; an existing file is kept unless ``force``.
        A ``.kedi`` container, or with ``as_dicom`` a DICOM file.
    key
        A :class:`Key`: the ``hybrid`` suite, whose container restores ``src`` byte
        for byte. A :class:`KeyImage`: the ``paper`` suite (insecure, lossy; research only).
    as_dicom
        Hybrid only, DICOM input only: write a valid DICOM file of the same SOP
        Class, de-identified under the PS3.15 Basic Profile, whose Pixel Data is
        the cipher image and which carries the original (docs/DICOM_NATIVE.md).
    pattern
        Zigzag scan order of each plane (default horizontal).
    progress
        Called with (bytes done, bytes total) (hybrid).
    seed
        Paper suite only: the speckle's seed, for reproducible experiments.
    uid_secret
        ``as_dicom`` only: a secret for the new UIDs (default: derived from the key,
        so every file of a study maps to the same new study UID).
    opaque
        Seal ``src``'s bytes whole, whatever the file is (a DICOM object without
        pixel data, a DICOMDIR, a PDF, a text file), into an *opaque* ``.kedi``
        container: no image is read, :func:`decrypt_file` restores the file byte
        for byte (docs/FORMAT.md 5.3). Hybrid suite only (a :class:`Key`); not with
        ``as_dicom`` or ``pattern``. Without it, a file that is not an image deepkedi
        reads raises :class:`~deepkedi.errors.UnsupportedImageError`.
    """
    src_path, dst_path = Path(src), Path(dst)
    if opaque:
        return _encrypt_opaque(src_path, dst_path, key, as_dicom, pattern, force, progress, seed, uid_secret)
    chosen = ZigzagPattern(pattern) if pattern is not None else hybrid.DEFAULT_PATTERN
    if isinstance(key, KeyImage):
        if as_dicom:
            raise ValueError("as_dicom uses the hybrid suite; a key image (paper suite) cannot make one")
        if progress is not None:
            raise ValueError("the paper suite reports no progress")
        from deepkedi.cipher.paper import encrypt_file_paper

        header = encrypt_file_paper(src_path, dst_path, key, pattern=chosen, seed=seed, force=force)
        return FileResult(src_path, dst_path, ContainerInfo(ContainerKind.CONTAINER, header))
    if not isinstance(key, Key):
        raise TypeError(f"expected a Key or a KeyImage, not {type(key).__name__}")
    if seed is not None:
        raise ValueError("seed belongs to the paper suite (a KeyImage)")
    if as_dicom:
        from deepkedi.cipher.dicom_native import encrypt_dicom_native

        header = encrypt_dicom_native(
            src_path, dst_path, key, pattern=chosen, force=force, uid_secret=uid_secret, progress=progress
        )
        return FileResult(src_path, dst_path, ContainerInfo(ContainerKind.DICOM_NATIVE, header))
    if uid_secret is not None:
        raise ValueError("uid_secret belongs to as_dicom")
    header = hybrid.encrypt_file(src_path, dst_path, key, pattern=chosen, force=force, progress=progress)
    return FileResult(src_path, dst_path, ContainerInfo(ContainerKind.CONTAINER, header))


def _encrypt_opaque(
    src: Path,
    dst: Path,
    key: Key | KeyImage,
    as_dicom: bool,
    pattern: ZigzagPattern | str | None,
    force: bool,
    progress: Progress | None,
    seed: int | None,
    uid_secret: bytes | None,
) -> FileResult:
    if isinstance(key, KeyImage):
        raise ValueError(
            "the paper suite encrypts images only; an opaque container (a file sealed whole) needs a hybrid key file"
        )
    if not isinstance(key, Key):
        raise TypeError(f"expected a Key, not {type(key).__name__}")
    if as_dicom:
        raise ValueError("opaque and as_dicom exclude each other: a DICOM-native file carries an image")
    if pattern is not None or seed is not None or uid_secret is not None:
        raise ValueError("an opaque container has no pixels: pattern, seed and uid_secret do not apply")
    header = hybrid.encrypt_opaque_file(src, dst, key, force=force, progress=progress)
    return FileResult(src, dst, ContainerInfo(ContainerKind.CONTAINER, header))


def decrypt_file(
    src: PathLike,
    dst: PathLike,
    key: Decryptor,
    *,
    actor: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    despeckle: bool = True,
) -> FileResult:
    """Decrypt ``src`` (a container of either suite, or a DICOM-native file) into ``dst``.

    Hybrid containers and DICOM-native files restore the original file byte for
    byte (authenticated, SHA-256 checked; nothing is written on failure). A paper
    container gives an estimate of the image in the format ``dst``'s suffix names
    (``.npy``, ``.png``, ``.tif``, ``.nii``, ``.nii.gz``, ``.dcm``), unverified:
    :attr:`FileResult.verified` is false.

    Parameters
    ----------
    key
        The key, the key image, or an open keystore: then the key the header names
        is taken from it, and ``actor`` (who asks) is recorded in its audit trail.
    despeckle
        Paper suite: remove the speckle after decryption (the paper's last step).
    """
    src_path, dst_path = Path(src), Path(dst)
    opened = _open(src_path)
    chosen = _key_for(opened.info, key, actor, str(src_path))
    if opened.native is not None:
        from deepkedi.cipher.dicom_native import decrypt_dicom_native

        assert isinstance(chosen, Key)
        decrypt_dicom_native(opened.native, dst_path, chosen, force=force, progress=progress)
    elif isinstance(chosen, KeyImage):
        from deepkedi.cipher.paper import decrypt_file_paper

        decrypt_file_paper(src_path, dst_path, chosen, despeckle=despeckle, force=force)
    else:
        hybrid.decrypt_file(src_path, dst_path, chosen, force=force, progress=progress)
    return FileResult(src_path, dst_path, opened.info)


# ----------------------------------------------------------------------------- folders


def _walk(src: Path) -> list[Path]:
    """Every visible regular file under ``src`` (names starting with a dot are skipped), sorted."""
    found = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if not any(part.startswith(".") for part in rel.parts):
            found.append(path)
    return found


def _run_tree(
    jobs: list[tuple[Path, Path, Callable[[Path, Path, Progress], FileResult]]],
    skipped: list[tuple[Path, str]],
    progress: TreeProgress | None,
    protect: Mapping[PathLike, str] | None,
) -> TreeResult:
    refuse_protected([dst for _, dst, _ in jobs], protect)
    total = sum(_size(src) for src, _, _ in jobs)
    done_bytes = 0
    done: list[FileResult] = []
    failed: list[FileFailure] = []
    for src, dst, action in jobs:
        size = _size(src)
        base = done_bytes

        def report(part: int, whole: int, src: Path = src, size: int = size, base: int = base) -> None:
            if progress is not None and whole:
                progress(base + size * part // whole, total, src)

        if progress is not None:
            progress(done_bytes, total, src)
        try:
            make_output_folder(dst.parent)
            done.append(action(src, dst, report))
        except (DeepKediError, ValueError, OSError) as exc:
            failed.append(FileFailure(src, dst, exc))
        done_bytes += size
        if progress is not None:
            progress(done_bytes, total, src)
    return TreeResult(tuple(done), tuple(failed), tuple(skipped))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def encrypt_tree(
    src: PathLike,
    dst: PathLike,
    key: Key,
    *,
    as_dicom: bool = False,
    pattern: ZigzagPattern | str | None = None,
    force: bool = False,
    progress: TreeProgress | None = None,
    protect: Mapping[PathLike, str] | None = None,
) -> TreeResult:
    """Encrypt every visible file under the folder ``src`` into the mirrored tree ``dst``.

    Each file becomes ``NAME.kedi`` (hybrid), or with ``as_dicom`` a DICOM-native
    file of the same name (files that are not DICOM are skipped, with the reason).
    A file that fails is reported in :attr:`TreeResult.failed` and the run goes on.
    ``protect`` maps files no output may replace (a key file, a keystore) to what
    they are: such an output raises ``ValueError`` before any file is touched.
    """
    src_dir, dst_dir = Path(src), Path(dst)
    jobs: list[tuple[Path, Path, Callable[[Path, Path, Progress], FileResult]]] = []
    skipped: list[tuple[Path, str]] = []

    def action(s: Path, d: Path, report: Progress) -> FileResult:
        return encrypt_file(s, d, key, as_dicom=as_dicom, pattern=pattern, force=force, progress=report)

    for path in _walk(src_dir):
        rel = path.relative_to(src_dir)
        if as_dicom:
            if not _is_dicom_file(path):
                skipped.append((path, "not a DICOM file (as_dicom encrypts DICOM files only)"))
                continue
            jobs.append((path, dst_dir / rel, action))
        else:
            jobs.append((path, dst_dir / rel.parent / (rel.name + CONTAINER_SUFFIX), action))
    return _run_tree(jobs, skipped, progress, protect)


def _is_dicom_file(path: Path) -> bool:
    try:
        with open_input(path) as fh:
            return _sniff_dicom(fh.read(_SNIFF_BYTES))
    except (OSError, DeepKediError):
        return False


def decrypt_tree(
    src: PathLike,
    dst: PathLike,
    key: Key | Keystore,
    *,
    actor: str | None = None,
    force: bool = False,
    progress: TreeProgress | None = None,
    protect: Mapping[PathLike, str] | None = None,
) -> TreeResult:
    """Decrypt every container and DICOM-native file under the folder ``src`` into the mirrored tree ``dst``.

    ``NAME.kedi`` is restored as ``NAME``; a DICOM-native file under its own name
    (each parsed once). Other files are skipped, with the reason. With a keystore,
    each file's key is the one its header names (each access audited under ``actor``).
    Paper containers are decrypted one at a time with :func:`decrypt_file`.
    ``protect`` is as for :func:`encrypt_tree`.
    """
    src_dir, dst_dir = Path(src), Path(dst)
    jobs: list[tuple[Path, Path, Callable[[Path, Path, Progress], FileResult]]] = []
    skipped: list[tuple[Path, str]] = []

    def action(s: Path, d: Path, report: Progress) -> FileResult:
        return decrypt_file(s, d, key, actor=actor, force=force, progress=report)

    for path in _walk(src_dir):
        rel = path.relative_to(src_dir)
        if path.name.endswith(CONTAINER_SUFFIX):
            jobs.append((path, dst_dir / rel.parent / path.name[: -len(CONTAINER_SUFFIX)], action))
        elif _is_dicom_file(path):
            from deepkedi.cipher.dicom_native import open_dicom_native

            try:
                native = open_dicom_native(path)  # the one parse: decrypted from this below
            except FormatError:
                skipped.append((path, "a DICOM file that is not DICOM-native"))
                continue
            except DeepKediError as exc:
                jobs.append((path, dst_dir / rel, _failing(exc)))
                continue
            jobs.append((path, dst_dir / rel, _native_action(native, key, actor, force)))
        else:
            skipped.append((path, f"neither a {CONTAINER_SUFFIX} container nor a DICOM-native file"))
    return _run_tree(jobs, skipped, progress, protect)


def _failing(exc: DeepKediError) -> Callable[[Path, Path, Progress], FileResult]:
    def action(s: Path, d: Path, report: Progress) -> FileResult:
        raise exc

    return action


def _native_action(
    native: DicomNative, key: Decryptor, actor: str | None, force: bool
) -> Callable[[Path, Path, Progress], FileResult]:
    def action(s: Path, d: Path, report: Progress) -> FileResult:
        from deepkedi.cipher.dicom_native import decrypt_dicom_native

        info = ContainerInfo(ContainerKind.DICOM_NATIVE, native.header)
        chosen = _key_for(info, key, actor, str(s))
        assert isinstance(chosen, Key)
        decrypt_dicom_native(native, d, chosen, force=force, progress=report)
        return FileResult(s, d, info)

    return action


# ----------------------------------------------------------------------------- bytes and streams


@contextlib.contextmanager
def _staging(tmp_dir: PathLike | None) -> Iterator[Path]:
    """A private folder (0700) for files a path-based reader needs; removed with everything in it.

    Named as part files are (:func:`deepkedi.fileio.scratch_folder`): a process killed
    while it stages leaves a folder that :func:`deepkedi.fileio.remove_stale_parts` of
    ``tmp_dir`` removes, so a plaintext staged there does not outlive it for long.
    """
    with scratch_folder(Path(tmp_dir if tmp_dir is not None else tempfile.gettempdir()), "kedi-staging") as folder:
        yield folder


def _write_private(path: Path, chunks: Iterator[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_COPY_CHUNK):
        yield chunk


def encrypt_bytes(
    data: Data,
    key: Key,
    *,
    as_dicom: bool = False,
    pattern: ZigzagPattern | str | None = None,
    name: str = "image",
    tmp_dir: PathLike | None = None,
    opaque: bool = False,
) -> bytes:
    """Encrypt the bytes of an image file into the bytes of a container (or, ``as_dicom``, of a DICOM file).

    ``opaque``: seal any bytes whole into an opaque container (as :func:`encrypt_file`).

    The image readers work on files (memory maps, format libraries), so the
    plaintext is staged in a private temporary file (mode 0600 in a 0700 folder,
    removed before returning). Give ``tmp_dir`` on an encrypted or memory-backed
    filesystem (``/dev/shm``) when the plaintext must not reach a disk. ``name``
    (a file name) helps recognise formats that only a suffix tells apart.

    A container is sealed straight into memory, in one pass over the staged file
    (the same container :func:`encrypt_file` writes: same header, segments and
    restoration section; nothing else is written).
    """
    if as_dicom or opaque:
        out = io.BytesIO()
        encrypt_stream(
            io.BytesIO(data), out, key, as_dicom=as_dicom, pattern=pattern, name=name, tmp_dir=tmp_dir, opaque=opaque
        )
        return out.getvalue()
    if not isinstance(key, Key):
        raise TypeError(f"expected a Key, not {type(key).__name__}")
    chosen = ZigzagPattern(pattern) if pattern is not None else hybrid.DEFAULT_PATTERN
    with _staging(tmp_dir) as folder:
        source = folder / (Path(name).name or "image")
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return hybrid.encrypt_file_to_bytes(source, key, pattern=chosen)


def decrypt_bytes(data: Data, key: Decryptor, *, actor: str | None = None) -> bytes:
    """Decrypt the bytes of a hybrid container or DICOM-native file into the original file's bytes.

    Nothing is returned unless every byte is authenticated and the SHA-256 of the
    original matches. Paper containers restore an image, not a file: use
    :func:`decrypt_image` or :func:`decrypt_file`.
    """
    view = memoryview(data).cast("B")
    out = io.BytesIO()
    if _looks_like_dicom(view):
        from deepkedi.cipher.dicom_native import decrypt_dicom_native_stream, open_dicom_native

        native = open_dicom_native(bytes(view))
        info = ContainerInfo(ContainerKind.DICOM_NATIVE, native.header)
        chosen = _key_for(info, key, actor, "the data")
        assert isinstance(chosen, Key)
        decrypt_dicom_native_stream(native, out, chosen)
        return out.getvalue()
    info = ContainerInfo(ContainerKind.CONTAINER, parse_header(view))
    chosen = _key_for(info, key, actor, "the data")
    if not isinstance(chosen, Key):
        raise ValueError("paper containers restore an image, not a file: use decrypt_image or decrypt_file")
    hybrid.decrypt_stream(io.BytesIO(view), out, chosen)
    return out.getvalue()


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    key: Key,
    *,
    as_dicom: bool = False,
    pattern: ZigzagPattern | str | None = None,
    uid_secret: bytes | None = None,
    name: str = "image",
    tmp_dir: PathLike | None = None,
    opaque: bool = False,
) -> ContainerInfo:
    """Encrypt an image file (or, ``opaque``, any bytes) read from the binary file object ``src`` into ``dst``.

    As :func:`encrypt_bytes`, the plaintext is staged in a private temporary file
    (copied in chunks, never held whole); the container is copied to ``dst`` once complete.
    """
    with _staging(tmp_dir) as folder:
        source, out = folder / (Path(name).name or "image"), folder / "out"
        _write_private(source, _chunks(src))
        result = encrypt_file(
            source, out, key, as_dicom=as_dicom, pattern=pattern, uid_secret=uid_secret, opaque=opaque
        )
        with open(out, "rb") as fh:
            shutil.copyfileobj(fh, dst, _COPY_CHUNK)
    return result.info


def decrypt_stream(
    src: BinaryIO, dst: BinaryIO, key: Decryptor, *, actor: str | None = None, tmp_dir: PathLike | None = None
) -> ContainerInfo:
    """Decrypt a hybrid container or DICOM-native file read from ``src``, writing the original file to ``dst``.

    A container is streamed: each segment is authenticated before its plaintext
    is written, and the SHA-256 of the whole is checked at the end, so when an
    exception is raised what ``dst`` received must be discarded. A DICOM-native
    file is first copied (it is ciphertext) to a private temporary file.
    """
    head = src.read(_SNIFF_BYTES)
    if not _looks_like_dicom(memoryview(head)):
        stream = _prefixed(head, src)
        header, _ = read_header_from(stream)
        info = ContainerInfo(ContainerKind.CONTAINER, header)
        chosen = _key_for(info, key, actor, "the stream")
        if not isinstance(chosen, Key):
            raise ValueError("paper containers restore an image, not a file: use decrypt_image or decrypt_file")
        hybrid.decrypt_stream(_prefixed(header.encode(), stream), dst, chosen)
        return info
    with _staging(tmp_dir) as folder:
        staged = folder / "native.dcm"
        _write_private(staged, _chain(head, src))
        from deepkedi.cipher.dicom_native import decrypt_dicom_native_stream, open_dicom_native

        native = open_dicom_native(staged)
        info = ContainerInfo(ContainerKind.DICOM_NATIVE, native.header)
        chosen = _key_for(info, key, actor, "the stream")
        assert isinstance(chosen, Key)
        decrypt_dicom_native_stream(native, dst, chosen)
        return info


def _chain(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    yield head
    yield from _chunks(stream)


# ----------------------------------------------------------------------------- pydicom data sets


def encrypt_dataset(
    ds: Dataset,
    key: Key,
    *,
    pattern: ZigzagPattern | str | None = None,
    uid_secret: bytes | None = None,
    tmp_dir: PathLike | None = None,
) -> Dataset:
    """The DICOM-native encryption of a pydicom data set, as a new data set (``ds`` is not changed).

    The result is a valid, de-identified DICOM data set of the same SOP Class
    whose Pixel Data is the cipher image and which carries the original
    (:func:`decrypt_dataset` gives it back). ``ds`` is written as a Part 10 file
    and staged as :func:`encrypt_bytes` stages its input.
    """
    import pydicom

    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - pydicom refuses incomplete data sets in many ways
        from deepkedi.errors import UnsupportedImageError

        raise UnsupportedImageError(f"the data set cannot be written as a DICOM file: {exc}") from None
    buffer.seek(0)
    protected = io.BytesIO()
    encrypt_stream(
        buffer, protected, key, as_dicom=True, pattern=pattern, uid_secret=uid_secret, name="in.dcm", tmp_dir=tmp_dir
    )
    protected.seek(0)
    return pydicom.dcmread(protected)


def decrypt_dataset(ds: Dataset, key: Decryptor, *, actor: str | None = None) -> Dataset:
    """The original data set a DICOM-native data set carries (authenticated, byte-exact before parsing)."""
    import pydicom

    from deepkedi.cipher.dicom_native import decrypt_dicom_native_stream, open_dicom_native

    native = open_dicom_native(ds)
    info = ContainerInfo(ContainerKind.DICOM_NATIVE, native.header)
    chosen = _key_for(info, key, actor, "the data set")
    assert isinstance(chosen, Key)
    out = io.BytesIO()
    decrypt_dicom_native_stream(native, out, chosen)
    out.seek(0)
    return pydicom.dcmread(out)


def deidentification_summary(original: PathLike, protected: PathLike) -> DeidentificationSummary:
    """What a DICOM-native file shows in clear, against the original it was made from.

    Its SOP Class, Patient Identity Removed, the Patient ID pseudonym, and which of
    the original's Patient's Name, Patient ID and Birth Date values appear anywhere
    in its header (none should). Neither file is changed.
    """
    from deepkedi.cipher.dicom_native import deidentification_summary as summary

    return summary(Path(original), Path(protected))
