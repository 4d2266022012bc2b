"""Every shell and Python block of README.md and docs/*.md runs as written (docs/scripts/run_docs.py).

Each document runs in a fresh folder holding only what `kedi samples .` writes, its
blocks in order; a block that needs a server or a long run carries
``<!-- docs-test: skip REASON -->`` and is listed, not run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "run_docs", Path(__file__).parents[1] / "docs" / "scripts" / "run_docs.py"
)
assert _SPEC is not None and _SPEC.loader is not None
run_docs = importlib.util.module_from_spec(_SPEC)
sys.modules["run_docs"] = run_docs
_SPEC.loader.exec_module(run_docs)

DOCUMENTS = run_docs.documents()
RUNNABLE = [d for d in DOCUMENTS if any(b.runnable for b in run_docs.blocks(d))]


def test_every_fence_says_what_it_holds() -> None:
    """A fence without a language would be neither run nor flagged: each names one the runner knows."""
    known = run_docs.SHELL | run_docs.PYTHON | run_docs.PASSIVE
    unnamed = [b.where for d in DOCUMENTS for b in run_docs.blocks(d) if b.lang not in known]
    assert not unnamed, f"fences with no or an unknown language: {unnamed}"


#: What may keep a block from running here, as its skip reason must say: it installs packages,
#: needs a server the test cannot start, runs for minutes, or runs from a checkout of the repository.
SKIP_KINDS = ("installs packages", "server", "minutes", "checkout")


def test_skipped_blocks_say_why_and_the_reason_is_one_that_holds() -> None:
    """A block is never skipped because it fails: only for one of SKIP_KINDS, named in its reason."""
    skipped = [b for d in DOCUMENTS for b in run_docs.blocks(d) if b.skip_reason is not None]
    unexplained = [(b.where, b.skip_reason) for b in skipped if not any(k in b.skip_reason for k in SKIP_KINDS)]
    assert not unexplained, unexplained
    assert all(b.lang in run_docs.SHELL | run_docs.PYTHON for b in skipped), "skip marks only runnable blocks"


def test_the_readme_and_the_api_page_have_examples() -> None:
    counts = {d.name: sum(b.runnable for b in run_docs.blocks(d)) for d in RUNNABLE}
    assert counts.get("README.md", 0) >= 8 and counts.get("API.md", 0) >= 6, counts


def test_the_runner_reports_a_failing_block(tmp_path: Path) -> None:
    """The check can fail: a block that exits non-zero stops the document and is reported with its line."""
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```sh\ntest -f CT_small.dcm\necho ok > made.txt\n```\n\n"
        "```python\nfrom pathlib import Path\nassert Path('made.txt').read_text() == 'ok\\n'\n```\n\n"
        "<!-- docs-test: skip needs a server that tests cannot start -->\n```sh\nexit 9\n```\n\n"
        "```sh\nfalse\n```\n\n```sh\necho never\n```\n",
        encoding="utf-8",
    )
    run = run_docs.run_document(page)
    assert [o.returncode for o in run.outcomes] == [0, 0, 1]
    assert run.failed is not None and run.failed.block.line == 18


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda d: d.name)
def test_document_runs_as_written(document: Path) -> None:
    run = run_docs.run_document(document)
    outcome = run.failed
    assert outcome is None, run_docs.describe_failure(outcome)
