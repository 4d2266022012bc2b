"""`kedi encrypt` and `kedi decrypt`: one file or a whole folder tree; suites hybrid and paper."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional, Sequence

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from deepkedi.cipher.dicom_native import (
    decrypt_dicom_native,
    encrypt_dicom_native,
    is_dicom_native,
    read_dicom_native_header,
)
from deepkedi.cipher.format import Suite, parse_header
from deepkedi.cipher.hybrid import DEFAULT_PATTERN, decrypt_file, encrypt_file
from deepkedi.cipher.layout import cipher_image
from deepkedi.cipher.paper import PAPER_WARNING, UNVERIFIED_WARNING, decrypt_file_paper, encrypt_file_paper
from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_INPUT,
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    err_console,
    exit_code_for,
    fail,
    guarded,
    load_key_for_cli,
    message_for,
    printable,
)
from deepkedi.errors import AuthenticationError, DeepKediError, FormatError, KeyFileError, UnsupportedImageError
from deepkedi.fileio import atomic_output, make_output_folder
from deepkedi.imaging import read_image
from deepkedi.imaging.dicom import sniff_dicom
from deepkedi.imaging.montage import display_plane, montage
from deepkedi.inputs import check_regular_input, open_input
from deepkedi.keys import Key, KeyImage, load_key_image
from deepkedi.transforms.zigzag import ZigzagPattern

CONTAINER_SUFFIX = ".kedi"
FIGURE_NAME = "cipher_images.png"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEYGEN_PAPER = "make one with `kedi keygen --suite paper --like IMAGE`"
#: Files at least this large get their own progress bar in single-file mode.
_PROGRESS_MIN_BYTES = 64 << 20


class SuiteChoice(str, enum.Enum):
    hybrid = "hybrid"
    paper = "paper"


@dataclass
class _Failure:
    path: Path
    message: str
    code: int


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _tree_jobs(src: Path, dst: Path, rename: Callable[[str], str | None]) -> list[tuple[Path, Path]]:
    """Every visible file under ``src`` with its mirrored path under ``dst``."""
    jobs = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts):
            continue
        name = rename(rel.name)
        if name is None:
            continue
        jobs.append((path, dst / rel.parent / name))
    return jobs


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one existing file (through symbolic or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # one of them does not exist: nothing to overwrite


def _protected_files(
    input: Path,
    key: Path | None,
    keystore: str | None,
    key_id: str | None,
    passphrase_file: Path | None,
) -> list[tuple[Path, str]]:
    """The files a command reads and must never write over, each with what it is."""
    protected = [(input, "the input"), (key, "the key file"), (passphrase_file, "the passphrase file")]
    if key is None:  # the key comes from the keystore
        from deepkedi.cli.keys import resolve_keystore_url

        url = resolve_keystore_url(keystore)
        if url.startswith("sqlite:///"):
            database = Path(url[len("sqlite:///") :].split("?", 1)[0])
            for suffix in ("", "-wal", "-shm", "-journal"):
                protected.append((database.with_name(database.name + suffix), "the keystore"))
    return [(path, what) for path, what in protected if path is not None]


def _refuse_overwriting(outputs: Iterable[Path], protected: Sequence[tuple[Path, str]]) -> None:
    """Usage error, before any work, when an output would replace the input, the key or the keystore.

    ``--force`` replaces existing outputs; it must never turn the key a container
    needs into that container.
    """
    for output in outputs:
        for path, what in protected:
            if _same_file(output, path):
                fail(f"the output {output} is {what} ({path}); choose another output path", EXIT_USAGE)


def _run_one(action: Callable[..., object], src: Path, dst: Path, key: Key, force: bool, **options: object) -> None:
    size = src.stat().st_size if src.exists() else 0
    if size < _PROGRESS_MIN_BYTES or not err_console.is_terminal:
        with guarded():
            action(src, dst, key, force=force, **options)
        return
    with _progress() as bar, guarded():
        task = bar.add_task(escape(printable(src.name)), total=None)
        action(
            src,
            dst,
            key,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **options,
        )


def _run_tree(
    action: Callable[..., object],
    jobs: list[tuple[Path, Path]],
    key: Key,
    force: bool,
    verb: str,
    *,
    protected: Sequence[tuple[Path, str]] = (),
    **options: object,
) -> None:
    _refuse_overwriting((dst for _, dst in jobs), protected)
    failures: list[_Failure] = []
    with _progress() as bar:
        task = bar.add_task(verb, total=sum(src.stat().st_size for src, _ in jobs))
        for src, dst in jobs:
            # The description is rich markup: a file named "[/]" must show as itself.
            bar.update(task, description=f"{verb} {escape(printable(src.name))}")
            try:
                make_output_folder(dst.parent)
                action(src, dst, key, force=force, **options)
            except (DeepKediError, ValueError, OSError) as exc:
                failures.append(_Failure(src, message_for(exc), exit_code_for(exc)))
            bar.advance(task, src.stat().st_size)
    done = len(jobs) - len(failures)
    console.print(f"{verb}: {done} of {len(jobs)} files", markup=False)
    if failures:
        for failure in failures:
            err_console.print(f"kedi: error: {printable(failure.message)}", markup=False)
        # The most serious failure decides: authentication (3) before bad input (4).
        raise typer.Exit(min(f.code for f in failures))


def _check_input_file(path: Path | None, error: type[DeepKediError] = UnsupportedImageError) -> None:
    """A FIFO or device as input or key: one line and exit code 4 before anything opens it.

    Folders are walked for regular files only; a missing path is reported by whoever reads it.
    """
    if path is not None and path.exists() and not path.is_dir():
        with guarded():
            check_regular_input(path, error=error)


def _warn_paper() -> None:
    err_console.print(f"warning: {PAPER_WARNING}", markup=False)


def _is_key_image(path: Path) -> bool:
    """Whether ``path`` looks like a paper key image (a PNG) rather than a hybrid key file (JSON)."""
    try:
        with open_input(path, error=KeyFileError) as fh:
            return fh.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
    except (OSError, KeyFileError):
        return False  # the key loader reports the missing, unreadable or special file


def _load_key_image_for_cli(path: Path) -> KeyImage:
    if path.exists() and not _is_key_image(path):
        fail(
            f"{path} is a key file of the hybrid suite; suite 'paper' needs a key image (PNG): {_KEYGEN_PAPER}",
            EXIT_USAGE,
        )
    with guarded():
        return load_key_image(path)


def _image_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz",):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _encrypt_all_patterns(
    input: Path, outdir: Path, key_image: KeyImage, *, seed: int | None, force: bool
) -> None:
    """The paper's figure: the three patterns' containers and the plain image beside its cipher images."""
    if outdir.exists() and not outdir.is_dir():
        fail(f"{outdir}: --all-patterns writes into a folder, and this is a file", EXIT_USAGE)
    # One speckle draw for all three, so the figure compares the patterns on the same speckled image.
    seed = int.from_bytes(os.urandom(8), "big") if seed is None else seed
    stem = _image_stem(input)
    with guarded():
        plain = read_image(input).pixels
        make_output_folder(outdir)
        panels = [("plain", display_plane(plain))]
        for pattern in ZigzagPattern:
            target = outdir / f"{stem}.{pattern.value}{CONTAINER_SUFFIX}"
            encrypt_file_paper(input, target, key_image, pattern=pattern, seed=seed, force=force)
            panels.append((f"{pattern.value} zigzag", display_plane(cipher_image(target))))
            console.print(f"wrote {printable(target)}", markup=False)
        figure = outdir / FIGURE_NAME
        with atomic_output(figure, force=force) as fh:
            montage(panels, columns=len(panels)).save(fh, format="PNG")
        console.print(f"wrote {printable(figure)}", markup=False)


@app.command()
def encrypt(
    input: Annotated[Path, typer.Argument(help="Image file (DICOM, NIfTI, MGH, PNG, TIFF, JPEG, .npy) or folder.")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Container to write; folder for a folder input or --all-patterns."),
    ],
    key: Annotated[
        Optional[Path], typer.Option("--key", help="Key file (hybrid) or key image PNG (paper).")
    ] = None,
    keystore: Annotated[
        Optional[str], typer.Option(help="Keystore URL (default: KEDI_KEYSTORE or the user's keystore).")
    ] = None,
    key_id: Annotated[Optional[str], typer.Option(help="Take the key from the keystore by this id.")] = None,
    suite: Annotated[SuiteChoice, typer.Option(help="Cipher suite; 'paper' is insecure, research only.")] = (
        SuiteChoice.hybrid
    ),
    pattern: Annotated[ZigzagPattern, typer.Option(help="Zigzag scan order of each plane.")] = DEFAULT_PATTERN,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[
        Optional[Path], typer.Option(help="Passphrase of a sealed key file, or of the keystore.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the speckle noise (--suite paper only).")] = None,
    all_patterns: Annotated[
        bool,
        typer.Option(
            "--all-patterns",
            help=f"--suite paper: write all three patterns' containers and {FIGURE_NAME} into the OUTPUT folder.",
        ),
    ] = False,
    as_dicom: Annotated[
        bool,
        typer.Option(
            "--as-dicom",
            help="DICOM-native output: a valid, de-identified DICOM file with cipher pixels that carries the "
            "original (restore it with `kedi decrypt`). DICOM input only; folders keep their file names.",
        ),
    ] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Encrypt an image file, or every file of a folder tree, into containers.

    Suite hybrid (default): the container restores the original file byte for
    byte with `kedi decrypt`. Folders are mirrored under OUTPUT with '.kedi'
    appended to each name.

    Suite paper: Deep-KEDI as published (speckle, zigzag, XOR with a key image).
    Not secure and lossy; for reproducing the paper only. One file at a time.

    --as-dicom: OUTPUT is a DICOM file of the same SOP Class, de-identified with
    the PS3.15 Basic Profile, whose pixels are the cipher image and whose
    Encrypted Attributes Sequence holds the original (see docs/DICOM_NATIVE.md).
    """
    if as_dicom and suite is SuiteChoice.paper:
        fail("--as-dicom uses the hybrid suite; it cannot be combined with --suite paper", EXIT_USAGE)
    protected = _protected_files(input, key, keystore, key_id, passphrase_file)
    if not input.is_dir() and not all_patterns:
        _refuse_overwriting([output], protected)
    if suite is SuiteChoice.paper:
        _warn_paper()
        if key is None:
            fail("--suite paper needs --key KEY.png, the key image", EXIT_USAGE)
        if not input.exists():
            fail(f"{input}: no such file or folder", EXIT_INPUT)
        _check_input_file(input)
        _check_input_file(key, KeyFileError)
        if input.is_dir():
            fail("--suite paper encrypts one file at a time; encrypt folders with --suite hybrid", EXIT_USAGE)
        key_image = _load_key_image_for_cli(key)
        if all_patterns:
            _encrypt_all_patterns(input, output, key_image, seed=seed, force=force)
            return
        with guarded():
            encrypt_file_paper(input, output, key_image, pattern=pattern, seed=seed, force=force)
        return
    if all_patterns or seed is not None:
        fail("--all-patterns and --seed belong to --suite paper", EXIT_USAGE)
    _key_source(key, keystore, key_id, decrypting=False)
    if not input.exists():
        fail(f"{input}: no such file or folder", EXIT_INPUT)
    _check_input_file(input)
    _check_input_file(key, KeyFileError)
    if key is not None and _is_key_image(key):
        fail(
            f"{key} is a key image of the paper suite; give --suite paper, or a key file from `kedi keygen`",
            EXIT_USAGE,
        )
    if as_dicom:
        _encrypt_as_dicom(input, output, lambda: _master(key, keystore, key_id, passphrase_file),
                          pattern=pattern, force=force, protected=protected)
        return
    master = _master(key, keystore, key_id, passphrase_file)
    if input.is_dir():
        jobs = _tree_jobs(input, output, lambda name: name + CONTAINER_SUFFIX)
        _run_tree(encrypt_file, jobs, master, force, "encrypted", protected=protected, pattern=pattern)
        return
    _run_one(encrypt_file, input, output, master, force, pattern=pattern)


