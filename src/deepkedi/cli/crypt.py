"""`kedi encrypt` and `kedi decrypt`: one file or a whole folder tree."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from deepkedi.cipher.hybrid import DEFAULT_PATTERN, decrypt_file, encrypt_file
from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_INPUT,
    EXIT_USAGE,
    console,
    err_console,
    exit_code_for,
    fail,
    guarded,
    load_key_for_cli,
    message_for,
)
from deepkedi.errors import DeepKediError
from deepkedi.keys import Key
from deepkedi.transforms.zigzag import ZigzagPattern

CONTAINER_SUFFIX = ".kedi"
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


def _run_one(action: Callable[..., object], src: Path, dst: Path, key: Key, force: bool, **options: object) -> None:
    size = src.stat().st_size if src.exists() else 0
    if size < _PROGRESS_MIN_BYTES or not err_console.is_terminal:
        with guarded():
            action(src, dst, key, force=force, **options)
        return
    with _progress() as bar, guarded():
        task = bar.add_task(src.name, total=None)
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
    **options: object,
) -> None:
    failures: list[_Failure] = []
    with _progress() as bar:
        task = bar.add_task(verb, total=sum(src.stat().st_size for src, _ in jobs))
        for src, dst in jobs:
            bar.update(task, description=f"{verb} {src.name}")
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                action(src, dst, key, force=force, **options)
            except (DeepKediError, ValueError, OSError) as exc:
                failures.append(_Failure(src, message_for(exc), exit_code_for(exc)))
            bar.advance(task, src.stat().st_size)
    done = len(jobs) - len(failures)
    console.print(f"{verb}: {done} of {len(jobs)} files", markup=False)
    if failures:
        for failure in failures:
            err_console.print(f"kedi: error: {failure.message}", markup=False)
        # The most serious failure decides: authentication (3) before bad input (4).
        raise typer.Exit(min(f.code for f in failures))


@app.command()
def encrypt(
    input: Annotated[Path, typer.Argument(help="Image file (DICOM, NIfTI, PNG, TIFF, JPEG, .npy) or folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Container to write, or folder for a folder input.")],
    key: Annotated[Path, typer.Option("--key", help="Key file.")],
    suite: Annotated[SuiteChoice, typer.Option(help="Cipher suite.")] = SuiteChoice.hybrid,
    pattern: Annotated[ZigzagPattern, typer.Option(help="Zigzag scan order of each plane.")] = DEFAULT_PATTERN,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[Optional[Path], typer.Option(help="Passphrase of a sealed key file.")] = None,
) -> None:
    """Encrypt an image file, or every file of a folder tree, into containers.

    The container restores the original file byte for byte with `kedi decrypt`.
    Folders are mirrored under OUTPUT with '.kedi' appended to each name.
    """
    if suite is SuiteChoice.paper:
        fail("--suite paper is not available in this release (it arrives with the ZZ-GAN key generator)", EXIT_USAGE)
    if not input.exists():
        fail(f"{input}: no such file or folder", EXIT_INPUT)
    master = load_key_for_cli(key, passphrase_file)
    if input.is_dir():
        jobs = _tree_jobs(input, output, lambda name: name + CONTAINER_SUFFIX)
        _run_tree(encrypt_file, jobs, master, force, "encrypted", pattern=pattern)
        return
    _run_one(encrypt_file, input, output, master, force, pattern=pattern)


@app.command()
def decrypt(
    input: Annotated[Path, typer.Argument(help="Container, or folder of '.kedi' containers.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to restore, or folder for a folder input.")],
    key: Annotated[Path, typer.Option("--key", help="Key file.")],
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    passphrase_file: Annotated[Optional[Path], typer.Option(help="Passphrase of a sealed key file.")] = None,
) -> None:
    """Decrypt a container, restoring the original file byte for byte.

    Wrong key, modified or truncated container: one line on stderr, exit code 3,
    no output. For a folder, every '.kedi' file is restored under OUTPUT without
    its '.kedi' suffix.
    """
    if not input.exists():
        fail(f"{input}: no such file or folder", EXIT_INPUT)
    master = load_key_for_cli(key, passphrase_file)
    if input.is_dir():
        strip = lambda name: name[: -len(CONTAINER_SUFFIX)] if name.endswith(CONTAINER_SUFFIX) else None  # noqa: E731
        _run_tree(decrypt_file, _tree_jobs(input, output, strip), master, force, "decrypted")
        return
    _run_one(decrypt_file, input, output, master, force)
