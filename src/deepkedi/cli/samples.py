"""`kedi samples`: the files the README and docs/ use, in one folder."""

from pathlib import Path
from typing import Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import console, guarded, printable


@app.command(
    examples=(
        "kedi samples tour",
        "cd tour && kedi keygen --no-gan -o site.key",
    )
)
def samples(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write into (created if missing).")],
    force: Annotated[bool, typer.Option("--force", help="Replace sample files that exist already.")] = False,
) -> None:
    """Write the sample files every README and docs/ example uses into DIR.

    CT_small.dcm, MR_small.dcm, scan.dcm, study/, brain.nii.gz, pixels.npy and
    keystream.bin: real files shipped inside pydicom and nibabel, synthetic
    phantoms and a keystream. Nothing is downloaded.
    """
    from deepkedi.datasets.samples import SAMPLE_FILES, write_samples

    with guarded():
        written = write_samples(folder, force=force)
    names = [printable(path) + ("/" if path.is_dir() else "") for path in written]
    width = max(len(name) for name in names)
    for name, entry in zip(names, SAMPLE_FILES, strict=True):
        console.print(f"{name:<{width}}  {entry.description}", markup=False, soft_wrap=True)