def _key_source(key: Path | None, keystore: str | None, key_id: str | None, *, decrypting: bool) -> None:
    """Check that exactly one key source is named."""
    if key is not None and (key_id is not None or keystore is not None):
        fail("give either --key KEYFILE or the keystore (--keystore URL / --key-id ID), not both", EXIT_USAGE)
    if key is None and key_id is None and not (decrypting and keystore is not None):
        fail("name the key: --key KEYFILE, or --key-id ID from the keystore", EXIT_USAGE)


def _master(key: Path | None, keystore: str | None, key_id: str | None, passphrase_file: Path | None) -> Key:
    """The hybrid master key from a key file or from the keystore (the access is audited there)."""
    if key is not None:
        return load_key_for_cli(key, passphrase_file)
    from deepkedi.cli.keys import key_from_keystore

    assert key_id is not None
    return key_from_keystore(keystore, key_id, passphrase_file)


def _named_key_id(path: Path) -> str:
    """The key id a container or DICOM-native file names in its public header."""
    with guarded():
        if is_dicom_native(path):
            return read_dicom_native_header(path).key_id.hex()
        with open_input(path, error=FormatError) as fh:
            head = fh.read(65536)
    try:
        return parse_header(head).key_id.hex()
    except FormatError as exc:
        fail(f"{path}: {exc}", exit_code_for(exc))
    except AuthenticationError as exc:
        fail(str(exc), exit_code_for(exc))


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open_input(path) as fh:
            return sniff_dicom(fh.read(4096))
    except (OSError, DeepKediError):
        return False


