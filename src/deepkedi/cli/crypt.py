"""`kedi encrypt` and `kedi decrypt`: one file or a whole folder tree; suites hybrid and paper.

The commands parse options, resolve the key (a key file, a key image or the
keystore), call :mod:`deepkedi.api` and render what it returns; which kind of
container a file is and how it decrypts is the library's to know.
"""

import contextlib
import enum
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

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
    printable,
)
from deepkedi.cli._scheduler import SchedulerOption, on_cluster
from deepkedi.errors import DeepKediError, KeyFileError, UnsupportedImageError
from deepkedi.fileio import atomic_output, make_output_folder
from deepkedi.inputs import check_regular_input, open_input
from deepkedi.transforms.patterns import DEFAULT_PATTERN, ZigzagPattern

if TYPE_CHECKING:
    from deepkedi import api, batch
    from deepkedi.cipher.keytypes import Key, KeyImage
    from deepkedi.keys.keystore import Keystore

FIGURE_NAME = "cipher_images.png"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEYGEN_PAPER = "make one with `kedi keygen --suite paper --like IMAGE`"
#: Files at least this large get their own progress bar in single-file mode.
_PROGRESS_MIN_BYTES = 64 << 20


class SuiteChoice(str, enum.Enum):
    hybrid = "hybrid"
    paper = "paper"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one existing file (through symbolic or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # one of them does not exist: nothing to overwrite


def _protected_files(
    input: Path, key: Path | None, keystore: str | None, passphrase_file: Path | None
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


def _run_one(input: Path, call: "Callable[[api.Progress | None], api.FileResult]") -> "api.FileResult":
    """One file through the library, with a progress bar when it is large and stderr a terminal."""
    size = input.stat().st_size if input.exists() else 0
    if size < _PROGRESS_MIN_BYTES or not err_console.is_terminal:
        with guarded():
            return call(None)
    with _progress() as bar, guarded():
        task = bar.add_task(escape(printable(input.name)), total=None)
        return call(lambda done, total: bar.update(task, completed=done, total=total))


@contextlib.contextmanager
def _tree_progress(verb: str) -> "Iterator[api.TreeProgress]":
    with _progress() as bar:
        task = bar.add_task(verb, total=None)

        def report(done: int, total: int, current: Path) -> None:
            # The description is rich markup: a file named "[/]" must show as itself.
            bar.update(task, completed=done, total=total, description=f"{verb} {escape(printable(current.name))}")

        yield report


QuietOption = Annotated[
    bool, typer.Option("-q", "--quiet", help="Print no summary line (warnings and errors still go to stderr).")
]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "-j", "--jobs", min=1, help="Folder input: worker processes (default: the number of cores; 1: no pool)."
    ),
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Folder input: continue the run the manifest records; files it finished and that verify are kept.",
    ),
]
ManifestOption = Annotated[
    Path | None,
    typer.Option(help="Folder input: the run's SQLite manifest (default: OUTPUT/.kedi-manifest.sqlite)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Folder input: print the run's summary as JSON.")]
OnlyImagesOption = Annotated[
    bool,
    typer.Option(
        "--only-images",
        help="Folder input: skip files that are not images (DICOM without pixels, DICOMDIR, PDF, text) instead "
        "of sealing their bytes whole into opaque .kedi containers (the default: every file is protected).",
    ),
]
OpaqueOption = Annotated[
    bool,
    typer.Option(
        "--opaque",
        help="One file: seal its bytes whole into an opaque .kedi container, whatever it is (hybrid suite; "
        "`kedi decrypt` restores it byte for byte).",
    ),
]


def _refuse_batch_options(jobs: int | None, resume: bool, manifest: Path | None, as_json: bool) -> None:
    if jobs is not None or resume or manifest is not None or as_json:
        fail("--jobs, --resume, --manifest and --json belong to folder runs; the input is one file", EXIT_USAGE)


