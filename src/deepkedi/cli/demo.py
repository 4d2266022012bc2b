"""`kedi demo`: an end-to-end tour on the bundled samples (the tour itself is cli/_demo_tour.py)."""

from pathlib import Path
from typing import Annotated

import typer

from deepkedi.cli import app


@app.command(examples=("kedi demo --out demo-out",))
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the key, containers, restored files and figure.")] = Path(
        "demo-out"
    ),
    force: Annotated[bool, typer.Option("--force", help="Empty OUT first if it exists.")] = False,
) -> None:
    """Encrypt and restore every bundled sample in all three zigzag patterns, then try to break one."""
    from deepkedi.cli._demo_tour import run

    run(out, force)