def _encrypt_as_dicom(
    input: Path,
    output: Path,
    get_key: Callable[[], Key],
    *,
    pattern: ZigzagPattern,
    force: bool,
    protected: Sequence[tuple[Path, str]] = (),
) -> None:
    """`kedi encrypt --as-dicom`: one DICOM file, or every DICOM file of a folder tree under the same names."""
    if input.is_dir():
        jobs = _tree_jobs(input, output, lambda name: name)
        dicom_jobs = [(src, dst) for src, dst in jobs if _looks_like_dicom(src)]
        if not dicom_jobs:
            fail(f"{input}: no DICOM files in this folder; --as-dicom encrypts DICOM files only", EXIT_INPUT)
        master = get_key()
        skipped = len(jobs) - len(dicom_jobs)
        if skipped:
            err_console.print(f"kedi: note: skipped {skipped} non-DICOM file(s) (--as-dicom)", markup=False)
        _run_tree(
            encrypt_dicom_native, dicom_jobs, master, force, "encrypted", protected=protected, pattern=pattern
        )
        return
    if not _looks_like_dicom(input):
        fail(
            f"{input}: not a DICOM file; --as-dicom needs DICOM input "
            "(leave out --as-dicom to encrypt other formats into a .kedi container)",
            EXIT_INPUT,
        )
    master = get_key()
    _run_one(encrypt_dicom_native, input, output, master, force, pattern=pattern)