def _exit_code_of(kind: str | None, message: str) -> int:
    """The exit code of a worker's failure, from its exception class's name (a deepkedi error or a built-in)."""
    import builtins

    from deepkedi import errors

    cls = getattr(errors, kind or "", None) or getattr(builtins, kind or "", None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return exit_code_for(cls(message))
    return EXIT_INPUT


def _render_batch(
    result: "batch.BatchResult", verb: str, source: Path | str, output: Path | str, *, quiet: bool, as_json: bool
) -> None:
    """A folder run's summary (a line, or ``--json``), its failures on stderr, and the exit code.

    Exit 0 only when every file is done or deliberately skipped; otherwise the most
    serious code among the failures (authentication before input), 2 for refused outputs.
    """
    failed, refused = result.failed, result.refused
    if as_json:
        typer.echo(json.dumps(result.summary(), sort_keys=True))
    else:
        done = result.done
        total = len(done) + len(failed) + len(refused)
        opaque = {id(o) for o in result.opaque}
        described = {o.described for o in done if o.described is not None and id(o) not in opaque}
        detail = ""
        if len(described) == 1:
            kind, suite, pattern = described.pop()
            keys = {o.entry.key_id for o in done}
            key = f", key {keys.pop()}" if len(keys) == 1 else f", {len(keys)} keys"
            prefix = "DICOM-native, " if kind == "dicom-native" else ""
            detail = f" ({prefix}{suite} suite, {pattern} zigzag{key})"
        elif done:
            detail = f" ({len({o.entry.key_id for o in done})} keys)"
        sealed = "sealed opaque" if verb == "encrypted" else "from opaque containers"
        earlier = f"; {len(opaque)} {sealed}" if opaque else ""
        earlier += f"; {len(result.earlier)} done by an earlier run" if result.earlier else ""
        _summary(
            f"{verb} {len(done)} of {total} files from {printable(source)} to {printable(output)}{detail}{earlier}",
            quiet and result.ok,
        )
    for outcome in failed:
        err_console.print(f"kedi: error: {printable(outcome.entry.error or '')}", markup=False)
    if refused:
        first = refused[0].entry
        err_console.print(
            f"kedi: error: {len(refused)} output(s) exist and were left alone (first: {printable(first.output)}); "
            "use --resume to continue the run that wrote them, or --force to replace them",
            markup=False,
        )
    if not result.ok:
        codes = [_exit_code_of(o.error_kind, o.entry.error or "") for o in failed]
        raise typer.Exit(min(codes + ([EXIT_USAGE] if refused else [])))


def _described(info: "api.ContainerInfo") -> str:
    """What a summary line says of an encrypted file: its kind, suite, zigzag pattern and key id (hex)."""
    header = info.header
    suite = header.suite.name.lower()
    # A paper container names its key image by fingerprint; a hybrid one names its master key's id.
    key = f"key image {header.key_id.hex()}" if suite == "paper" else f"key {header.key_id.hex()}"
    if info.opaque:  # a file sealed whole: no pixels, no zigzag
        return f"opaque, {suite} suite, {key}"
    kind = "DICOM-native, " if info.kind.value == "dicom-native" else ""
    return f"{kind}{suite} suite, {header.pattern.value} zigzag, {key}"


def _summary(line: str, quiet: bool) -> None:
    """The one line a successful command prints on stdout (never wrapped: scripts read it), unless quiet."""
    if not quiet:
        console.print(line, markup=False, soft_wrap=True)


def _file_summary(verb: str, result: "api.FileResult", quiet: bool) -> None:
    """``encrypted CT_small.dcm to ct.kedi (hybrid suite, horizontal zigzag, key 2593…)``."""
    _summary(
        f"{verb} {printable(result.source)} to {printable(result.output)} ({_described(result.info)})",
        quiet,
    )


def _check_input_file(path: Path | None, error: type[DeepKediError] = UnsupportedImageError) -> None:
    """A FIFO or device as input or key: one line and exit code 4 before anything opens it.

    Folders are walked for regular files only; a missing path is reported by whoever reads it.
    """
    if path is not None and path.exists() and not path.is_dir():
        with guarded():
            check_regular_input(path, error=error)


def _warn_paper() -> None:
    from deepkedi.cipher.paper import PAPER_WARNING

    err_console.print(f"warning: {PAPER_WARNING}", markup=False)


def _is_key_image(path: Path) -> bool:
    """Whether ``path`` looks like a paper key image (a PNG) rather than a hybrid key file (JSON)."""
    try:
        with open_input(path, error=KeyFileError) as fh:
            return fh.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
    except (OSError, KeyFileError):
        return False  # the key loader reports the missing, unreadable or special file


def _load_key_image_for_cli(path: Path) -> "KeyImage":
    if path.exists() and not _is_key_image(path):
        fail(
            f"{path} is a key file of the hybrid suite; suite 'paper' needs a key image (PNG): {_KEYGEN_PAPER}",
            EXIT_USAGE,
        )
    with guarded():
        from deepkedi.keys import load_key_image

        return load_key_image(path)


def _image_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz",):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _encrypt_all_patterns(
    input: Path, outdir: Path, key_image: "KeyImage", *, seed: int | None, force: bool, quiet: bool
) -> None:
    """The paper's figure: the three patterns' containers and the plain image beside its cipher images."""
    from deepkedi import api
    from deepkedi.imaging import read_image
    from deepkedi.imaging.montage import display_plane, montage

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
            target = outdir / f"{stem}.{pattern.value}{api.CONTAINER_SUFFIX}"
            done = api.encrypt_file(input, target, key_image, pattern=pattern, seed=seed, force=force)
            panels.append((f"{pattern.value} zigzag", display_plane(api.cipher_image(target))))
            _file_summary("encrypted", done, quiet)
        figure = outdir / FIGURE_NAME
        with atomic_output(figure, force=force) as fh:
            montage(panels, columns=len(panels)).save(fh, format="PNG")
        _summary(f"wrote {printable(figure)}", quiet)


