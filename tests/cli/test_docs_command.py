"""`kedi docs`: the documents that help screens and messages cite travel with the package.

``make wheel-check`` checks the built wheel itself (its ``deepkedi/docs/*.md``); these tests
check that the package's view of the documents is the repository's ``docs/`` folder and
that every ``docs/NAME.md`` the code cites is one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepkedi.cli._common import EXIT_USAGE
from deepkedi.cli.docs import shipped_docs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "deepkedi"


def test_the_shipped_documents_are_the_repository_docs() -> None:
    shipped = shipped_docs()
    assert set(shipped) == {path.stem for path in DOCS.glob("*.md")}
    for name, document in shipped.items():
        assert document.read_text(encoding="utf-8") == (DOCS / f"{name}.md").read_text(encoding="utf-8")


def test_every_document_the_code_cites_ships() -> None:
    cited = {
        match
        for path in SRC.rglob("*.py")
        if "docs" not in path.relative_to(SRC).parts  # the link to docs/ holds scripts, not the package's code
        for match in re.findall(r"docs/([A-Za-z_]+)\.md", path.read_text(encoding="utf-8"))
    } - {"NAME"}  # `kedi docs` says "docs/NAME.md" for any of them
    assert {"FORMAT", "INSTALL"} <= cited
    assert cited <= set(shipped_docs()), sorted(cited - set(shipped_docs()))


def test_list_names_each_document_with_its_title(kedi) -> None:
    result = kedi("docs")
    assert result.exit_code == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert rows["FORMAT"] == "The deepkedi container, version 1"
    assert rows["INSTALL"] == "Installing deepkedi"
    assert set(rows) == set(shipped_docs())


@pytest.mark.parametrize("name", ["INSTALL", "install", "docs/INSTALL.md", "INSTALL.md"])
def test_a_document_prints_as_it_is(kedi, name: str) -> None:
    result = kedi("docs", name)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (DOCS / "INSTALL.md").read_text(encoding="utf-8")


def test_path_points_at_the_document(kedi) -> None:
    result = kedi("docs", "FORMAT", "--path")
    assert result.exit_code == 0
    assert Path(result.stdout.strip()).read_bytes() == (DOCS / "FORMAT.md").read_bytes()


def test_an_unknown_name_lists_the_documents(kedi) -> None:
    result = kedi("docs", "FORMATS")
    assert result.exit_code == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1 and "FORMAT, " in result.stderr