def _decrypt_any(src: Path, dst: Path, key: Key, *, force: bool = False, **options: object) -> object:
    """Decrypt a '.kedi' container or a DICOM-native file, whichever ``src`` is."""
    if is_dicom_native(src):
        return decrypt_dicom_native(src, dst, key, force=force, **options)  # type: ignore[arg-type]
    return decrypt_file(src, dst, key, force=force, **options)  # type: ignore[arg-type]


def _decrypt_jobs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """'.kedi' containers (restored without the suffix) and DICOM-native files (same name) under ``src``."""
    jobs = []
    for path, target in _tree_jobs(src, dst, lambda name: name):
        if path.name.endswith(CONTAINER_SUFFIX):
            jobs.append((path, target.with_name(path.name[: -len(CONTAINER_SUFFIX)])))
        elif is_dicom_native(path):
            jobs.append((path, target))
    return jobs


def _container_suite(path: Path) -> Suite:
    with guarded():
        with open_input(path, error=FormatError) as fh:
            head = fh.read(65536)
    try:
        return parse_header(head).suite
    except FormatError as exc:
        fail(f"{path}: {exc}", exit_code_for(exc))
    except AuthenticationError as exc:
        fail(str(exc), exit_code_for(exc))


@app.command()
def decrypt(
    input: Annotated[
        Path, typer.Argument(help="Container or DICOM-native file, or a folder of them ('.kedi' and DICOM-native).")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="File to restore (paper: its suffix picks the format), or folder for a folder input.",
        ),
    ],
    key: Annotated[
        Optional[Path], typer.Option("--key", help="Key file (hybrid) or key image PNG (paper).")
    ] = None,
    keystore: Annotated[
        Optional[str],
        typer.Option(help="Take the key from this keystore (default: KEDI_KEYSTORE or the user's keystore)."),
    ] = None,
    key_id: Annotated[
        Optional[str], typer.Option(help="Keystore key id (default: the one the container names).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[Optional[Path], typer.Option(help="Passphrase of a sealed key file.")] = None,
    despeckle: Annotated[
        bool, typer.Option(help="Suite paper: remove the speckle after decryption (the paper's last step).")
    ] = True,
) -> None:
    """Decrypt a container: hybrid restores the original file byte for byte; paper gives an estimate.

    Wrong key, modified or truncated container: one line on stderr, exit code 3,
    no output. For a folder, every '.kedi' file is restored under OUTPUT without
    its '.kedi' suffix (hybrid only), and every DICOM-native file (`kedi encrypt
    --as-dicom`) under its own name. The container's header says its suite;
    a paper container needs its key image (.png), a hybrid one its key file.
    DICOM-native files are recognised automatically and restored byte for byte.
    """
    _key_source(key, keystore, key_id, decrypting=True)
    if not input.exists():
        fail(f"{input}: no such file or folder", EXIT_INPUT)
    _check_input_file(input)
    _check_input_file(key, KeyFileError)
    protected = _protected_files(input, key, keystore, key_id, passphrase_file)
    if not input.is_dir():
        _refuse_overwriting([output], protected)
    key_is_image = key is not None and _is_key_image(key)
    if input.is_dir():
        if key_is_image:
            fail("paper containers are decrypted one file at a time; give a container, not a folder", EXIT_USAGE)
        if key is None and key_id is None:
            fail("decrypting a folder from the keystore needs --key-id ID (one key for the folder)", EXIT_USAGE)
        master = _master(key, keystore, key_id, passphrase_file)
        _run_tree(_decrypt_any, _decrypt_jobs(input, output), master, force, "decrypted", protected=protected)
        return
    if key is None:
        key_id = key_id or _named_key_id(input)
    if is_dicom_native(input):
        if key_is_image:
            fail(f"{input} is a DICOM-native file of the hybrid suite; it needs its key file, not {key}", EXIT_USAGE)
        master = _master(key, keystore, key_id, passphrase_file)
        _run_one(decrypt_dicom_native, input, output, master, force)
        return
    suite = _container_suite(input)
    if suite is Suite.PAPER:
        _warn_paper()
        if key is None:
            fail(f"{input} is a 'paper' container; it needs --key KEY.png, its key image", EXIT_USAGE)
        if not key_is_image and key.exists():
            fail(f"{input} is a 'paper' container; it needs its key image (PNG), not the key file {key}", EXIT_USAGE)
        key_image = _load_key_image_for_cli(key)
        with guarded():
            decrypt_file_paper(input, output, key_image, despeckle=despeckle, force=force)
        # Every time: the key image's fingerprint matched, and that is all anyone can tell.
        err_console.print(f"warning: {printable(output)}: {UNVERIFIED_WARNING}", markup=False)
        return
    if key_is_image:
        fail(f"{input} is a 'hybrid' container; it needs its key file, not the key image {key}", EXIT_USAGE)
    master = _master(key, keystore, key_id, passphrase_file)
    _run_one(decrypt_file, input, output, master, force)