@app.command(
    examples=(
        "kedi keygen -o site.key",
        "kedi encrypt CT_small.dcm -o ct.kedi --key site.key",
        "kedi encrypt study -o study-encrypted --key site.key",
    )
)
def encrypt(
    input: Annotated[
        str,
        typer.Argument(
            help="Image file (DICOM, NIfTI, MGH, PNG, TIFF, JPEG, .npy) or folder; a folder may be an fsspec URL."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Container to write; folder for a folder input or --all-patterns (a folder may be an fsspec URL).",
        ),
    ],
    key: Annotated[Path | None, typer.Option("--key", help="Key file (hybrid) or key image PNG (paper).")] = None,
    keystore: Annotated[
        str | None, typer.Option(help="Keystore URL (default: KEDI_KEYSTORE or the user's keystore).")
    ] = None,
    key_id: Annotated[str | None, typer.Option(help="Take the key from the keystore by this id.")] = None,
    suite: Annotated[SuiteChoice, typer.Option(help="Cipher suite; 'paper' is insecure, research only.")] = (
        SuiteChoice.hybrid
    ),
    pattern: Annotated[ZigzagPattern, typer.Option(help="Zigzag scan order of each plane.")] = DEFAULT_PATTERN,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of a sealed key file, or of the keystore.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the speckle noise (--suite paper only).")] = None,
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
    only_images: OnlyImagesOption = False,
    opaque: OpaqueOption = False,
    jobs: JobsOption = None,
    resume: ResumeOption = False,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
    scheduler: SchedulerOption = None,
    quiet: QuietOption = False,
) -> None:
    """Encrypt an image file, or every file of a folder tree, into containers.

    Suite hybrid (default): the container restores the original file byte for
    byte with `kedi decrypt`. Folders are mirrored under OUTPUT with '.kedi'
    appended to each name.

    Suite paper: Deep-KEDI as published (speckle, zigzag, XOR with a key image).
    Not secure and lossy; for reproducing the paper only. One file at a time.

    --as-dicom: OUTPUT is a DICOM file of the same SOP Class, de-identified with
    the PS3.15 Basic Profile, whose pixels are the cipher image and whose
    Encrypted Attributes Sequence holds the original (kedi docs DICOM_NATIVE).

    On success one line on stdout says what was encrypted, where to, and with
    what: suite, zigzag pattern and the key id (hex) that `kedi inspect` shows
    (for a folder: how many files). -q silences it.

    Folders run on --jobs worker processes, or on a Dask cluster with
    --scheduler, and are recorded in a manifest; --resume continues an
    interrupted run (kedi docs SCALE). Every file of a folder is protected:
    what is not an image (a structured report, a DICOMDIR, a PDF) is sealed
    whole into an opaque '.kedi' container that `kedi decrypt` restores byte
    for byte, unless --only-images skips it. One file that is not an image is
    refused unless --opaque.
    """
    from deepkedi import api

    if as_dicom and suite is SuiteChoice.paper:
        fail("--as-dicom uses the hybrid suite; it cannot be combined with --suite paper", EXIT_USAGE)
    src, dst, remote = _locations(input, output)
    if remote and (suite is SuiteChoice.paper or all_patterns):
        fail("--suite paper works on local files only", EXIT_USAGE)
    _refuse_opaque_options(remote or src.is_dir(), suite, as_dicom, only_images, opaque)
    protected = _protected_files(src, key, keystore, passphrase_file)
    if not remote and not src.is_dir() and not all_patterns:
        _refuse_overwriting([dst], protected)
    if suite is SuiteChoice.paper:
        _warn_paper()
        if key is None:
            fail("--suite paper needs --key KEY.png, the key image", EXIT_USAGE)
        if not src.exists():
            fail(f"{src}: no such file or folder", EXIT_INPUT)
        _check_input_file(src)
        _check_input_file(key, KeyFileError)
        if src.is_dir():
            fail("--suite paper encrypts one file at a time; encrypt folders with --suite hybrid", EXIT_USAGE)
        key_image = _load_key_image_for_cli(key)
        if all_patterns:
            _encrypt_all_patterns(src, dst, key_image, seed=seed, force=force, quiet=quiet)
            return
        with guarded():
            done = api.encrypt_file(src, dst, key_image, pattern=pattern, seed=seed, force=force)
        _file_summary("encrypted", done, quiet)
        return
    if all_patterns or seed is not None:
        fail("--all-patterns and --seed belong to --suite paper", EXIT_USAGE)
    if key is not None and (key_id is not None or keystore is not None):
        fail("give either --key KEYFILE or the keystore (--keystore URL / --key-id ID), not both", EXIT_USAGE)
    if key is None and key_id is None:
        fail("name the key: --key KEYFILE, or --key-id ID from the keystore", EXIT_USAGE)
    if not remote and not src.exists():
        fail(f"{src}: no such file or folder", EXIT_INPUT)
    if not remote:
        _check_input_file(src)
    _check_input_file(key, KeyFileError)
    if key is not None and _is_key_image(key):
        fail(
            f"{key} is a key image of the paper suite; give --suite paper, or a key file from `kedi keygen`",
            EXIT_USAGE,
        )
    master = _master(key, keystore, key_id, passphrase_file)
    if remote or src.is_dir():
        from deepkedi import batch

        with on_cluster(scheduler), _tree_progress("encrypted") as report, guarded():
            result = batch.run_batch(
                input if remote else src,
                output if remote else dst,
                master,
                mode="encrypt",
                as_dicom=as_dicom,
                pattern=pattern.value,
                only_images=only_images,
                force=force,
                resume=resume,
                jobs=jobs,
                manifest=manifest,
                progress=report,
                protect=dict(protected),
                scheduler=scheduler,
            )
        if as_dicom and not result.done and not result.failed and not result.refused:
            fail(f"{src}: no DICOM files in this folder; --as-dicom encrypts DICOM files only", EXIT_INPUT)
        _note_opaque(result, as_dicom=as_dicom, as_json=as_json)
        _render_batch(
            result, "encrypted", input if remote else src, output if remote else dst, quiet=quiet, as_json=as_json
        )
        return
    _refuse_batch_options(jobs, resume, manifest, as_json)
    if scheduler is not None:
        fail("--scheduler belongs to folder runs; the input is one file", EXIT_USAGE)
    if opaque:
        done = _run_one(
            src, lambda progress: api.encrypt_file(src, dst, master, opaque=True, force=force, progress=progress)
        )
        _file_summary("encrypted", done, quiet)
        return
    done = _run_one(
        src,
        lambda progress: _with_opaque_hint(
            lambda: api.encrypt_file(
                src, dst, master, as_dicom=as_dicom, pattern=pattern, force=force, progress=progress
            )
        ),
    )
    _file_summary("encrypted", done, quiet)


