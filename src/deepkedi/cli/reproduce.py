"""`kedi reproduce`: the paper's tables and figures, the baselines and the attack suite, as one report."""

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    err_console,
    fail,
    guarded,
    printable,
)


@app.command(examples=("kedi reproduce --quick --out reproduce-out",))
def reproduce(
    data: Annotated[
        Path | None, typer.Option(help="Folder of images, one sub-folder per group (default: bundled data).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.html, CSV, JSON and PNG files.")] = Path(
        "reproduce-out"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="A reduced run (phantoms at 128², seconds rather than minutes).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Key seed of every scheme (keys B, C, D use the next seeds).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace files of an earlier report in OUT.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Re-run the paper's experiments (Tables 1-6, Figs. 6-10) for every scheme, and the attack suite.

    Schemes: paper (as published, insecure), hybrid, and the baselines xor-fixed-key,
    logistic-map, arnold-cat-xor and aes-ctr-reused-nonce. Numbers the paper reports
    appear only in rows marked as quoted.
    """
    from deepkedi.analysis import experiments
    from deepkedi.analysis.report import broken_by, write_report
    from deepkedi.analysis.schemes import SCHEME_NAMES
    from deepkedi.errors import require_extra

    with guarded():  # before minutes of experiments, not at the first figure
        require_extra("matplotlib", "report", feature="kedi reproduce (its figures)")
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file; --out names a folder", EXIT_USAGE)
    if (out / "report.md").exists() and not force:
        fail(f"{out} already holds a report; use --force to replace it", EXIT_USAGE)
    with guarded():
        if data is not None:
            images, skipped = experiments.folder_images(data, quick=quick)
        else:
            images, skipped = experiments.bundled_images(quick=quick)
    sizes = (256,) if quick else (256, 512)
    total = experiments.plan(images, SCHEME_NAMES, timing_sizes=sizes)
    err_console.print(
        f"reproducing on {len(images)} images in {len({i.group for i in images})} groups "
        f"({'quick' if quick else 'full'} run); {len(skipped)} {'file' if len(skipped) == 1 else 'files'} skipped",
        markup=False,
        soft_wrap=True,
    )
    columns = (
        TextColumn("[bold]reproduce"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def step(description: str) -> None:
            progress.update(task, advance=1, description=description)

        with guarded():
            result = experiments.reproduce(images, quick=quick, seed=seed, skipped=skipped, step=step)
    with guarded():
        written = write_report(result, out, force=force)
    broken = broken_by(result)
    console.print(
        f"wrote {len(written)} files to {printable(out)}: report.md, report.html, results.json, "
        f"{len(result.tables)} tables (CSV), {len(result.figures)} figures (PNG) in {result.meta['seconds']} s",
        markup=False,
        soft_wrap=True,
    )
    for scheme in SCHEME_NAMES:
        attacks = broken.get(scheme, [])
        console.print(
            f"  {scheme:<22} " + (f"broken by {', '.join(attacks)}" if attacks else "resisted every attack"),
            markup=False,
        )
