"""`kedi docs`: the documents of ``docs/`` that ship inside the package, for whoever installed a wheel.

Help screens, error messages and docstrings cite ``docs/FORMAT.md`` and its
siblings; a checkout has them under ``docs/``, an installed wheel carries the same
files as ``deepkedi/docs/*.md`` (``src/deepkedi/docs`` links to the top-level
folder, and ``pyproject.toml`` ships it as package data).
"""

from importlib import resources
from importlib.abc import Traversable
from typing import Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_INPUT, EXIT_USAGE, fail, printable

__all__ = ["docs", "shipped_docs"]


def shipped_docs() -> dict[str, Traversable]:
    """The shipped documents by name (``"FORMAT"`` for ``FORMAT.md``), in name order; empty when none ship."""
    folder = resources.files("deepkedi") / "docs"
    if not folder.is_dir():
        return {}
    found = (entry for entry in folder.iterdir() if entry.name.endswith(".md") and entry.is_file())
    return {entry.name.removesuffix(".md"): entry for entry in sorted(found, key=lambda entry: entry.name)}


def _title(document: Traversable) -> str:
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


@app.command(examples=("kedi docs", "kedi docs FORMAT > format.md", "kedi docs API --path"))
def docs(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="A document: FORMAT, docs/FORMAT.md and format all name docs/FORMAT.md. Omitted: list them.",
        ),
    ] = None,
    path: Annotated[bool, typer.Option("--path", help="Print where the document is instead of its text.")] = False,
) -> None:
    """Print a document of deepkedi's docs/ folder (Markdown), or list them.

    Help screens and messages cite docs/NAME.md; this command shows the copy
    installed with the package, so it works from a wheel as from a checkout.

    Examples: kedi docs (the list); kedi docs INSTALL; kedi docs docs/FORMAT.md | less
    """
    found = shipped_docs()
    if not found:
        fail("no documents were installed with this copy of deepkedi (deepkedi/docs is missing)", EXIT_INPUT)
    if name is None:
        width = max(map(len, found))
        for key, document in found.items():
            typer.echo(f"{key:<{width}}  {printable(_title(document))}")
        return
    wanted = name.removeprefix("docs/").removesuffix(".md").casefold()
    matches = [key for key in found if key.casefold() == wanted]
    if not matches:
        fail(f"no document is named {name!r}; one of: {', '.join(found)}", EXIT_USAGE)
    document = found[matches[0]]
    if path:
        typer.echo(str(document))
    else:
        typer.echo(document.read_text(encoding="utf-8"), nl=False)