def _refuse_opaque_options(folder: bool, suite: SuiteChoice, as_dicom: bool, only_images: bool, opaque: bool) -> None:
    if opaque and suite is SuiteChoice.paper:
        fail("--opaque needs the hybrid suite: the paper suite encrypts images only", EXIT_USAGE)
    if opaque and as_dicom:
        fail("--opaque and --as-dicom exclude each other: a DICOM-native file carries an image", EXIT_USAGE)
    if opaque and folder:
        fail("--opaque is for one file; a folder seals what is not an image by itself (see --only-images)", EXIT_USAGE)
    if only_images and not folder:
        fail("--only-images belongs to folder runs; one file that is not an image is refused anyway", EXIT_USAGE)


def _with_opaque_hint(call: "Callable[[], api.FileResult]") -> "api.FileResult":
    """``call()``; a file that is not an image is refused with a hint at ``--opaque``."""
    try:
        return call()
    except UnsupportedImageError as exc:
        hint = "; `--opaque` seals any file's bytes whole into a container that `kedi decrypt` restores"
        raise UnsupportedImageError(f"{exc}{hint}") from None


def _note_opaque(result: "batch.BatchResult", *, as_dicom: bool, as_json: bool) -> None:
    """One stderr line on files sealed opaque or skipped as not images (``--json`` has the counts)."""
    if as_json:
        return
    if result.opaque:
        where = " as .kedi containers beside the DICOM-native files" if as_dicom else ""
        err_console.print(
            f"kedi: note: sealed {len(result.opaque)} file(s) that are not images whole{where} (opaque; "
            "`kedi decrypt` restores them byte for byte; --only-images skips them)",
            markup=False,
        )
    beside = [o for o in result.done if as_dicom and o.described is not None and o.described[0] == "container"]
    if beside:
        err_console.print(
            f"kedi: note: encrypted {len(beside)} image(s) that are not DICOM into .kedi containers beside the "
            "DICOM-native files",
            markup=False,
        )
    if result.skipped:
        what = "non-DICOM or non-image" if as_dicom else "non-image"
        err_console.print(f"kedi: note: skipped {len(result.skipped)} {what} file(s) (--only-images)", markup=False)


def _locations(input: str, output: str) -> tuple[Path, Path, bool]:
    """The input and output as paths, and whether either is a URL (a folder run through fsspec).

    A URL reaches the batch engine as given; the paths are then only placeholders.
    """
    from deepkedi.locations import is_url

    return Path(input), Path(output), is_url(input) or is_url(output)


def _master(key: Path | None, keystore: str | None, key_id: str | None, passphrase_file: Path | None) -> "Key":
    """The hybrid master key from a key file or from the keystore (the access is audited there)."""
    if key is not None:
        return load_key_for_cli(key, passphrase_file)
    from deepkedi.cli.keys import key_from_keystore

    assert key_id is not None
    return key_from_keystore(keystore, key_id, passphrase_file)


@contextlib.contextmanager
def _decryptor(
    key: Path | None, keystore: str | None, key_id: str | None, passphrase_file: Path | None
) -> "Iterator[tuple[Key | KeyImage | Keystore, str | None]]":
    """What decrypts, and who asks: a key file, a key image, one keystore key, or the open keystore.

    With the keystore and no ``--key-id``, the library takes the key each container's
    header names (every access audited under the user's name).
    """
    if key is not None:
        if _is_key_image(key):
            _warn_paper()
            yield _load_key_image_for_cli(key), None
        else:
            yield load_key_for_cli(key, passphrase_file), None
        return
    if key_id is not None:
        yield _master(None, keystore, key_id, passphrase_file), None
        return
    from deepkedi.cli.keys import actor, open_keystore

    with open_keystore(keystore, passphrase_file) as store:
        yield store, actor()


@app.command(
    examples=(
        "kedi keygen -o site.key",
        "kedi encrypt CT_small.dcm -o ct.kedi --key site.key",
        "kedi decrypt ct.kedi -o ct-restored.dcm --key site.key",
    )
)
def decrypt(
    input: Annotated[
        str,
        typer.Argument(
            help="Container or DICOM-native file, or a folder of them ('.kedi' and DICOM-native); "
            "a folder may be an fsspec URL."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="File to restore (paper: its suffix picks the format), or folder for a folder input "
            "(a folder may be an fsspec URL).",
        ),
    ],
    key: Annotated[Path | None, typer.Option("--key", help="Key file (hybrid) or key image PNG (paper).")] = None,
    keystore: Annotated[
        str | None,
        typer.Option(help="Take the key from this keystore (default: KEDI_KEYSTORE or the user's keystore)."),
    ] = None,
    key_id: Annotated[str | None, typer.Option(help="Keystore key id (default: the one the container names).")] = (
        None
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase of a sealed key file, or of the keystore.")
    ] = None,
    despeckle: Annotated[
        bool, typer.Option(help="Suite paper: remove the speckle after decryption (the paper's last step).")
    ] = True,
    jobs: JobsOption = None,
    resume: ResumeOption = False,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
    scheduler: SchedulerOption = None,
    quiet: QuietOption = False,
) -> None:
    """Decrypt a container: hybrid restores the original file byte for byte; paper gives an estimate.

    Wrong key, modified or truncated container: one line on stderr, exit code 3,
    no output. For a folder, every '.kedi' file is restored under OUTPUT without
    its '.kedi' suffix (hybrid only), and every DICOM-native file (`kedi encrypt
    --as-dicom`) under its own name. The container's header says its suite;
    a paper container needs its key image (.png), a hybrid one its key file.
    Without --key, the keystore gives the key each container names.
    DICOM-native files are recognised automatically and restored byte for byte.

    On success one line on stdout says what was decrypted, where to, and the
    container's suite, pattern and key id (for a folder: how many files). -q
    silences it.
    """
    from deepkedi import api
    from deepkedi.cipher.paper import UNVERIFIED_WARNING

    if key is not None and (key_id is not None or keystore is not None):
        fail("give either --key KEYFILE or the keystore (--keystore URL / --key-id ID), not both", EXIT_USAGE)
    src, dst, remote = _locations(input, output)
    if not remote and not src.exists():
        fail(f"{src}: no such file or folder", EXIT_INPUT)
    if not remote:
        _check_input_file(src)
    _check_input_file(key, KeyFileError)
    protected = _protected_files(src, key, keystore, passphrase_file)
    folder = remote or src.is_dir()
    if not folder:
        _refuse_overwriting([dst], protected)
    if folder and key is not None and _is_key_image(key):
        fail("paper containers are decrypted one file at a time; give a container, not a folder", EXIT_USAGE)
    if not folder:
        _refuse_batch_options(jobs, resume, manifest, as_json)
        if scheduler is not None:
            fail("--scheduler belongs to folder runs; the input is one file", EXIT_USAGE)
    with _decryptor(key, keystore, key_id, passphrase_file) as (decryptor, who):
        if folder:
            from deepkedi import batch

            with on_cluster(scheduler), _tree_progress("decrypted") as report, guarded():
                # A key image was refused above for a folder: decryptor is a Key or the keystore.
                result = batch.run_batch(
                    input if remote else src,
                    output if remote else dst,
                    decryptor,  # type: ignore[arg-type]  # see above
                    mode="decrypt",
                    actor=who,
                    force=force,
                    resume=resume,
                    jobs=jobs,
                    manifest=manifest,
                    progress=report,
                    protect=dict(protected),
                    scheduler=scheduler,
                )
            _render_batch(
                result, "decrypted", input if remote else src, output if remote else dst, quiet=quiet, as_json=as_json
            )
            return
        done = _run_one(
            src,
            lambda progress: api.decrypt_file(
                src, dst, decryptor, actor=who, force=force, progress=progress, despeckle=despeckle
            ),
        )
    _file_summary("decrypted", done, quiet)
    if not done.verified:
        # Every paper decryption: the key image's fingerprint matched, and that is all anyone can tell.
        err_console.print(f"warning: {printable(dst)}: {UNVERIFIED_WARNING}", markup=False)
